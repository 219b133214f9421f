package agent

import (
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
)

// Snapshot is an immutable picture of the agent's state, published by the
// loop after every change. Readers never wait for the loop. It is plain
// data: agent/api renders it as Marathon's JSON.
type Snapshot struct {
	Apps        []*AppView // sorted by id
	Tasks       []*TaskView
	Deployments []*DeploymentView
	// Groups are the group records; BuildGroupTree makes the tree of
	// groups from them and Apps.
	Groups     []GroupView
	Queue      []*QueueItem
	Recovery   Recovery
	DockerUp   bool
	Unreadable []string // records set aside at start
	Instances  []*InstanceView
	// VolumeUse is the last measurement of each volume, by persistence id.
	VolumeUse map[string]VolumeUse
	appsByID  map[string]*AppView
	tasksByID map[string]*TaskView
}

// App returns the view of one app, or nil.
func (s *Snapshot) App(id string) *AppView { return s.appsByID[id] }

// Task returns the view of one task, or nil.
func (s *Snapshot) Task(id string) *TaskView { return s.tasksByID[id] }

// Recovery counts what the first sync after a start found.
type Recovery struct {
	Done        bool
	At          time.Time
	Adopted     int
	Relaunched  int
	Orphans     int
	Unreadable  int
	TookSeconds float64
	// Findings are the records the agent found damaged or missing, and
	// what it did about each (see recover.go).
	Findings []Finding
}

// AppView is an app: its definition and what the agent knows of it.
type AppView struct {
	ID string
	// Definition is the app's rendered definition (unknown fields
	// included); read-only.
	Definition         map[string]any
	Spec               *marathon.App // read-only
	Version            time.Time
	LastScalingAt      time.Time
	LastConfigChangeAt time.Time
	TasksStaged        int
	TasksRunning       int
	TasksHealthy       int
	TasksUnhealthy     int
	Deployments        []string
	Tasks              []*TaskView
	LastTaskFailure    *TaskFailure
	Waiting            string // why an instance cannot be placed
	Deleting           bool
	// Readiness holds the readiness check results of the app's tasks that
	// a deployment in progress waits for.
	Readiness []ReadinessView
}

// ReadinessView is the result of a readiness check of one task.
type ReadinessView struct {
	Name   string
	TaskID string
	Ready  bool
	// LastResponse is the check's last response, when the check preserves
	// it (preserveLastResponse) and one came; nil otherwise.
	LastResponse *ReadinessResponse
}

// ReadinessResponse is a readiness check's HTTP response.
type ReadinessResponse struct {
	Status      int
	ContentType string
	Body        string
}

// TaskView is a task: Marathon's facts about it, and mesolite's own
// (Message, InstanceID, Incarnation, SandboxDir, Volumes). A task that is
// not active (a stopped resident instance, or one waiting to be
// relaunched) keeps its id, host and volumes but has no times, version,
// ports or addresses. A view never changes once published: a changed task
// gets a new one.
type TaskView struct {
	AppID        string
	ID           string
	Host         string
	SlaveID      string
	State        string
	StagedAt     time.Time // zero when not shown
	StartedAt    time.Time
	Version      time.Time
	Ports        []int
	ServicePorts []int
	IPAddresses  []string // IPv4
	// Health holds the results of the checks that have one, in the
	// order of the app's health checks.
	Health []HealthView
	// Message is the last thing worth telling about the task (pull
	// progress, why it failed).
	Message     string
	InstanceID  string
	Incarnation int
	SandboxDir  string
	// Volumes are the task's persistent volumes with their use.
	Volumes []VolumeUsage

	Active  bool
	Healthy bool // every check has a result and all are alive
	Checked bool // at least one result

	memo atomic.Pointer[[]byte]
}

// HealthView is one health check's result of a task.
type HealthView struct {
	Alive               bool
	ConsecutiveFailures int
	FirstSuccess        time.Time
	LastSuccess         time.Time
	LastFailure         time.Time
	LastFailureCause    string
	InstanceID          string
}

// VolumeUsage is a persistent volume of a task: its declared size and last
// measured use (-1 before the first measurement).
type VolumeUsage struct {
	ContainerPath string
	PersistenceID string
	UUID          string
	SizeMiB       float64
	UsedBytes     int64
}

