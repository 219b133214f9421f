package api

import (
	"encoding/json"
	"maps"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/agent/plan"
)

// Rendering of the agent's views as Marathon's JSON (agent/marathon holds
// the shapes). Answers carry Marathon's fields only, unless the request
// asks for mesolite's (?embed=mesolite).

// embed says what an app's JSON adds to its definition, as Marathon's
// AppInfo embeds do; mesolite adds its own fields (the tasks' messages and
// volume use, why the app waits) only when asked.
type embed struct {
	counts, deployments, tasks, lastTaskFailure, readiness, taskStats, mesolite bool
	// noVersionInfo leaves versionInfo out: an app just created has only a
	// version (Marathon's VersionInfo.OnlyVersion, which is not written).
	noVersionInfo bool
}

// appEmbed reads the embed parameters with one of the prefixes, as
// Marathon's InfoEmbedResolver does ("apps.tasks", "app.counts",
// "group.apps.readiness"): unknown ones are ignored, failures means tasks
// and lastTaskFailure. mesolite's own fields come with "mesolite", with or
// without a prefix.
func appEmbed(q url.Values, prefixes ...string) embed {
	e := embed{mesolite: embeds(q)["mesolite"]}
	for _, v := range q["embed"] {
		for _, p := range prefixes {
			name, ok := strings.CutPrefix(v, p)
			if !ok {
				continue
			}
			switch name {
			case "counts":
				e.counts = true
			case "deployments":
				e.deployments = true
			case "readiness":
				e.readiness = true
			case "tasks":
				e.tasks = true
			case "lastTaskFailure":
				e.lastTaskFailure = true
			case "failures":
				e.tasks, e.lastTaskFailure = true, true
			case "taskStats":
				e.taskStats = true
			}
		}
	}
	return e
}

// renderApp renders an app as Marathon's GET /v2/apps does: the
// definition with version, versionInfo, and what e asks for.
func renderApp(v *agent.AppView, e embed) map[string]any {
	out := make(map[string]any, len(v.Definition)+12)
	maps.Copy(out, v.Definition)
	out["version"] = marathon.FormatTime(v.Version)
	if !e.noVersionInfo {
		out["versionInfo"] = map[string]any{
			"lastScalingAt":      marathon.FormatTime(v.LastScalingAt),
			"lastConfigChangeAt": marathon.FormatTime(v.LastConfigChangeAt),
		}
	}
	if e.counts {
		out["tasksStaged"] = v.TasksStaged
		out["tasksRunning"] = v.TasksRunning
		out["tasksHealthy"] = v.TasksHealthy
		out["tasksUnhealthy"] = v.TasksUnhealthy
	}
	if e.deployments {
		ds := make([]map[string]string, 0, len(v.Deployments))
		for _, id := range v.Deployments {
			ds = append(ds, map[string]string{"id": id})
		}
		out["deployments"] = ds
	}
	if e.readiness {
		out["readinessCheckResults"] = renderReadiness(v.Readiness)
	}
	if e.tasks {
		out["tasks"] = renderTaskList(v.Tasks, e.mesolite)
	}
	if f := v.LastTaskFailure; e.lastTaskFailure && f != nil {
		out["lastTaskFailure"] = map[string]any{
			"appId": f.AppID, "host": f.Host, "message": f.Message, "state": f.State,
			"taskId": f.TaskID, "timestamp": marathon.FormatTime(f.Timestamp), "version": marathon.FormatTime(f.Version),
			"slaveId": f.SlaveID,
		}
	}
	if e.taskStats {
		out["taskStats"] = renderTaskStats(v, time.Now())
	}
	if v.Waiting != "" && e.mesolite {
		// Why an instance cannot be placed.
		out["waitingReason"] = v.Waiting
	}
	return out
}

