// Package docker is mesolite's Docker runtime: it runs a sandbox.TaskSpec
// as a Docker container (translating the spec and its
// container.docker.parameters into Docker's create request), and stops,
// inspects, lists, watches and copies the logs of the containers of one
// agent. It talks to Docker through dockerAPI, the part of the client it
// uses, and does the host half (sandboxes, volumes) through sandbox.Host.
package docker

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/system"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/fetch"
	"github.com/mesolite/mesolite/sandbox/probe"
)

// dockerAPI is the part of the Docker client the runtime uses, so tests can
// inject errors without a daemon.
type dockerAPI interface {
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerStart(ctx context.Context, containerID string, options container.StartOptions) error
	ContainerStop(ctx context.Context, containerID string, options container.StopOptions) error
	ContainerRemove(ctx context.Context, containerID string, options container.RemoveOptions) error
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	ContainerLogs(ctx context.Context, containerID string, options container.LogsOptions) (io.ReadCloser, error)
	ContainerAttach(ctx context.Context, containerID string, options container.AttachOptions) (types.HijackedResponse, error)
	ContainerExecCreate(ctx context.Context, containerID string, options container.ExecOptions) (container.ExecCreateResponse, error)
	ContainerExecAttach(ctx context.Context, execID string, config container.ExecAttachOptions) (types.HijackedResponse, error)
	ContainerExecInspect(ctx context.Context, execID string) (container.ExecInspect, error)
	ImageImport(ctx context.Context, source image.ImportSource, ref string, options image.ImportOptions) (io.ReadCloser, error)
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (image.InspectResponse, error)
	ImagePull(ctx context.Context, refStr string, options image.PullOptions) (io.ReadCloser, error)
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	ServerVersion(ctx context.Context) (types.Version, error)
	Info(ctx context.Context) (system.Info, error)
	Close() error
}

var _ dockerAPI = (*client.Client)(nil)

// Timeouts of Docker calls. Pulls, log streams, event streams and stops
// have their own.
const (
	callTimeout = 30 * time.Second
	pullTimeout = 30 * time.Minute
)

// Config configures the Docker runtime.
type Config struct {
	// Host is the daemon address, e.g. unix:///var/run/docker.sock. Empty
	// means $DOCKER_HOST or the default socket.
	Host string
	// Layout is where the agent's sandboxes and volumes live; its AgentID
	// labels and finds the agent's containers.
	Layout sandbox.Layout
	Logger zerolog.Logger
	// InitBinary is the mesolite binary on the host, bound into a command
	// task's container as its first process (package taskinit). Empty
	// refuses command tasks.
	InitBinary string
	// Fetcher fetches the tasks' URIs into their sandboxes (Host.Fetch).
	Fetcher *fetch.Fetcher
	// Failpoint, when set, is called with "docker.create" between creating
	// a container and starting it, the one crash window inside Run. The
	// fault-injection tests kill the agent there.
	Failpoint func(point string)
	// LogMaxSize and LogMaxFiles bound each output stream of a task in its
	// sandbox (see sandbox.LogWriter); zero: sandbox's defaults.
	LogMaxSize  int64
	LogMaxFiles int
}

// Runtime runs tasks as Docker containers. It negotiates the API version
// with the daemon, so an older Engine works with this client.
type Runtime struct {
	sandbox.Host
	api     dockerAPI
	agentID string
	log     zerolog.Logger
	fail    func(point string)
	init    string // InitBinary

	// negotiateMu serializes the first calls until one has settled the
	// client's API version; negotiated is set from then on.
	negotiateMu sync.Mutex
	negotiated  atomic.Bool

	endpoint string         // the daemon's address
	raw      *client.Client // for the helper container (nil in tests without a daemon)

	// checks routes TCP and HTTP checks along the path this host has to
	// the containers (checks.go).
	checks *probe.Router

	logMaxSize  int64
	logMaxFiles int
	// copiers are the output copiers Run attached, by container id and
	// name, until their container's output ends.
	copiersMu sync.Mutex
	copiers   map[string]*copier
}

// New connects (lazily) to the Docker daemon: cfg.Host, or where
// ResolveHost finds it.
func New(cfg Config) (*Runtime, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	host := cfg.Host
	if host == "" {
		host, _ = ResolveHost(os.Getenv)
	}
	opts = append(opts, client.WithHost(host))
	c, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if cfg.LogMaxSize <= 0 {
		cfg.LogMaxSize = sandbox.DefaultLogMaxSize
	}
	if cfg.LogMaxFiles <= 0 {
		cfg.LogMaxFiles = sandbox.DefaultLogMaxFiles
	}
	d := &Runtime{
		Host: sandbox.Host{Layout: cfg.Layout, Fetcher: cfg.Fetcher}, api: c, raw: c, endpoint: host, agentID: cfg.Layout.AgentID,
		log: cfg.Logger, fail: cfg.Failpoint, init: cfg.InitBinary, checks: probe.NewRouter(),
		logMaxSize: cfg.LogMaxSize, logMaxFiles: cfg.LogMaxFiles, copiers: map[string]*copier{},
	}
	return d, nil
}