// Memo returns render(t), computed once per view: a view never changes
// once published, so the API encodes each task once and GET /v2/tasks
// copies bytes instead of encoding every task on every request. It is
// meant for one rendering, the API's plain Marathon JSON.
func (t *TaskView) Memo(render func(*TaskView) []byte) []byte {
	if b := t.memo.Load(); b != nil {
		return *b
	}
	b := render(t)
	t.memo.Store(&b)
	return b
}

// QueueItem is one app in the launch queue: instances that want to run and
// have no task.
type QueueItem struct {
	App             *AppView
	Count           int
	Since           time.Time
	TimeLeftSeconds int
	Overdue         bool
	Waiting         string
}

// InstanceView is an instance with its reservation, for volume listings.
type InstanceView struct {
	ID          string
	AppID       string
	Goal        Goal
	Reservation *Reservation
	TaskID      string
}

// publish builds and publishes a new snapshot. Task views are cached per
// instance and rebuilt only when the instance changed.
func (a *Agent) publish() {
	s := &Snapshot{
		appsByID:  make(map[string]*AppView, len(a.apps)),
		tasksByID: make(map[string]*TaskView, len(a.instances)),
		Recovery:  a.recovery,
		DockerUp:  a.dockerUp,
		VolumeUse: a.usage.published,
	}
	for _, sa := range a.aside {
		s.Unreadable = append(s.Unreadable, sa.Path)
	}
	s.Recovery.Findings = slices.Clone(a.findings)
	byApp := map[string][]*TaskView{}
	// The instances of each app, oldest first, for the launch queue.
	instsByApp := make(map[string][]*instance, len(a.apps))
	for _, inst := range a.sortedInstances() {
		instsByApp[inst.rec.AppID] = append(instsByApp[inst.rec.AppID], inst)
		if r := inst.rec.Reservation; r != nil {
			rc := *r
			s.Instances = append(s.Instances, &InstanceView{ID: inst.id(), AppID: inst.rec.AppID, Goal: inst.rec.Goal, Reservation: &rc, TaskID: taskIDOf(inst)})
		}
		ap := a.apps[inst.rec.AppID]
		if ap == nil || inst.task() == nil {
			continue
		}
		if inst.view == nil {
			inst.view = a.taskView(ap, inst)
		}
		byApp[ap.id()] = append(byApp[ap.id()], inst.view)
		s.tasksByID[inst.view.ID] = inst.view
	}
	ids := make([]string, 0, len(a.apps))
	for id := range a.apps {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	now := time.Now()
	for _, id := range ids {
		ap := a.apps[id]
		v := a.appView(ap, byApp[id])
		s.Tasks = append(s.Tasks, v.Tasks...)
		if ap.rec.Deleting || ap.rec.Removing {
			// As in Marathon, a removed app is gone at once; its tasks stay
			// listed until they are killed.
			continue
		}
		s.Apps = append(s.Apps, v)
		s.appsByID[id] = v
		if q := a.queueItem(ap, v, instsByApp[id], now); q != nil {
			s.Queue = append(s.Queue, q)
		}
	}
	ds := make([]*deployment, 0, len(a.deployments))
	for _, d := range a.deployments {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Started.Before(ds[j].Started) })
	for _, d := range ds {
		if len(d.Plan) > 0 {
			s.Deployments = append(s.Deployments, a.deploymentView(d))
		}
	}
	s.Groups = a.groupViews()
	a.snap.Store(s)
	a.kickNetwork()
}

// queueItem is an app's entry in the launch queue: its instances (oldest
// first) that want to run and have no task; nil when there are none.
func (a *Agent) queueItem(ap *app, v *AppView, insts []*instance, now time.Time) *QueueItem {
	count := 0
	var since time.Time
	for _, inst := range insts {
		if inst.rec.Goal == GoalRunning && (inst.task() == nil || !inst.task().active()) {
			count++
			if t := inst.task(); t != nil && (since.IsZero() || t.EndedAt.Before(since)) {
				since = t.EndedAt
			}
		}
	}
	if count == 0 {
		return nil
	}
	left := ap.delay.notBefore.Sub(now)
	if since.IsZero() {
		since = ap.rec.Version
	}
	return &QueueItem{
		App: v, Count: count, Since: since, TimeLeftSeconds: int(max(0, left.Seconds()+0.999)),
		Overdue: left <= 0, Waiting: ap.waiting,
	}
}

