package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testLayout(t *testing.T) Layout {
	t.Helper()
	return Layout{WorkDir: t.TempDir(), AgentID: "a1-S0", FrameworkID: "f1-0000", Role: "mesolite"}
}

var unsafeNames = []struct {
	name string
	s    string
}{
	{"empty", ""},
	{"dot", "."},
	{"dot-dot", ".."},
	{"slash", "a/b"},
	{"leading slash", "/etc"},
	{"dot-dot slash", "../x"},
	{"NUL", "a\x00b"},
	{"300 chars", strings.Repeat("x", 300)},
}

func TestLayoutPaths(t *testing.T) {
	l := Layout{WorkDir: "/var/lib/mesolite", AgentID: "a1-S0", FrameworkID: "f1-0000", Role: "mesolite"}
	got, err := l.VolumeDir("pg#data#0b1c")
	if err != nil || got != "/var/lib/mesolite/volumes/roles/mesolite/pg#data#0b1c" {
		t.Errorf("VolumeDir = %q, %v", got, err)
	}
	got, err = l.ExecutorDir("pg.instance-1._app.2")
	if err != nil || got != "/var/lib/mesolite/slaves/a1-S0/frameworks/f1-0000/executors/pg.instance-1._app.2" {
		t.Errorf("ExecutorDir = %q, %v", got, err)
	}
	got, err = l.SandboxDir("pg.instance-1._app.2", "c-1")
	if err != nil || got != "/var/lib/mesolite/slaves/a1-S0/frameworks/f1-0000/executors/pg.instance-1._app.2/runs/c-1" {
		t.Errorf("SandboxDir = %q, %v", got, err)
	}
	if _, err := l.VolumeDir(strings.Repeat("v", 255)); err != nil {
		t.Errorf("a 255-byte name is a file name: %v", err)
	}
}

func TestLayoutRefusesUnsafeNames(t *testing.T) {
	l := testLayout(t)
	for _, tc := range unsafeNames {
		t.Run(tc.name, func(t *testing.T) {
			if p, err := l.VolumeDir(tc.s); !errors.Is(err, ErrUnsafePath) {
				t.Errorf("VolumeDir = %q, %v; want ErrUnsafePath", p, err)
			}
			if p, err := l.ExecutorDir(tc.s); !errors.Is(err, ErrUnsafePath) {
				t.Errorf("ExecutorDir = %q, %v; want ErrUnsafePath", p, err)
			}
			if p, err := l.SandboxDir(tc.s, "c1"); !errors.Is(err, ErrUnsafePath) {
				t.Errorf("SandboxDir(task) = %q, %v; want ErrUnsafePath", p, err)
			}
			if p, err := l.SandboxDir("t1", tc.s); !errors.Is(err, ErrUnsafePath) {
				t.Errorf("SandboxDir(container) = %q, %v; want ErrUnsafePath", p, err)
			}
			if p, err := l.CreateSandbox("t1", "c1", []string{tc.s}); !errors.Is(err, ErrUnsafePath) {
				t.Errorf("CreateSandbox(mount point) = %q, %v; want ErrUnsafePath", p, err)
			}
			if p, err := l.CreateVolume(tc.s, 1); !errors.Is(err, ErrUnsafePath) {
				t.Errorf("CreateVolume = %q, %v; want ErrUnsafePath", p, err)
			}
			if err := l.DestroyVolume(tc.s); !errors.Is(err, ErrUnsafePath) {
				t.Errorf("DestroyVolume = %v; want ErrUnsafePath", err)
			}
			if err := l.RemoveExecutor(tc.s); !errors.Is(err, ErrUnsafePath) {
				t.Errorf("RemoveExecutor = %v; want ErrUnsafePath", err)
			}
			if l.VolumeExists(tc.s) {
				t.Errorf("VolumeExists = true")
			}
		})
	}
	// Nothing was created outside the sandbox tree by the refused calls.
	if _, err := os.Stat(filepath.Join(l.WorkDir, "etc")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a refused name created something: %v", err)
	}
}

