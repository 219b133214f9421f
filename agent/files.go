package agent

import (
	"errors"
	"io/fs"

	"github.com/mesolite/mesolite/sandbox"
)

// Files of a task's sandbox that ReadTaskFile serves.
const (
	StdoutFile = sandbox.StdoutFile
	StderrFile = sandbox.StderrFile
)

// TaskFileChunk is a part of a task's stdout or stderr.
type TaskFileChunk struct {
	Data []byte
	// Offset is where Data starts; End is where the stream ends now.
	// Offsets count the bytes the task ever wrote to the stream, across
	// its rotated files (stdout, stdout.1, …): what rotation deleted is
	// gone, and a read before it starts at the first byte kept.
	Offset, End int64
}

// ReadTaskFile reads up to length bytes at offset of stdout or stderr of
// a task's sandbox, current task or past; a negative offset reads
// nothing and reports the end. Errors: ErrInvalid for another name,
// ErrNotFound for an unknown task, a removed sandbox, or a stream the task
// has not written yet.
func (a *Agent) ReadTaskFile(taskID, name string, offset, length int64) (TaskFileChunk, error) {
	if name != StdoutFile && name != StderrFile {
		return TaskFileChunk{}, errorf(ErrInvalid, "path must be stdout or stderr")
	}
	if TaskAppID(taskID) == "" {
		return TaskFileChunk{}, errorf(ErrNotFound, "Task '%s' does not exist", taskID)
	}
	dir := ""
	if t := a.Snapshot().Task(taskID); t != nil {
		dir = t.SandboxDir
	}
	if dir == "" {
		var err error
		if dir, err = a.layout.FindSandbox(taskID); err != nil {
			return TaskFileChunk{}, errorf(ErrNotFound, "Task '%s' does not exist (or its sandbox was removed)", taskID)
		}
	}
	data, at, end, err := sandbox.ReadLog(dir, name, offset, length)
	if errors.Is(err, fs.ErrNotExist) {
		return TaskFileChunk{}, errorf(ErrNotFound, "%s of task '%s' does not exist yet", name, taskID)
	}
	if err != nil {
		return TaskFileChunk{}, err
	}
	return TaskFileChunk{Data: data, Offset: at, End: end}, nil
}
