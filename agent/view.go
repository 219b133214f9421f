package agent

import (
	"encoding/json"
	"sort"
	"sync/atomic"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
)

// Snapshot is an immutable picture of the agent's state, published by the
// loop after every change. Readers never wait for the loop.
type Snapshot struct {
	Apps        []*AppView // sorted by id
	Tasks       []*TaskView
	Deployments []*DeploymentView
	Queue       []*QueueItem
	Recovery    recoveryReport
	DockerUp    bool
	Unreadable  []string // records set aside at start
	Instances   []*InstanceView
	appsByID    map[string]*AppView
	tasksByID   map[string]*TaskView
}

// App returns the view of one app, or nil.
func (s *Snapshot) App(id string) *AppView { return s.appsByID[id] }

// Task returns the view of one task, or nil.
func (s *Snapshot) Task(id string) *TaskView { return s.tasksByID[id] }

// AppView is an app as the API shows it.
type AppView struct {
	ID                 string
	Doc                map[string]any // the rendered definition
	Spec               *marathon.App  // read-only
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
	Waiting            string
	Deleting           bool
}

// MarathonTask is Marathon's task JSON, and nothing else: clients such as
// marathon-python refuse fields they do not know.
type MarathonTask struct {
	AppID              string        `json:"appId"`
	ID                 string        `json:"id"`
	Host               string        `json:"host"`
	SlaveID            string        `json:"slaveId"`
	State              string        `json:"state"`
	StagedAt           string        `json:"stagedAt,omitempty"`
	StartedAt          string        `json:"startedAt,omitempty"`
	Version            string        `json:"version,omitempty"`
	Ports              []int         `json:"ports"`
	ServicePorts       []int         `json:"servicePorts"`
	IPAddresses        []IPAddress   `json:"ipAddresses"`
	HealthCheckResults []HealthView  `json:"healthCheckResults"`
	LocalVolumes       []LocalVolume `json:"localVolumes,omitempty"`
}

// TaskView is a task as the API shows it: Marathon's fields, and
// mesolite's own, which the API renders only when asked for them
// (?embed=mesolite, as mesolite's CLI does).
type TaskView struct {
	MarathonTask
	// Message is the last thing worth telling about the task (pull
	// progress, why it failed).
	Message     string `json:"message,omitempty"`
	InstanceID  string `json:"instanceId"`
	Incarnation int    `json:"incarnation"`
	SandboxDir  string `json:"sandboxDirectory,omitempty"`
	// Volumes is the use of each persistent volume against its size.
	Volumes []VolumeUsage `json:"volumes,omitempty"`

	active  bool
	healthy bool // every check has a result and all are alive
	checked bool // at least one result

	plainJSON atomic.Pointer[[]byte] // PlainJSON's answer, made once
}

// IPAddress is one entry of a task's ipAddresses.
type IPAddress struct {
	IPAddress string `json:"ipAddress"`
	Protocol  string `json:"protocol"`
}

// HealthView is one entry of healthCheckResults.
type HealthView struct {
	Alive               bool    `json:"alive"`
	ConsecutiveFailures int     `json:"consecutiveFailures"`
	FirstSuccess        *string `json:"firstSuccess"`
	LastSuccess         *string `json:"lastSuccess"`
	LastFailure         *string `json:"lastFailure"`
	LastFailureCause    *string `json:"lastFailureCause"`
	InstanceID          string  `json:"instanceId"`
}

// LocalVolume is one entry of a task's localVolumes.
type LocalVolume struct {
	RunSpecID     string `json:"runSpecId"`
	ContainerPath string `json:"containerPath"`
	UUID          string `json:"uuid"`
	PersistenceID string `json:"persistenceId"`
}

// VolumeUsage is a persistent volume's declared size and last measured
// use (-1 before the first measurement).
type VolumeUsage struct {
	ContainerPath string  `json:"containerPath"`
	PersistenceID string  `json:"persistenceId"`
	SizeMiB       float64 `json:"sizeMiB"`
	UsedBytes     int64   `json:"usedBytes"`
}

// Plain returns the task's Marathon fields only.
func (t *TaskView) Plain() *MarathonTask { return &t.MarathonTask }