// renderReadiness renders readiness check results; [] when there are none.
func renderReadiness(rs []agent.ReadinessView) []marathon.ReadinessCheckResult {
	out := make([]marathon.ReadinessCheckResult, 0, len(rs))
	for _, r := range rs {
		res := marathon.ReadinessCheckResult{Name: r.Name, TaskID: r.TaskID, Ready: r.Ready}
		if lr := r.LastResponse; lr != nil {
			res.LastResponse = &marathon.HTTPResponse{Status: lr.Status, ContentType: lr.ContentType, Body: lr.Body}
		}
		out = append(out, res)
	}
	return out
}

// renderTaskStats renders Marathon's taskStats of an app (TaskStatsByVersion):
// for all its active tasks, those at the current configuration, those at an
// older one, and those started since the last scaling, the counts by state
// and health and, for running tasks, how long they have run. A category
// without tasks is left out, as Marathon leaves out a None.
func renderTaskStats(v *agent.AppView, now time.Time) map[string]any {
	type sel func(*agent.TaskView) bool
	cats := []struct {
		name string
		in   sel
	}{
		{"startedAfterLastScaling", func(t *agent.TaskView) bool { return !t.StagedAt.Before(v.LastScalingAt) }},
		{"withLatestConfig", func(t *agent.TaskView) bool { return !t.Version.Before(v.LastConfigChangeAt) }},
		{"withOutdatedConfig", func(t *agent.TaskView) bool { return t.Version.Before(v.LastConfigChangeAt) }},
		{"totalSummary", func(*agent.TaskView) bool { return true }},
	}
	out := map[string]any{}
	for _, c := range cats {
		var staged, running, healthy, unhealthy int
		var ages []float64
		for _, t := range v.Tasks {
			if !t.Active || !c.in(t) {
				continue
			}
			switch t.State {
			case agent.TaskRunning:
				running++
				if !t.StartedAt.IsZero() {
					ages = append(ages, now.Sub(t.StartedAt).Seconds())
				}
			default:
				staged++
			}
			if t.Healthy {
				healthy++
			} else if t.Checked {
				unhealthy++
			}
		}
		if staged+running == 0 {
			continue
		}
		stats := map[string]any{"counts": map[string]int{"staged": staged, "running": running, "healthy": healthy, "unhealthy": unhealthy}}
		if len(ages) > 0 {
			sort.Float64s(ages)
			sum := 0.0
			for _, a := range ages {
				sum += a
			}
			median := ages[len(ages)/2]
			if len(ages)%2 == 0 {
				median = (ages[len(ages)/2-1] + ages[len(ages)/2]) / 2
			}
			stats["lifeTime"] = map[string]float64{"averageSeconds": sum / float64(len(ages)), "medianSeconds": median}
		}
		out[c.name] = map[string]any{"stats": stats}
	}
	return out
}

// mesoliteTask is a task with mesolite's fields after Marathon's.
type mesoliteTask struct {
	marathon.Task
	// Message is the last thing worth telling about the task (pull
	// progress, why it failed).
	Message     string `json:"message,omitempty"`
	InstanceID  string `json:"instanceId"`
	Incarnation int    `json:"incarnation"`
	SandboxDir  string `json:"sandboxDirectory,omitempty"`
	// Volumes is the use of each persistent volume against its size.
	Volumes []volumeUsage `json:"volumes,omitempty"`
}

type volumeUsage struct {
	ContainerPath string  `json:"containerPath"`
	PersistenceID string  `json:"persistenceId"`
	SizeMiB       float64 `json:"sizeMiB"`
	UsedBytes     int64   `json:"usedBytes"`
}

