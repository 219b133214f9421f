package agent

import (
	"encoding/json"
	"sort"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/agent/plan"
)

// Deployment actions, as Marathon names them.
const (
	ActionStart   = plan.Start
	ActionScale   = plan.Scale
	ActionRestart = plan.Restart
	ActionStop    = plan.Stop
)

// deployment is a change in progress: of one app (POST, PUT, DELETE of
// /v2/apps) or of many at once (a group, PUT /v2/apps with a list). Its
// plan is steps of actions on apps (package plan); the steps run one after
// the other, the actions of a step together. An app whose action is in a
// later step than the current one is held (reconcileApp leaves it alone),
// so apps start only after what they depend on is running, healthy and
// ready, and stop only after what depends on them.
//
// The record is the intent: it is written before any app or group record
// of the change, and holds the targets, so recovery finishes a change a
// crash interrupted (resume). It is deleted when the last step is done.
type deployment struct {
	ID          string      `json:"id"`
	Version     time.Time   `json:"version"`
	Plan        []plan.Step `json:"plan"`
	CurrentStep int         `json:"currentStep"` // 1-based: the step in progress
	Started     time.Time   `json:"started"`
	// Group is the group a group change is about ("/" for the root), ""
	// for a change of apps.
	Group string `json:"group,omitempty"`
	// Previous holds the records before the change of the apps it creates,
	// changes or removes (a nil value: the change creates the app), for the
	// rollback and for the plan's original group.
	Previous map[string]*appRecord `json:"previousApps,omitempty"`
	// Targets holds the records after the change of the apps it creates or
	// changes; Removed lists the apps a group change removes.
	Targets map[string]*appRecord `json:"targets,omitempty"`
	Removed []string              `json:"removed,omitempty"`
	// PreviousGroups and TargetGroups are the same for group records.
	PreviousGroups map[string]*groupRecord `json:"previousGroups,omitempty"`
	TargetGroups   map[string]*groupRecord `json:"targetGroups,omitempty"`

	// Records of mesolite before group deployments: one app, its steps as
	// action names, its previous record. restore converts them.
	LegacyAppID    string     `json:"appId,omitempty"`
	LegacySteps    [][]string `json:"steps,omitempty"`
	LegacyPrevious *appRecord `json:"previous,omitempty"`
}

// stepOf returns the 1-based step of the app's last action (a new app is
// started with no instances, then scaled in a later step), 0 when the plan
// has none.
func (d *deployment) stepOf(appID string) int {
	for i := len(d.Plan) - 1; i >= 0; i-- {
		for _, act := range d.Plan[i] {
			if act.App == appID {
				return i + 1
			}
		}
	}
	return 0
}

// actionOf returns the app's last action in the plan.
func (d *deployment) actionOf(appID string) string {
	if i := d.stepOf(appID); i > 0 {
		for _, act := range d.Plan[i-1] {
			if act.App == appID {
				return act.Kind
			}
		}
	}
	return ""
}

// affected returns the apps the plan names, sorted.
func (d *deployment) affected() []string { return plan.Affected(d.Plan) }

// fromLegacy converts a record of an older mesolite.
func (d *deployment) fromLegacy() {
	if d.LegacyAppID == "" || d.Plan != nil {
		return
	}
	for _, names := range d.LegacySteps {
		var s plan.Step
		for _, n := range names {
			s = append(s, plan.Action{Kind: n, App: d.LegacyAppID})
		}
		d.Plan = append(d.Plan, s)
	}
	if d.CurrentStep > len(d.Plan) || d.CurrentStep < 1 {
		d.CurrentStep = 1
	}
	d.Previous = map[string]*appRecord{d.LegacyAppID: d.LegacyPrevious}
	d.LegacyAppID, d.LegacySteps, d.LegacyPrevious = "", nil, nil
}

// held reports whether an app waits for its step: its last action is in a
// later step of its deployment than the current one. Held, an app neither
// launches nor kills: a started app has no instances until it is scaled.
func (a *Agent) held(ap *app) bool {
	d := a.deployments[ap.deployID]
	return d != nil && d.stepOf(ap.id()) > d.CurrentStep
}

