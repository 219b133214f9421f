// Package agent is mesolite's master and agent in one: apps, instances,
// reservations, deployments, health checks and the loop that moves what
// Docker runs towards what the apps want.
//
// One goroutine, the loop, owns every piece of state. The API, Docker's
// event stream, health checkers, timers and Docker operations talk to it by
// posting closures to its inbox. Docker calls never run on the loop: it
// marks the instance busy, hands the call to a worker goroutine and gets
// the outcome back as another closure. Readers get an immutable Snapshot
// that the loop publishes after each change.
//
// Every step with a side effect is persisted first (see step and the
// crash-window comments there), so recovery can finish or undo it.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/metrics"
	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/fetch"
	"github.com/mesolite/mesolite/sandbox/probe"
	"github.com/mesolite/mesolite/store"
)

// Config is the agent's configuration, from agent.toml and flags.
type Config struct {
	Hostname        string // shown as HOST and host in tasks
	PublishAddress  string // host address container ports are published on
	Role            string
	Cpus            float64 // offered resources
	MemMiB          float64
	DiskMiB         float64
	PortMin         int // host port range for dynamic ports
	PortMax         int
	HostPathRoots   []string
	AllowPrivileged bool
	CPUQuota        bool
	// KillGracePeriod is the time between the stop signal and SIGKILL for
	// apps without taskKillGracePeriodSeconds.
	KillGracePeriod   time.Duration
	ReconcileInterval time.Duration
	// OrphanGrace is how long a container of this agent that no task owns
	// may live before it is removed; OrphanDryRun only reports it.
	OrphanGrace  time.Duration
	OrphanDryRun bool
	// BackoffResetAfter: a task that stays running (and healthy) this long
	// resets its app's launch delay.
	BackoffResetAfter time.Duration
	// EnforceDiskQuota kills a task whose persistent volume grows beyond
	// its declared size (Mesos's enforce_container_disk_quota).
	EnforceDiskQuota bool
	// UsageInterval is how often the volumes' use is measured (default
	// 30 s).
	UsageInterval time.Duration
	// Network connects the agent to its network data plane (VIPs, DNS);
	// the zero value is networking off.
	Network NetworkConfig
	// Failpoint, when set, is called right after every side effect (a
	// record written or deleted, a volume made or destroyed) and around
	// every Docker call that changes something, with the point's name. The
	// fault-injection tests use it to kill the agent in every crash window.
	Failpoint func(point string)
	Version   string
	Logger    zerolog.Logger
	// Metrics counts launches, failures, health checks, deployments and
	// dropped events; nil counts nothing.
	Metrics *metrics.Metrics
}

func (c *Config) setDefaults() {
	if c.Hostname == "" {
		c.Hostname = "127.0.0.1"
	}
	if c.PublishAddress == "" {
		c.PublishAddress = "127.0.0.1"
	}
	if c.Role == "" {
		c.Role = "marathon"
	}
	if c.PortMin == 0 && c.PortMax == 0 {
		c.PortMin, c.PortMax = 31000, 32000
	}
	if c.KillGracePeriod == 0 {
		c.KillGracePeriod = 10 * time.Second
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = 30 * time.Second
	}
	if c.OrphanGrace == 0 {
		c.OrphanGrace = time.Minute
	}
	if c.BackoffResetAfter == 0 {
		c.BackoffResetAfter = time.Minute
	}
	if c.UsageInterval <= 0 {
		c.UsageInterval = usageInterval
	}
}

