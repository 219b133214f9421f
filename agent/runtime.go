package agent

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/probe"
)

// Runtime is what the agent needs from the host: the host half of a task
// (its sandbox and persistent volumes, as directories) and the container
// half (run, stop, watch). The agent calls every method from a worker
// goroutine, never from its loop. sandbox/docker implements it; the fake
// in agent/agenttest does too.
//
// Error classes (errors.Is): every container method may return
// sandbox.ErrUnavailable when the runtime does not answer. Run returns
// sandbox.ErrImageUnavailable (as a *sandbox.ImageError) when the image can
// be neither found nor pulled, and sandbox.ErrConflict when the task's
// container name is taken by a container that is not the task's. Inspect
// returns sandbox.ErrNotFound. Stop and Remove treat a missing container as
// done. PrepareSandbox returns sandbox.ErrUnsafePath for a mount that would
// leave its directory; CreateVolume returns sandbox.ErrNoSpace when the
// file system lacks the volume's size.
type Runtime interface {
	HostRuntime
	ContainerRuntime
	// CheckParameter checks one container.docker.parameters entry when an
	// app is validated. Its error, when the key itself is what is wrong,
	// has a method UnknownKey() bool that reports true.
	CheckParameter(key, value string) error
}

// HostRuntime prepares and releases what a task has on the host.
type HostRuntime interface {
	// PrepareSandbox makes the task's sandbox directory and resolves its
	// mounts into spec.Binds. It is idempotent.
	PrepareSandbox(ctx context.Context, spec *sandbox.TaskSpec) error
	// Fetch puts the task's fetch URIs into its prepared sandbox and gives
	// a command task's sandbox to its user; progress gets a line now and
	// then. Running it again after a failure or a crash is safe. Errors:
	// *fetch.Error (its class: HTTP status, DNS, size limit, bad archive,
	// timeout…), sandbox.ErrNoUser.
	Fetch(ctx context.Context, spec *sandbox.TaskSpec, progress func(string)) error
	// RemoveSandbox deletes every run (sandbox) of a task.
	RemoveSandbox(ctx context.Context, taskID string) error
	// CreateVolume records the volume's owner (v.Owner), then makes the
	// volume; an existing one is kept.
	CreateVolume(ctx context.Context, v sandbox.Volume) error
	// DestroyVolume deletes a persistent volume and its owner record; a
	// missing one is done.
	DestroyVolume(ctx context.Context, persistenceID string) error
	// WriteVolumeOwner records (or corrects) the owner of a volume, beside
	// it (see sandbox.VolumeOwner). CreateVolume records v.Owner itself.
	WriteVolumeOwner(ctx context.Context, o sandbox.VolumeOwner) error
}

// ContainerRuntime runs the tasks' containers.
type ContainerRuntime interface {
	// Run makes sure the task's container exists and runs: pull the image
	// if needed, create the container (adopting one of the same name and
	// task), start it. A container that already ran and stopped is
	// returned as it is.
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
	// Probe makes a TCP or HTTP check of a task's own address (health and
	// readiness checks), from wherever this host can reach it: see
	// probe.Prober. Transport failures are results for which
	// probe.Transport is true.
	Probe(ctx context.Context, req probe.Request) probe.Result
	// ProbePath says which path checks take (for the status).
	ProbePath() probe.Info
}

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

// timeFormat is how Marathon renders times: UTC, milliseconds, Z. The
// agent uses it for version keys on disk.
const timeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeFormat) }