// PlainJSON returns the JSON of Plain. A view never changes once it is
// published (a changed task gets a new one), so it is encoded once and
// GET /v2/tasks copies bytes instead of encoding every task every time.
func (t *TaskView) PlainJSON() []byte {
	if b := t.plainJSON.Load(); b != nil {
		return *b
	}
	b, err := json.Marshal(&t.MarathonTask)
	if err != nil {
		// Not reachable: the fields are strings, numbers and slices of them.
		b = []byte("{}")
	}
	t.plainJSON.Store(&b)
	return b
}

// QueueItem is one entry of GET /v2/queue.
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
	}
	for _, sa := range a.aside {
		s.Unreadable = append(s.Unreadable, sa.Path)
	}
	byApp := map[string][]*TaskView{}
	// The instances of each app, oldest first, for the launch queue.
	instsByApp := make(map[string][]*instance, len(a.apps))
	for _, inst := range a.sortedInstances() {
		instsByApp[inst.rec.AppID] = append(instsByApp[inst.rec.AppID], inst)
		r := inst.rec.Reservation
		if r != nil {
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
		if ap.rec.Deleting {
			// As in Marathon, a removed app is gone at once; its tasks stay
			// listed until they are killed.
			continue
		}
		s.Apps = append(s.Apps, v)
		s.appsByID[id] = v

		// The launch queue: instances that want to run and have no task.
		count := 0
		var since time.Time
		for _, inst := range instsByApp[id] {
			if inst.rec.Goal == GoalRunning && (inst.task() == nil || !inst.task().active()) {
				count++
				if t := inst.task(); t != nil && (since.IsZero() || t.EndedAt.Before(since)) {
					since = t.EndedAt
				}
			}
		}
		if count > 0 && !ap.rec.Deleting {
			left := ap.delay.notBefore.Sub(now)
			if since.IsZero() {
				since = ap.rec.Version
			}
			s.Queue = append(s.Queue, &QueueItem{
				App: v, Count: count, Since: since, TimeLeftSeconds: int(max(0, left.Seconds()+0.999)),
				Overdue: left <= 0, Waiting: ap.waiting,
			})
		}
	}
	ds := make([]*deployment, 0, len(a.deployments))
	for _, d := range a.deployments {
		ds = append(ds, d)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i].Started.Before(ds[j].Started) })
	for _, d := range ds {
		s.Deployments = append(s.Deployments, d.view())
	}
	a.snap.Store(s)
}

