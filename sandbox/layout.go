// Package sandbox is what a task needs from the host, whatever runs its
// container: the task spec, the kinds of mounts, the container view and
// its events, the error classes of a runtime, and the directory layout of
// sandboxes and volumes (Host). It imports nothing of the project and no
// runtime: sandbox/docker is the Docker runtime.
package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MountPoint is where the sandbox appears inside every container.
const MountPoint = "/mnt/mesos/sandbox"

// Layout names the directories under the work directory, as Mesos lays
// them out:
//
//	<work_dir>/volumes/roles/<role>/<persistence-id>/
//	<work_dir>/slaves/<agent-id>/frameworks/<framework-id>/executors/<task-id>/runs/<container-id>/
type Layout struct {
	WorkDir     string
	AgentID     string
	FrameworkID string
	Role        string
}

// FetchCacheDir holds the fetcher's cache (see package fetch).
func (l Layout) FetchCacheDir() string {
	return filepath.Join(l.WorkDir, "fetch-cache")
}

// VolumesRoot is the directory that holds the role's persistent volumes.
func (l Layout) VolumesRoot() string {
	return filepath.Join(l.WorkDir, "volumes", "roles", l.Role)
}

// VolumeDir is the host directory of one persistent volume.
func (l Layout) VolumeDir(persistenceID string) (string, error) {
	if !safeName(persistenceID) {
		return "", fmt.Errorf("%w: persistence id %q", ErrUnsafePath, persistenceID)
	}
	return filepath.Join(l.VolumesRoot(), persistenceID), nil
}

// ExecutorDir holds the runs (sandboxes) of one task.
func (l Layout) ExecutorDir(taskID string) (string, error) {
	if !safeName(taskID) {
		return "", fmt.Errorf("%w: task id %q", ErrUnsafePath, taskID)
	}
	return filepath.Join(l.WorkDir, "slaves", l.AgentID, "frameworks", l.FrameworkID, "executors", taskID), nil
}

// SandboxDir is the sandbox of one run (container) of a task.
func (l Layout) SandboxDir(taskID, containerID string) (string, error) {
	dir, err := l.ExecutorDir(taskID)
	if err != nil {
		return "", err
	}
	if !safeName(containerID) {
		return "", fmt.Errorf("%w: container id %q", ErrUnsafePath, containerID)
	}
	return filepath.Join(dir, "runs", containerID), nil
}

// CreateSandbox makes the sandbox directory of a run, the mount points of
// the volumes inside it, and the "latest" link Mesos keeps next to runs.
func (l Layout) CreateSandbox(taskID, containerID string, mountPoints []string) (string, error) {
	dir, err := l.SandboxDir(taskID, containerID)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create sandbox: %w", err)
	}
	for _, mp := range mountPoints {
		if !safeName(mp) {
			return "", fmt.Errorf("%w: mount point %q", ErrUnsafePath, mp)
		}
		if err := os.MkdirAll(filepath.Join(dir, mp), 0o755); err != nil {
			return "", fmt.Errorf("create mount point: %w", err)
		}
	}
	// Replace the link atomically: a crash leaves the old link or the new
	// one, never none.
	runs := filepath.Dir(dir)
	tmp := filepath.Join(runs, ".latest.tmp-"+containerID)
	_ = os.Remove(tmp) // a leftover of a crash; Symlink says if it is still there
	if err := os.Symlink(containerID, tmp); err != nil {
		return "", fmt.Errorf("link latest run: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(runs, "latest")); err != nil {
		_ = os.Remove(tmp) // a stray temporary link is replaced by the next run
		// Another preparation of the same run got there first (a launch a
		// crash interrupted, finishing while recovery prepares again).
		if l, lerr := os.Readlink(filepath.Join(runs, "latest")); lerr == nil && l == containerID {
			return dir, nil
		}
		return "", fmt.Errorf("link latest run: %w", err)
	}
	return dir, nil
}

// RemoveExecutor deletes every run of a task.
func (l Layout) RemoveExecutor(taskID string) error {
	dir, err := l.ExecutorDir(taskID)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove sandbox of %s: %w", taskID, err)
	}
	return nil
}

// FindSandbox returns the most recent run directory of a task.
func (l Layout) FindSandbox(taskID string) (string, error) {
	dir, err := l.ExecutorDir(taskID)
	if err != nil {
		return "", err
	}
	latest, err := os.Readlink(filepath.Join(dir, "runs", "latest"))
	if err == nil && safeName(latest) {
		run := filepath.Join(dir, "runs", latest)
		if st, err := os.Stat(run); err == nil && st.IsDir() {
			return run, nil
		}
	}
	entries, err := os.ReadDir(filepath.Join(dir, "runs"))
	if err != nil {
		return "", fmt.Errorf("find sandbox of %s: %w", taskID, err)
	}
	// No usable link: the most recently modified run.
	var best string
	var bestTime time.Time
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		if best == "" || info.ModTime().After(bestTime) {
			best, bestTime = e.Name(), info.ModTime()
		}
	}
	if best == "" {
		return "", fmt.Errorf("find sandbox of %s: %w", taskID, fs.ErrNotExist)
	}
	return filepath.Join(dir, "runs", best), nil
}

