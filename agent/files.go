package agent

import (
	"os"
	"path/filepath"
	"syscall"

	"github.com/mesolite/mesolite/sandbox"
)

// Files of a task's sandbox that OpenTaskFile serves.
const (
	StdoutFile = sandbox.StdoutFile
	StderrFile = sandbox.StderrFile
)

// OpenTaskFile opens stdout or stderr of a task's sandbox, current task
// or past, for reading; the caller closes it. Errors: ErrInvalid for
// another name, ErrNotFound for an unknown task, a removed sandbox, or a
// file the task has not written yet.
func (a *Agent) OpenTaskFile(taskID, name string) (*os.File, error) {
	if name != StdoutFile && name != StderrFile {
		return nil, errorf(ErrInvalid, "path must be stdout or stderr")
	}
	if TaskAppID(taskID) == "" {
		return nil, errorf(ErrNotFound, "Task '%s' does not exist", taskID)
	}
	dir := ""
	if t := a.Snapshot().Task(taskID); t != nil {
		dir = t.SandboxDir
	}
	if dir == "" {
		var err error
		if dir, err = a.layout.FindSandbox(taskID); err != nil {
			return nil, errorf(ErrNotFound, "Task '%s' does not exist (or its sandbox was removed)", taskID)
		}
	}
	// O_NOFOLLOW: the task owns its sandbox and could plant a link named
	// stdout to a file only the agent may read.
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, errorf(ErrNotFound, "%s of task '%s' does not exist yet", name, taskID)
	}
	return f, nil
}