// startDeployment records a new deployment of one app at version (the
// app's version when zero); steps are action names. The caller has checked
// the lock (or forced it) and written the app's record: a crash before the
// deployment record only forgets that a deployment was under way, the app
// still converges to its record.
func (a *Agent) startDeployment(ap *app, steps [][]string, previous *appRecord, version time.Time) *deployment {
	if version.IsZero() {
		version = ap.rec.Version
	}
	var p []plan.Step
	for _, names := range steps {
		var s plan.Step
		for _, n := range names {
			s = append(s, plan.Action{Kind: n, App: ap.id()})
		}
		p = append(p, s)
	}
	d := &deployment{ID: newUUID(), Version: version, Plan: p, CurrentStep: 1, Started: time.Now().UTC(),
		Previous: map[string]*appRecord{ap.id(): previous}}
	a.forceOut([]string{ap.id()}, "replaced by a forced change")
	if err := a.store.Put(kindDeployments, d.ID, d); err != nil {
		// Going on is safe: the app record holds the change; without this
		// record a restart only forgets that a deployment was under way.
		a.log.Error().Err(err).Msg("persist deployment")
	}
	a.fail("store.put.deployment")
	// The app points at its deployment, so that losing the deployment's
	// record is noticed (recover.go). Going on when this save fails is
	// safe: the deployment is known until the agent stops.
	ap.rec.Deployment = d.ID
	_ = a.saveApp(ap)
	a.begin(d)
	return d
}

// begin makes a recorded deployment current: its apps are locked by it,
// the group change and its first step are announced.
func (a *Agent) begin(d *deployment) {
	a.deployments[d.ID] = d
	for _, id := range d.affected() {
		if ap := a.apps[id]; ap != nil {
			ap.deployID = d.ID
			a.touchApp(ap)
		}
	}
	a.log.Info().Str("deployment_id", d.ID).Str("group", d.Group).Str("plan", plan.String(d.Plan)).Msg("deployment started")
	a.bus.publish("group_change_success", map[string]any{"groupId": a.changedGroup(d), "version": formatTime(d.Version)})
	if len(d.Plan) > 0 {
		a.publishStep("deployment_info", d, d.CurrentStep)
	}
	a.dirtyDeployments[d.ID] = true
	a.changed = true
}

// changedGroup is the group a deployment changes, as group_change_success
// names it: the group of a group change, else the group of its first app.
func (a *Agent) changedGroup(d *deployment) string {
	if d.Group != "" {
		return d.Group
	}
	if ids := d.affected(); len(ids) > 0 {
		return parentGroup(ids[0])
	}
	return "/"
}

// forceOut ends, without rolling back, the deployments that hold any of
// the apps: a forced change replaces them.
func (a *Agent) forceOut(appIDs []string, why string) {
	seen := map[string]bool{}
	for _, id := range appIDs {
		ap := a.apps[id]
		if ap == nil || ap.deployID == "" || seen[ap.deployID] {
			continue
		}
		seen[ap.deployID] = true
		if d := a.deployments[ap.deployID]; d != nil {
			a.log.Info().Str("deployment_id", d.ID).Str("reason", why).Msg("deployment cancelled")
			a.finishDeployment(d, false)
		} else {
			ap.deployID = ""
		}
	}
}

// checkLock refuses a change to an app with a deployment in progress,
// unless forced.
func checkLock(ap *app, force bool) error {
	if ap.deployID != "" && !force {
		return &LockedError{Deployments: []string{ap.deployID}}
	}
	return nil
}

// advanceDeployments moves every deployment that may have progressed on
// to its next step, and ends those whose last step is done.
func (a *Agent) advanceDeployments() {
	ids := sortedKeys(a.dirtyDeployments)
	clear(a.dirtyDeployments)
	for _, id := range ids {
		if d := a.deployments[id]; d != nil {
			a.advance(d)
		}
	}
}