// CreateVolume makes the directory of a persistent volume if it does not
// exist, after checking that the file system has sizeMiB free. An existing
// volume is left as it is.
func (l Layout) CreateVolume(persistenceID string, sizeMiB float64) (string, error) {
	dir, err := l.VolumeDir(persistenceID)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if err := os.MkdirAll(l.VolumesRoot(), 0o755); err != nil {
		return "", fmt.Errorf("create volumes root: %w", err)
	}
	free, err := FreeBytes(l.VolumesRoot())
	if err == nil && float64(free) < sizeMiB*(1<<20) {
		return "", fmt.Errorf("create volume %s: %w: %d MiB requested, %d MiB free in %s", persistenceID, ErrNoSpace, int64(sizeMiB), free>>20, l.VolumesRoot())
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create volume %s: %w", persistenceID, err)
	}
	if err := syncDir(l.VolumesRoot()); err != nil {
		return "", err
	}
	return dir, nil
}

// DestroyVolume deletes a persistent volume and everything in it. A
// missing volume is not an error.
func (l Layout) DestroyVolume(persistenceID string) error {
	dir, err := l.VolumeDir(persistenceID)
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("destroy volume %s: %w", persistenceID, err)
	}
	if err := syncDir(l.VolumesRoot()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// VolumeExists reports whether the volume's directory is there.
func (l Layout) VolumeExists(persistenceID string) bool {
	dir, err := l.VolumeDir(persistenceID)
	if err != nil {
		return false
	}
	st, err := os.Stat(dir)
	return err == nil && st.IsDir()
}

// ListVolumes returns the persistence ids of the volume directories on disk.
func (l Layout) ListVolumes() ([]string, error) {
	entries, err := os.ReadDir(l.VolumesRoot())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list volumes: %w", err)
	}
	var out []string
	for _, e := range entries {
		// Dot names are no volumes (the owner records' directory).
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// DiskUsage is the number of bytes the files under dir occupy.
func DiskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// FreeBytes is the space available to unprivileged users on dir's file
// system.
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("statfs %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// safeName is a single path segment: not empty, not "." or "..", without
// "/" or NUL, and short enough for any file system.
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && len(s) <= 255 && !strings.ContainsAny(s, "/\x00")
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// AgentDir is one agent identity that left sandboxes in a work directory:
// slaves/<agent-id>/frameworks/<framework-id>.
type AgentDir struct {
	AgentID, FrameworkID string
	ModTime              time.Time
}

// AgentDirs lists the identities the work directory's sandboxes were made
// under, newest first.
func (l Layout) AgentDirs() ([]AgentDir, error) {
	slaves, err := os.ReadDir(filepath.Join(l.WorkDir, "slaves"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", err)
	}
	var out []AgentDir
	for _, s := range slaves {
		if !s.IsDir() || !safeName(s.Name()) {
			continue
		}
		fws, err := os.ReadDir(filepath.Join(l.WorkDir, "slaves", s.Name(), "frameworks"))
		if err != nil {
			continue // not a sandbox tree
		}
		for _, f := range fws {
			info, err := f.Info()
			if err != nil || !f.IsDir() || !safeName(f.Name()) {
				continue
			}
			out = append(out, AgentDir{AgentID: s.Name(), FrameworkID: f.Name(), ModTime: info.ModTime()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ModTime.After(out[j].ModTime) })
	return out, nil
}

// ParseSandboxDir returns the agent and framework ids a sandbox path of
// this work directory was made under.
func (l Layout) ParseSandboxDir(dir string) (agentID, frameworkID string, ok bool) {
	rel, err := filepath.Rel(l.WorkDir, dir)
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(rel, string(filepath.Separator))
	if len(parts) < 4 || parts[0] != "slaves" || parts[2] != "frameworks" || !safeName(parts[1]) || !safeName(parts[3]) {
		return "", "", false
	}
	return parts[1], parts[3], true
}

// MaxIncarnation is the highest n of the sandboxes <instance>._app.<n>
// left under any identity of the work directory, 0 when none.
func (l Layout) MaxIncarnation(instanceID string) int {
	dirs, _ := l.AgentDirs() // none listed: none counted
	n := 0
	for _, d := range dirs {
		entries, err := os.ReadDir(filepath.Join(l.WorkDir, "slaves", d.AgentID, "frameworks", d.FrameworkID, "executors"))
		if err != nil {
			continue
		}
		for _, e := range entries {
			if v, ok := strings.CutPrefix(e.Name(), instanceID+"._app."); ok {
				if k, err := strconv.Atoi(v); err == nil && k > n {
					n = k
				}
			}
		}
	}
	return n
}
