package marathon

import "time"

// The JSON shapes of Marathon's answers other than the app definition:
// tasks, deployments, queue entries. agent/api fills them from the agent's
// views; they carry Marathon's fields only, because clients such as
// marathon-python refuse fields they do not know.

// TimeFormat is how Marathon renders times: UTC, milliseconds, Z.
const TimeFormat = "2006-01-02T15:04:05.000Z"

// FormatTime renders t as Marathon does.
func FormatTime(t time.Time) string { return t.UTC().Format(TimeFormat) }

// OptTime is a time that is null when zero.
func OptTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := FormatTime(t)
	return &s
}

// Task is Marathon's task JSON.
type Task struct {
	AppID              string              `json:"appId"`
	ID                 string              `json:"id"`
	Host               string              `json:"host"`
	SlaveID            string              `json:"slaveId"`
	State              string              `json:"state"`
	StagedAt           string              `json:"stagedAt,omitempty"`
	StartedAt          string              `json:"startedAt,omitempty"`
	Version            string              `json:"version,omitempty"`
	Ports              []int               `json:"ports"`
	ServicePorts       []int               `json:"servicePorts"`
	IPAddresses        []IPAddress         `json:"ipAddresses"`
	HealthCheckResults []HealthCheckResult `json:"healthCheckResults"`
	LocalVolumes       []LocalVolume       `json:"localVolumes,omitempty"`
}

// IPAddress is one entry of a task's ipAddresses.
type IPAddress struct {
	IPAddress string `json:"ipAddress"`
	Protocol  string `json:"protocol"`
}

// HealthCheckResult is one entry of a task's healthCheckResults.
type HealthCheckResult struct {
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

// DeploymentResult is Marathon's answer to a change.
type DeploymentResult struct {
	DeploymentID string `json:"deploymentId"`
	Version      string `json:"version"`
}

// Deployment is one entry of GET /v2/deployments.
type Deployment struct {
	ID             string           `json:"id"`
	Version        string           `json:"version"`
	AffectedApps   []string         `json:"affectedApps"`
	AffectedPods   []string         `json:"affectedPods"`
	Steps          []DeploymentStep `json:"steps"`
	CurrentActions []CurrentAction  `json:"currentActions"`
	CurrentStep    int              `json:"currentStep"`
	TotalSteps     int              `json:"totalSteps"`
}

// DeploymentStep is one step of a deployment plan.
type DeploymentStep struct {
	Actions []DeploymentAction `json:"actions"`
}

// DeploymentAction is one action of a step.
type DeploymentAction struct {
	Action string `json:"action"`
	App    string `json:"app"`
}

// CurrentAction is an action of the current step, with its readiness.
type CurrentAction struct {
	Action                string `json:"action"`
	App                   string `json:"app"`
	ReadinessCheckResults []any  `json:"readinessCheckResults"`
}

// RenderDeployment renders a deployment of one app: its steps of
// actions, the current one 1-based.
func RenderDeployment(id string, version time.Time, appID string, steps [][]string, current int) Deployment {
	d := Deployment{
		ID: id, Version: FormatTime(version), AffectedApps: []string{appID}, AffectedPods: []string{},
		Steps: []DeploymentStep{}, CurrentActions: []CurrentAction{}, CurrentStep: current, TotalSteps: len(steps),
	}
	for _, step := range steps {
		d.Steps = append(d.Steps, RenderStep(appID, step))
	}
	if current >= 1 && current <= len(steps) {
		for _, act := range steps[current-1] {
			d.CurrentActions = append(d.CurrentActions, CurrentAction{Action: act, App: appID, ReadinessCheckResults: []any{}})
		}
	}
	return d
}

// RenderStep renders one step of a deployment of one app.
func RenderStep(appID string, actions []string) DeploymentStep {
	s := DeploymentStep{Actions: []DeploymentAction{}}
	for _, act := range actions {
		s.Actions = append(s.Actions, DeploymentAction{Action: act, App: appID})
	}
	return s
}