// Agent is mesolite's master and agent. Create it with New and start it
// with Run.
type Agent struct {
	cfg    Config
	log    zerolog.Logger
	store  *store.Store
	rt     Runtime
	layout sandbox.Layout
	ident  identity
	opts   marathon.Options
	bus    *Bus

	inbox   chan func()
	snap    atomic.Pointer[Snapshot]
	running atomic.Bool
	ctx     context.Context // Run's context; workers derive from it
	workers sync.WaitGroup

	// Everything below is owned by the loop.
	apps           map[string]*app
	instances      map[string]*instance
	deployments    map[string]*deployment
	dirtyApps      map[string]bool
	dirtyInstances map[string]bool
	// dirtyDeployments are the deployments that may have progressed.
	dirtyDeployments map[string]bool
	// groups are the group records, by id.
	groups map[string]*groupRecord
	// readiness holds the readiness checks of tasks that deployments wait
	// for, by task id (see readiness.go).
	readiness   map[string]*readinessState
	changed     bool
	synced      bool // Docker state has been read since start
	dockerUp    bool
	syncing     bool
	orphans     map[string]time.Time // container id -> first seen
	lastVersion time.Time
	recovery    Recovery
	aside       []store.SetAside
	wakeups     map[string]time.Time // app id -> pending backoff wake-up
	taskIndex   taskIndex
	usage       usage
	// findings are what the agent found damaged or missing (recover.go).
	findings []Finding
	// unowned: volumes no record names, by app and container path, for
	// the app's next instance (takeUnowned).
	unowned map[string][]string
	// lostDeployments: deployments whose records were lost, by app id,
	// redone at the first sync.
	lostDeployments map[string]string
	// ownerFixes and staleOwners: owner records restore found wrong, and
	// records of volumes that are gone, for repairOwners.
	ownerFixes  []sandbox.VolumeOwner
	staleOwners []string
	// fences: volumes (by persistence id) and instances ("instance:" id)
	// that a container being removed still mounts, by container id; no
	// task of theirs launches until it is gone. removing: the containers
	// whose removal is in flight.
	fences         map[string]string
	removing       map[string]bool
	publishPending bool // a deferred publish is due (publishSoon)

	netFields

	// launchSlots holds one token per launch talking to Docker (see
	// maxParallelLaunches); workers take and return them.
	launchSlots chan struct{}
}

// New opens the agent's state from st and makes its runtime with
// newRuntime, which gets the layout of the agent's sandboxes and volumes;
// its AgentID (kept in the work directory) labels and finds the agent's
// containers. It does not touch the runtime; Run does.
func New(cfg Config, st *store.Store, newRuntime func(sandbox.Layout) (Runtime, error)) (*Agent, error) {
	cfg.setDefaults()
	a := &Agent{
		cfg:   cfg,
		log:   cfg.Logger,
		store: st,
		opts: marathon.Options{
			HostPathRoots: cfg.HostPathRoots, AllowPrivileged: cfg.AllowPrivileged,
			CheckFetchURI: func(uri string) error { return fetch.CheckURI(uri, cfg.HostPathRoots) },
			CheckUser:     sandbox.CheckUser,
			PortMin:       cfg.PortMin, PortMax: cfg.PortMax,
		},
		bus:              newBus(cfg.Logger, cfg.Metrics),
		inbox:            make(chan func(), 4096),
		apps:             map[string]*app{},
		instances:        map[string]*instance{},
		deployments:      map[string]*deployment{},
		dirtyApps:        map[string]bool{},
		dirtyInstances:   map[string]bool{},
		orphans:          map[string]time.Time{},
		wakeups:          map[string]time.Time{},
		taskIndex:        taskIndex{},
		unowned:          map[string][]string{},
		lostDeployments:  map[string]string{},
		fences:           map[string]string{},
		removing:         map[string]bool{},
		dirtyDeployments: map[string]bool{},
		groups:           map[string]*groupRecord{},
		readiness:        map[string]*readinessState{},
		launchSlots:      make(chan struct{}, maxParallelLaunches),
	}
	a.netKick = make(chan struct{}, 1)
	if f := cfg.Network.InitialFacts; f != nil {
		a.facts.Store(f)
	}
	a.opts.CheckVIPs = a.checkVIPs
	if err := a.restore(); err != nil {
		return nil, err
	}
	a.layout = sandbox.Layout{WorkDir: st.WorkDir(), AgentID: a.ident.AgentID, FrameworkID: a.ident.FrameworkID, Role: cfg.Role}
	rt, err := newRuntime(a.layout)
	if err != nil {
		return nil, err
	}
	a.rt = rt
	if err := a.repairOwners(context.Background()); err != nil {
		return nil, err
	}
	a.opts.CheckParameter = rt.CheckParameter
	a.publish()
	return a, nil
}

// ReadAgentID reads the id of the agent whose state st holds ("" when no
// agent has run there), without loading the rest.
func ReadAgentID(st *store.Store) (string, error) {
	var id identity
	if _, err := st.Get(kindAgent, "agent", &id); err != nil {
		return "", fmt.Errorf("read agent identity: %w", err)
	}
	return id.AgentID, nil
}

// AgentID is this agent's Mesos-style id, kept in the work directory.
func (a *Agent) AgentID() string { return a.ident.AgentID }

// FrameworkID is the framework id Marathon would have.
func (a *Agent) FrameworkID() string { return a.ident.FrameworkID }

// Running reports whether Run has started (and the agent takes commands).
func (a *Agent) Running() bool { return a.running.Load() }

// WorkDir is the agent's work directory.
func (a *Agent) WorkDir() string { return a.layout.WorkDir }

// Bus is the event bus behind /v2/events.
func (a *Agent) Bus() *Bus { return a.bus }

// CheckPath says how TCP and HTTP checks reach the tasks (directly, or
// through a helper inside Docker's network), as the runtime decided.
func (a *Agent) CheckPath() probe.Info { return a.rt.ProbePath() }

// Config returns the agent's configuration with defaults filled in.
func (a *Agent) Config() Config { return a.cfg }

// restore loads every record. A record that cannot be read is set aside
// by the store and reported; the others load. What a lost or unreadable
// record held is recovered from what the host shows (see recover.go):
// the volumes' owner records, the sandboxes, the versions.
func (a *Agent) restore() error {
	if err := a.loadApps(); err != nil {
		return err
	}
	if err := a.loadInstances(); err != nil {
		return err
	}
	if err := a.loadGroups(); err != nil {
		return err
	}
	deps, err := a.loadDeployments()
	if err != nil {
		return err
	}
	owners, err := sandbox.Layout{WorkDir: a.store.WorkDir(), Role: a.cfg.Role}.VolumesOnDisk()
	if err != nil {
		return fmt.Errorf("read the volumes' owner records: %w", err)
	}
	if err := a.restoreIdentity(owners); err != nil {
		return err
	}
	if err := a.recoverApps(deps, owners); err != nil {
		return err
	}
	if err := a.dropStrayVersions(); err != nil {
		return err
	}
	if err := a.checkVersions(); err != nil {
		return err
	}
	if err := a.attachDeployments(deps); err != nil {
		return err
	}
	if err := a.recoverInstances(owners); err != nil {
		return err
	}
	for _, s := range a.aside {
		a.log.Error().Err(s.Err).Str("path", s.Path).Msg("record unreadable, set aside")
	}
	for _, ap := range a.apps {
		a.dirtyApps[ap.id()] = true
	}
	for _, inst := range a.instances {
		a.taskIndex.add(inst)
	}
	return nil
}

func (a *Agent) loadApps() error {
	aside, err := a.store.Load(kindApps, func(key string, _ int, data json.RawMessage) error {
		var rec appRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return err
		}
		ap, err := appFromRecord(rec)
		if err != nil {
			return err
		}
		if marathon.SafeID(ap.id()) != key {
			return fmt.Errorf("record key %q does not match app id %q", key, ap.id())
		}
		a.apps[ap.id()] = ap
		if rec.Version.After(a.lastVersion) {
			a.lastVersion = rec.Version
		}
		return nil
	})
	a.aside = append(a.aside, aside...)
	return err
}

func (a *Agent) loadInstances() error {
	aside, err := a.store.Load(kindInstances, func(key string, _ int, data json.RawMessage) error {
		var rec instanceRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return err
		}
		if rec.ID != key || rec.AppID == "" {
			return fmt.Errorf("record key %q does not match instance %q", key, rec.ID)
		}
		switch rec.Goal {
		case GoalRunning, GoalStopped, GoalDecommissioned:
		default:
			return fmt.Errorf("instance %s: unknown goal %q", rec.ID, rec.Goal)
		}
		a.instances[rec.ID] = &instance{rec: rec}
		return nil
	})
	a.aside = append(a.aside, aside...)
	return err
}

// loadDeployments reads the deployment records; attachDeployments gives
// them to their apps once lost apps are recovered.
func (a *Agent) loadDeployments() ([]*deployment, error) {
	var out []*deployment
	aside, err := a.store.Load(kindDeployments, func(key string, _ int, data json.RawMessage) error {
		var d deployment
		if err := json.Unmarshal(data, &d); err != nil {
			return err
		}
		if d.ID != key {
			return fmt.Errorf("record key %q does not match deployment %q", key, d.ID)
		}
		d.fromLegacy()
		out = append(out, &d)
		return nil
	})
	a.aside = append(a.aside, aside...)
	return out, err
}

// loadGroups reads the group records (groups made by /v2/groups; the others
// are only the app ids' paths).
func (a *Agent) loadGroups() error {
	aside, err := a.store.Load(kindGroups, func(key string, _ int, data json.RawMessage) error {
		var g groupRecord
		if err := json.Unmarshal(data, &g); err != nil {
			return err
		}
		if groupKey(g.ID) != key {
			return fmt.Errorf("record key %q does not match group %q", key, g.ID)
		}
		a.groups[g.ID] = &g
		return nil
	})
	a.aside = append(a.aside, aside...)
	return err
}

// dropStrayVersions deletes the version records that a crash between
// writing a version and writing its app record left behind (see addApp and
// changeApp): a version of an app that has no record, or newer than its
// app's current version, is a change that never happened. The versions of
// an app record set aside as unreadable are kept.
func (a *Agent) dropStrayVersions() error {
	keys, err := a.store.Keys(kindVersions)
	if err != nil {
		return err
	}
	current := map[string]time.Time{}
	for id, ap := range a.apps {
		current[safeKey(id)] = ap.rec.Version
	}
	for _, s := range a.aside {
		if s.Kind == kindApps {
			current[s.Key] = time.Time{}
		}
	}
	for _, k := range keys {
		app, v, _ := strings.Cut(k, "@")
		latest, ok := current[app]
		if ok && (latest.IsZero() || !versionAfter(v, latest)) {
			continue
		}
		if err := a.store.Delete(kindVersions, k); err != nil {
			return err
		}
		a.log.Warn().Str("version", k).Msg("version of a change a crash interrupted removed")
	}
	return nil
}

// versionAfter reports whether a version key's time is after t.
func versionAfter(v string, t time.Time) bool {
	vt, err := time.Parse(timeFormat, v)
	return err == nil && vt.After(t)
}

func appFromRecord(rec appRecord) (*app, error) {
	spec, doc, err := marathon.Decode(rec.Definition)
	if err != nil {
		return nil, fmt.Errorf("app %s: %w", rec.ID, err)
	}
	marathon.Normalize(spec)
	if spec.ID != rec.ID {
		return nil, fmt.Errorf("app record %s holds definition of %s", rec.ID, spec.ID)
	}
	out, err := marathon.Render(spec, doc)
	if err != nil {
		return nil, err
	}
	return &app{rec: rec, spec: spec, doc: out}, nil
}

// Run starts the loop, the Docker event watcher and the reconcile timer,
// and returns when ctx ends. Containers keep running after it returns;
// the next Run adopts them.
func (a *Agent) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("agent is already running")
	}
	a.ctx = ctx
	a.workers.Add(4)
	go func() { defer a.workers.Done(); a.runNetwork(ctx) }()
	go func() { defer a.workers.Done(); a.watchEvents(ctx) }()
	go func() { defer a.workers.Done(); a.tickReconcile(ctx) }()
	go func() { defer a.workers.Done(); a.tickUsage(ctx) }()
	a.post(func() { a.startSync("startup") })

	err := a.loop(ctx)

	// Stop workers; give in-flight Docker calls a moment to end cleanly.
	done := make(chan struct{})
	go func() { a.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		a.log.Warn().Msg("workers still busy at shutdown; leaving them")
	}
	a.bus.close()
	return err
}

func (a *Agent) loop(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case fn := <-a.inbox:
			fn()
			// Take what else is queued before settling, so a burst of
			// inputs causes one round of decisions.
			for n := 0; n < 256; n++ {
				select {
				case fn := <-a.inbox:
					fn()
					continue
				default:
				}
				break
			}
			a.settle()
		}
	}
}

// post hands fn to the loop. It never blocks past the agent's end.
func (a *Agent) post(fn func()) {
	ctx := a.ctx
	if ctx == nil {
		a.inbox <- fn
		return
	}
	select {
	case a.inbox <- fn:
	case <-ctx.Done():
	}
}

// call runs fn on the loop and waits for its result. It fails with
// ErrUnavailable when the agent is not running or stops, or the caller's
// ctx ends first.
func call[T any](a *Agent, ctx context.Context, fn func() (T, error)) (T, error) {
	var zero T
	if !a.running.Load() {
		return zero, errorf(ErrUnavailable, "the agent is not running")
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	select {
	case a.inbox <- func() {
		v, err := fn()
		// Decide and publish before answering, so a client reads its own
		// write in the very next request.
		a.settle()
		ch <- result{v, err}
	}:
	case <-ctx.Done():
		return zero, &Error{Class: ErrUnavailable, Msg: "request cancelled: " + ctx.Err().Error(), Err: ctx.Err()}
	case <-a.ctx.Done():
		return zero, errorf(ErrUnavailable, "the agent is shutting down")
	}
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		return zero, &Error{Class: ErrUnavailable, Msg: "request cancelled: " + ctx.Err().Error(), Err: ctx.Err()}
	case <-a.ctx.Done():
		return zero, errorf(ErrUnavailable, "the agent is shutting down")
	}
}

// goWork runs fn on a worker goroutine bound to the agent's context.
func (a *Agent) goWork(fn func(ctx context.Context)) {
	a.workers.Add(1)
	go func() {
		defer a.workers.Done()
		fn(a.ctx)
	}()
}

// settle makes the decisions the inputs call for, then publishes a new
// snapshot if anything changed.
func (a *Agent) settle() {
	for round := 0; round < 16 && (len(a.dirtyApps) > 0 || len(a.dirtyInstances) > 0 || len(a.dirtyDeployments) > 0); round++ {
		apps := sortedKeys(a.dirtyApps)
		clear(a.dirtyApps)
		for _, id := range apps {
			if ap := a.apps[id]; ap != nil {
				a.reconcileApp(ap)
			}
		}
		insts := sortedKeys(a.dirtyInstances)
		clear(a.dirtyInstances)
		for _, id := range insts {
			if inst := a.instances[id]; inst != nil {
				a.step(inst)
			}
		}
		a.advanceDeployments()
	}
	if a.changed {
		a.changed = false
		a.publish()
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// touchInstance marks an instance for a decision and its view as stale.
func (a *Agent) touchInstance(inst *instance) {
	inst.view = nil
	a.dirtyInstances[inst.id()] = true
	a.dirtyApps[inst.rec.AppID] = true
	a.changed = true
}

// touchApp marks an app for a decision.
func (a *Agent) touchApp(ap *app) {
	a.dirtyApps[ap.id()] = true
	a.changed = true
}

// saveInstance persists an instance record. On failure the caller must
// not take the step the record announces.
func (a *Agent) saveInstance(inst *instance) error {
	if err := a.store.Put(kindInstances, inst.id(), inst.rec); err != nil {
		a.log.Error().Err(err).Str("instance_id", inst.id()).Msg("persist instance")
		return err
	}
	a.fail("store.put.instance")
	return nil
}

func (a *Agent) saveApp(ap *app) error {
	if err := a.store.Put(kindApps, marathon.SafeID(ap.id()), ap.rec); err != nil {
		a.log.Error().Err(err).Str("app_id", ap.id()).Msg("persist app")
		return err
	}
	a.fail("store.put.app")
	return nil
}

// fail marks a crash window for the fault-injection tests.
func (a *Agent) fail(point string) {
	if a.cfg.Failpoint != nil {
		a.cfg.Failpoint(point)
	}
}

// nextVersion returns a version timestamp later than any given before,
// at Marathon's millisecond precision.
func (a *Agent) nextVersion() time.Time {
	v := time.Now().UTC().Truncate(time.Millisecond)
	if !v.After(a.lastVersion) {
		v = a.lastVersion.Add(time.Millisecond)
	}
	a.lastVersion = v
	return v
}

// appInstances returns the instances of an app, oldest first.
func (a *Agent) appInstances(appID string) []*instance {
	var out []*instance
	for _, inst := range a.instances {
		if inst.rec.AppID == appID {
			out = append(out, inst)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].rec.Created.Equal(out[j].rec.Created) {
			return out[i].rec.Created.Before(out[j].rec.Created)
		}
		return out[i].id() < out[j].id()
	})
	return out
}

func (a *Agent) tickReconcile(ctx context.Context) {
	t := time.NewTicker(a.cfg.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.post(func() { a.startSync("periodic") })
		}
	}
}

// watchEvents follows Docker's event stream, reconnecting with backoff.
// Each (re)connection is followed by a full sync, so nothing that happened
// while the stream was down is missed.
func (a *Agent) watchEvents(ctx context.Context) {
	delay := 500 * time.Millisecond
	for ctx.Err() == nil {
		connected := make(chan struct{}, 1)
		start := time.Now()
		err := a.rt.Events(ctx, func(ev sandbox.Event) {
			select {
			case connected <- struct{}{}:
			default:
			}
			a.post(func() { a.onDockerEvent(ev) })
		})
		if ctx.Err() != nil {
			return
		}
		if time.Since(start) > 10*time.Second {
			delay = 500 * time.Millisecond
		}
		a.post(func() { a.onDockerDown(err) })
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, 10*time.Second)
		a.post(func() { a.startSync("docker event stream reconnect") })
	}
}

func (a *Agent) onDockerDown(err error) {
	if a.dockerUp {
		a.log.Warn().Err(err).Msg("docker event stream lost; tasks keep their last known state until docker answers")
	}
	a.dockerUp = false
	a.changed = true
}
