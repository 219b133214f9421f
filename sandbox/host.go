package sandbox

import (
	"context"
	"strings"
)

// Host is the host half of a runtime, the same for every runtime: task
// sandboxes and persistent volumes as directories under a Layout. A
// runtime embeds it. Its methods do file system work and run on the
// agent's workers, never on its loop.
type Host struct {
	Layout Layout
}

// PrepareSandbox makes the sandbox directory of spec's run, the mount
// points of the mounts directly under MountPoint, and resolves
// spec.Mounts into spec.Binds. It is idempotent: a launch that a crash
// interrupted prepares again. Errors: ErrUnsafePath for a mount that would
// leave its directory.
func (h Host) PrepareSandbox(_ context.Context, spec *TaskSpec) error {
	binds := make([]Bind, 0, len(spec.Mounts))
	var points []string
	for _, m := range spec.Mounts {
		b, err := m.Bind(h.Layout, spec.SandboxDir)
		if err != nil {
			return err
		}
		if rel, ok := strings.CutPrefix(b.Target, MountPoint+"/"); ok && !strings.Contains(rel, "/") {
			points = append(points, rel)
		}
		binds = append(binds, b)
	}
	if _, err := h.Layout.CreateSandbox(spec.TaskID, spec.ContainerID, points); err != nil {
		return err
	}
	for i := range binds {
		if err := binds[i].Resolve(); err != nil {
			return err
		}
	}
	spec.Binds = binds
	return nil
}

// RemoveSandbox deletes every run of a task.
func (h Host) RemoveSandbox(_ context.Context, taskID string) error {
	return h.Layout.RemoveExecutor(taskID)
}

// CreateVolume makes a persistent volume's directory if it does not exist,
// after checking that the file system has its size free (ErrNoSpace). An
// existing volume is left as it is.
func (h Host) CreateVolume(_ context.Context, v Volume) error {
	_, err := h.Layout.CreateVolume(v.PersistenceID, v.SizeMiB)
	return err
}

// DestroyVolume deletes a persistent volume and everything in it. A
// missing volume is not an error.
func (h Host) DestroyVolume(_ context.Context, persistenceID string) error {
	return h.Layout.DestroyVolume(persistenceID)
}
