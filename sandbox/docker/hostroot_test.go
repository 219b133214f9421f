package docker

// Command tasks (apps without an image) on the real daemon: a container
// of the empty image whose root is the host's system directories, with
// this test binary as its first process (run under taskinit.Name it is
// taskinit, as the mesolite binary is).

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/taskinit"
)

// TestMain makes this test binary a command task's init when it runs
// under taskinit's name.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == taskinit.Name {
		os.Exit(taskinit.Main(os.Args[1:], os.Stderr))
	}
	os.Exit(m.Run())
}

// commandTask prepares a command task running sh -c cmd, with a
// persistent volume at $MESOS_SANDBOX/data when volume is true.
func (e *dockerEnv) commandTask(t *testing.T, cmd, user string, memory int64, volume bool, env ...string) *task {
	t.Helper()
	id := randomHex(6)
	instance := "cmd.instance-" + id
	spec := &sandbox.TaskSpec{
		ContainerID: "c-" + id,
		TaskID:      instance + "._app.1",
		AppID:       "/cmd",
		InstanceID:  instance,
		HostRoot:    true,
		User:        user,
		Cmd:         []string{"/bin/sh", "-c", cmd},
		NetworkMode: "host",
		CPUShares:   256,
		MemoryBytes: memory,
		MemorySwap:  memory,
		StopTimeout: 20,
	}
	sb, err := e.layout.SandboxDir(spec.TaskID, spec.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	spec.SandboxDir = sb
	spec.Env = append([]string{"MESOS_SANDBOX=" + sb, "HOME=" + sb}, env...)
	ctx := testCtx(t)
	tk := &task{spec: spec, sandbox: sb}
	if volume {
		pid := "cmd#data#" + id
		if err := e.d.CreateVolume(ctx, sandbox.Volume{PersistenceID: pid, SizeMiB: 1}); err != nil {
			t.Fatal(err)
		}
		spec.Mounts = []sandbox.Mount{sandbox.VolumeMount{PersistenceID: pid, Target: sb + "/data"}}
	}
	if err := e.d.PrepareSandbox(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := e.d.Fetch(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	if volume {
		tk.volume = spec.Binds[0].Source
	}
	return tk
}

// waitExit waits for the container to stop and returns it and its output.
func (e *dockerEnv) waitExit(t *testing.T, id string) (sandbox.Container, string) {
	t.Helper()
	eventually(t, 60*time.Second, "the container stops", func() error {
		c, err := e.d.Inspect(testCtx(t), id)
		if err == nil && c.Running {
			err = errors.New("still running")
		}
		return err
	})
	return e.output(t, id)
}

func (e *dockerEnv) output(t *testing.T, id string) (sandbox.Container, string) {
	t.Helper()
	ctx := testCtx(t)
	c, err := e.d.Inspect(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := e.d.api.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, rc)
	return c, out.String()
}

// TestCommandTaskSeesTheHost: the host's sh and python3 run, /usr is the
// host's and read-only, the working directory and $MESOS_SANDBOX are the
// sandbox's host path, the task runs as its user and writes its sandbox
// and its volume, /tmp is private and writable.
func TestCommandTaskSeesTheHost(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	nobody, err := sandbox.LookupUser("nobody")
	if err != nil {
		t.Fatal(err)
	}
	hostPy, err := os.ReadFile("/usr/bin/python3")
	if err != nil {
		missing(t, "python3 is not installed at /usr/bin/python3: %v", err)
	}
	tk := e.commandTask(t, `
		python3 -c 'import sys; print("py", sys.version_info[0])'
		echo "pwd $(pwd)"; echo "sandbox $MESOS_SANDBOX"; echo "uid $(id -u)"
		cksum < /usr/bin/python3
		echo written > out.txt
		echo kept > $MESOS_SANDBOX/data/file.txt
		touch /usr/mesolite-test 2>/dev/null && echo "usr writable" || echo "usr read-only"
		echo tmp > /tmp/x && echo "tmp writable"`, "nobody", 64<<20, true)
	c := e.run(t, tk)
	c, out := e.waitExit(t, c.ID)
	if c.ExitCode != 0 {
		t.Fatalf("exit %d: %s", c.ExitCode, out)
	}
	for _, w := range []string{"py 3", "pwd " + tk.sandbox, "sandbox " + tk.sandbox, "uid " + strconv.Itoa(nobody.UID), "usr read-only", "tmp writable"} {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	if sum := cksum(t, hostPy); !strings.Contains(out, sum) {
		t.Errorf("the task's /usr/bin/python3 is not the host's (cksum %s):\n%s", sum, out)
	}
	if b, err := os.ReadFile(filepath.Join(tk.volume, "file.txt")); err != nil || string(b) != "kept\n" {
		t.Errorf("the file written to $MESOS_SANDBOX/data is not in the volume's host directory: %q %v", b, err)
	}
	info, err := os.Stat(filepath.Join(tk.sandbox, "out.txt"))
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
	cmd := exec.Command("cksum")
	cmd.Stdin = bytes.NewReader(b)
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// TestCommandTaskOOM: a command that allocates past mem is OOM-killed,
// and Docker says so.
func TestCommandTaskOOM(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	tk := e.commandTask(t, `python3 -c 'b = bytearray(512 << 20); print(len(b))'`, "", 64<<20, false)
	c := e.run(t, tk)
	c, out := e.waitExit(t, c.ID)
	if !c.OOMKilled || c.ExitCode != 137 {
		t.Fatalf("container %+v, output %q: want OOMKilled and exit 137", c, out)
	}
}

// TestCommandTaskStopsTheTree: a stop sends SIGTERM to every process of
// the task, a child in another session too, and the container ends well
// inside the grace period, with no process left on the host.
func TestCommandTaskStopsTheTree(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	marker := sleepMarker() // a sleep length no other process uses
	tk := e.commandTask(t, `
		trap 'echo top >> terms; exit 0' TERM
		sh -c 'trap "echo child >> terms; exit 0" TERM; sleep `+marker+` & wait' &
		setsid sh -c 'trap "echo session >> terms; exit 0" TERM; sleep `+marker+` & wait' &
		wait`, "", 64<<20, false)
	c := e.run(t, tk)
	eventually(t, 30*time.Second, "two sleeps", func() error {
		if n := countProcs("sleep", marker); n != 2 {
			return errors.New(strconv.Itoa(n) + " sleeps")
		}
		return nil
	})
	start := time.Now()
	if err := e.d.Stop(testCtx(t), c.ID, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	c, _ = e.output(t, c.ID)
	terms, _ := os.ReadFile(filepath.Join(tk.sandbox, "terms"))
	for _, who := range []string{"top", "child", "session"} {
		if !strings.Contains(string(terms), who+"\n") {
			t.Errorf("%s got no SIGTERM; terms file: %q", who, terms)
		}
	}
	if took > 10*time.Second || c.ExitCode != 0 {
		t.Errorf("stop took %v with exit %d: want the task's own clean exit, well before the 20s grace", took, c.ExitCode)
	}
	if n := countProcs("sleep", marker); n != 0 {
		t.Errorf("%d sleep %s processes are left", n, marker)
	}
}

// TestCommandTaskKilledAfterGrace: a task that ignores SIGTERM is killed
// with SIGKILL when the grace period ends, all of it.
func TestCommandTaskKilledAfterGrace(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	marker := sleepMarker()
	tk := e.commandTask(t, `trap '' TERM; sh -c "trap '' TERM; sleep `+marker+`" & wait`, "", 64<<20, false)
	c := e.run(t, tk)
	eventually(t, 30*time.Second, "one sleep", func() error {
		if n := countProcs("sleep", marker); n != 1 {
			return errors.New(strconv.Itoa(n) + " sleeps")
		}
		return nil
	})
	start := time.Now()
	if err := e.d.Stop(testCtx(t), c.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	c, _ = e.output(t, c.ID)
	if c.ExitCode != 137 || time.Since(start) < time.Second {
		t.Errorf("exit %d after %v: want 137 (SIGKILL) after the 1s grace", c.ExitCode, time.Since(start))
	}
	eventually(t, 10*time.Second, "no sleep left", func() error {
		if n := countProcs("sleep", marker); n != 0 {
			return errors.New(strconv.Itoa(n) + " sleeps")
		}
		return nil
	})
}

// TestCommandTaskHostNetwork: a server the task starts on $PORT0 is
// reachable from the host on 127.0.0.1; a COMMAND check's exec runs in
// the task's environment.
func TestCommandTaskHostNetwork(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	port := strconv.Itoa(freePort(t))
	tk := e.commandTask(t, `echo "served from the sandbox" > index.html; exec python3 -m http.server --bind 127.0.0.1 $PORT0`, "", 128<<20, false, "PORT0="+port)
	c := e.run(t, tk)
	if body := waitHTTP(t, http.MethodGet, "http://127.0.0.1:"+port+"/index.html", "", http.StatusOK); body != "served from the sandbox\n" {
		t.Fatalf("got %q", body)
	}
	code, out, err := e.d.Exec(testCtx(t), c.ID, []string{"/bin/sh", "-c", `cd "$MESOS_SANDBOX" && test -f index.html && echo "$PORT0"`})
	if err != nil || code != 0 || strings.TrimSpace(out) != port {
		t.Fatalf("exec: %d %q %v", code, out, err)
	}
}

// TestCommandTaskUnknownUser: a user the host lacks fails the launch,
// saying so, before anything is created.
func TestCommandTaskUnknownUser(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	tk := e.commandTask(t, "true", "", 64<<20, false)
	tk.spec.User = "mesolite-no-such-user"
	_, err := e.d.Run(testCtx(t), tk.spec, nil)
	if !errors.Is(err, sandbox.ErrNoUser) || !strings.Contains(err.Error(), `"mesolite-no-such-user" does not exist on this machine`) {
		t.Fatalf("got %v", err)
	}
	if err := e.d.Fetch(testCtx(t), tk.spec, nil); !errors.Is(err, sandbox.ErrNoUser) {
		t.Fatalf("fetch: got %v", err)
	}
	root, err := sandbox.LookupUser("0")
	if err != nil || root.UID != 0 || root.Spec() != "0:0" {
		t.Fatalf("uid 0: %+v, %v", root, err)
	}
}

// sleepMarker is a random number of seconds, to find a test's sleep
// processes among the host's.
func sleepMarker() string {
	b := []byte(randomHex(3))
	n := 100000
	for _, c := range b {
		n = n*7 + int(c)
	}
	return strconv.Itoa(100000 + n%800000)
}

// countProcs counts the host's live processes whose command line is
// exactly name arg (a container's processes are visible from the host).
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

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true, so this fails instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}