// appView renders an app with the given task views.
func (a *Agent) appView(ap *app, tasks []*TaskView) *AppView {
	v := &AppView{
		ID: ap.id(), Doc: ap.doc, Spec: ap.spec, Version: ap.rec.Version,
		LastScalingAt: ap.rec.LastScalingAt, LastConfigChangeAt: ap.rec.LastConfigChangeAt,
		Tasks: tasks, LastTaskFailure: ap.rec.LastTaskFailure, Waiting: ap.waiting,
		Deployments: []string{}, Deleting: ap.rec.Deleting,
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
			if t.healthy {
				v.TasksHealthy++
			} else if t.checked {
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

// taskView renders an instance's current task as Marathon does. A task
// that is not active (a stopped resident instance, or one waiting to be
// relaunched) keeps its id, host and volumes but shows no times, version
// or ports.
func (a *Agent) taskView(ap *app, inst *instance) *TaskView {
	t := inst.task()
	v := &TaskView{
		MarathonTask: MarathonTask{
			AppID: ap.id(), ID: t.ID, Host: a.cfg.Hostname, SlaveID: a.ident.AgentID, State: t.State,
			Ports: []int{}, ServicePorts: servicePorts(ap.spec), IPAddresses: []IPAddress{},
			HealthCheckResults: []HealthView{},
		},
		Message: t.Message, InstanceID: inst.id(), Incarnation: inst.rec.Incarnation, SandboxDir: t.SandboxDir,
		active: t.active(),
	}
	if t.active() {
		v.StagedAt = formatTime(t.StagedAt)
		if !t.StartedAt.IsZero() {
			v.StartedAt = formatTime(t.StartedAt)
		}
		v.Version = formatTime(t.Version)
		if r := inst.rec.Reservation; r != nil {
			v.Ports = append(v.Ports, r.HostPorts...)
		}
		if t.IPAddress != "" {
			v.IPAddresses = append(v.IPAddresses, IPAddress{IPAddress: t.IPAddress, Protocol: "IPv4"})
		}
	}
	if r := inst.rec.Reservation; r != nil {
		for _, vol := range r.Volumes {
			v.LocalVolumes = append(v.LocalVolumes, LocalVolume{
				RunSpecID: ap.id(), ContainerPath: vol.ContainerPath, UUID: vol.UUID, PersistenceID: vol.PersistenceID,
			})
			v.Volumes = append(v.Volumes, VolumeUsage{
				ContainerPath: vol.ContainerPath, PersistenceID: vol.PersistenceID,
				SizeMiB: vol.SizeMiB, UsedBytes: a.usedBytes(vol.PersistenceID),
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
			v.HealthCheckResults = append(v.HealthCheckResults, HealthView{
				Alive: h.Alive, ConsecutiveFailures: h.ConsecutiveFailures,
				FirstSuccess: optTime(h.FirstSuccess), LastSuccess: optTime(h.LastSuccess),
				LastFailure: optTime(h.LastFailure), LastFailureCause: optString(h.LastFailureCause),
				InstanceID: inst.id(),
			})
		}
		v.checked = len(v.HealthCheckResults) > 0
		v.healthy = checks > 0 && healthy(t, checks)
	}
	return v
}

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatTime(t)
	return &s
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Embed says what AppView.JSON adds to an app's definition, as Marathon's
// embed parameters do. Mesolite adds mesolite's own fields (the tasks'
// messages and volume use, why the app waits), which Marathon clients do
// not expect.
type Embed struct {
	Counts, Deployments, Tasks, LastTaskFailure, Mesolite bool
}

// JSON renders an app as Marathon's GET /v2/apps does: the definition with
// version, versionInfo, and what e asks for.
func (v *AppView) JSON(e Embed) map[string]any {
	counts, deployments, tasks, lastFailure := e.Counts, e.Deployments, e.Tasks, e.LastTaskFailure
	out := make(map[string]any, len(v.Doc)+12)
	for k, val := range v.Doc {
		out[k] = val
	}
	out["version"] = formatTime(v.Version)
	out["versionInfo"] = map[string]any{
		"lastScalingAt":      formatTime(v.LastScalingAt),
		"lastConfigChangeAt": formatTime(v.LastConfigChangeAt),
	}
	if counts {
		out["tasksStaged"] = v.TasksStaged
		out["tasksRunning"] = v.TasksRunning
		out["tasksHealthy"] = v.TasksHealthy
		out["tasksUnhealthy"] = v.TasksUnhealthy
	}
	if deployments || tasks {
		ds := make([]map[string]string, 0, len(v.Deployments))
		for _, id := range v.Deployments {
			ds = append(ds, map[string]string{"id": id})
		}
		out["deployments"] = ds
	}
	if tasks && e.Mesolite {
		ts := v.Tasks
		if ts == nil {
			ts = []*TaskView{}
		}
		out["tasks"] = ts
	} else if tasks {
		ts := make([]*MarathonTask, len(v.Tasks))
		for i, t := range v.Tasks {
			ts[i] = t.Plain()
		}
		out["tasks"] = ts
	}
	if lastFailure && v.LastTaskFailure != nil {
		f := v.LastTaskFailure
		out["lastTaskFailure"] = map[string]any{
			"appId": f.AppID, "host": f.Host, "message": f.Message, "state": f.State,
			"taskId": f.TaskID, "timestamp": formatTime(f.Timestamp), "version": formatTime(f.Version),
			"slaveId": f.SlaveID,
		}
	}
	if v.Waiting != "" && e.Mesolite {
		// Why an instance cannot be placed.
		out["waitingReason"] = v.Waiting
	}
	return out
}

// HealthyAll reports whether every health result of the task is alive
// (true when there are none), the HEALTHY column of task list.
func (t *TaskView) HealthyAll() bool {
	for _, h := range t.HealthCheckResults {
		if !h.Alive {
			return false
		}
	}
	return true
}
