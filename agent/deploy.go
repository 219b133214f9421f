package agent

import (
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
)

// Deployment actions, as Marathon names them.
const (
	ActionStart   = "StartApplication"
	ActionScale   = "ScaleApplication"
	ActionRestart = "RestartApplication"
	ActionStop    = "StopApplication"
)

// deployment is a change to one app in progress. It ends when the app is
// settled (see appSettled), when the app is gone, or when a forced change
// replaces it.
type deployment struct {
	ID          string     `json:"id"`
	Version     time.Time  `json:"version"`
	AppID       string     `json:"appId"`
	Steps       [][]string `json:"steps"`
	CurrentStep int        `json:"currentStep"` // 1-based
	Started     time.Time  `json:"started"`
	// Previous is the app record before the change, for a rollback.
	Previous *appRecord `json:"previous,omitempty"`
}

// startDeployment records a new deployment of ap at version (the app's
// version when zero). The caller has checked the lock (or forced it).
func (a *Agent) startDeployment(ap *app, steps [][]string, previous *appRecord, version time.Time) *deployment {
	if version.IsZero() {
		version = ap.rec.Version
	}
	if ap.deployID != "" {
		a.cancelDeployment(ap, "replaced by a forced change")
	}
	d := &deployment{
		ID:          newUUID(),
		Version:     version,
		AppID:       ap.id(),
		Steps:       steps,
		CurrentStep: len(steps),
		Started:     time.Now().UTC(),
		Previous:    previous,
	}
	if err := a.store.Put(kindDeployments, d.ID, d); err != nil {
		// Going on is safe: the app record holds the change; without this
		// record a restart only forgets that a deployment was under way.
		a.log.Error().Err(err).Msg("persist deployment")
	}
	a.fail("store.put.deployment")
	a.deployments[d.ID] = d
	ap.deployID = d.ID
	// The app points at its deployment, so that losing the deployment's
	// record is noticed. Going on when this save fails is safe: the
	// deployment is known until the agent stops.
	ap.rec.Deployment = d.ID
	_ = a.saveApp(ap)
	a.log.Info().Str("app_id", ap.id()).Str("deployment_id", d.ID).Strs("actions", d.currentActions()).Msg("deployment started")
	a.bus.publish("deployment_info", map[string]any{"plan": d.planJSON(), "currentStep": d.stepJSON(d.CurrentStep - 1)})
	a.changed = true
	return d
}

// checkLock refuses a change to an app with a deployment in progress,
// unless forced.
func checkLock(ap *app, force bool) error {
	if ap.deployID != "" && !force {
		return &LockedError{Deployments: []string{ap.deployID}}
	}
	return nil
}

// finishDeployment ends an app's deployment.
func (a *Agent) finishDeployment(ap *app, success bool) {
	d := a.deployments[ap.deployID]
	ap.deployID = ""
	a.changed = true
	if ap.rec.Deployment != "" {
		// Before the deployment's record goes: an app pointing at a
		// deployment without a record is one whose record was lost.
		ap.rec.Deployment = ""
		_ = a.saveApp(ap) // a pointer left behind is cleared at the next start
	}
	if d == nil {
		return
	}
	delete(a.deployments, d.ID)
	if err := a.store.Delete(kindDeployments, d.ID); err != nil {
		// Going on is safe: a record left behind only shows the deployment
		// again after a restart, until its app settles; nothing acts on it.
		a.log.Error().Err(err).Msg("delete deployment")
	}
	typ := "deployment_success"
	if !success {
		typ = "deployment_failed"
	}
	a.log.Info().Str("app_id", ap.id()).Str("deployment_id", d.ID).Bool("success", success).Dur("took", time.Since(d.Started)).Msg("deployment finished")
	a.cfg.Metrics.DeploymentDone(success, time.Since(d.Started))
	step := "deployment_step_success"
	if !success {
		step = "deployment_step_failure"
	}
	a.bus.publish(step, map[string]any{"plan": d.planJSON(), "currentStep": d.stepJSON(d.CurrentStep - 1)})
	a.bus.publish(typ, map[string]any{"id": d.ID, "plan": d.planJSON()})
}

func (a *Agent) cancelDeployment(ap *app, why string) {
	if d := a.deployments[ap.deployID]; d != nil {
		a.log.Info().Str("deployment_id", d.ID).Str("reason", why).Msg("deployment cancelled")
	}
	a.finishDeployment(ap, false)
}

func (d *deployment) currentActions() []string {
	if d.CurrentStep < 1 || d.CurrentStep > len(d.Steps) {
		return nil
	}
	return d.Steps[d.CurrentStep-1]
}

func (d *deployment) stepJSON(i int) map[string]any {
	actions := []map[string]any{}
	if i >= 0 && i < len(d.Steps) {
		for _, act := range d.Steps[i] {
			actions = append(actions, map[string]any{"action": act, "app": d.AppID})
		}
	}
	return map[string]any{"actions": actions}
}

func (d *deployment) planJSON() map[string]any {
	steps := make([]map[string]any, len(d.Steps))
	for i := range d.Steps {
		steps[i] = d.stepJSON(i)
	}
	return map[string]any{"id": d.ID, "version": formatTime(d.Version), "steps": steps}
}

// DeploymentView is a deployment in progress: its steps (each a list of
// actions on its app) and the current one (1-based).
type DeploymentView struct {
	ID          string
	Version     time.Time
	AppID       string
	Steps       [][]string
	CurrentStep int
}

func (d *deployment) view() *DeploymentView {
	return &DeploymentView{ID: d.ID, Version: d.Version, AppID: d.AppID, Steps: d.Steps, CurrentStep: d.CurrentStep}
}

// DeploymentResult is what a change started: its deployment and the
// app's new version.
type DeploymentResult struct {
	DeploymentID string
	Version      time.Time
}

// scaleOnly reports whether an update changes nothing but instances.
func scaleOnly(old, updated *marathon.App) bool {
	a := *old
	b := *updated
	a.Instances, b.Instances = 0, 0
	return sameJSON(&a, &b)
}
