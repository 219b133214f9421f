package agent

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/sandbox"
)

// Task states, as Mesos names them.
const (
	TaskStaging  = "TASK_STAGING"
	TaskStarting = "TASK_STARTING"
	TaskRunning  = "TASK_RUNNING"
	TaskKilling  = "TASK_KILLING"
	TaskKilled   = "TASK_KILLED"
	TaskFinished = "TASK_FINISHED"
	TaskFailed   = "TASK_FAILED"
	TaskError    = "TASK_ERROR"
)

// Goal is what an instance should be doing.
type Goal string

// Instance goals.
const (
	// GoalRunning: keep one task of the instance running.
	GoalRunning Goal = "running"
	// GoalStopped: no task, but keep the reservation and volumes
	// (a suspended resident instance).
	GoalStopped Goal = "stopped"
	// GoalDecommissioned: stop the task, destroy the volumes, release the
	// reservation and forget the instance.
	GoalDecommissioned Goal = "decommissioned"
)

// Store kinds.
const (
	kindAgent       = "agent"
	kindApps        = "apps"
	kindVersions    = "versions"
	kindInstances   = "instances"
	kindDeployments = "deployments"
)

// identity is the agent's ids, made on the first start of a work directory.
type identity struct {
	AgentID     string    `json:"agentId"`
	FrameworkID string    `json:"frameworkId"`
	Created     time.Time `json:"created"`
}

// appRecord is an app as stored: its rendered definition and what the
// agent decided about it.
type appRecord struct {
	ID                 string          `json:"id"`
	Version            time.Time       `json:"version"`
	LastScalingAt      time.Time       `json:"lastScalingAt"`
	LastConfigChangeAt time.Time       `json:"lastConfigChangeAt"`
	Definition         json.RawMessage `json:"definition"`
	// Deployment is the id of the app's deployment in progress, so that a
	// lost deployment record is noticed (set after the deployment's record
	// is written, cleared before it is deleted). Versions do not keep it.
	Deployment string `json:"deployment,omitempty"`
	Deleting   bool   `json:"deleting,omitempty"`
	// Removing: a group change removes the app. It is gone from the API at
	// once; its tasks stop when its deployment step comes, its instances
	// keeping their reservations and volumes, and it becomes Deleting (its
	// volumes destroyed) only when the deployment succeeds, so rolling the
	// change back keeps the data.
	Removing        bool         `json:"removing,omitempty"`
	LastTaskFailure *TaskFailure `json:"lastTaskFailure,omitempty"`
}

// app is an app in memory.
type app struct {
	rec  appRecord
	spec *marathon.App
	doc  map[string]any // rendered definition, unknown fields included

	// Volatile: not stored.
	waiting  string // why an instance cannot be placed, "" when it can
	delay    backoff
	deployID string // the deployment in progress, if any
}

func (a *app) id() string { return a.rec.ID }

// TaskFailure is Marathon's lastTaskFailure.
type TaskFailure struct {
	AppID     string    `json:"appId"`
	Host      string    `json:"host"`
	Message   string    `json:"message"`
	State     string    `json:"state"`
	TaskID    string    `json:"taskId"`
	Timestamp time.Time `json:"timestamp"`
	Version   time.Time `json:"version"`
	SlaveID   string    `json:"slaveId"`
}

// Reservation is what an instance holds on the agent until it is
// decommissioned: resources, host ports and persistent volumes.
type Reservation struct {
	Cpus      float64          `json:"cpus"`
	Mem       float64          `json:"mem"`
	Disk      float64          `json:"disk"`
	HostPorts []int            `json:"hostPorts"`
	Volumes   []ReservedVolume `json:"volumes"`
	Created   time.Time        `json:"created"`
	// VolumesCreated is set once every volume directory exists.
	VolumesCreated bool `json:"volumesCreated"`
	// PortsPending: the host ports are still to be picked (a reservation
	// rebuilt from its volumes' owner records, whose own record was lost).
	PortsPending bool `json:"portsPending,omitempty"`
}

// ReservedVolume is one persistent volume of a reservation.
type ReservedVolume struct {
	ContainerPath string  `json:"containerPath"`
	PersistenceID string  `json:"persistenceId"`
	UUID          string  `json:"uuid"`
	SizeMiB       float64 `json:"size"`
}