// appView makes the view of an app with the given task views.
func (a *Agent) appView(ap *app, tasks []*TaskView) *AppView {
	v := &AppView{
		ID: ap.id(), Definition: ap.doc, Spec: ap.spec, Version: ap.rec.Version,
		LastScalingAt: ap.rec.LastScalingAt, LastConfigChangeAt: ap.rec.LastConfigChangeAt,
		Tasks: tasks, LastTaskFailure: ap.rec.LastTaskFailure, Waiting: ap.waiting,
		Deployments: []string{}, Deleting: ap.rec.Deleting || ap.rec.Removing,
		Readiness: a.readinessViews(ap.id()),
	}
	if ap.deployID != "" {
		v.Deployments = append(v.Deployments, ap.deployID)
	}
	for _, t := range v.Tasks {
		switch t.State {
		case TaskStaging, TaskStarting:
			v.TasksStaged++
		case TaskRunning:
			v.TasksRunning++
			if t.Healthy {
				v.TasksHealthy++
			} else if t.Checked {
				v.TasksUnhealthy++
			}
		}
	}
	return v
}

func taskIDOf(inst *instance) string {
	if t := inst.task(); t != nil {
		return t.ID
	}
	return ""
}

// Snapshot returns the latest published state.
func (a *Agent) Snapshot() *Snapshot { return a.snap.Load() }

func (a *Agent) sortedInstances() []*instance {
	out := make([]*instance, 0, len(a.instances))
	for _, inst := range a.instances {
		out = append(out, inst)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].rec.AppID != out[j].rec.AppID {
			return out[i].rec.AppID < out[j].rec.AppID
		}
		if !out[i].rec.Created.Equal(out[j].rec.Created) {
			return out[i].rec.Created.Before(out[j].rec.Created)
		}
		return out[i].id() < out[j].id()
	})
	return out
}

// taskView makes the view of an instance's current task.
func (a *Agent) taskView(ap *app, inst *instance) *TaskView {
	t := inst.task()
	v := &TaskView{
		AppID: ap.id(), ID: t.ID, Host: a.cfg.Hostname, SlaveID: a.ident.AgentID, State: t.State,
		Ports: []int{}, ServicePorts: servicePorts(ap.spec),
		Message: t.Message, InstanceID: inst.id(), Incarnation: inst.rec.Incarnation, SandboxDir: t.SandboxDir,
		Active: t.active(),
	}
	r := inst.rec.Reservation
	if t.active() {
		v.StagedAt, v.StartedAt, v.Version = t.StagedAt, t.StartedAt, t.Version
		if r != nil {
			v.Ports = append(v.Ports, r.HostPorts...)
		}
		if t.IPAddress != "" {
			v.IPAddresses = []string{t.IPAddress}
		}
	}
	if r != nil {
		for _, vol := range r.Volumes {
			v.Volumes = append(v.Volumes, VolumeUsage{
				ContainerPath: vol.ContainerPath, PersistenceID: vol.PersistenceID, UUID: vol.UUID,
				SizeMiB: vol.SizeMiB, UsedBytes: a.usage.usedBytes(vol.PersistenceID),
			})
		}
	}
	if t.State == TaskRunning {
		checks := len(ap.spec.HealthChecks)
		for i := 0; i < len(t.Health) && i < checks; i++ {
			h := t.Health[i]
			if h.FirstSuccess.IsZero() && h.LastFailure.IsZero() {
				continue
			}
			v.Health = append(v.Health, HealthView{
				Alive: h.Alive, ConsecutiveFailures: h.ConsecutiveFailures,
				FirstSuccess: h.FirstSuccess, LastSuccess: h.LastSuccess,
				LastFailure: h.LastFailure, LastFailureCause: h.LastFailureCause,
				InstanceID: inst.id(),
			})
		}
		v.Checked = len(v.Health) > 0
		v.Healthy = checks > 0 && healthy(t, checks)
	}
	return v
}