// advance moves a deployment past every step that is done. The new current
// step is persisted before its apps are released (touched): a crash in
// between finds the step done again, or redoes the release.
func (a *Agent) advance(d *deployment) {
	for d.CurrentStep <= len(d.Plan) && a.stepDone(d, d.Plan[d.CurrentStep-1]) {
		a.publishStep("deployment_step_success", d, d.CurrentStep)
		d.CurrentStep++
		if err := a.store.Put(kindDeployments, d.ID, d); err != nil {
			// Going on is safe: after a restart the finished step is found
			// done again at once.
			a.log.Error().Err(err).Str("deployment_id", d.ID).Msg("persist deployment step")
		}
		a.fail("store.put.deployment")
		a.changed = true
		if d.CurrentStep > len(d.Plan) {
			break
		}
		a.log.Info().Str("deployment_id", d.ID).Int("step", d.CurrentStep).Int("steps", len(d.Plan)).Msg("deployment step started")
		a.publishStep("deployment_info", d, d.CurrentStep)
		for _, act := range d.Plan[d.CurrentStep-1] {
			if ap := a.apps[act.App]; ap != nil {
				a.touchApp(ap)
			}
		}
	}
	if d.CurrentStep > len(d.Plan) {
		a.finishDeployment(d, true)
	}
}

// stepDone reports whether every action of a step is done: a start as soon
// as the app exists; a scale or restart when the app is settled (the
// wanted number of tasks running, healthy and at the current
// configuration) and every such task is ready; a stop when the app is
// gone, or, for an app a group change removes, when none of its tasks is
// active any more.
func (a *Agent) stepDone(d *deployment, s plan.Step) bool {
	for _, act := range s {
		ap := a.apps[act.App]
		switch act.Kind {
		case ActionStart:
		case ActionStop:
			if ap != nil && (!ap.rec.Removing || a.activeTasks(ap) > 0) {
				return false
			}
		default:
			if ap == nil || ap.deployID != d.ID || !a.appSettled(ap) || !a.appReady(ap) {
				return false
			}
		}
	}
	return true
}

// activeTasks counts an app's tasks that are not over.
func (a *Agent) activeTasks(ap *app) int {
	n := 0
	for _, inst := range a.appInstances(ap.id()) {
		if t := inst.task(); t != nil && t.active() {
			n++
		}
	}
	return n
}

// finishDeployment ends a deployment. Apps a successful group change
// removed are marked for deletion first (their volumes are destroyed only
// now, so a rollback before this point keeps them), then the record goes:
// a crash in between resumes the deployment, which finishes at once.
func (a *Agent) finishDeployment(d *deployment, success bool) {
	removed := map[string]bool{}
	if success {
		for _, id := range d.Removed {
			removed[id] = true
		}
		a.dropGroupVersions(d)
	}
	// Before the deployment's record goes: the apps stop pointing at it
	// (an app pointing at a deployment without a record is one whose
	// record was lost), and the apps a successful change removed are
	// deleted now, their volumes with them.
	for _, id := range d.affected() {
		ap := a.apps[id]
		if ap == nil {
			continue
		}
		deleting := removed[id] && ap.rec.Removing && !ap.rec.Deleting
		if ap.rec.Deployment != d.ID && !deleting {
			continue
		}
		prev := ap.rec
		if ap.rec.Deployment == d.ID {
			ap.rec.Deployment = ""
		}
		ap.rec.Deleting = ap.rec.Deleting || deleting
		if err := a.saveApp(ap); err != nil {
			// Going on is safe: a pointer left behind is cleared at the
			// next start; an app left removing without a deployment is
			// deleted then (restore).
			ap.rec = prev
		}
	}
	delete(a.deployments, d.ID)
	if err := a.store.Delete(kindDeployments, d.ID); err != nil {
		// Going on is safe: a record left behind resumes after a restart
		// and finishes at once, its steps being done.
		a.log.Error().Err(err).Msg("delete deployment")
	}
	a.fail("store.delete.deployment")
	for _, id := range d.affected() {
		if ap := a.apps[id]; ap != nil && ap.deployID == d.ID {
			ap.deployID = ""
			a.touchApp(ap)
		}
	}
	a.changed = true
	typ, step := "deployment_success", "deployment_step_success"
	if !success {
		typ, step = "deployment_failed", "deployment_step_failure"
	}
	a.log.Info().Str("deployment_id", d.ID).Bool("success", success).Dur("took", time.Since(d.Started)).Msg("deployment finished")
	a.cfg.Metrics.DeploymentDone(success, time.Since(d.Started))
	if !success && d.CurrentStep <= len(d.Plan) {
		a.publishStep(step, d, d.CurrentStep)
	}
	a.bus.publishPlan(typ, func(light bool) map[string]any {
		return map[string]any{"id": d.ID, "plan": a.planJSON(d, light)}
	})
}