// Task is one launch (incarnation) of an instance.
type Task struct {
	ID            string         `json:"id"`
	ContainerID   string         `json:"containerId"` // Mesos container id; Docker name mesos-<id>
	DockerID      string         `json:"dockerId,omitempty"`
	State         string         `json:"state"`
	StagedAt      time.Time      `json:"stagedAt"`
	StartedAt     time.Time      `json:"startedAt,omitzero"`
	EndedAt       time.Time      `json:"endedAt,omitzero"`
	Version       time.Time      `json:"version"`
	ConfigVersion time.Time      `json:"configVersion"`
	SandboxDir    string         `json:"sandboxDir"`
	IPAddress     string         `json:"ipAddress,omitempty"`
	Message       string         `json:"message,omitempty"`
	ExitCode      *int           `json:"exitCode,omitempty"`
	Health        []HealthResult `json:"health,omitempty"`
	// KillReason is set when the agent decided to kill the task; the task
	// then ends TASK_KILLED whatever its exit code, or TASK_FAILED when
	// KillFailed (a volume over quota).
	KillReason string `json:"killReason,omitempty"`
	KillFailed bool   `json:"killFailed,omitempty"`
}

func (t *Task) active() bool {
	switch t.State {
	case TaskStaging, TaskStarting, TaskRunning, TaskKilling:
		return true
	}
	return false
}

// HealthResult is the state of one health check of a task, as Marathon's
// healthCheckResults shows it.
type HealthResult struct {
	Alive               bool      `json:"alive"`
	ConsecutiveFailures int       `json:"consecutiveFailures"`
	FirstSuccess        time.Time `json:"firstSuccess,omitzero"`
	LastSuccess         time.Time `json:"lastSuccess,omitzero"`
	LastFailure         time.Time `json:"lastFailure,omitzero"`
	LastFailureCause    string    `json:"lastFailureCause,omitempty"`
}

// instanceRecord is an instance as stored: one file holds the instance, its
// reservation and its current task, so each step is one atomic write.
type instanceRecord struct {
	ID          string       `json:"id"`
	AppID       string       `json:"appId"`
	Goal        Goal         `json:"goal"`
	Created     time.Time    `json:"created"`
	Reservation *Reservation `json:"reservation,omitempty"`
	Incarnation int          `json:"incarnation"`
	Task        *Task        `json:"task,omitempty"`
	// VolumesDestroyed is set once a decommissioned instance's volumes are
	// gone, before the record itself is deleted.
	VolumesDestroyed bool `json:"volumesDestroyed,omitempty"`
}

// instance is an instance in memory.
type instance struct {
	rec instanceRecord

	// Volatile: not stored.
	busy       string // the Docker operation in flight, "" when none
	logs       chan struct{}
	stopHealth func()
	healthGen  int
	adopted    bool
	// oom: the task's container ran out of memory.
	oom bool
	// pending holds the events of the task's containers that came while
	// its launch was in flight, when the container's id was not known yet;
	// the launch's outcome keeps those about the container it ran.
	pending []sandbox.Event
	view    *TaskView // cached view; nil when stale
	// restartFor is set when a deployment wants the task replaced.
	restartFor string
	// killRequested is set by a task kill without wipe or scale.
	killRequested bool
	// sandboxesRemoved is set once a decommissioned instance's sandboxes
	// are deleted, before its record is.
	sandboxesRemoved bool
	// cause is why the task is being killed, then why it ended, and so
	// why the next launch is a relaunch (a metrics reason); ended is the
	// task whose end was counted, so a kill and an exit seen together
	// count once.
	cause string
	ended string
}

func (i *instance) id() string { return i.rec.ID }

func (i *instance) task() *Task { return i.rec.Task }

// backoff is an app's launch delay after failed tasks, Marathon's rule:
// backoffSeconds × backoffFactor^k, capped at maxLaunchDelaySeconds.
type backoff struct {
	failures  int
	delay     time.Duration
	notBefore time.Time
}

func (b *backoff) fail(now time.Time, spec *marathon.App) {
	base := time.Duration(spec.BackoffSeconds * float64(time.Second))
	limit := time.Duration(spec.MaxLaunchDelaySeconds * float64(time.Second))
	if b.failures == 0 {
		b.delay = base
	} else {
		b.delay = time.Duration(float64(b.delay) * spec.BackoffFactor)
	}
	if b.delay > limit {
		b.delay = limit
	}
	b.failures++
	b.notBefore = now.Add(b.delay)
}

func (b *backoff) reset() { *b = backoff{} }

// next is the delay the next failure will bring.
func (b *backoff) next(spec *marathon.App) time.Duration {
	c := *b
	c.fail(time.Now(), spec)
	return c.delay
}

// instanceID makes a new instance id of an app: <safe-app-id>.instance-<uuid>.
func instanceID(appID string) string {
	return marathon.SafeID(appID) + ".instance-" + newUUID()
}

// taskID is the id of incarnation n of an instance: <instance-id>._app.<n>.
func taskID(instanceID string, n int) string {
	return fmt.Sprintf("%s._app.%d", instanceID, n)
}
