package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"github.com/mesolite/mesolite/sandbox"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rs/zerolog"
)

// fakeAPI is a dockerAPI whose answers each test scripts. A call without
// a script fails the test: the code under test made a call it should not.
type fakeAPI struct {
	t     *testing.T
	mu    sync.Mutex
	calls []string

	create       func(cfg *container.Config, hc *container.HostConfig, name string) (container.CreateResponse, error)
	start        func(id string) error
	stop         func(id string, opts container.StopOptions) error
	remove       func(id string, opts container.RemoveOptions) error
	inspect      func(id string) (container.InspectResponse, error)
	list         func(opts container.ListOptions) ([]container.Summary, error)
	logs         func(ctx context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error)
	attach       func(id string, opts container.AttachOptions) (types.HijackedResponse, error)
	execCreate   func(id string, opts container.ExecOptions) (container.ExecCreateResponse, error)
	execAttach   func(execID string) (types.HijackedResponse, error)
	execInspect  func(execID string) (container.ExecInspect, error)
	imageInspect func(ref string) (image.InspectResponse, error)
	imagePull    func(ref string) (io.ReadCloser, error)
	events       func(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error)
	version      func() (types.Version, error)
}

var _ dockerAPI = (*fakeAPI)(nil)

var errUnscripted = errors.New("fake docker: unscripted call")

func (f *fakeAPI) record(call string) {
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()
}

func (f *fakeAPI) unscripted(call string) error {
	f.t.Errorf("unexpected docker call %s", call)
	return errUnscripted
}

func (f *fakeAPI) called(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if strings.HasPrefix(c, prefix) {
			n++
		}
	}
	return n
}

func (f *fakeAPI) ContainerCreate(_ context.Context, cfg *container.Config, hc *container.HostConfig, _ *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.record("create " + name)
	if f.create == nil {
		return container.CreateResponse{}, f.unscripted("create")
	}
	return f.create(cfg, hc, name)
}

func (f *fakeAPI) ContainerStart(_ context.Context, id string, _ container.StartOptions) error {
	f.record("start " + id)
	if f.start == nil {
		return f.unscripted("start")
	}
	return f.start(id)
}

func (f *fakeAPI) ContainerStop(_ context.Context, id string, opts container.StopOptions) error {
	f.record("stop " + id)
	if f.stop == nil {
		return f.unscripted("stop")
	}
	return f.stop(id, opts)
}

func (f *fakeAPI) ContainerRemove(_ context.Context, id string, opts container.RemoveOptions) error {
	f.record("remove " + id)
	if f.remove == nil {
		return f.unscripted("remove")
	}
	return f.remove(id, opts)
}

func (f *fakeAPI) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	f.record("inspect " + id)
	if f.inspect == nil {
		return container.InspectResponse{}, f.unscripted("inspect")
	}
	return f.inspect(id)
}

func (f *fakeAPI) ContainerList(_ context.Context, opts container.ListOptions) ([]container.Summary, error) {
	f.record("list")
	if f.list == nil {
		return nil, f.unscripted("list")
	}
	return f.list(opts)
}

func (f *fakeAPI) ContainerLogs(ctx context.Context, id string, opts container.LogsOptions) (io.ReadCloser, error) {
	f.record("logs " + id)
	if f.logs == nil {
		return nil, f.unscripted("logs")
	}
	return f.logs(ctx, id, opts)
}

func (f *fakeAPI) ContainerAttach(_ context.Context, id string, opts container.AttachOptions) (types.HijackedResponse, error) {
	f.record("attach " + id)
	if f.attach == nil {
		return types.HijackedResponse{}, f.unscripted("attach")
	}
	return f.attach(id, opts)
}

// attached returns what ContainerAttach returns: a connection whose
// reading end gives the frames, then ends.
func attached(frames ...[]byte) types.HijackedResponse {
	server, conn := net.Pipe()
	go func() {
		_, _ = server.Write(stream(frames...))
		server.Close()
	}()
	return types.NewHijackedResponse(conn, "application/vnd.docker.raw-stream")
}

func (f *fakeAPI) ContainerExecCreate(_ context.Context, id string, opts container.ExecOptions) (container.ExecCreateResponse, error) {
	f.record("exec-create " + id)
	if f.execCreate == nil {
		return container.ExecCreateResponse{}, f.unscripted("exec-create")
	}
	return f.execCreate(id, opts)
}

func (f *fakeAPI) ContainerExecAttach(_ context.Context, execID string, _ container.ExecAttachOptions) (types.HijackedResponse, error) {
	f.record("exec-attach " + execID)
	if f.execAttach == nil {
		return types.HijackedResponse{}, f.unscripted("exec-attach")
	}
	return f.execAttach(execID)
}

func (f *fakeAPI) ContainerExecInspect(_ context.Context, execID string) (container.ExecInspect, error) {
	f.record("exec-inspect " + execID)
	if f.execInspect == nil {
		return container.ExecInspect{}, f.unscripted("exec-inspect")
	}
	return f.execInspect(execID)
}

func (f *fakeAPI) ImageInspect(_ context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.record("image-inspect " + ref)
	if f.imageInspect == nil {
		return image.InspectResponse{}, f.unscripted("image-inspect")
	}
	return f.imageInspect(ref)
}

func (f *fakeAPI) ImageImport(_ context.Context, _ image.ImportSource, ref string, _ image.ImportOptions) (io.ReadCloser, error) {
	f.record("import " + ref)
	return nil, f.unscripted("import")
}

func (f *fakeAPI) ImagePull(_ context.Context, ref string, _ image.PullOptions) (io.ReadCloser, error) {
	f.record("pull " + ref)
	if f.imagePull == nil {
		return nil, f.unscripted("pull")
	}
	return f.imagePull(ref)
}

func (f *fakeAPI) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	f.record("events")
	if f.events == nil {
		errs := make(chan error, 1)
		errs <- f.unscripted("events")
		return nil, errs
	}
	return f.events(ctx, opts)
}

func (f *fakeAPI) Info(context.Context) (system.Info, error) {
	return system.Info{OSType: "linux", Architecture: "x86_64", MemoryLimit: true, CPUShares: true}, nil
}

func (f *fakeAPI) ServerVersion(context.Context) (types.Version, error) {
	f.record("version")
	if f.version == nil {
		return types.Version{Version: "20.10.24", APIVersion: "1.41"}, nil
	}
	return f.version()
}

func (f *fakeAPI) Close() error { return nil }

func newFake(t *testing.T) (*Runtime, *fakeAPI) {
	f := &fakeAPI{t: t}
	// A started container's output: none, by default.
	f.attach = func(string, container.AttachOptions) (types.HijackedResponse, error) { return attached(), nil }
	return &Runtime{api: f, agentID: testAgentID, log: zerolog.Nop(), logMaxSize: 1 << 20, logMaxFiles: 3, copiers: map[string]*copier{}}, f
}

// Typed errors as the Docker client returns them.
func notFound(what string) error { return fmt.Errorf("No such %s: %w", what, cerrdefs.ErrNotFound) }
func conflict(msg string) error  { return fmt.Errorf("%s: %w", msg, cerrdefs.ErrConflict) }

// connectionFailed is the error a real client gives when no daemon
// listens: asked of a client pointed at a socket that does not exist.
func connectionFailed(t *testing.T) error {
	t.Helper()
	c, err := client.NewClientWithOpts(client.WithHost("unix://"+filepath.Join(t.TempDir(), "no-docker.sock")), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = c.ContainerInspect(ctx, "x")
	if !client.IsErrConnectionFailed(err) {
		t.Fatalf("a client without a daemon said %v, want a connection failure", err)
	}
	return err
}

func inspectOf(id, state string, labels map[string]string) container.InspectResponse {
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:    id,
			Name:  "/mesos-c0545002-91cf-4beb-a141-367d29d516eb",
			State: &container.State{Status: state, Running: state == "running", StartedAt: "2026-11-27T05:03:59.1Z", FinishedAt: "0001-01-01T00:00:00Z"},
		},
		Config:          &container.Config{Image: "mesolite/testapp:latest", Labels: labels},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{"bridge": {IPAddress: "172.17.0.9"}}},
	}
}

func labelsOf(agentID, taskID string) map[string]string {
	return map[string]string{sandbox.LabelAgentID: agentID, sandbox.LabelTaskID: taskID, sandbox.LabelMesosTask: taskID}
}

func imagePresent(string) (image.InspectResponse, error) {
	return image.InspectResponse{ID: "sha256:1"}, nil
}

func TestRunCreatesAndStarts(t *testing.T) {
	d, f := newFake(t)
	spec := baseSpec()
	created := false
	f.imageInspect = imagePresent
	f.inspect = func(id string) (container.InspectResponse, error) {
		switch {
		case !created:
			return container.InspectResponse{}, notFound("container: " + id)
		case f.called("start") == 0:
			return inspectOf("abc", "created", labelsOf(testAgentID, spec.TaskID)), nil
		}
		return inspectOf("abc", "running", labelsOf(testAgentID, spec.TaskID)), nil
	}
	f.create = func(cfg *container.Config, hc *container.HostConfig, name string) (container.CreateResponse, error) {
		if name != spec.Name() || cfg.Labels[sandbox.LabelTaskID] != spec.TaskID || cfg.Labels[sandbox.LabelAgentID] != testAgentID {
			t.Errorf("create %s with labels %v", name, cfg.Labels)
		}
		created = true
		return container.CreateResponse{ID: "abc"}, nil
	}
	f.start = func(id string) error {
		if id != "abc" {
			t.Errorf("start %s, want abc", id)
		}
		return nil
	}
	c, err := d.Run(context.Background(), spec, nil)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if c.ID != "abc" || !c.Running || c.IPAddress != "172.17.0.9" || c.TaskID() != spec.TaskID || !c.Detailed {
		t.Errorf("container = %+v", c)
	}
	if f.called("create") != 1 || f.called("start") != 1 || f.called("pull") != 0 {
		t.Errorf("calls = %q", f.calls)
	}
}

func TestRunAdoptsOnCreateConflict(t *testing.T) {
	for _, state := range []string{"running", "created"} {
		t.Run(state, func(t *testing.T) {
			d, f := newFake(t)
			spec := baseSpec()
			f.imageInspect = imagePresent
			// A crash, or another Run of the same task, left the container:
			// our create conflicts, the container is the task's.
			f.inspect = func(id string) (container.InspectResponse, error) {
				st := state
				if f.called("start") > 0 {
					st = "running"
				}
				return inspectOf("theirs", st, labelsOf(testAgentID, spec.TaskID)), nil
			}
			f.create = func(*container.Config, *container.HostConfig, string) (container.CreateResponse, error) {
				return container.CreateResponse{}, conflict(`Conflict. The container name "/` + spec.Name() + `" is already in use`)
			}
			f.start = func(string) error { return nil }
			c, err := d.Run(context.Background(), spec, nil)
			if err != nil {
				t.Fatalf("run: %v, want the container adopted", err)
			}
			if c.ID != "theirs" || !c.Running {
				t.Errorf("container = %+v, want the existing one running", c)
			}
			wantStarts := 0
			if state == "created" {
				wantStarts = 1
			}
			if got := f.called("start"); got != wantStarts {
				t.Errorf("started %d times, want %d", got, wantStarts)
			}
		})
	}
}

func TestRunConflicts(t *testing.T) {
	spec := baseSpec()
	tests := []struct {
		name   string
		labels map[string]string
	}{
		{"another task", labelsOf(testAgentID, "other._app.1")},
		{"another agent", labelsOf("other-agent", spec.TaskID)},
		{"unlabelled", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, f := newFake(t)
			f.imageInspect = imagePresent
			f.inspect = func(id string) (container.InspectResponse, error) {
				return inspectOf("theirs", "running", tc.labels), nil
			}
			f.create = func(*container.Config, *container.HostConfig, string) (container.CreateResponse, error) {
				return container.CreateResponse{}, conflict("name in use")
			}
			_, err := d.Run(context.Background(), spec, nil)
			if !errors.Is(err, sandbox.ErrConflict) {
				t.Fatalf("run: %v, want sandbox.ErrConflict", err)
			}
			if !strings.Contains(err.Error(), spec.Name()) {
				t.Errorf("error %q does not name the container", err)
			}
			if f.called("start") != 0 || f.called("remove") != 0 || f.called("stop") != 0 || f.called("create") != 1 {
				t.Errorf("touched someone else's container: %q", f.calls)
			}
		})
	}
}

func TestRunImageUnavailable(t *testing.T) {
	const ref = "mesolite/does-not-exist:1"
	pullErrors := map[string]func(string) (io.ReadCloser, error){
		"pull refused": func(string) (io.ReadCloser, error) {
			return nil, notFound("image: pull access denied for mesolite/does-not-exist, repository does not exist")
		},
		"error in the stream": func(string) (io.ReadCloser, error) {
			return io.NopCloser(strings.NewReader(`{"status":"Pulling from mesolite/does-not-exist","id":"1"}` + "\n" +
				`{"errorDetail":{"message":"manifest unknown"},"error":"manifest unknown"}` + "\n")), nil
		},
	}
	for name, pull := range pullErrors {
		t.Run(name, func(t *testing.T) {
			d, f := newFake(t)
			spec := baseSpec()
			spec.Image = ref
			f.create = func(*container.Config, *container.HostConfig, string) (container.CreateResponse, error) {
				return container.CreateResponse{}, notFound("image: " + ref)
			}
			f.imageInspect = func(string) (image.InspectResponse, error) {
				return image.InspectResponse{}, notFound("image: " + ref)
			}
			f.imagePull = pull
			_, err := d.Run(context.Background(), spec, nil)
			var ie *sandbox.ImageError
			if !errors.As(err, &ie) {
				t.Fatalf("run: %v (%T), want *sandbox.ImageError", err, err)
			}
			if ie.Image != ref || !errors.Is(err, sandbox.ErrImageUnavailable) {
				t.Errorf("image error %+v: Is(sandbox.ErrImageUnavailable)=%v", ie, errors.Is(err, sandbox.ErrImageUnavailable))
			}
			if !strings.Contains(err.Error(), `"`+ref+`"`) || !strings.Contains(err.Error(), "could not be pulled") {
				t.Errorf("message %q does not say which image and why", err)
			}
			if errors.Is(err, sandbox.ErrNotFound) || errors.Is(err, sandbox.ErrUnavailable) {
				t.Errorf("an image error reads as another class: %v", err)
			}
			if f.called("create") != 1 || f.called("start") != 0 {
				t.Errorf("calls %q: want one create (refused for the image), no start", f.calls)
			}
		})
	}
}

func TestRunPullsMissingImage(t *testing.T) {
	d, f := newFake(t)
	spec := baseSpec()
	pulled := false
	f.inspect = func(id string) (container.InspectResponse, error) {
		return inspectOf("abc", "running", labelsOf(testAgentID, spec.TaskID)), nil
	}
	f.imageInspect = func(string) (image.InspectResponse, error) { return image.InspectResponse{}, notFound("image") }
	f.imagePull = func(string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(
			`{"status":"Downloading","id":"l1","progressDetail":{"current":1048576,"total":2097152}}` + "\n" +
				`{"status":"Download complete","id":"l1"}` + "\n")), nil
	}
	f.create = func(*container.Config, *container.HostConfig, string) (container.CreateResponse, error) {
		if f.called("pull") == 0 {
			return container.CreateResponse{}, notFound("image: " + spec.Image)
		}
		pulled = true
		return container.CreateResponse{ID: "abc"}, nil
	}
	f.start = func(string) error { return nil }
	var lines []string
	if _, err := d.Run(context.Background(), spec, func(s string) { lines = append(lines, s) }); err != nil {
		t.Fatalf("run: %v", err)
	}
	if f.called("pull") != 1 || !pulled || f.called("create") != 2 || len(lines) == 0 || !strings.Contains(lines[0], spec.Image) {
		t.Errorf("calls %q, progress %q: want create refused, pull, create", f.calls, lines)
	}
}

func TestRunImageVanishedBeforeCreate(t *testing.T) {
	d, f := newFake(t)
	f.inspect = func(id string) (container.InspectResponse, error) {
		return container.InspectResponse{}, notFound("container: " + id)
	}
	f.imageInspect = imagePresent
	f.create = func(*container.Config, *container.HostConfig, string) (container.CreateResponse, error) {
		return container.CreateResponse{}, notFound("image: mesolite/testapp:latest")
	}
	_, err := d.Run(context.Background(), baseSpec(), nil)
	var ie *sandbox.ImageError
	if !errors.As(err, &ie) || !errors.Is(err, sandbox.ErrImageUnavailable) {
		t.Errorf("run: %v, want *sandbox.ImageError", err)
	}
}

func TestDaemonUnavailable(t *testing.T) {
	down := connectionFailed(t)
	d, f := newFake(t)
	f.inspect = func(string) (container.InspectResponse, error) { return container.InspectResponse{}, down }
	f.imageInspect = func(string) (image.InspectResponse, error) { return image.InspectResponse{}, down }
	f.create = func(*container.Config, *container.HostConfig, string) (container.CreateResponse, error) {
		return container.CreateResponse{}, down
	}
	f.list = func(container.ListOptions) ([]container.Summary, error) { return nil, down }
	f.stop = func(string, container.StopOptions) error { return down }
	f.remove = func(string, container.RemoveOptions) error { return down }
	ctx := context.Background()
	_, err := d.Run(ctx, baseSpec(), nil)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, sandbox.ErrUnavailable) {
			t.Errorf("%s: %v, want sandbox.ErrUnavailable", what, err)
		}
		var ie *sandbox.ImageError
		if errors.As(err, &ie) {
			t.Errorf("%s: a daemon outage reads as a missing image: %v", what, err)
		}
	}
	check("run", err)
	_, err = d.Inspect(ctx, "x")
	check("inspect", err)
	_, err = d.List(ctx)
	check("list", err)
	check("stop", d.Stop(ctx, "x", time.Second))
	check("remove", d.Remove(ctx, "x"))

	// The daemon is gone from the first call on: nothing gets past the
	// version negotiation.
	d, f = newFake(t)
	f.version = func() (types.Version, error) { return types.Version{}, down }
	_, _, err = d.Version(ctx)
	check("version", err)
	_, err = d.Run(ctx, baseSpec(), nil)
	check("run before negotiation", err)
	check("events before negotiation", d.Events(ctx, func(sandbox.Event) {}))
	if got := f.called(""); got != f.called("version") {
		t.Errorf("calls without a daemon: %q, want only version checks", f.calls)
	}

	// The image check fails the same way when it is the first to notice
	// (after a create refused for the image).
	d, f = newFake(t)
	f.create = func(*container.Config, *container.HostConfig, string) (container.CreateResponse, error) {
		return container.CreateResponse{}, notFound("image: mesolite/testapp:latest")
	}
	f.imageInspect = func(string) (image.InspectResponse, error) { return image.InspectResponse{}, down }
	_, err = d.Run(ctx, baseSpec(), nil)
	check("run, image inspect", err)
	// And the pull.
	f.imageInspect = func(string) (image.InspectResponse, error) { return image.InspectResponse{}, notFound("image") }
	f.imagePull = func(string) (io.ReadCloser, error) { return nil, down }
	_, err = d.Run(ctx, baseSpec(), nil)
	check("run, pull", err)
}

// The client settles its API version once, before any other call, so
// concurrent first calls (events, list, inspect) do not race on it.
func TestNegotiatesOnceFirst(t *testing.T) {
	d, f := newFake(t)
	fail := true
	f.version = func() (types.Version, error) {
		if fail {
			fail = false
			return types.Version{}, conflict("daemon starting")
		}
		return types.Version{APIVersion: "1.41"}, nil
	}
	f.list = func(container.ListOptions) ([]container.Summary, error) { return nil, nil }
	ctx := context.Background()
	if _, err := d.List(ctx); err == nil {
		t.Error("list succeeded although the version check failed")
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.List(ctx); err != nil {
				t.Errorf("list: %v", err)
			}
		}()
	}
	wg.Wait()
	if f.called("version") != 2 || f.called("list") != 8 || f.calls[0] != "version" || f.calls[1] != "version" {
		t.Errorf("calls = %q, want two version checks (one failed), then the lists", f.calls)
	}
}

// A real client with no daemon behind it.
func TestNoDaemon(t *testing.T) {
	d, err := New(Config{Host: "unix://" + filepath.Join(t.TempDir(), "none.sock"), Layout: sandbox.Layout{AgentID: testAgentID}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ctx := context.Background()
	if _, _, err := d.Version(ctx); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Errorf("version: %v, want sandbox.ErrUnavailable", err)
	}
	if _, err := d.Run(ctx, baseSpec(), nil); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Errorf("run: %v, want sandbox.ErrUnavailable", err)
	}
	if _, err := d.List(ctx); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Errorf("list: %v, want sandbox.ErrUnavailable", err)
	}
}

func TestStopRemoveMissing(t *testing.T) {
	d, f := newFake(t)
	var grace *int
	f.stop = func(_ string, o container.StopOptions) error { grace = o.Timeout; return notFound("container: x") }
	f.remove = func(_ string, o container.RemoveOptions) error {
		if !o.Force {
			t.Error("remove without force")
		}
		return notFound("container: x")
	}
	ctx := context.Background()
	if err := d.Stop(ctx, "x", 3*time.Second); err != nil {
		t.Errorf("stop a missing container: %v, want nil", err)
	}
	if grace == nil || *grace != 3 {
		t.Errorf("stop timeout = %v, want 3s", grace)
	}
	if err := d.Remove(ctx, "x"); err != nil {
		t.Errorf("remove a missing container: %v, want nil", err)
	}
	f.remove = func(string, container.RemoveOptions) error {
		return conflict("removal of container x is already in progress")
	}
	if err := d.Remove(ctx, "x"); err != nil {
		t.Errorf("remove while a removal is in progress: %v, want nil", err)
	}
	boom := errors.New("driver failed")
	f.stop = func(string, container.StopOptions) error { return boom }
	f.remove = func(string, container.RemoveOptions) error { return boom }
	if err := d.Stop(ctx, "x", time.Second); !errors.Is(err, boom) || !strings.Contains(err.Error(), "stop container x") {
		t.Errorf("stop: %v, want the cause wrapped", err)
	}
	if err := d.Remove(ctx, "x"); !errors.Is(err, boom) || !strings.Contains(err.Error(), "remove container x") {
		t.Errorf("remove: %v, want the cause wrapped", err)
	}
	f.inspect = func(string) (container.InspectResponse, error) {
		return container.InspectResponse{}, notFound("container: x")
	}
	if _, err := d.Inspect(ctx, "x"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("inspect a missing container: %v, want sandbox.ErrNotFound", err)
	}
}