// ready makes the client settle its API version before a call that uses
// it. The Docker client negotiates lazily, on the first request, and some
// of its calls (Events, ContainerList) read the version without its lock:
// the first calls of an agent, made concurrently, would race. Once one
// call has talked to the daemon, the version no longer changes.
func (d *Runtime) ready(ctx context.Context) error {
	if d.negotiated.Load() {
		return nil
	}
	d.negotiateMu.Lock()
	defer d.negotiateMu.Unlock()
	if d.negotiated.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	if _, err := d.api.ServerVersion(ctx); err != nil {
		return classify(err, "docker version")
	}
	d.negotiated.Store(true)
	return nil
}

// Endpoint is the daemon's address.
func (d *Runtime) Endpoint() string { return d.endpoint }

// CheckParameter checks one container.docker.parameters entry (see the
// package function).
func (d *Runtime) CheckParameter(key, value string) error { return CheckParameter(key, value) }

// Close ends the output copiers (their containers keep running; the next
// agent follows their logs) and releases the client's connections.
func (d *Runtime) Close() error {
	d.copiersMu.Lock()
	var cs []*copier
	for _, c := range d.copiers {
		cs = append(cs, c)
	}
	d.copiersMu.Unlock()
	for _, c := range cs {
		c.abort()
	}
	return d.api.Close()
}

// Version returns the daemon's version and API version.
func (d *Runtime) Version(ctx context.Context) (string, string, error) {
	if err := d.ready(ctx); err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	v, err := d.api.ServerVersion(ctx)
	if err != nil {
		return "", "", classify(err, "docker version")
	}
	return v.Version, v.APIVersion, nil
}

// classify wraps a Docker error into this package's classes.
func classify(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%s: %w: %v", what, sandbox.ErrUnavailable, err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%s: %w: %v", what, sandbox.ErrNotFound, err)
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("%s: %w: %v", what, sandbox.ErrConflict, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Run makes sure the container of spec exists and runs. Creating it is
// idempotent: when a container with the task's name exists and carries the
// task's labels, it is adopted (and started if needed) instead of failing.
// The image is pulled when missing (or always with ForcePull); progress
// receives one line now and then while a pull lasts.
//
// The create comes first, as `docker run` does it: the usual launch is a
// create and a start and nothing more. Docker itself says when the name is
// taken (a container a crash left behind, or another Run of the same task:
// inspected and adopted if it is the task's) or the image is missing
// (pulled, then created again).
func (d *Runtime) Run(ctx context.Context, spec *sandbox.TaskSpec, progress func(string)) (sandbox.Container, error) {
	if err := d.ready(ctx); err != nil {
		return sandbox.Container{}, err
	}
	cfg, hc, nc, err := d.config(spec)
	if err != nil {
		return sandbox.Container{}, err
	}
	cfg.Labels[sandbox.LabelWorkDir] = d.Layout.WorkDir
	cfg.Labels[sandbox.LabelFrameworkID] = d.Layout.FrameworkID
	name := spec.Name()
	if spec.ForcePull && !spec.HostRoot {
		if err := d.ensureImage(ctx, spec.Image, true, progress); err != nil {
			return sandbox.Container{}, err
		}
	}
	id, err := d.create(ctx, cfg, hc, nc, name)
	if errors.Is(err, errNoImage) {
		if spec.HostRoot {
			err = d.ensureHostRootImage(ctx)
		} else {
			err = d.ensureImage(ctx, spec.Image, false, progress)
		}
		if err != nil {
			return sandbox.Container{}, err
		}
		id, err = d.create(ctx, cfg, hc, nc, name)
		if errors.Is(err, errNoImage) {
			// Present a moment ago, gone now (removed by hand).
			return sandbox.Container{}, &sandbox.ImageError{Image: spec.Image, Err: err}
		}
	}
	var existing sandbox.Container
	switch {
	case err == nil:
		if d.fail != nil {
			// Crash window: created, not started. Recovery finds the
			// container in state "created" with its task STAGING and calls
			// Run again, which adopts and starts it below.
			d.fail("docker.create")
		}
		existing = sandbox.Container{ID: id, Name: name, Image: cfg.Image, Labels: cfg.Labels, State: "created"}
	case errors.Is(err, sandbox.ErrConflict):
		existing, err = d.Inspect(ctx, name)
		if err != nil {
			return sandbox.Container{}, err
		}
		if existing.Labels[sandbox.LabelAgentID] != d.agentID || existing.Labels[sandbox.LabelTaskID] != spec.TaskID {
			return sandbox.Container{}, fmt.Errorf("%w: %s exists and belongs to task %q of agent %q", sandbox.ErrConflict, name, existing.TaskID(), existing.Labels[sandbox.LabelAgentID])
		}
		if existing.Running {
			return existing, nil
		}
		if existing.State != "created" {
			// It ran and stopped already: the caller sees it as finished.
			return existing, nil
		}
	default:
		return sandbox.Container{}, err
	}
	// Attached before it starts, so its output is copied from the first
	// byte (see CopyLogs).
	cp := d.attachOutput(ctx, existing.ID, name, spec.SandboxDir)
	sctx, cancel := context.WithTimeout(ctx, callTimeout)
	err = d.api.ContainerStart(sctx, existing.ID, container.StartOptions{})
	cancel()
	if err != nil {
		if cp != nil {
			cp.abort()
		}
		return existing, classify(err, "start container "+name)
	}
	return d.Inspect(ctx, existing.ID)
}

// errNoImage is a create refused because the image is not there.
var errNoImage = errors.New("no such image")

// create asks Docker for the container. Errors: sandbox.ErrConflict when
// the name is taken, errNoImage when the image is missing.
func (d *Runtime) create(ctx context.Context, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig, name string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r, err := d.api.ContainerCreate(cctx, cfg, hc, nc, nil, name)
	switch {
	case err == nil:
		return r.ID, nil
	case cerrdefs.IsConflict(err):
		return "", fmt.Errorf("create container %s: %w: %v", name, sandbox.ErrConflict, err)
	case cerrdefs.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "image"):
		return "", fmt.Errorf("create container %s: %w: %v", name, errNoImage, err)
	}
	return "", classify(err, "create container "+name)
}