// renderTask renders a task's Marathon fields.
func renderTask(t *agent.TaskView) *marathon.Task {
	out := &marathon.Task{
		AppID: t.AppID, ID: t.ID, Host: t.Host, SlaveID: t.SlaveID, State: t.State,
		Ports: t.Ports, ServicePorts: t.ServicePorts, IPAddresses: []marathon.IPAddress{},
		HealthCheckResults: []marathon.HealthCheckResult{}, LocalVolumes: []marathon.LocalVolume{},
	}
	if !t.StagedAt.IsZero() {
		out.StagedAt = marathon.FormatTime(t.StagedAt)
	}
	if !t.StartedAt.IsZero() {
		out.StartedAt = marathon.FormatTime(t.StartedAt)
	}
	if !t.Version.IsZero() {
		out.Version = marathon.FormatTime(t.Version)
	}
	for _, ip := range t.IPAddresses {
		out.IPAddresses = append(out.IPAddresses, marathon.IPAddress{IPAddress: ip, Protocol: "IPv4"})
	}
	for _, h := range t.Health {
		out.HealthCheckResults = append(out.HealthCheckResults, marathon.HealthCheckResult{
			Alive: h.Alive, ConsecutiveFailures: h.ConsecutiveFailures,
			FirstSuccess: marathon.OptTime(h.FirstSuccess), LastSuccess: marathon.OptTime(h.LastSuccess),
			LastFailure: marathon.OptTime(h.LastFailure), LastFailureCause: optString(h.LastFailureCause),
			InstanceID: h.InstanceID,
		})
	}
	for _, v := range t.Volumes {
		out.LocalVolumes = append(out.LocalVolumes, marathon.LocalVolume{
			RunSpecID: t.AppID, ContainerPath: v.ContainerPath, UUID: v.UUID, PersistenceID: v.PersistenceID,
		})
	}
	return out
}

// renderMesoliteTask renders a task with mesolite's fields.
func renderMesoliteTask(t *agent.TaskView) *mesoliteTask {
	out := &mesoliteTask{
		Task: *renderTask(t), Message: t.Message, InstanceID: t.InstanceID, Incarnation: t.Incarnation, SandboxDir: t.SandboxDir,
	}
	for _, v := range t.Volumes {
		out.Volumes = append(out.Volumes, volumeUsage{ContainerPath: v.ContainerPath, PersistenceID: v.PersistenceID, SizeMiB: v.SizeMiB, UsedBytes: v.UsedBytes})
	}
	return out
}

// renderTaskList renders tasks, with mesolite's fields when asked.
func renderTaskList(tasks []*agent.TaskView, mesolite bool) any {
	if mesolite {
		out := make([]*mesoliteTask, len(tasks))
		for i, t := range tasks {
			out[i] = renderMesoliteTask(t)
		}
		return out
	}
	out := make([]*marathon.Task, len(tasks))
	for i, t := range tasks {
		out[i] = renderTask(t)
	}
	return out
}

