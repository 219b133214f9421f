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
	// LocalVolumes is written for every task, [] when it has none, as
	// Marathon 1.8's RAML writer does.
	LocalVolumes []LocalVolume `json:"localVolumes"`
}

// IPAddress is one entry of a task's ipAddresses.
type IPAddress struct {
	IPAddress string `json:"ipAddress"`
	Protocol  string `json:"protocol"`
}

// HealthCheckResult is one entry of a task's healthCheckResults. The
// times and the cause are left out until there is one: Marathon 1.8's
// HealthConversion writes Options, which are absent when None (the older
// Formats.HealthWrites wrote null).
type HealthCheckResult struct {
	Alive               bool    `json:"alive"`
	ConsecutiveFailures int     `json:"consecutiveFailures"`
	FirstSuccess        *string `json:"firstSuccess,omitempty"`
	LastSuccess         *string `json:"lastSuccess,omitempty"`
	LastFailure         *string `json:"lastFailure,omitempty"`
	LastFailureCause    *string `json:"lastFailureCause,omitempty"`
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

// ReadinessCheckResult is the result of a readiness check of one task
// (readinessCheckResult.raml): the last response only when the check
// preserves it and a response came.
type ReadinessCheckResult struct {
	Name         string        `json:"name"`
	TaskID       string        `json:"taskId"`
	Ready        bool          `json:"ready"`
	LastResponse *HTTPResponse `json:"lastResponse,omitempty"`
}

// HTTPResponse is the last response of a readiness check.
type HTTPResponse struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType"`
	Body        string `json:"body"`
}

// CurrentAction is an action of a step with the readiness results of its
// app: an entry of GET /v2/deployments' currentActions, and an action of a
// deployment event's currentStep (deploymentEventsInfo.raml's
// DeploymentActionInfo).
type CurrentAction struct {
	Action                string                 `json:"action"`
	App                   string                 `json:"app"`
	ReadinessCheckResults []ReadinessCheckResult `json:"readinessCheckResults"`
}

// Plan is a deployment plan as the deployment events carry it: with the
// root group before (original) and after (target) the change, unless the
// stream asked for light plans (/v2/events?plan-format=light), which have
// neither.
type Plan struct {
	ID       string           `json:"id"`
	Version  string           `json:"version"`
	Steps    []DeploymentStep `json:"steps"`
	Original *Group           `json:"original,omitempty"`
	Target   *Group           `json:"target,omitempty"`
}

// Group is a group as a plan's original and target carry it
// (Raml.toRaml(group)): its apps plain, its subgroups, no pods.
type Group struct {
	ID           string           `json:"id"`
	Apps         []map[string]any `json:"apps"`
	Groups       []*Group         `json:"groups"`
	Pods         []any            `json:"pods"`
	Dependencies []string         `json:"dependencies"`
	Version      string           `json:"version"`
}

// PlainApp renders an app's definition as Marathon's App: the definition
// with its version and, unless the app has only a version (just created:
// Marathon's VersionInfo.OnlyVersion, which is not written), versionInfo.
func PlainApp(def map[string]any, version, lastScalingAt, lastConfigChangeAt time.Time, versionInfo bool) map[string]any {
	out := make(map[string]any, len(def)+12)
	for k, v := range def {
		out[k] = v
	}
	out["version"] = FormatTime(version)
	if versionInfo {
		out["versionInfo"] = map[string]any{
			"lastScalingAt":      FormatTime(lastScalingAt),
			"lastConfigChangeAt": FormatTime(lastConfigChangeAt),
		}
	}
	return out
}

// PrefixDetails puts prefix before the paths of a *ValidationError (an
// app's errors at "/apps(2)" of a group body); other errors pass as they
// are.
func PrefixDetails(err error, prefix string) error {
	ve, ok := err.(*ValidationError)
	if !ok || prefix == "" {
		return err
	}
	out := &ValidationError{Details: make([]Detail, len(ve.Details))}
	for i, d := range ve.Details {
		p := d.Path
		if p == "/" {
			p = ""
		}
		out.Details[i] = Detail{Path: prefix + p, Errors: d.Errors}
	}
	return out
}