// config is Docker's create request for spec; a command task's user is
// resolved on the host here (ErrNoUser when it does not exist).
func (d *Runtime) config(spec *sandbox.TaskSpec) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	cfg, hc, nc, err := dockerConfig(spec, d.agentID)
	if err != nil || !spec.HostRoot {
		return cfg, hc, nc, err
	}
	if runtime.GOOS != "linux" {
		// The host's system directories would be a Mac's, and the daemon
		// runs in a Linux virtual machine that has none of them.
		return nil, nil, nil, fmt.Errorf("command task %s: apps without an image run in a container rooted in the host's file system, which needs mesolite and Docker on the same Linux machine; on %s give the app a container.docker.image", spec.TaskID, runtime.GOOS)
	}
	if d.init == "" {
		return nil, nil, nil, fmt.Errorf("command task %s: this runtime has no init binary for apps without an image", spec.TaskID)
	}
	var u *sandbox.User
	if spec.User != "" {
		user, err := sandbox.LookupUser(spec.User)
		if err != nil {
			return nil, nil, nil, err
		}
		u = &user
	}
	hostRootConfig(cfg, hc, spec, u, d.init)
	return cfg, hc, nc, nil
}

// ensureImage pulls the image when it is missing or forced.
func (d *Runtime) ensureImage(ctx context.Context, ref string, force bool, progress func(string)) error {
	ictx, cancel := context.WithTimeout(ctx, callTimeout)
	_, err := d.api.ImageInspect(ictx, ref)
	cancel()
	present := err == nil
	if err != nil && !cerrdefs.IsNotFound(err) {
		return classify(err, "inspect image "+ref)
	}
	if present && !force {
		return nil
	}
	perr := d.pull(ctx, ref, progress)
	switch {
	case perr == nil:
		return nil
	case present:
		d.log.Warn().Err(perr).Str("image", ref).Msg("force pull failed; using the local image")
		return nil
	case errors.Is(perr, sandbox.ErrUnavailable), errors.Is(perr, context.Canceled):
		return perr
	}
	return &sandbox.ImageError{Image: ref, Err: perr}
}

// pullMessage is one line of the pull progress stream.
type pullMessage struct {
	ID             string `json:"id"`
	Status         string `json:"status"`
	ProgressDetail struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	Error       string `json:"error"`
	ErrorDetail struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

func (d *Runtime) pull(ctx context.Context, ref string, progress func(string)) error {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	log := d.log.With().Str("image", ref).Logger()
	log.Info().Msg("pulling image")
	start := time.Now()
	rc, err := d.api.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		// Not classify: a registry's "not found" is about the image, and
		// must not read as sandbox.ErrNotFound (no such container).
		if client.IsErrConnectionFailed(err) {
			return fmt.Errorf("pull: %w: %v", sandbox.ErrUnavailable, err)
		}
		return fmt.Errorf("pull: %w", err)
	}
	defer rc.Close()
	type layer struct{ cur, total int64 }
	layers := map[string]*layer{}
	var last time.Time
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m pullMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			continue
		}
		if m.Error != "" {
			return errors.New(m.Error)
		}
		if m.ID != "" && m.ProgressDetail.Total > 0 {
			l := layers[m.ID]
			if l == nil {
				l = &layer{}
				layers[m.ID] = l
			}
			l.cur, l.total = m.ProgressDetail.Current, m.ProgressDetail.Total
		}
		if time.Since(last) >= time.Second {
			last = time.Now()
			var cur, total int64
			for _, l := range layers {
				cur += l.cur
				total += l.total
			}
			line := fmt.Sprintf("pulling image %s: %s", ref, m.Status)
			if total > 0 {
				line = fmt.Sprintf("pulling image %s: %.1f of %.1f MiB in %d layers", ref, float64(cur)/(1<<20), float64(total)/(1<<20), len(layers))
			}
			log.Info().Msg(line)
			if progress != nil {
				progress(line)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return classify(err, "read pull progress")
	}
	log.Info().Dur("took", time.Since(start)).Msg("image pulled")
	return nil
}

// Stop stops a container: its stop signal, then SIGKILL after grace. A
// missing or stopped container is not an error.
func (d *Runtime) Stop(ctx context.Context, id string, grace time.Duration) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	secs := int(grace.Round(time.Second) / time.Second)
	ctx, cancel := context.WithTimeout(ctx, grace+callTimeout)
	defer cancel()
	err := d.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs})
	if err != nil && cerrdefs.IsNotFound(err) {
		return nil
	}
	return classify(err, "stop container "+id)
}

// Remove deletes a container (not its volumes, which are host
// directories). A missing container is not an error.
func (d *Runtime) Remove(ctx context.Context, id string) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	err := d.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && (cerrdefs.IsNotFound(err) || isRemovalInProgress(err)) {
		return nil
	}
	return classify(err, "remove container "+id)
}

func isRemovalInProgress(err error) bool {
	return cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "already in progress")
}

// Inspect reads one container by id or name.
func (d *Runtime) Inspect(ctx context.Context, id string) (sandbox.Container, error) {
	if err := d.ready(ctx); err != nil {
		return sandbox.Container{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	r, err := d.api.ContainerInspect(ctx, id)
	if err != nil {
		return sandbox.Container{}, classify(err, "inspect container "+id)
	}
	c := sandbox.Container{
		ID:       r.ID,
		Name:     strings.TrimPrefix(r.Name, "/"),
		Detailed: true,
	}
	if r.Config != nil {
		c.Labels = r.Config.Labels
		c.Image = r.Config.Image
	}
	if r.State != nil {
		c.State = string(r.State.Status)
		c.Running = r.State.Running
		c.ExitCode = r.State.ExitCode
		c.OOMKilled = r.State.OOMKilled
		c.Error = r.State.Error
		c.StartedAt, _ = time.Parse(time.RFC3339Nano, r.State.StartedAt)
		c.FinishedAt, _ = time.Parse(time.RFC3339Nano, r.State.FinishedAt)
	}
	if r.NetworkSettings != nil {
		mode := ""
		if r.HostConfig != nil {
			mode = string(r.HostConfig.NetworkMode)
		}
		c.IPAddress = ipAddress(r.NetworkSettings.Networks, mode)
	}
	for _, m := range r.Mounts {
		c.Mounts = append(c.Mounts, m.Source)
	}
	return c, nil
}

// ipAddress is the container's address on its network: the one named by
// its network mode ("bridge" when Docker's default), else the first by
// name, so the answer does not change from one call to the next.
func ipAddress(nets map[string]*network.EndpointSettings, mode string) string {
	if mode == "" || mode == "default" {
		mode = "bridge"
	}
	if n := nets[mode]; n != nil && n.IPAddress != "" {
		return n.IPAddress
	}
	names := make([]string, 0, len(nets))
	for name, n := range nets {
		if n != nil && n.IPAddress != "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return nets[names[0]].IPAddress
}

// List returns every container, running or not, of this agent, and
// those of other agent ids that belong to this work directory: labelled
// with it, or mounting a directory of it (containers of an agent whose
// identity record was lost, or of a version without the label). The
// agent never leaves the latter running beside its own.
func (d *Runtime) List(ctx context.Context) ([]sandbox.Container, error) {
	if err := d.ready(ctx); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	list, err := d.api.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelAgentID)),
	})
	if err != nil {
		return nil, classify(err, "list containers")
	}
	workDir := filepath.Clean(d.Layout.WorkDir)
	out := make([]sandbox.Container, 0, len(list))
	for _, s := range list {
		c := sandbox.Container{ID: s.ID, Image: s.Image, Labels: s.Labels, State: string(s.State)}
		for _, m := range s.Mounts {
			c.Mounts = append(c.Mounts, m.Source)
		}
		if !d.ours(c, workDir) {
			continue
		}
		if len(s.Names) > 0 {
			c.Name = strings.TrimPrefix(s.Names[0], "/")
		}
		c.Running = c.State == "running"
		if s.NetworkSettings != nil {
			c.IPAddress = ipAddress(s.NetworkSettings.Networks, s.HostConfig.NetworkMode)
		}
		out = append(out, c)
	}
	return out, nil
}

