package hostroot

// A prototype of the command-app runtime against the real Docker daemon:
// a container made from the empty image, whose root is the host's system
// directories bound read-only, with the sandbox bound at its own path,
// host networking, Docker's memory limit, and this test binary as its
// first process (run under taskinit.Name it is taskinit). Every container
// carries the label mesolite.test=<random> and is removed in t.Cleanup.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/mesolite/mesolite/sandbox/taskinit"
)

// TestMain makes this test binary the task's init when it runs under
// taskinit's name, as the mesolite binary does.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == taskinit.Name {
		os.Exit(taskinit.Main(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true, so this fails instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}

type env struct {
	c     *client.Client
	label string
	init  string // this test binary
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Ping(ctx)
		cancel()
	}
	if err != nil {
		missing(t, "docker daemon does not answer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	e := &env{c: c, label: hex.EncodeToString(b), init: exe}
	e.ensureImage(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		list, _ := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "mesolite.test="+e.label))})
		for _, ct := range list {
			_ = c.ContainerRemove(ctx, ct.ID, container.RemoveOptions{Force: true})
		}
	})
	return e
}

// ensureImage imports the empty image when the daemon lacks it.
func (e *env) ensureImage(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.c.ImageInspect(ctx, Image); err == nil {
		return
	} else if !cerrdefs.IsNotFound(err) {
		t.Fatal(err)
	}
	rc, err := e.c.ImageImport(ctx, image.ImportSource{Source: bytes.NewReader(EmptyTar()), SourceName: "-"}, Image,
		image.ImportOptions{Changes: []string{"LABEL mesolite.hostroot=1"}})
	if err != nil {
		t.Fatalf("import %s: %v", Image, err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	if _, err := e.c.ImageInspect(ctx, Image); err != nil {
		t.Fatalf("import %s: %v", Image, err)
	}
}

type task struct {
	cmd     string
	volumes map[string]string // host directory → path inside the sandbox
	user    *User
	memory  int64
	sandbox string
	env     []string
}

// run creates and starts the container of a command task.
func (e *env) run(t *testing.T, tk task) string {
	t.Helper()
	if tk.sandbox == "" {
		tk.sandbox = t.TempDir()
	}
	if err := os.Chmod(tk.sandbox, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := &container.Config{
		Image:      Image,
		Entrypoint: []string{"/" + taskinit.Name, "-w", tk.sandbox, "--"},
		Cmd:        []string{"/bin/sh", "-c", tk.cmd},
		Env: append([]string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"MESOS_SANDBOX=" + tk.sandbox, "HOME=" + tk.sandbox,
		}, tk.env...),
		Labels: map[string]string{"mesolite.test": e.label},
	}
	hc := &container.HostConfig{
		NetworkMode: "host",
		Tmpfs:       map[string]string{"/tmp": "rw,exec,nosuid,nodev,mode=1777"},
		Resources:   container.Resources{Memory: tk.memory, MemorySwap: tk.memory},
	}
	if tk.user != nil {
		cfg.User = tk.user.Spec()
		for _, g := range tk.user.Groups {
			hc.GroupAdd = append(hc.GroupAdd, strconv.Itoa(g))
		}
		if err := ChownTree(tk.sandbox, tk.user.UID, tk.user.GID); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range SystemBinds() {
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: b.Path, Target: b.Path, ReadOnly: true})
	}
	hc.Mounts = append(hc.Mounts,
		mount.Mount{Type: mount.TypeBind, Source: e.init, Target: "/" + taskinit.Name, ReadOnly: true},
		mount.Mount{Type: mount.TypeBind, Source: tk.sandbox, Target: tk.sandbox})
	for src, rel := range tk.volumes {
		// The mount point is made in the sandbox, as the agent makes it;
		// Docker mounts parents before children.
		target := filepath.Join(tk.sandbox, rel)
		if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: src, Target: target})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := e.c.ContainerCreate(ctx, cfg, hc, nil, nil, "")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := e.c.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	return created.ID
}

// wait waits for the container to exit and returns its state and output.
func (e *env) wait(t *testing.T, id string, limit time.Duration) (*container.State, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	okC, errC := e.c.ContainerWait(ctx, id, container.WaitConditionNotRunning)
	select {
	case <-okC:
	case err := <-errC:
		t.Fatalf("wait for %s: %v", id[:12], err)
	}
	return e.inspect(t, id)
}

