package agent

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/mesolite/mesolite/sandbox"
)

// Runtime is what the agent needs from a container runtime.
// sandbox.Docker implements it; the tests' fake does too.
//
// Error classes: every method may return sandbox.ErrUnavailable when the
// daemon does not answer. Run returns sandbox.ErrImageUnavailable (as a
// *sandbox.ImageError) when the image can be neither found nor pulled, and
// sandbox.ErrConflict when the task's container name is taken by a
// container that is not the task's. Inspect returns sandbox.ErrNotFound.
// Stop and Remove treat a missing container as done.
type Runtime interface {
	// Run makes sure the task's container exists and runs: pull the image
	// if needed, create the container (adopting one of the same name and
	// task), start it. A container that already ran and stopped is returned
	// as it is.
	Run(ctx context.Context, spec *sandbox.TaskSpec, progress func(string)) (sandbox.Container, error)
	// Stop sends the container's stop signal and SIGKILL after grace.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Remove deletes the container.
	Remove(ctx context.Context, id string) error
	// Inspect reads one container by id or name.
	Inspect(ctx context.Context, id string) (sandbox.Container, error)
	// List returns every container labelled for this agent.
	List(ctx context.Context) ([]sandbox.Container, error)
	// Events reports container events of this agent until ctx ends or the
	// stream breaks.
	Events(ctx context.Context, fn func(sandbox.Event)) error
	// Exec runs a command in a running container (COMMAND health checks).
	Exec(ctx context.Context, id string, cmd []string) (int, string, error)
	// CopyLogs appends the container's output to stdout and stderr in its
	// sandbox until the container stops or ctx ends.
	CopyLogs(ctx context.Context, id, sandboxDir string) error
}

var _ Runtime = (*sandbox.Docker)(nil)

// newUUID returns a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("read random: %v", err))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// timeFormat is how Marathon renders times: UTC, milliseconds, Z.
const timeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }
