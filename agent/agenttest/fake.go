// Package agenttest has a fake container runtime for fast tests of the
// agent, its API and its CLI without Docker, and Start, which runs a real
// agent over it. The fake keeps containers in memory, reports events like
// Docker does, and lets a test inject the failures Docker can have; the
// host half (sandboxes, volumes) is the real one, on the test's
// directories, and docker parameters are checked by Docker's runtime's
// checker. Tests that need real containers use sandbox/docker instead;
// this fake never replaces them.
package agenttest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/sandbox/fetch"
	"github.com/mesolite/mesolite/sandbox/probe"
)

// Container is a fake container.
type Container struct {
	sandbox.Container
	Spec    *sandbox.TaskSpec
	stopped chan struct{}
}

// Runtime is a fake agent.Runtime. Its zero value is not usable; call New.
type Runtime struct {
	sandbox.Host
	mu         sync.Mutex
	agentID    string
	containers map[string]*Container // by id
	byName     map[string]string     // name -> id
	subs       map[int]func(sandbox.Event)
	nextSub    int
	nextID     int
	down       bool

	// missingImages cannot be pulled: Run fails with a *sandbox.ImageError.
	missingImages map[string]bool
	// IPAddress is the address containers get (default 127.0.0.1, so
	// health checks can reach a test's own listener).
	IPAddress string
	// ExecCode is what Exec returns.
	ExecCode int
	// RunHook, when set, runs at the start of Run and may fail it.
	RunHook func(spec *sandbox.TaskSpec) error
	// failpoint, when set, is called with "docker.create" between creating
	// a container and starting it, as the Docker runtime's Failpoint.
	failpoint func(point string)
	runs      int
}

// SetImageMissing makes an image impossible to pull (or possible again).
func (r *Runtime) SetImageMissing(image string, missing bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.missingImages[image] = missing
}

// Runs counts the calls of Run.
func (r *Runtime) Runs() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs
}

// New returns a fake runtime for the agent of a layout, with a real
// fetcher (its cache in the layout's work directory, local files under
// /tmp).
func New(layout sandbox.Layout) *Runtime {
	f, err := fetch.New(fetch.Config{
		CacheDir: layout.FetchCacheDir(), CacheSize: 64 << 20, MaxSize: 64 << 20,
		Timeout: 30 * time.Second, HostPathRoots: []string{os.TempDir()},
	})
	if err != nil {
		f = nil // a task with fetch entries then fails, saying there is no fetcher
	}
	return &Runtime{
		Host:          sandbox.Host{Layout: layout, Fetcher: f},
		agentID:       layout.AgentID,
		containers:    map[string]*Container{},
		byName:        map[string]string{},
		subs:          map[int]func(sandbox.Event){},
		missingImages: map[string]bool{},
		IPAddress:     "127.0.0.1",
	}
}

var errDown = fmt.Errorf("fake docker: %w: connection refused", sandbox.ErrUnavailable)

// SetDown makes every call fail as if the daemon were gone, and breaks
// the event streams.
func (r *Runtime) SetDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func (r *Runtime) lookup(ref string) *Container {
	if c, ok := r.containers[ref]; ok {
		return c
	}
	if id, ok := r.byName[ref]; ok {
		return r.containers[id]
	}
	return nil
}

// SetFailpoint sets the function Run calls with "docker.create" between
// creating a container and starting it (nil: none).
func (r *Runtime) SetFailpoint(f func(point string)) {
	r.mu.Lock()
	r.failpoint = f
	r.mu.Unlock()
}

// Run creates (or adopts) and starts the container of spec.
func (r *Runtime) Run(ctx context.Context, spec *sandbox.TaskSpec, progress func(string)) (sandbox.Container, error) {
	r.mu.Lock()
	r.runs++
	hook := r.RunHook
	r.mu.Unlock()
	if hook != nil {
		if err := hook(spec); err != nil {
			return sandbox.Container{}, err
		}
	}
	c, fp, err := r.create(spec, progress)
	if err != nil || c.Running {
		return c, err
	}
	if fp != nil {
		// The crash window between create and start. Called without the
		// lock: the failpoint may end this goroutine, leaving the container
		// "created".
		fp("docker.create")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return sandbox.Container{}, errDown
	}
	cc := r.lookup(c.ID)
	if cc == nil {
		return sandbox.Container{}, fmt.Errorf("%w: container %s removed before it started", sandbox.ErrNotFound, c.Name)
	}
	if cc.State == "created" {
		r.start(cc)
	}
	return cc.Container, nil
}

// create returns the container of spec, made (not started) if it did not
// exist, and the failpoint to call before starting a new one.
func (r *Runtime) create(spec *sandbox.TaskSpec, progress func(string)) (sandbox.Container, func(string), error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return sandbox.Container{}, nil, errDown
	}
	name := spec.Name()
	if c := r.lookup(name); c != nil {
		if c.Labels[sandbox.LabelTaskID] != spec.TaskID {
			return sandbox.Container{}, nil, fmt.Errorf("%w: %s", sandbox.ErrConflict, name)
		}
		return c.Container, nil, nil
	}
	if r.missingImages[spec.Image] {
		return sandbox.Container{}, nil, &sandbox.ImageError{Image: spec.Image, Err: errors.New("pull access denied: no route to registry")}
	}
	if progress != nil {
		progress("pulling image " + spec.Image + ": done")
	}
	r.nextID++
	id := fmt.Sprintf("%064x", r.nextID)
	labels := map[string]string{}
	labels[sandbox.LabelAgentID] = r.agentID
	labels[sandbox.LabelAppID] = spec.AppID
	labels[sandbox.LabelInstanceID] = spec.InstanceID
	labels[sandbox.LabelTaskID] = spec.TaskID
	labels[sandbox.LabelMesosTask] = spec.TaskID
	c := &Container{
		Container: sandbox.Container{ID: id, Name: name, Image: spec.Image, Labels: labels, State: "created", IPAddress: r.IPAddress, Detailed: true},
		Spec:      spec,
		stopped:   make(chan struct{}),
	}
	r.containers[id] = c
	r.byName[name] = id
	return c.Container, r.failpoint, nil
}

func (r *Runtime) start(c *Container) {
	c.State = "running"
	c.Running = true
	c.StartedAt = time.Now()
	if c.Spec != nil && c.Spec.SandboxDir != "" {
		_ = os.WriteFile(filepath.Join(c.Spec.SandboxDir, sandbox.StdoutFile), []byte("fake container "+c.Name+" started\n"), 0o644)
	}
	r.emit(sandbox.Event{ContainerID: c.ID, TaskID: c.Labels[sandbox.LabelTaskID], Action: "start", Time: time.Now()})
}

// emit delivers an event to the subscribers, outside the lock's callers'
// control: subscribers must not call back into the runtime synchronously.
func (r *Runtime) emit(ev sandbox.Event) {
	for _, fn := range r.subs {
		go fn(ev)
	}
}

func (r *Runtime) exit(c *Container, code int) {
	if !c.Running {
		return
	}
	c.Running = false
	c.State = "exited"
	c.ExitCode = code
	c.FinishedAt = time.Now()
	close(c.stopped)
	r.emit(sandbox.Event{ContainerID: c.ID, TaskID: c.Labels[sandbox.LabelTaskID], Action: "die", ExitCode: code, Time: time.Now()})
}

// Crash makes a running container exit with code, as if its process died.
func (r *Runtime) Crash(taskID string, code int) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.containers {
		if c.Labels[sandbox.LabelTaskID] == taskID && c.Running {
			r.exit(c, code)
			return nil
		}
	}
	return fmt.Errorf("no running container for task %s", taskID)
}

// Vanish deletes a container without an event, as a docker rm -f behind
// the agent's back with events missed.
func (r *Runtime) Vanish(taskID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, c := range r.containers {
		if c.Labels[sandbox.LabelTaskID] == taskID {
			if c.Running {
				c.Running = false
				close(c.stopped)
			}
			delete(r.containers, id)
			delete(r.byName, c.Name)
		}
	}
}

// AddForeign creates a running container with the given labels that no
// task of the agent created (an orphan, or another agent's container).
func (r *Runtime) AddForeign(name string, labels map[string]string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.nextID++
	id := fmt.Sprintf("%064x", r.nextID)
	c := &Container{Container: sandbox.Container{ID: id, Name: name, Labels: labels, State: "running", Running: true, Detailed: true, StartedAt: time.Now()}, stopped: make(chan struct{})}
	r.containers[id] = c
	r.byName[name] = id
	return id
}

// CheckParameter is Docker's runtime's checker: the fake stands for Docker.
func (r *Runtime) CheckParameter(key, value string) error { return docker.CheckParameter(key, value) }

// Stop stops a container.
func (r *Runtime) Stop(_ context.Context, ref string, _ time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return errDown
	}
	if c := r.lookup(ref); c != nil {
		r.exit(c, 143)
	}
	return nil
}

// Remove deletes a container.
func (r *Runtime) Remove(_ context.Context, ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return errDown
	}
	if c := r.lookup(ref); c != nil {
		if c.Running {
			r.exit(c, 137)
		}
		delete(r.containers, c.ID)
		delete(r.byName, c.Name)
		r.emit(sandbox.Event{ContainerID: c.ID, TaskID: c.Labels[sandbox.LabelTaskID], Action: "destroy", Time: time.Now()})
	}
	return nil
}

// Inspect reads a container.
func (r *Runtime) Inspect(_ context.Context, ref string) (sandbox.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return sandbox.Container{}, errDown
	}
	c := r.lookup(ref)
	if c == nil {
		return sandbox.Container{}, fmt.Errorf("inspect %s: %w", ref, sandbox.ErrNotFound)
	}
	return c.Container, nil
}

// List returns this agent's containers.
func (r *Runtime) List(_ context.Context) ([]sandbox.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return nil, errDown
	}
	var out []sandbox.Container
	for _, c := range r.containers {
		if c.Labels[sandbox.LabelAgentID] == r.agentID {
			out = append(out, c.Container)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Containers returns every container, of any agent.
func (r *Runtime) Containers() []sandbox.Container {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sandbox.Container
	for _, c := range r.containers {
		out = append(out, c.Container)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Spec returns the spec a task's container was created with.
func (r *Runtime) Spec(taskID string) *sandbox.TaskSpec {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.containers {
		if c.Labels[sandbox.LabelTaskID] == taskID {
			return c.Spec
		}
	}
	return nil
}

// Events delivers events until ctx ends or the runtime goes down.
func (r *Runtime) Events(ctx context.Context, fn func(sandbox.Event)) error {
	r.mu.Lock()
	if r.down {
		r.mu.Unlock()
		return errDown
	}
	r.nextSub++
	id := r.nextSub
	r.subs[id] = fn
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.subs, id)
		r.mu.Unlock()
	}()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			r.mu.Lock()
			down := r.down
			r.mu.Unlock()
			if down {
				return errDown
			}
		}
	}
}

// Exec returns ExecCode.
func (r *Runtime) Exec(_ context.Context, ref string, cmd []string) (int, string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return -1, "", errDown
	}
	if c := r.lookup(ref); c == nil || !c.Running {
		return -1, "", fmt.Errorf("exec in %s: %w", ref, sandbox.ErrNotFound)
	}
	return r.ExecCode, "exit " + strconv.Itoa(r.ExecCode), nil
}

// Probe checks from this process (the fake's containers are whatever its
// tests listen on).
func (r *Runtime) Probe(ctx context.Context, req probe.Request) probe.Result {
	return probe.Do(ctx, req)
}

// ProbePath is the direct path.
func (r *Runtime) ProbePath() probe.Info { return probe.Info{Path: probe.PathDirect} }

// CopyLogs waits until the container stops or ctx ends.
func (r *Runtime) CopyLogs(ctx context.Context, ref, _ string) error {
	r.mu.Lock()
	c := r.lookup(ref)
	r.mu.Unlock()
	if c == nil {
		return fmt.Errorf("logs of %s: %w", ref, sandbox.ErrNotFound)
	}
	select {
	case <-c.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