// plainTaskJSON is the JSON of a task's Marathon fields, encoded once per
// view (agent.TaskView.Memo).
func plainTaskJSON(t *agent.TaskView) []byte {
	return t.Memo(func(t *agent.TaskView) []byte {
		b, err := json.Marshal(renderTask(t))
		if err != nil {
			// Not reachable: the fields are strings, numbers and slices of them.
			return []byte("{}")
		}
		return b
	})
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func renderDeploymentResult(dr agent.DeploymentResult) marathon.DeploymentResult {
	return marathon.DeploymentResult{DeploymentID: dr.DeploymentID, Version: marathon.FormatTime(dr.Version)}
}

// renderPlanSteps renders a plan's steps.
func renderPlanSteps(steps []plan.Step) []marathon.DeploymentStep {
	out := make([]marathon.DeploymentStep, 0, len(steps))
	for _, s := range steps {
		ds := marathon.DeploymentStep{Actions: []marathon.DeploymentAction{}}
		for _, act := range s {
			ds.Actions = append(ds.Actions, marathon.DeploymentAction{Action: act.Kind, App: act.App})
		}
		out = append(out, ds)
	}
	return out
}

// renderDeployment renders a deployment as an entry of GET
// /v2/deployments (DeploymentStepInfo): its steps, the current one and its
// actions with the readiness results of their apps (an array per action,
// as DeploymentPlanConversion writes it; the RAML's example shows an
// object keyed by app id, which Marathon does not write).
func renderDeployment(d *agent.DeploymentView) marathon.Deployment {
	out := marathon.Deployment{
		ID: d.ID, Version: marathon.FormatTime(d.Version), AffectedApps: d.Affected, AffectedPods: []string{},
		Steps: []marathon.DeploymentStep{}, CurrentActions: []marathon.CurrentAction{}, CurrentStep: d.CurrentStep,
		TotalSteps: len(d.Steps),
	}
	if out.AffectedApps == nil {
		out.AffectedApps = []string{}
	}
	out.Steps = renderPlanSteps(d.Steps)
	if d.CurrentStep >= 1 && d.CurrentStep <= len(d.Steps) {
		for _, act := range d.Steps[d.CurrentStep-1] {
			out.CurrentActions = append(out.CurrentActions, marathon.CurrentAction{
				Action: act.Kind, App: act.App, ReadinessCheckResults: renderReadiness(d.Readiness[act.App]),
			})
		}
	}
	return out
}

// volumeJSON is one entry of GET /mesolite/v1/volumes.
type volumeJSON struct {
	PersistenceID string  `json:"persistenceId"`
	Path          string  `json:"path"`
	AppID         string  `json:"appId,omitempty"`
	InstanceID    string  `json:"instanceId,omitempty"`
	TaskID        string  `json:"taskId,omitempty"`
	ContainerPath string  `json:"containerPath,omitempty"`
	Goal          string  `json:"goal,omitempty"`
	SizeMiB       float64 `json:"sizeMiB"`
	// UsedBytes is the last measurement (-1 before the first), taken at
	// MeasuredAt every [tasks] volume_usage_interval.
	UsedBytes  int64  `json:"usedBytes"`
	MeasuredAt string `json:"measuredAt,omitempty"`
	Exists     bool   `json:"exists"`
	Orphan     bool   `json:"orphan"`
	Released   bool   `json:"released,omitempty"`
}

func renderVolume(v agent.VolumeInfo) volumeJSON {
	return volumeJSON{
		PersistenceID: v.PersistenceID, Path: v.Path, AppID: v.AppID, InstanceID: v.InstanceID, TaskID: v.TaskID,
		ContainerPath: v.ContainerPath, Goal: v.Goal, SizeMiB: v.SizeMiB, UsedBytes: v.UsedBytes, Exists: v.Exists, Orphan: v.Orphan,
		MeasuredAt: formatOptionalTime(v.MeasuredAt), Released: v.Released,
	}
}

// recoveryJSON is the recovery report of /mesolite/v1/status.
type recoveryJSON struct {
	Done        bool    `json:"done"`
	At          string  `json:"at,omitempty"`
	Adopted     int     `json:"adopted"`
	Relaunched  int     `json:"relaunched"`
	Orphans     int     `json:"orphans"`
	Unreadable  int     `json:"unreadable"`
	TookSeconds float64 `json:"tookSeconds"`
	// Findings: the records found damaged or missing, and what the agent
	// did about each.
	Findings []findingJSON `json:"findings"`
}

type findingJSON struct {
	Kind    string `json:"kind"`
	Key     string `json:"key"`
	AppID   string `json:"appId,omitempty"`
	Problem string `json:"problem"`
	Action  string `json:"action"`
}

func renderRecovery(r agent.Recovery) recoveryJSON {
	out := recoveryJSON{Done: r.Done, Adopted: r.Adopted, Relaunched: r.Relaunched, Orphans: r.Orphans, Unreadable: r.Unreadable, TookSeconds: r.TookSeconds,
		Findings: make([]findingJSON, len(r.Findings))}
	for i, f := range r.Findings {
		out.Findings[i] = findingJSON{Kind: f.Kind, Key: f.Key, AppID: f.AppID, Problem: f.Problem, Action: f.Action}
	}
	if !r.At.IsZero() {
		out.At = r.At.UTC().Format("2006-01-02T15:04:05.999999999Z07:00")
	}
	return out
}

// formatOptionalTime is Marathon's time format, or "" for the zero time.
func formatOptionalTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return marathon.FormatTime(t)
}