func (e *env) inspect(t *testing.T, id string) (*container.State, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ins, err := e.c.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := e.c.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	return ins.State, out.String()
}

// TestCommandTaskSeesTheHost: the host's sh and python3 run, /usr is the
// host's, the working directory and $MESOS_SANDBOX are the sandbox's host
// path, the task runs as its user and writes its sandbox, and /usr is
// read-only.
func TestCommandTaskSeesTheHost(t *testing.T) {
	e := newEnv(t)
	nobody, err := LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	hostPy, err := os.ReadFile("/usr/bin/python3")
	if err != nil {
		missing(t, "python3 is not installed at /usr/bin/python3: %v", err)
	}
	sandbox, volume := t.TempDir(), t.TempDir()
	if err := os.Chown(volume, nobody.UID, nobody.GID); err != nil {
		t.Fatal(err)
	}
	id := e.run(t, task{sandbox: sandbox, user: &nobody, volumes: map[string]string{volume: "data"}, cmd: `
		python3 -c 'import sys; print("py", sys.version_info[0])'
		echo "pwd $(pwd)"; echo "sandbox $MESOS_SANDBOX"; echo "uid $(id -u)"
		cksum < /usr/bin/python3
		echo written > out.txt
		echo kept > $MESOS_SANDBOX/data/file.txt
		touch /usr/mesolite-test 2>/dev/null && echo "usr writable" || echo "usr read-only"
		echo tmp > /tmp/x && echo "tmp writable"`})
	st, out := e.wait(t, id, 60*time.Second)
	if st.ExitCode != 0 {
		t.Fatalf("exit %d: %s", st.ExitCode, out)
	}
	want := []string{"py 3", "pwd " + sandbox, "sandbox " + sandbox, "uid " + strconv.Itoa(nobody.UID), "usr read-only", "tmp writable"}
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if sum := cksum(t, hostPy); !strings.Contains(out, sum) {
		t.Errorf("the task's /usr/bin/python3 is not the host's (cksum %s):\n%s", sum, out)
	}
	if got := fileHas(filepath.Join(volume, "file.txt"), "kept"); !got {
		t.Error("the file written to $MESOS_SANDBOX/data is not in the volume's host directory")
	}
	info, err := os.Stat(filepath.Join(sandbox, "out.txt"))
	if err != nil {
		t.Fatalf("the task's file is not in the sandbox: %v", err)
	}
	if uid := info.Sys().(*syscall.Stat_t).Uid; int(uid) != nobody.UID {
		t.Errorf("out.txt belongs to uid %d, want %d", uid, nobody.UID)
	}
}