// TestListFiltersOnAgent: List returns the agent's containers and those
// of its work directory under another agent id (by label or by mount),
// never another work directory's.
func TestListFiltersOnAgent(t *testing.T) {
	d, f := newFake(t)
	d.Layout = sandbox.Layout{WorkDir: "/var/mesolite", AgentID: testAgentID}
	withLabel := func(labels map[string]string, k, v string) map[string]string {
		labels[k] = v
		return labels
	}
	f.list = func(o container.ListOptions) ([]container.Summary, error) {
		if !o.All || !o.Filters.ExactMatch("label", sandbox.LabelAgentID) || o.Filters.Len() != 1 {
			t.Errorf("list options = %+v, want all containers of mesolite", o)
		}
		return []container.Summary{{
			ID: "abc", Names: []string{"/mesos-c1"}, Image: "img", State: "running",
			Labels:          labelsOf(testAgentID, "t1"),
			NetworkSettings: &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{"bridge": {IPAddress: "172.17.0.3"}}},
		}, {ID: "def", Names: []string{"/mesos-c2"}, State: "exited", Labels: labelsOf(testAgentID, "t2")},
			{ID: "old-id-label", Names: []string{"/mesos-c3"}, State: "running", Labels: withLabel(labelsOf("lost-S0", "t3"), sandbox.LabelWorkDir, "/var/mesolite/")},
			{ID: "old-id-mount", Names: []string{"/mesos-c4"}, State: "running", Labels: labelsOf("older-S0", "t4"),
				Mounts: []container.MountPoint{{Source: "/var/mesolite/volumes/roles/marathon/t4#data#1"}}},
			{ID: "other-dir", Names: []string{"/mesos-c5"}, State: "running", Labels: withLabel(labelsOf("other-S0", "t5"), sandbox.LabelWorkDir, "/var/mesolite-2")},
			{ID: "other-mount", Names: []string{"/mesos-c6"}, State: "running", Labels: labelsOf("other-S0", "t6"),
				Mounts: []container.MountPoint{{Source: "/var/mesolite-2/volumes/roles/marathon/t6#data#1"}}},
		}, nil
	}
	got, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].Name != "mesos-c1" || !got[0].Running || got[0].IPAddress != "172.17.0.3" || got[0].TaskID() != "t1" || got[1].Running || got[1].State != "exited" ||
		got[2].ID != "old-id-label" || got[3].ID != "old-id-mount" || len(got[3].Mounts) != 1 {
		t.Errorf("list = %+v", got)
	}
}

func TestEventsFake(t *testing.T) {
	d, f := newFake(t)
	msgs := make(chan events.Message, 4)
	errs := make(chan error, 1)
	f.events = func(_ context.Context, o events.ListOptions) (<-chan events.Message, <-chan error) {
		for _, want := range []string{"type=container", "label=" + sandbox.LabelAgentID + "=" + testAgentID, "event=die", "event=start", "event=oom", "event=destroy"} {
			k, v, _ := strings.Cut(want, "=")
			if !o.Filters.ExactMatch(k, v) {
				t.Errorf("events filter lacks %s", want)
			}
		}
		return msgs, errs
	}
	now := time.Now()
	msgs <- events.Message{Type: events.ContainerEventType, Action: events.ActionDie, TimeNano: now.UnixNano(),
		Actor: events.Actor{ID: "abc", Attributes: map[string]string{sandbox.LabelTaskID: "t1", "exitCode": "3"}}}
	msgs <- events.Message{Type: events.ContainerEventType, Action: events.ActionStart, TimeNano: now.UnixNano(),
		Actor: events.Actor{ID: "abc", Attributes: map[string]string{sandbox.LabelTaskID: "t1"}}}
	var got []sandbox.Event
	broken := errors.New("unexpected EOF from daemon")
	err := d.Events(context.Background(), func(e sandbox.Event) {
		got = append(got, e)
		if len(got) == 2 {
			errs <- broken
		}
	})
	if !errors.Is(err, broken) {
		t.Errorf("events ended with %v, want the stream's error", err)
	}
	if len(got) != 2 || got[0] != (sandbox.Event{ContainerID: "abc", TaskID: "t1", Action: "die", ExitCode: 3, Time: time.Unix(0, now.UnixNano())}) || got[1].Action != "start" || got[1].ExitCode != 0 {
		t.Errorf("events = %+v", got)
	}

	// A stream that ends without an error is a broken daemon connection.
	d, f = newFake(t)
	eof := make(chan error, 1)
	eof <- io.EOF
	f.events = func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) { return nil, eof }
	if err := d.Events(context.Background(), func(sandbox.Event) {}); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Errorf("events after EOF: %v, want sandbox.ErrUnavailable", err)
	}
	// Ending the context ends the stream quietly.
	d, f = newFake(t)
	f.events = func(context.Context, events.ListOptions) (<-chan events.Message, <-chan error) { return nil, nil }
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Events(ctx, func(sandbox.Event) {}); !errors.Is(err, context.Canceled) {
		t.Errorf("events after cancel: %v, want context.Canceled", err)
	}
}

