package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Mount is one kind of mount a task asks for. Each kind names its host
// directory and the directory that must contain it; PrepareSandbox turns
// it into a checked Bind. A new kind of mount is one type with this
// method.
type Mount interface {
	// Bind names the host directory of the mount for a task whose sandbox
	// is sandboxDir. It does no I/O.
	Bind(l Layout, sandboxDir string) (Bind, error)
}

// SandboxMount binds a directory of the task's sandbox (a relative
// hostPath), made when missing.
type SandboxMount struct {
	Path     string // relative to the sandbox
	Target   string // absolute, in the container
	ReadOnly bool
}

// Bind implements Mount.
func (m SandboxMount) Bind(_ Layout, sandboxDir string) (Bind, error) {
	return Bind{Source: filepath.Join(sandboxDir, m.Path), Target: m.Target, ReadOnly: m.ReadOnly, Within: sandboxDir, Create: true}, nil
}

// VolumeMount binds a persistent volume, or a directory in it.
type VolumeMount struct {
	PersistenceID string
	Path          string // within the volume; "" for the whole volume
	Target        string // absolute, in the container
	ReadOnly      bool
}

// Bind implements Mount.
func (m VolumeMount) Bind(l Layout, _ string) (Bind, error) {
	dir, err := l.VolumeDir(m.PersistenceID)
	if err != nil {
		return Bind{}, err
	}
	return Bind{Source: filepath.Join(dir, m.Path), Target: m.Target, ReadOnly: m.ReadOnly, Within: dir}, nil
}

// HostMount binds a host directory (an absolute hostPath) that lies in
// Root, one of the roots the agent's configuration allows.
type HostMount struct {
	Path     string // absolute, on the host
	Root     string // the allowed directory that holds Path
	Target   string // absolute, in the container
	ReadOnly bool
}

// Bind implements Mount.
func (m HostMount) Bind(Layout, string) (Bind, error) {
	return Bind{Source: m.Path, Target: m.Target, ReadOnly: m.ReadOnly, Within: m.Root}, nil
}

// Bind is a bind mount of a host directory.
type Bind struct {
	Source   string
	Target   string
	ReadOnly bool
	// Within is the directory Source must stay in after symlinks are
	// resolved; Create makes Source when it is missing.
	Within string
	Create bool
}

// Resolve checks that the bind's source exists (creating it if asked)
// and, with symlinks resolved, still lies within its directory, so a
// container cannot plant a link in its sandbox or volume that makes a
// later launch mount some other host directory. Source becomes the
// resolved path.
func (m *Bind) Resolve() error {
	if m.Within == "" {
		return fmt.Errorf("%w: mount %s has no containing directory", ErrUnsafePath, m.Source)
	}
	root, err := filepath.EvalSymlinks(m.Within)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", m.Within, err)
	}
	if m.Create {
		// Check the part that exists before creating the rest, so a link
		// planted in the directory (or a "..") never makes MkdirAll create
		// directories outside it.
		existing := filepath.Clean(m.Source)
		for {
			if _, err := os.Lstat(existing); err == nil {
				break
			}
			parent := filepath.Dir(existing)
			if parent == existing {
				break
			}
			existing = parent
		}
		resolved, err := filepath.EvalSymlinks(existing)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", existing, err)
		}
		if !within(resolved, root) {
			return fmt.Errorf("%w: %s resolves to %s, outside %s", ErrUnsafePath, m.Source, resolved, m.Within)
		}
		if err := os.MkdirAll(m.Source, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", m.Source, err)
		}
	}
	resolved, err := filepath.EvalSymlinks(m.Source)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("volume source %s does not exist: create it, or fix the volume's hostPath", m.Source)
	}
	if err != nil {
		return fmt.Errorf("resolve %s: %w", m.Source, err)
	}
	if !within(resolved, root) {
		return fmt.Errorf("%w: %s resolves to %s, outside %s", ErrUnsafePath, m.Source, resolved, m.Within)
	}
	m.Source = resolved
	return nil
}

// within reports whether path is root or lies below it; both are clean
// and absolute.
func within(path, root string) bool {
	return path == root || root == "/" || strings.HasPrefix(path, root+string(filepath.Separator))
}
