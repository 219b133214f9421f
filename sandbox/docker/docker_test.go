package docker

// Tests against the real Docker daemon with the image built from
// testdata/testapp (make test-image). Every container carries a random
// agent id and is removed in t.Cleanup.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mesolite/mesolite/sandbox"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"
)

const testImage = "mesolite/testapp:latest"

var (
	dockerOnce   sync.Once
	dockerReason string // why Docker tests cannot run, "" when they can
)

// requireDocker skips the test when no daemon answers or the test image
// is missing, or fails it under CI=true, where both must be there.
func requireDocker(t *testing.T) {
	t.Helper()
	dockerOnce.Do(func() {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			dockerReason = "docker client: " + err.Error()
			return
		}
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := c.Ping(ctx); err != nil {
			dockerReason = "no docker daemon answers: " + err.Error()
			return
		}
		if _, err := c.ImageInspect(ctx, testImage); err != nil {
			dockerReason = testImage + " is not built (run make test-image): " + err.Error()
		}
	})
	if dockerReason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(dockerReason)
	}
	t.Skip(dockerReason)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// dockerEnv is one agent's view of the daemon and its work directory.
type dockerEnv struct {
	d      *Runtime
	layout sandbox.Layout
}

// newDockerEnv makes a work directory and a Docker runtime with a random
// agent id; every container of that agent id is removed when the test
// ends, before the directory is.
func newDockerEnv(t *testing.T) *dockerEnv {
	t.Helper()
	requireDocker(t)
	workDir := t.TempDir() // first: cleanups run last-in first-out
	agentID := "mesolite-test-" + randomHex(6)
	layout := sandbox.Layout{WorkDir: workDir, AgentID: agentID, FrameworkID: "fw-0000", Role: "mesolite"}
	exe, err := os.Executable() // taskinit of command tasks (TestMain)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(Config{Layout: layout, InitBinary: exe, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		defer d.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		list, err := d.List(ctx)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		for _, c := range list {
			if err := d.Remove(ctx, c.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	return &dockerEnv{d: d, layout: layout}
}

// task is a task of the test app with its sandbox and one persistent
// volume mounted at <sandbox>/data, where the app's /kv writes.
type task struct {
	spec    *sandbox.TaskSpec
	volume  string // host directory of the volume
	sandbox string // host directory of the sandbox
}

func (e *dockerEnv) newTask(t *testing.T, env ...string) *task {
	t.Helper()
	id := randomHex(6)
	instance := "testapp.instance-" + id
	spec := &sandbox.TaskSpec{
		ContainerID: "c-" + id,
		TaskID:      instance + "._app.1",
		AppID:       "/testapp",
		InstanceID:  instance,
		Image:       testImage,
		// The host user, so the test can clean up what the app writes.
		Parameters:  []sandbox.Parameter{{Key: "user", Value: fmt.Sprintf("%d:%d", os.Getuid(), os.Getgid())}},
		Env:         append([]string{"MESOS_SANDBOX=" + sandbox.MountPoint, "MESOS_TASK_ID=" + instance + "._app.1"}, env...),
		NetworkMode: "bridge",
		CPUShares:   256,
		MemoryBytes: 64 << 20,
		StopTimeout: 10,
	}
	// The runtime's own host half makes the volume and the sandbox.
	ctx := testCtx(t)
	pid := "testapp#data#" + id
	if err := e.d.CreateVolume(ctx, sandbox.Volume{PersistenceID: pid, SizeMiB: 1}); err != nil {
		t.Fatal(err)
	}
	sb, err := e.layout.SandboxDir(spec.TaskID, spec.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	spec.SandboxDir = sb
	spec.Mounts = []sandbox.Mount{sandbox.VolumeMount{PersistenceID: pid, Target: sandbox.MountPoint + "/data"}}
	if err := e.d.PrepareSandbox(ctx, spec); err != nil {
		t.Fatal(err)
	}
	vol := spec.Binds[0].Source // resolved
	return &task{spec: spec, volume: vol, sandbox: sb}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func httpDo(method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// eventually polls cond until it returns nil, failing the test with its
// last error after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitHTTP polls until the URL answers want.
func waitHTTP(t *testing.T, method, url, body string, want int) string {
	t.Helper()
	var got string
	eventually(t, 20*time.Second, method+" "+url, func() error {
		code, b, err := httpDo(method, url, body)
		if err != nil {
			return err
		}
		if code != want {
			return fmt.Errorf("status %d %q, want %d", code, b, want)
		}
		got = b
		return nil
	})
	return got
}

func (e *dockerEnv) run(t *testing.T, tk *task) sandbox.Container {
	t.Helper()
	c, err := e.d.Run(testCtx(t), tk.spec, nil)
	if err != nil {
		t.Fatalf("run %s: %v", tk.spec.Name(), err)
	}
	return c
}

// TestDockerLifecycle follows one container from Run to Remove.
func TestDockerLifecycle(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	ctx := testCtx(t)
	tk := e.newTask(t, "FOO=bar", "FOO=baz")
	port := freePort(t)
	tk.spec.Ports = []sandbox.PortBinding{{ContainerPort: 8080, HostPort: port, Protocol: "tcp", HostIP: "127.0.0.1"}}
	if err := os.WriteFile(filepath.Join(tk.sandbox, "marker"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	c := e.run(t, tk)
	t.Run("created as the task", func(t *testing.T) {
		if c.Name != "mesos-"+tk.spec.ContainerID || !c.Running || c.State != "running" || c.ID == "" || !c.Detailed {
			t.Errorf("container = %+v", c)
		}
		for k, v := range map[string]string{
			sandbox.LabelAgentID: e.layout.AgentID, sandbox.LabelAppID: "/testapp", sandbox.LabelInstanceID: tk.spec.InstanceID,
			sandbox.LabelTaskID: tk.spec.TaskID, sandbox.LabelMesosTask: tk.spec.TaskID,
		} {
			if c.Labels[k] != v {
				t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
			}
		}
	})

	base := "http://127.0.0.1:" + strconv.Itoa(port)
	t.Run("volume written through the published port", func(t *testing.T) {
		waitHTTP(t, http.MethodPut, base+"/kv/x", "hello volume", http.StatusNoContent)
		b, err := os.ReadFile(filepath.Join(tk.volume, "x"))
		if err != nil || string(b) != "hello volume" {
			t.Errorf("host volume file x = %q, %v; want what the app wrote", b, err)
		}
		if _, err := os.Stat(filepath.Join(tk.sandbox, "data", "x")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the write landed in the sandbox's mount point, not the volume: %v", err)
		}
	})

	t.Run("environment", func(t *testing.T) {
		_, body, err := httpDo(http.MethodGet, base+"/env", "")
		if err != nil {
			t.Fatal(err)
		}
		var env map[string]string
		if err := json.Unmarshal([]byte(body), &env); err != nil {
			t.Fatalf("env: %v: %q", err, body)
		}
		if env["FOO"] != "baz" || env["MESOS_TASK_ID"] != tk.spec.TaskID || env["MESOS_SANDBOX"] != sandbox.MountPoint {
			t.Errorf("env FOO=%q MESOS_TASK_ID=%q MESOS_SANDBOX=%q", env["FOO"], env["MESOS_TASK_ID"], env["MESOS_SANDBOX"])
		}
	})

	t.Run("sandbox mounted", func(t *testing.T) {
		for path, want := range map[string]int{sandbox.MountPoint + "/marker": 0, sandbox.MountPoint + "/nothing": 1, sandbox.MountPoint + "/data/x": 0} {
			code, out, err := e.d.Exec(ctx, c.ID, []string{"sh", "-c", "test -e " + path})
			if err != nil || code != want {
				t.Errorf("test -e %s = %d %q %v, want %d", path, code, out, err, want)
			}
		}
		r, err := e.d.api.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, m := range r.Mounts {
			if m.Type != mount.TypeBind {
				t.Errorf("mount %s is %s, want bind", m.Destination, m.Type)
			}
			got[m.Destination] = m.Source
		}
		if got[sandbox.MountPoint] != tk.sandbox || got[sandbox.MountPoint+"/data"] != tk.volume || len(got) != 2 {
			t.Errorf("mounts = %v, want the sandbox and the volume", got)
		}
	})

	t.Run("published on 127.0.0.1 only", func(t *testing.T) {
		r, err := e.d.api.ContainerInspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		pb := r.HostConfig.PortBindings["8080/tcp"]
		if len(pb) != 1 || pb[0].HostIP != "127.0.0.1" || pb[0].HostPort != strconv.Itoa(port) {
			t.Errorf("HostConfig.PortBindings = %v", r.HostConfig.PortBindings)
		}
		live := r.NetworkSettings.Ports["8080/tcp"]
		if len(live) == 0 {
			t.Fatalf("NetworkSettings.Ports = %v, want 8080/tcp published", r.NetworkSettings.Ports)
		}
		for _, b := range live {
			if b.HostIP != "127.0.0.1" || b.HostPort != strconv.Itoa(port) {
				t.Errorf("published on %s:%s, want 127.0.0.1:%d only", b.HostIP, b.HostPort, port)
			}
		}
	})

	t.Run("container address reachable", func(t *testing.T) {
		if net.ParseIP(c.IPAddress) == nil {
			t.Fatalf("IPAddress = %q", c.IPAddress)
		}
		// Health checks go here, past Docker's proxy, to the process itself.
		waitHTTP(t, http.MethodGet, "http://"+net.JoinHostPort(c.IPAddress, "8080")+"/health", "", http.StatusOK)
	})

	t.Run("run again adopts", func(t *testing.T) {
		again, err := e.d.Run(ctx, tk.spec, nil)
		if err != nil {
			t.Fatalf("run again: %v", err)
		}
		if again.ID != c.ID || !again.Running || !again.StartedAt.Equal(c.StartedAt) {
			t.Errorf("run again = %s running=%v started %v; want %s untouched (started %v)", again.ID, again.Running, again.StartedAt, c.ID, c.StartedAt)
		}
		list, err := e.d.List(ctx)
		if err != nil || len(list) != 1 || list[0].ID != c.ID {
			t.Errorf("list = %+v, %v; want the one container", list, err)
		}
	})

	t.Run("another task's name is a conflict", func(t *testing.T) {
		other := *tk.spec
		other.TaskID = "testapp.instance-other._app.1"
		_, err := e.d.Run(ctx, &other, nil)
		if !errors.Is(err, sandbox.ErrConflict) {
			t.Fatalf("run: %v, want sandbox.ErrConflict", err)
		}
		if got, err := e.d.Inspect(ctx, c.ID); err != nil || !got.Running || got.TaskID() != tk.spec.TaskID {
			t.Errorf("the container after the conflict: %+v, %v", got, err)
		}
	})

	t.Run("exec", func(t *testing.T) {
		code, _, err := e.d.Exec(ctx, c.ID, []string{"sh", "-c", "exit 3"})
		if err != nil || code != 3 {
			t.Errorf("exit 3 = %d, %v", code, err)
		}
		code, out, err := e.d.Exec(ctx, c.ID, []string{"sh", "-c", "echo hi"})
		if err != nil || code != 0 || strings.TrimSpace(out) != "hi" {
			t.Errorf("echo hi = %d %q %v", code, out, err)
		}
	})

	t.Run("stop", func(t *testing.T) {
		start := time.Now()
		if err := e.d.Stop(ctx, c.ID, 10*time.Second); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("stop took %v; the app exits on SIGTERM, long before the 10s grace", took)
		}
		got, err := e.d.Inspect(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Running || got.State != "exited" || got.ExitCode != 0 || got.FinishedAt.Before(got.StartedAt) {
			t.Errorf("after stop: %+v, want exited 0", got)
		}
		if err := e.d.Stop(ctx, c.ID, time.Second); err != nil {
			t.Errorf("stop a stopped container: %v", err)
		}
		if code, _, err := e.d.Exec(ctx, c.ID, []string{"sh", "-c", "true"}); err == nil || errors.Is(err, sandbox.ErrConflict) || code != -1 {
			t.Errorf("exec in a stopped container = %d, %v; want a not-running error", code, err)
		}
		// Run does not restart a container that ran: the agent decides.
		again, err := e.d.Run(ctx, tk.spec, nil)
		if err != nil || again.ID != c.ID || again.Running {
			t.Errorf("run after stop = %+v, %v; want the stopped container as it is", again, err)
		}
	})

	t.Run("remove", func(t *testing.T) {
		if err := e.d.Remove(ctx, c.ID); err != nil {
			t.Fatalf("remove: %v", err)
		}
		if _, err := e.d.Inspect(ctx, c.ID); !errors.Is(err, sandbox.ErrNotFound) {
			t.Errorf("inspect after remove: %v, want sandbox.ErrNotFound", err)
		}
		if err := e.d.Remove(ctx, c.ID); err != nil {
			t.Errorf("remove again: %v", err)
		}
		if err := e.d.Stop(ctx, c.ID, time.Second); err != nil {
			t.Errorf("stop a removed container: %v", err)
		}
		if b, err := os.ReadFile(filepath.Join(tk.volume, "x")); err != nil || string(b) != "hello volume" {
			t.Errorf("volume after remove: %q, %v; want the data kept", b, err)
		}
	})
}

func TestDockerListOnlyThisAgent(t *testing.T) {
	t.Parallel()
	a, b := newDockerEnv(t), newDockerEnv(t)
	ta, tb := a.newTask(t), b.newTask(t)
	ca, cb := a.run(t, ta), b.run(t, tb)
	ctx := testCtx(t)
	for _, tc := range []struct {
		env  *dockerEnv
		want sandbox.Container
		task *task
	}{{a, ca, ta}, {b, cb, tb}} {
		list, err := tc.env.d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].ID != tc.want.ID || list[0].TaskID() != tc.task.spec.TaskID ||
			list[0].Name != tc.task.spec.Name() || !list[0].Running || list[0].IPAddress == "" {
			t.Errorf("agent %s lists %+v, want only %s", tc.env.layout.AgentID, list, tc.want.ID)
		}
	}
}

func TestDockerEventsDie(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	evs := make(chan sandbox.Event, 64)
	done := make(chan error, 1)
	go func() { done <- e.d.Events(ctx, func(ev sandbox.Event) { evs <- ev }) }()

	tk := e.newTask(t)
	c := e.run(t, tk)
	url := "http://" + net.JoinHostPort(c.IPAddress, "8080")
	waitHTTP(t, http.MethodGet, url+"/health", "", http.StatusOK)
	if code, body, err := httpDo(http.MethodPost, url+"/exit?code=3", ""); err != nil || code != http.StatusAccepted {
		t.Fatalf("POST /exit: %d %q %v", code, body, err)
	}
	timeout := time.After(20 * time.Second)
	for died := false; !died; {
		select {
		case ev := <-evs:
			if ev.ContainerID != c.ID || ev.Action != "die" {
				continue
			}
			died = true
			if ev.ExitCode != 3 || ev.TaskID != tk.spec.TaskID || ev.Time.IsZero() {
				t.Errorf("die event = %+v, want exit code 3 of task %s", ev, tk.spec.TaskID)
			}
		case err := <-done:
			t.Fatalf("event stream ended: %v", err)
		case <-timeout:
			t.Fatal("no die event within 20s")
		}
	}
	got, err := e.d.Inspect(ctx, c.ID)
	if err != nil || got.Running || got.ExitCode != 3 {
		t.Errorf("after exit: %+v, %v; want exited 3", got, err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("events after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("events did not return after cancel")
	}
}

// TestDockerCopyLogs: the output of a container Run started reaches the
// sandbox through the copier Run attached, the exit line included, once;
// a container whose copier ended (the agent stopped) is followed from the
// last line copied by the next agent's runtime.
func TestDockerCopyLogs(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	ctx := testCtx(t)
	count := func(path, s string) int {
		b, _ := os.ReadFile(path)
		return strings.Count(string(b), s)
	}

	// Attached: CopyLogs waits for the copier and returns at the exit.
	tk := e.newTask(t)
	c := e.run(t, tk)
	stdoutPath := filepath.Join(tk.sandbox, sandbox.StdoutFile)
	stderrPath := filepath.Join(tk.sandbox, sandbox.StderrFile)
	done := make(chan error, 1)
	go func() { done <- e.d.CopyLogs(ctx, c.ID, tk.sandbox) }()
	eventually(t, 20*time.Second, "testapp starting in stdout", func() error {
		if count(stdoutPath, "testapp starting") != 1 || count(stderrPath, "testapp stderr: pid") != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	url := "http://" + net.JoinHostPort(c.IPAddress, "8080")
	waitHTTP(t, http.MethodPost, url+"/exit?code=0", "", http.StatusAccepted)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("copy logs: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("copy logs did not return when the container exited")
	}
	if n := count(stdoutPath, "testapp exiting with code 0"); n != 1 {
		t.Errorf("the exit line is %d times in stdout, want 1", n)
	}
	if b, _ := os.ReadFile(stdoutPath); strings.Contains(string(b), "testapp stderr") {
		t.Errorf("stderr leaked into stdout: %q", b)
	}
	// A copy of a container whose end was copied adds nothing, in this
	// runtime or the next.
	before, _ := os.ReadFile(stdoutPath)
	next, err := New(Config{Layout: e.layout, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	for _, d := range []*Runtime{e.d, next} {
		if err := d.CopyLogs(ctx, c.ID, tk.sandbox); err != nil {
			t.Fatal(err)
		}
	}
	if after, _ := os.ReadFile(stdoutPath); string(after) != string(before) {
		t.Errorf("a copy after the end changed stdout:\n%s\n---\n%s", before, after)
	}

	// Followed: the copier ends while the container runs (its agent
	// stopped); the next agent's runtime follows the log from there.
	tk2 := e.newTask(t)
	c2 := e.run(t, tk2)
	stdout2 := filepath.Join(tk2.sandbox, sandbox.StdoutFile)
	eventually(t, 20*time.Second, "testapp starting in stdout", func() error {
		if count(stdout2, "testapp starting") != 1 {
			return errors.New("not yet")
		}
		return nil
	})
	e.d.copiersMu.Lock()
	cp := e.d.copiers[c2.ID]
	e.d.copiersMu.Unlock()
	if cp == nil {
		t.Fatal("Run attached no copier")
	}
	cp.abort()
	waitHTTP(t, http.MethodPost, "http://"+net.JoinHostPort(c2.IPAddress, "8080")+"/exit?code=0", "", http.StatusAccepted)
	if err := next.CopyLogs(ctx, c2.ID, tk2.sandbox); err != nil {
		t.Fatalf("follow the log: %v", err)
	}
	if n := count(stdout2, "testapp exiting with code 0"); n != 1 {
		b, _ := os.ReadFile(stdout2)
		t.Errorf("the exit line written while no copier was attached is %d times in stdout, want 1:\n%s", n, b)
	}
	if n := count(stdout2, "testapp starting"); n < 1 {
		t.Errorf("the first line is gone")
	}
}

func TestDockerImageMissing(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	tk := e.newTask(t)
	tk.spec.Image = "mesolite/does-not-exist:1"
	start := time.Now()
	_, err := e.d.Run(testCtx(t), tk.spec, nil)
	took := time.Since(start)
	t.Logf("run: %v (after %v)", err, took)
	var ie *sandbox.ImageError
	if !errors.As(err, &ie) || !errors.Is(err, sandbox.ErrImageUnavailable) {
		t.Fatalf("run: %v, want *sandbox.ImageError", err)
	}
	if ie.Image != tk.spec.Image || !strings.Contains(err.Error(), `"mesolite/does-not-exist:1"`) {
		t.Errorf("error %q does not name the image", err)
	}
	if took > 30*time.Second {
		t.Errorf("took %v to give up on an image no registry has", took)
	}
	if _, err := e.d.Inspect(testCtx(t), tk.spec.Name()); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("a container exists without its image: %v", err)
	}
}

// A volume whose directory vanished must fail the launch, never be
// replaced by a new empty directory.
func TestDockerVanishedMount(t *testing.T) {
	t.Parallel()
	e := newDockerEnv(t)
	tk := e.newTask(t)
	if err := os.Remove(tk.volume); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	_, err := e.d.Run(ctx, tk.spec, nil)
	if err == nil {
		t.Fatal("run with a vanished volume succeeded")
	}
	t.Logf("run: %v", err)
	if !strings.Contains(err.Error(), tk.volume) {
		t.Errorf("error %q does not name the missing directory", err)
	}
	if _, serr := os.Stat(tk.volume); !errors.Is(serr, os.ErrNotExist) {
		t.Errorf("the volume directory was recreated: %v", serr)
	}
	if _, err := e.d.Inspect(ctx, tk.spec.Name()); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("a container was left behind: %v", err)
	}
	list, err := e.d.api.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelAgentID+"="+e.layout.AgentID))})
	if err != nil || len(list) != 0 {
		t.Errorf("containers of the agent: %d, %v; want none", len(list), err)
	}
}

// TestFactsLimits: a rootless daemon on cgroup v1 (as docker info reports
// it here) is recognised, and its missing limits are said plainly; a
// daemon with cgroups has nothing to say.
func TestFactsLimits(t *testing.T) {
	rootless := factsOf(system.Info{OSType: "linux", Architecture: "aarch64", CgroupDriver: "none", CgroupVersion: "1",
		SecurityOptions: []string{"name=seccomp,profile=default", "name=rootless"}})
	if !rootless.Rootless || rootless.Arch != "arm64" || !strings.Contains(rootless.LimitsWarning(), "cgroup v1") {
		t.Fatalf("rootless facts %+v, warning %q", rootless, rootless.LimitsWarning())
	}
	full := factsOf(system.Info{OSType: "linux", Architecture: "x86_64", MemoryLimit: true, CPUShares: true, CgroupDriver: "cgroupfs", CgroupVersion: "1",
		OperatingSystem: "Docker Desktop", SecurityOptions: []string{"name=seccomp,profile=default"}})
	if full.Rootless || !full.Desktop || full.Arch != "amd64" || full.LimitsWarning() != "" {
		t.Fatalf("facts %+v, warning %q", full, full.LimitsWarning())
	}
}