// hijacked returns an exec stream: the frames, then EOF (or nothing, and
// a read that blocks until the connection closes, when hang is set).
func hijacked(t *testing.T, frames []byte, hang bool) types.HijackedResponse {
	t.Helper()
	server, clientSide := net.Pipe()
	go func() {
		_, _ = server.Write(frames)
		if !hang {
			_ = server.Close()
		}
	}()
	t.Cleanup(func() { _ = server.Close() })
	return types.HijackedResponse{Conn: clientSide, Reader: bufio.NewReader(clientSide)}
}

func TestExecFake(t *testing.T) {
	d, f := newFake(t)
	f.execCreate = func(id string, o container.ExecOptions) (container.ExecCreateResponse, error) {
		if id != "abc" || strings.Join(o.Cmd, " ") != "sh -c healthy" || !o.AttachStdout || !o.AttachStderr {
			t.Errorf("exec create %s %+v", id, o)
		}
		return container.ExecCreateResponse{ID: "e1"}, nil
	}
	big := strings.Repeat("x", 3000)
	f.execAttach = func(string) (types.HijackedResponse, error) {
		return hijacked(t, stream(frame(1, "out\n"), frame(2, "err\n"), frame(1, big)), false), nil
	}
	inspects := 0
	f.execInspect = func(string) (container.ExecInspect, error) {
		inspects++
		// Docker may still report the exec running just after its stream ended.
		return container.ExecInspect{Running: inspects < 3, ExitCode: 7}, nil
	}
	code, out, err := d.Exec(context.Background(), "abc", []string{"sh", "-c", "healthy"})
	if err != nil || code != 7 {
		t.Fatalf("exec = %d, %v; want 7, nil", code, err)
	}
	if len(out) != 1024 || !strings.HasPrefix(out, "out\nerr\nxxx") {
		t.Errorf("output = %d bytes %.20q, want the first KiB of stdout and stderr", len(out), out)
	}

	// The context bounds a command that never ends.
	f.execAttach = func(string) (types.HijackedResponse, error) { return hijacked(t, frame(1, "started\n"), true), nil }
	f.execInspect = nil
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	code, out, err = d.Exec(ctx, "abc", []string{"sh", "-c", "healthy"})
	if !errors.Is(err, context.DeadlineExceeded) || code != -1 || out != "started\n" {
		t.Errorf("hung exec = %d, %q, %v; want -1, the output so far, deadline exceeded", code, out, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("hung exec returned after %v", took)
	}

	f.execCreate = func(string, container.ExecOptions) (container.ExecCreateResponse, error) {
		return container.ExecCreateResponse{}, notFound("container: abc")
	}
	if _, _, err := d.Exec(context.Background(), "abc", []string{"true"}); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("exec in a missing container: %v, want sandbox.ErrNotFound", err)
	}
	f.execCreate = func(string, container.ExecOptions) (container.ExecCreateResponse, error) {
		return container.ExecCreateResponse{}, conflict("sandbox.Container abc is not running")
	}
	if _, _, err := d.Exec(context.Background(), "abc", []string{"true"}); err == nil || errors.Is(err, sandbox.ErrConflict) || !strings.Contains(err.Error(), "not running") {
		t.Errorf("exec in a stopped container: %v, want a not-running error that is no name conflict", err)
	}
}

// logLine is a frame of a log stream asked for with timestamps.
func logLine(stream byte, ts time.Time, msg string) []byte {
	return frame(stream, ts.UTC().Format(time.RFC3339Nano)+" "+msg)
}