// cksum runs the host's cksum on b, to compare with the task's.
func cksum(t *testing.T, b []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", "cksum < "+f).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// TestCommandTaskOOM: a command that allocates past mem is OOM-killed,
// and Docker says so.
func TestCommandTaskOOM(t *testing.T) {
	e := newEnv(t)
	id := e.run(t, task{memory: 64 << 20, cmd: `python3 -c 'b = bytearray(512 << 20); print(len(b))'`})
	st, out := e.wait(t, id, 60*time.Second)
	if !st.OOMKilled || st.ExitCode != 137 {
		t.Fatalf("state %+v, output %q: want OOMKilled and exit 137", st, out)
	}
}

// TestCommandTaskStopsTheTree: a stop sends SIGTERM to every process of
// the task, a child in another session too, and the container ends well
// inside the grace period, with no process left on the host.
func TestCommandTaskStopsTheTree(t *testing.T) {
	e := newEnv(t)
	sandbox := t.TempDir()
	marker := sleepMarker() // a sleep length no other process uses
	id := e.run(t, task{sandbox: sandbox, cmd: `
		trap 'echo top >> terms; exit 0' TERM
		sh -c 'trap "echo child >> terms; exit 0" TERM; sleep ` + marker + ` & wait' &
		setsid sh -c 'trap "echo session >> terms; exit 0" TERM; sleep ` + marker + ` & wait' &
		echo started > ready
		wait`})
	waitFor(t, 30*time.Second, func() bool {
		return fileHas(filepath.Join(sandbox, "ready"), "started") && countProcs("sleep", marker) == 2
	})
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	grace := 20
	if err := e.c.ContainerStop(ctx, id, container.StopOptions{Timeout: &grace}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	st, _ := e.inspect(t, id)
	terms, _ := os.ReadFile(filepath.Join(sandbox, "terms"))
	for _, who := range []string{"top", "child", "session"} {
		if !strings.Contains(string(terms), who+"\n") {
			t.Errorf("%s got no SIGTERM; terms file: %q", who, terms)
		}
	}
	if took > 10*time.Second || st.ExitCode != 0 {
		t.Errorf("stop took %v with exit %d: want the task's own clean exit, well before the %ds grace", took, st.ExitCode, grace)
	}
	if n := countProcs("sleep", marker); n != 0 {
		t.Errorf("%d sleep %s processes are left", n, marker)
	}
}

// TestCommandTaskKilledAfterGrace: a task that ignores SIGTERM is killed
// with SIGKILL when the grace period ends, all of it.
func TestCommandTaskKilledAfterGrace(t *testing.T) {
	e := newEnv(t)
	sandbox := t.TempDir()
	marker := sleepMarker()
	id := e.run(t, task{sandbox: sandbox, cmd: `trap '' TERM; sh -c "trap '' TERM; sleep ` + marker + `" & echo started > ready; wait`})
	waitFor(t, 30*time.Second, func() bool { return countProcs("sleep", marker) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	grace := 1
	start := time.Now()
	if err := e.c.ContainerStop(ctx, id, container.StopOptions{Timeout: &grace}); err != nil {
		t.Fatal(err)
	}
	st, _ := e.inspect(t, id)
	if st.ExitCode != 137 || time.Since(start) < time.Second {
		t.Errorf("exit %d after %v: want 137 (SIGKILL) after the 1s grace", st.ExitCode, time.Since(start))
	}
	waitFor(t, 10*time.Second, func() bool { return countProcs("sleep", marker) == 0 })
}

// TestCommandTaskHostNetwork: a server the task starts on a port is
// reachable from the host on 127.0.0.1, as Marathon's $PORT0 apps are.
func TestCommandTaskHostNetwork(t *testing.T) {
	e := newEnv(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	sandbox := t.TempDir()
	if err := os.WriteFile(filepath.Join(sandbox, "index.html"), []byte("served from the sandbox\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	e.run(t, task{sandbox: sandbox, env: []string{"PORT0=" + port}, cmd: `exec python3 -m http.server --bind 127.0.0.1 $PORT0`})
	var body string
	waitFor(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://127.0.0.1:" + port + "/index.html")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == http.StatusOK
	})
	if body != "served from the sandbox\n" {
		t.Fatalf("got %q", body)
	}
}

// TestLookupUnknownUser: a user the host lacks is refused with what to do.
func TestLookupUnknownUser(t *testing.T) {
	_, err := LookupUser("mesolite-no-such-user")
	if !errors.Is(err, ErrNoUser) || !strings.Contains(err.Error(), `"mesolite-no-such-user" does not exist on this machine`) {
		t.Fatalf("got %v", err)
	}
	root, err := LookupUser("0")
	if err != nil || root.UID != 0 || root.Spec() != "0:0" {
		t.Fatalf("uid 0: %+v, %v", root, err)
	}
}

// sleepMarker is a random number of seconds, to find a test's sleep
// processes among the host's.
func sleepMarker() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return strconv.Itoa(100000 + int(b[0])<<16 | int(b[1])<<8 | int(b[2]))
}

func waitFor(t *testing.T, limit time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not so after %v", limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileHas(p, s string) bool {
	b, err := os.ReadFile(p)
	return err == nil && strings.Contains(string(b), s)
}

// countProcs counts the host's processes whose command line is exactly
// name arg (the container's processes are visible from the host).
func countProcs(name, arg string) int {
	entries, _ := os.ReadDir("/proc")
	n := 0
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		parts := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(parts) == 2 && filepath.Base(parts[0]) == name && parts[1] == arg {
			st, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if !strings.Contains(string(st), ") Z ") { // not a zombie
				n++
			}
		}
	}
	return n
}