// ours reports whether a container is this agent's or its work
// directory's.
func (d *Runtime) ours(c sandbox.Container, workDir string) bool {
	if c.Labels[sandbox.LabelAgentID] == d.agentID {
		return true
	}
	if d.Layout.WorkDir == "" {
		return false
	}
	if wd := c.Labels[sandbox.LabelWorkDir]; wd != "" {
		return filepath.Clean(wd) == workDir
	}
	for _, m := range c.Mounts {
		if strings.HasPrefix(filepath.Clean(m), workDir+string(filepath.Separator)) {
			return true
		}
	}
	return false
}

// Events calls fn for each start, die, oom and destroy of this agent's
// containers until ctx ends or the stream breaks; it returns the reason.
func (d *Runtime) Events(ctx context.Context, fn func(sandbox.Event)) error {
	if err := d.ready(ctx); err != nil {
		return err
	}
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", sandbox.LabelAgentID+"="+d.agentID),
		filters.Arg("event", "start"),
		filters.Arg("event", "die"),
		filters.Arg("event", "oom"),
		filters.Arg("event", "destroy"),
	)
	msgs, errs := d.api.Events(ctx, events.ListOptions{Filters: f})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			if err == nil || errors.Is(err, io.EOF) {
				return fmt.Errorf("event stream: %w: closed", sandbox.ErrUnavailable)
			}
			return classify(err, "event stream")
		case m := <-msgs:
			ev := sandbox.Event{
				ContainerID: m.Actor.ID,
				TaskID:      m.Actor.Attributes[sandbox.LabelTaskID],
				Action:      string(m.Action),
				Time:        time.Unix(0, m.TimeNano),
			}
			if code, ok := m.Actor.Attributes["exitCode"]; ok {
				ev.ExitCode, _ = strconv.Atoi(code)
			}
			fn(ev)
		}
	}
}

// Exec runs cmd inside a running container and returns its exit code and
// the first KiB of its output. ctx bounds the whole run.
func (d *Runtime) Exec(ctx context.Context, id string, cmd []string) (int, string, error) {
	if err := d.ready(ctx); err != nil {
		return -1, "", err
	}
	r, err := d.api.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		if cerrdefs.IsConflict(err) {
			// Docker's 409 here means the container is not running; it
			// is no name conflict (sandbox.ErrConflict).
			return -1, "", fmt.Errorf("exec in %s: container is not running: %w", id, err)
		}
		return -1, "", classify(err, "exec in "+id)
	}
	hj, err := d.api.ContainerExecAttach(ctx, r.ID, container.ExecAttachOptions{})
	if err != nil {
		return -1, "", classify(err, "attach exec in "+id)
	}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			hj.Close()
		case <-done:
		}
	}()
	var out limitedBuffer
	err = demux(hj.Reader, &out, &out, nil)
	close(done)
	hj.Close()
	if ctx.Err() != nil {
		return -1, out.String(), ctx.Err()
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return -1, out.String(), fmt.Errorf("read exec output: %w", err)
	}
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	for {
		in, err := d.api.ContainerExecInspect(ictx, r.ID)
		if err != nil {
			return -1, out.String(), classify(err, "inspect exec")
		}
		if !in.Running {
			return in.ExitCode, out.String(), nil
		}
		select {
		case <-ictx.Done():
			return -1, out.String(), ictx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

type limitedBuffer struct {
	b []byte
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 1024 - len(l.b); room > 0 {
		if len(p) < room {
			room = len(p)
		}
		l.b = append(l.b, p[:room]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
