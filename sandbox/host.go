package sandbox

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mesolite/mesolite/sandbox/fetch"
)

// Host is the host half of a runtime, the same for every runtime: task
// sandboxes and persistent volumes as directories under a Layout, and the
// fetcher that fills sandboxes. A runtime embeds it. Its methods do file
// system work and run on the agent's workers, never on its loop.
type Host struct {
	Layout Layout
	// Fetcher fetches the tasks' URIs; nil refuses a task that has some.
	Fetcher *fetch.Fetcher
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
		if rel, ok := strings.CutPrefix(b.Target, spec.SandboxPath()+"/"); ok && !strings.Contains(rel, "/") {
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

// Fetch puts the task's fetch URIs into its prepared sandbox, reporting
// progress lines, and then gives a command task's sandbox (and the top
// of each of its whole volumes) to the task's user, as Mesos's fetcher
// does when it is done. A fetch that fails or is cut short leaves no
// partial file (see package fetch); running it again is safe.
// Errors: a *fetch.Error (its class says why), ErrNoUser.
func (h Host) Fetch(ctx context.Context, spec *TaskSpec, progress func(string)) error {
	if len(spec.Fetch) > 0 {
		if h.Fetcher == nil {
			return errors.New("this runtime has no fetcher")
		}
		err := h.Fetcher.Fetch(ctx, spec.SandboxDir, spec.Fetch, func(p fetch.Progress) {
			if progress != nil {
				progress(p.String())
			}
		})
		if err != nil {
			return err
		}
	}
	if !spec.HostRoot || spec.User == "" {
		return nil
	}
	u, err := LookupUser(spec.User)
	if err != nil {
		return err
	}
	if err := ChownTree(spec.SandboxDir, u.UID, u.GID); err != nil {
		return fmt.Errorf("give the sandbox to %s: %w", spec.User, err)
	}
	for _, m := range spec.Mounts {
		if v, ok := m.(VolumeMount); ok && v.Path == "" {
			dir, err := h.Layout.VolumeDir(v.PersistenceID)
			if err != nil {
				return err
			}
			if err := os.Lchown(dir, u.UID, u.GID); err != nil {
				return fmt.Errorf("give volume %s to %s: %w", v.PersistenceID, spec.User, err)
			}
		}
	}
	return nil
}

// RemoveSandbox deletes every run of a task.
func (h Host) RemoveSandbox(_ context.Context, taskID string) error {
	return h.Layout.RemoveExecutor(taskID)
}

// CreateVolume records a persistent volume's owner (when v.Owner names
// one), then makes its directory if it does not exist, after checking that
// the file system has its size free (ErrNoSpace). An existing volume is
// left as it is. Crash windows: after the record, before the directory,
// the record alone is left (CreateVolume again finishes); the directory
// never exists without its record.
func (h Host) CreateVolume(_ context.Context, v Volume) error {
	if v.Owner.AppID != "" {
		o := v.Owner
		o.PersistenceID, o.SizeMiB = v.PersistenceID, v.SizeMiB
		if err := h.Layout.WriteOwner(o); err != nil {
			return err
		}
	}
	_, err := h.Layout.CreateVolume(v.PersistenceID, v.SizeMiB)
	return err
}

// DestroyVolume deletes a persistent volume and everything in it, then
// its owner record. A missing volume is not an error.
func (h Host) DestroyVolume(_ context.Context, persistenceID string) error {
	if err := h.Layout.DestroyVolume(persistenceID); err != nil {
		return err
	}
	return h.Layout.RemoveOwner(persistenceID)
}

// VolumesOnDisk lists the volume directories and owner records on disk.
func (h Host) VolumesOnDisk(_ context.Context) ([]VolumeOnDisk, error) {
	return h.Layout.VolumesOnDisk()
}

// WriteVolumeOwner records (or corrects) a volume's owner.
func (h Host) WriteVolumeOwner(_ context.Context, o VolumeOwner) error {
	return h.Layout.WriteOwner(o)
}