func sortedRecordIDs(m map[string]*appRecord) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// publishStep publishes a deployment event about step i (1-based): its
// plan and the step's actions with the readiness results of their apps.
func (a *Agent) publishStep(typ string, d *deployment, i int) {
	a.bus.publishPlan(typ, func(light bool) map[string]any {
		actions := []marathon.CurrentAction{}
		if i >= 1 && i <= len(d.Plan) {
			for _, act := range d.Plan[i-1] {
				actions = append(actions, marathon.CurrentAction{
					Action: act.Kind, App: act.App, ReadinessCheckResults: a.readinessResults(act.App),
				})
			}
		}
		return map[string]any{"plan": a.planJSON(d, light), "currentStep": map[string]any{"actions": actions}}
	})
}

// planJSON is a deployment's plan as the events carry it: its id, version
// and steps, and (unless light) the root group before and after the
// change.
func (a *Agent) planJSON(d *deployment, light bool) any {
	p := marathon.Plan{ID: d.ID, Version: formatTime(d.Version), Steps: renderSteps(d.Plan)}
	if !light {
		p.Original = a.rootTree(d, true).Marathon()
		p.Target = a.rootTree(d, false).Marathon()
	}
	return p
}

// renderSteps renders a plan's steps as Marathon's JSON shapes.
func renderSteps(steps []plan.Step) []marathon.DeploymentStep {
	out := make([]marathon.DeploymentStep, 0, len(steps))
	for _, s := range steps {
		ds := marathon.DeploymentStep{Actions: make([]marathon.DeploymentAction, 0, len(s))}
		for _, act := range s {
			ds.Actions = append(ds.Actions, marathon.DeploymentAction{Action: act.Kind, App: act.App})
		}
		out = append(out, ds)
	}
	return out
}

// DeploymentView is a deployment in progress: its steps of actions, the
// current one (1-based), and the readiness results of the current step's
// apps.
type DeploymentView struct {
	ID          string
	Version     time.Time
	Steps       []plan.Step
	CurrentStep int
	Affected    []string
	// Readiness holds the readiness results of the apps of the current
	// step, by app id.
	Readiness map[string][]ReadinessView
}

func (a *Agent) deploymentView(d *deployment) *DeploymentView {
	v := &DeploymentView{ID: d.ID, Version: d.Version, Steps: d.Plan, CurrentStep: d.CurrentStep, Affected: d.affected(),
		Readiness: map[string][]ReadinessView{}}
	if d.CurrentStep >= 1 && d.CurrentStep <= len(d.Plan) {
		for _, act := range d.Plan[d.CurrentStep-1] {
			v.Readiness[act.App] = a.readinessViews(act.App)
		}
	}
	return v
}

// DeploymentResult is what a change started: its deployment and the
// new version.
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

// configKey is what identifies an app's configuration apart from its
// instances, for plans: apps whose keys differ need a restart.
func configKey(spec *marathon.App, lastConfigChange time.Time) string {
	c := *spec
	c.Instances = 0
	b, err := json.Marshal(&c)
	if err != nil {
		return lastConfigChange.String()
	}
	// Raw parts (unreachableStrategy, ...) keep the order their keys came
	// in: compare them in a canonical form.
	var canon any
	if err := json.Unmarshal(b, &canon); err != nil {
		return string(b)
	}
	if b, err = json.Marshal(canon); err != nil {
		return lastConfigChange.String()
	}
	return string(b)
}