func TestCreateAndFindSandbox(t *testing.T) {
	l := testLayout(t)
	const task = "pg.instance-1._app.1"
	if _, err := l.FindSandbox(task); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("FindSandbox before any run: %v, want not exist", err)
	}
	dir1, err := l.CreateSandbox(task, "run-1", []string{"pgdata", "logs"})
	if err != nil {
		t.Fatalf("create sandbox: %v", err)
	}
	want, _ := l.SandboxDir(task, "run-1")
	if dir1 != want {
		t.Errorf("sandbox = %s, want %s", dir1, want)
	}
	for _, mp := range []string{"pgdata", "logs"} {
		if st, err := os.Stat(filepath.Join(dir1, mp)); err != nil || !st.IsDir() {
			t.Errorf("mount point %s: %v", mp, err)
		}
	}
	runs := filepath.Dir(dir1)
	if target, err := os.Readlink(filepath.Join(runs, "latest")); err != nil || target != "run-1" {
		t.Errorf("runs/latest -> %q, %v; want run-1", target, err)
	}
	if got, err := l.FindSandbox(task); err != nil || got != dir1 {
		t.Errorf("FindSandbox = %s, %v; want %s", got, err, dir1)
	}

	// A second run moves the link; the first run's files stay.
	if err := os.WriteFile(filepath.Join(dir1, "stdout"), []byte("run 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir2, err := l.CreateSandbox(task, "run-2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if target, err := os.Readlink(filepath.Join(runs, "latest")); err != nil || target != "run-2" {
		t.Errorf("runs/latest -> %q, %v; want run-2", target, err)
	}
	if got, err := l.FindSandbox(task); err != nil || got != dir2 {
		t.Errorf("FindSandbox = %s, %v; want %s", got, err, dir2)
	}
	if b, err := os.ReadFile(filepath.Join(dir1, "stdout")); err != nil || string(b) != "run 1\n" {
		t.Errorf("first run's stdout: %q, %v", b, err)
	}
	entries, _ := os.ReadDir(runs)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !reflect.DeepEqual(names, []string{"latest", "run-1", "run-2"}) {
		t.Errorf("runs/ = %q, want latest run-1 run-2 (no temp link left)", names)
	}
	// Creating the same run again is harmless.
	if again, err := l.CreateSandbox(task, "run-2", []string{"pgdata"}); err != nil || again != dir2 {
		t.Errorf("create again = %s, %v", again, err)
	}

	// Without the link, the most recent run is found.
	if err := os.Remove(filepath.Join(runs, "latest")); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	if err := os.Chtimes(dir1, old, old); err != nil {
		t.Fatal(err)
	}
	if got, err := l.FindSandbox(task); err != nil || got != dir2 {
		t.Errorf("FindSandbox without latest = %s, %v; want %s", got, err, dir2)
	}
	// A link to a run that is gone is not followed.
	if err := os.Symlink("run-9", filepath.Join(runs, "latest")); err != nil {
		t.Fatal(err)
	}
	if got, err := l.FindSandbox(task); err != nil || got != dir2 {
		t.Errorf("FindSandbox with a dangling latest = %s, %v; want %s", got, err, dir2)
	}

	if err := l.RemoveExecutor(task); err != nil {
		t.Fatalf("remove executor: %v", err)
	}
	exec, _ := l.ExecutorDir(task)
	if _, err := os.Stat(exec); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("executor dir after remove: %v", err)
	}
	if err := l.RemoveExecutor(task); err != nil {
		t.Errorf("remove a missing executor: %v", err)
	}
}

func TestVolumes(t *testing.T) {
	l := testLayout(t)
	if vols, err := l.ListVolumes(); err != nil || len(vols) != 0 {
		t.Errorf("ListVolumes on a fresh work dir = %q, %v", vols, err)
	}
	// Destroying a volume that never existed, before the root exists.
	if err := l.DestroyVolume("pg#data#0"); err != nil {
		t.Errorf("destroy a missing volume: %v", err)
	}

	const id = "pg#data#0b1c"
	dir, err := l.CreateVolume(id, 16)
	if err != nil {
		t.Fatalf("create volume: %v", err)
	}
	if want, _ := l.VolumeDir(id); dir != want {
		t.Errorf("volume dir = %s, want %s", dir, want)
	}
	if !l.VolumeExists(id) {
		t.Error("VolumeExists = false after create")
	}
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Idempotent: the data stays, even when the size would no longer fit.
	for _, size := range []float64{16, 1 << 40} {
		again, err := l.CreateVolume(id, size)
		if err != nil || again != dir {
			t.Fatalf("create again (%v MiB) = %s, %v", size, again, err)
		}
		if b, err := os.ReadFile(filepath.Join(dir, "PG_VERSION")); err != nil || string(b) != "15\n" {
			t.Errorf("volume content after create again: %q, %v", b, err)
		}
	}

	// More than the disk holds: refused, nothing created.
	_, err = l.CreateVolume("big#data#1", 1<<40)
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("create a 1 EiB volume: %v, want ErrNoSpace", err)
	}
	if !strings.Contains(err.Error(), "big#data#1") || !strings.Contains(err.Error(), "MiB free") {
		t.Errorf("error %q does not name the volume and the free space", err)
	}
	if l.VolumeExists("big#data#1") {
		t.Error("a refused volume was created")
	}

	if _, err := l.CreateVolume("pg#logs#2", 1); err != nil {
		t.Fatal(err)
	}
	// A stray file in the root is no volume.
	if err := os.WriteFile(filepath.Join(l.VolumesRoot(), "README"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	vols, err := l.ListVolumes()
	if err != nil || !reflect.DeepEqual(vols, []string{"pg#data#0b1c", "pg#logs#2"}) {
		t.Errorf("ListVolumes = %q, %v", vols, err)
	}

	if err := l.DestroyVolume(id); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if l.VolumeExists(id) {
		t.Error("volume exists after destroy")
	}
	if err := l.DestroyVolume(id); err != nil {
		t.Errorf("destroy twice: %v", err)
	}
	if vols, _ := l.ListVolumes(); !reflect.DeepEqual(vols, []string{"pg#logs#2"}) {
		t.Errorf("ListVolumes after destroy = %q", vols)
	}
}

func TestDiskUsage(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 256<<10)
	for i := range data {
		data[i] = byte(i) // not sparse, not all zero
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "b", "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "g"), data[:100<<10], 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := DiskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got < 356<<10 || got > 1<<20 {
		t.Errorf("DiskUsage = %d bytes, want about %d", got, 356<<10)
	}
	if got, err := DiskUsage(filepath.Join(dir, "missing")); err != nil || got != 0 {
		t.Errorf("DiskUsage of a missing dir = %d, %v; want 0, nil", got, err)
	}
	free, err := FreeBytes(dir)
	if err != nil || free == 0 {
		t.Errorf("FreeBytes = %d, %v", free, err)
	}
}