func TestCopyLogsFake(t *testing.T) {
	dir := t.TempDir()
	d, f := newFake(t)
	t0 := time.Date(2026, 11, 27, 5, 3, 59, 100, time.UTC)
	var since []string
	var body []byte
	f.logs = func(_ context.Context, id string, o container.LogsOptions) (io.ReadCloser, error) {
		if !o.ShowStdout || !o.ShowStderr || !o.Follow || !o.Timestamps {
			t.Errorf("log options = %+v", o)
		}
		since = append(since, o.Since)
		return io.NopCloser(strings.NewReader(string(body))), nil
	}
	// stderr's line reaches the log after stdout's but carries an older
	// timestamp, as happens when both streams write at once.
	body = stream(
		logLine(1, t0.Add(2*time.Millisecond), "testapp starting\n"),
		logLine(2, t0.Add(time.Millisecond), "testapp stderr: pid 1\n"),
	)
	if err := d.CopyLogs(context.Background(), "abc", dir); err != nil {
		t.Fatalf("copy logs: %v", err)
	}
	body = stream(logLine(1, t0.Add(time.Second), "more\n"))
	if err := d.CopyLogs(context.Background(), "abc", dir); err != nil {
		t.Fatalf("copy logs again: %v", err)
	}
	resume := t0.Add(2*time.Millisecond + time.Nanosecond)
	if len(since) != 2 || since[0] != "" || since[1] != fmt.Sprintf("%d.%09d", resume.Unix(), resume.Nanosecond()) {
		t.Errorf("since = %q, want none, then just after the newest line copied", since)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, sandbox.StdoutFile)); string(b) != "testapp starting\nmore\n" {
		t.Errorf("stdout = %q", b)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, sandbox.StderrFile)); string(b) != "testapp stderr: pid 1\n" {
		t.Errorf("stderr = %q", b)
	}

	f.logs = func(context.Context, string, container.LogsOptions) (io.ReadCloser, error) {
		return nil, notFound("container: abc")
	}
	if err := d.CopyLogs(context.Background(), "abc", dir); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("logs of a missing container: %v, want sandbox.ErrNotFound", err)
	}
	if err := d.CopyLogs(context.Background(), "abc", filepath.Join(dir, "missing")); err == nil {
		t.Error("copy into a missing sandbox succeeded")
	}
}

// CopyLogs leaves no goroutine behind when its context never ends.
func TestCopyLogsNoLeak(t *testing.T) {
	dir := t.TempDir()
	d, f := newFake(t)
	f.logs = func(context.Context, string, container.LogsOptions) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader("")), nil
	}
	before := runtime.NumGoroutine()
	for range 50 {
		if err := d.CopyLogs(context.Background(), "abc", dir); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines after 50 copies, %d before", runtime.NumGoroutine(), before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A follow cancelled by its context returns promptly with the context's
// error, and what it copied stays.
func TestCopyLogsCancel(t *testing.T) {
	dir := t.TempDir()
	d, f := newFake(t)
	f.logs = func(context.Context, string, container.LogsOptions) (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { _, _ = pw.Write(logLine(1, time.Now(), "hello\n")) }() // then nothing: a quiet running container
		return pr, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.CopyLogs(ctx, "abc", dir) }()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, _ := os.ReadFile(filepath.Join(dir, sandbox.StdoutFile)); string(b) == "hello\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hello never reached stdout")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("copy logs: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("copy logs did not return after cancel")
	}
	if b, err := os.ReadFile(filepath.Join(dir, logPosFile)); err != nil || len(b) == 0 {
		t.Errorf("log position not saved: %q, %v", b, err)
	}
}

func TestIPAddress(t *testing.T) {
	nets := map[string]*network.EndpointSettings{
		"zeta":   {IPAddress: "10.9.0.2"},
		"bridge": {IPAddress: "172.17.0.2"},
		"alpha":  {IPAddress: "10.1.0.2"},
		"none":   nil,
		"empty":  {},
	}
	for _, tc := range []struct {
		mode string
		nets map[string]*network.EndpointSettings
		want string
	}{
		{"zeta", nets, "10.9.0.2"},
		{"bridge", nets, "172.17.0.2"},
		{"", nets, "172.17.0.2"},
		{"default", nets, "172.17.0.2"},
		{"gone", nets, "10.1.0.2"},
		{"gone", map[string]*network.EndpointSettings{"zeta": {IPAddress: "10.9.0.2"}, "alpha": {IPAddress: "10.1.0.2"}}, "10.1.0.2"},
		{"host", map[string]*network.EndpointSettings{"host": {}}, ""},
		{"bridge", nil, ""},
	} {
		if got := ipAddress(tc.nets, tc.mode); got != tc.want {
			t.Errorf("ipAddress(mode %q, %d networks) = %q, want %q", tc.mode, len(tc.nets), got, tc.want)
		}
	}
}
