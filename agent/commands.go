package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
)

// CreateApp adds an app from its JSON definition and starts deploying it.
// It returns the new app and its deployment. Errors: marathon's
// *SyntaxError and *ValidationError, ErrConflict for an app of that id,
// ErrLocked while one of that id is being removed.
func (a *Agent) CreateApp(ctx context.Context, body []byte) (*AppView, DeploymentResult, error) {
	doc, err := marathon.DecodeObject(body)
	if err != nil {
		return nil, DeploymentResult{}, err
	}
	spec, err := marathon.ParseObject(doc, a.opts)
	if err != nil {
		return nil, DeploymentResult{}, err
	}
	type created struct {
		view *AppView
		dr   DeploymentResult
	}
	r, err := call(a, ctx, func() (created, error) {
		if ap := a.apps[spec.ID]; ap != nil {
			if ap.rec.Deleting {
				// Its removal is still tearing it down.
				return created{}, &LockedError{Deployments: []string{ap.deployID}}
			}
			return created{}, errorf(ErrConflict, "An app with id [%s] already exists.", spec.ID)
		}
		if err := a.appClashes(spec); err != nil {
			return created{}, err
		}
		if err := a.vipClash(spec); err != nil {
			return created{}, err
		}
		ap, err := a.addApp(spec, doc)
		if err != nil {
			return created{}, err
		}
		d := a.startDeployment(ap, [][]string{{ActionStart}, {ActionScale}}, nil, time.Time{})
		a.touchApp(ap)
		return created{a.appView(ap, nil), DeploymentResult{DeploymentID: d.ID, Version: ap.rec.Version}}, nil
	})
	return r.view, r.dr, err
}

// appClashes refuses a new app whose id is a group's, or is inside an
// app's.
func (a *Agent) appClashes(spec *marathon.App) error {
	ch := newChange("")
	ch.apps[spec.ID] = &appTarget{spec: spec}
	return a.clashes(ch)
}

// addApp records a new app: service ports assigned, version and app
// records written.
func (a *Agent) addApp(spec *marathon.App, doc map[string]any) (*app, error) {
	if err := a.assignServicePorts(spec, nil, nil); err != nil {
		return nil, err
	}
	rendered, err := marathon.Render(spec, doc)
	if err != nil {
		return nil, err
	}
	def, err := json.Marshal(rendered)
	if err != nil {
		return nil, err
	}
	ver := a.nextVersion()
	rec := appRecord{ID: spec.ID, Version: ver, LastScalingAt: ver, LastConfigChangeAt: ver, Definition: def}
	if err := a.saveVersion(rec); err != nil {
		return nil, err
	}
	ap := &app{rec: rec, spec: spec, doc: rendered}
	if err := a.saveApp(ap); err != nil {
		return nil, err
	}
	a.apps[spec.ID] = ap
	a.log.Info().Str("app_id", spec.ID).Str("version", formatTime(ver)).Msg("app created")
	return ap, nil
}

func (a *Agent) saveVersion(rec appRecord) error {
	rec.Deployment = "" // a version is a definition, not a deployment
	if err := a.store.Put(kindVersions, versionKey(rec.ID, rec.Version), rec); err != nil {
		return err
	}
	a.fail("store.put.version")
	return nil
}

func versionKeyPrefix(appID string) string { return safeKey(appID) + "@" }

func versionKey(appID string, v time.Time) string {
	return versionKeyPrefix(appID) + formatTime(v)
}

func safeKey(appID string) string { return marathon.SafeID(appID) }

// UpdateOptions say how UpdateApp treats its body.
type UpdateOptions struct {
	// Partial: only the fields in the body change (Marathon's PUT default
	// and PATCH); otherwise the body replaces the definition.
	Partial bool
	Force   bool
	// AllowCreate: an unknown app is created (PUT).
	AllowCreate bool
}

// UpdateApp changes an app. A change of instances alone scales it; any
// other change restarts its tasks with the new configuration. It reports
// whether the app was created.
func (a *Agent) UpdateApp(ctx context.Context, id string, body []byte, opts UpdateOptions) (DeploymentResult, bool, error) {
	canon, err := marathon.ValidateID(id)
	if err != nil {
		return DeploymentResult{}, false, err
	}
	upd, err := marathon.DecodeObject(body)
	if err != nil {
		return DeploymentResult{}, false, err
	}
	if bid, ok := upd["id"].(string); ok && marathon.CanonicalID(bid) != canon {
		return DeploymentResult{}, false, &marathon.ValidationError{Details: []marathon.Detail{{
			Path: "/id", Errors: []string{fmt.Sprintf("the id in the body (%s) differs from the id in the URL (%s)", marathon.CanonicalID(bid), canon)}}}}
	}
	upd["id"] = canon
	type updated struct {
		dr      DeploymentResult
		created bool
	}
	r, err := call(a, ctx, func() (updated, error) {
		ap := a.apps[canon]
		if ap == nil {
			if !opts.AllowCreate {
				return updated{}, appNotFound(canon)
			}
			spec, err := marathon.ParseObject(upd, a.opts)
			if err != nil {
				return updated{}, err
			}
			if err := a.appClashes(spec); err != nil {
				return updated{}, err
			}
			ap, err := a.addApp(spec, upd)
			if err != nil {
				return updated{}, err
			}
			d := a.startDeployment(ap, [][]string{{ActionStart}, {ActionScale}}, nil, time.Time{})
			a.touchApp(ap)
			return updated{DeploymentResult{DeploymentID: d.ID, Version: ap.rec.Version}, true}, nil
		}
		if ap.rec.Deleting {
			return updated{}, &LockedError{Deployments: []string{ap.deployID}}
		}
		if err := checkLock(ap, opts.Force); err != nil {
			return updated{}, err
		}
		doc := upd
		if opts.Partial {
			doc = mergeUpdate(ap.doc, upd)
		}
		dr, err := a.changeApp(ap, doc, "")
		return updated{dr: dr}, err
	})
	return r.dr, r.created, err
}

// mergeUpdate lays a partial update over an app's definition. A change of
// networks brings its own ports: the old mode's port definitions do not
// carry over (nor the old mappings to host networking).
func mergeUpdate(old, upd map[string]any) map[string]any {
	doc := make(map[string]any, len(old)+len(upd))
	maps.Copy(doc, old)
	maps.Copy(doc, upd)
	if _, ok := upd["networks"]; !ok {
		return doc
	}
	if _, given := upd["portDefinitions"]; !given {
		delete(doc, "portDefinitions")
	}
	if c, ok := doc["container"].(map[string]any); ok {
		if _, given := upd["container"]; !given {
			if nets, _ := upd["networks"].([]any); len(nets) == 0 || isHostNetwork(nets[0]) {
				c = maps.Clone(c)
				delete(c, "portMappings")
				doc["container"] = c
			}
		}
	}
	return doc
}

// changeApp gives an app a new definition and starts the deployment: a
// scale when only instances changed, a restart otherwise. restartAll forces
// a restart (POST /restart) with the given reason.
func (a *Agent) changeApp(ap *app, doc map[string]any, restartAll string) (DeploymentResult, error) {
	spec, err := marathon.ParseObject(doc, a.opts)
	if err != nil {
		return DeploymentResult{}, err
	}
	if err := marathon.ValidateUpdate(ap.spec, spec); err != nil {
		return DeploymentResult{}, err
	}
	if err := a.assignServicePorts(spec, nil, nil); err != nil {
		return DeploymentResult{}, err
	}
	rendered, err := marathon.Render(spec, doc)
	if err != nil {
		return DeploymentResult{}, err
	}
	def, err := json.Marshal(rendered)
	if err != nil {
		return DeploymentResult{}, err
	}
	scale := restartAll == "" && scaleOnly(ap.spec, spec)
	prev := ap.rec
	ver := a.nextVersion()
	rec := ap.rec
	rec.Version, rec.LastScalingAt, rec.Definition = ver, ver, def
	if !scale {
		rec.LastConfigChangeAt = ver
	}
	if err := a.saveVersion(rec); err != nil {
		return DeploymentResult{}, err
	}
	oldSpec, oldDoc := ap.spec, ap.doc
	ap.rec, ap.spec, ap.doc = rec, spec, rendered
	if err := a.saveApp(ap); err != nil {
		ap.rec, ap.spec, ap.doc = prev, oldSpec, oldDoc
		return DeploymentResult{}, err
	}
	steps := [][]string{{ActionScale}}
	if !scale {
		steps = [][]string{{ActionRestart}}
		ap.delay.reset()
	}
	d := a.startDeployment(ap, steps, &prev, time.Time{})
	a.log.Info().Str("app_id", ap.id()).Bool("scale_only", scale).Int("instances", spec.Instances).Msg("app updated")
	a.touchApp(ap)
	return DeploymentResult{DeploymentID: d.ID, Version: ver}, nil
}

// RollbackApp puts an app back to one of its versions (PUT with only
// "version" in the body).
func (a *Agent) RollbackApp(ctx context.Context, id, version string, force bool) (DeploymentResult, error) {
	canon, err := marathon.ValidateID(id)
	if err != nil {
		return DeploymentResult{}, err
	}
	return call(a, ctx, func() (DeploymentResult, error) {
		ap := a.apps[canon]
		if ap == nil {
			return DeploymentResult{}, appNotFound(canon)
		}
		if err := checkLock(ap, force); err != nil {
			return DeploymentResult{}, err
		}
		old, err := a.versionRecord(canon, version)
		if err != nil {
			return DeploymentResult{}, err
		}
		doc, err := marathon.DecodeObject(old.Definition)
		if err != nil {
			return DeploymentResult{}, err
		}
		return a.changeApp(ap, doc, "")
	})
}

// RestartApp replaces every task of an app with a new one of the same
// configuration (in place for persistent volumes).
func (a *Agent) RestartApp(ctx context.Context, id string, force bool) (DeploymentResult, error) {
	canon, err := marathon.ValidateID(id)
	if err != nil {
		return DeploymentResult{}, err
	}
	return call(a, ctx, func() (DeploymentResult, error) {
		ap := a.apps[canon]
		if ap == nil || ap.rec.Deleting {
			return DeploymentResult{}, appNotFound(canon)
		}
		if err := checkLock(ap, force); err != nil {
			return DeploymentResult{}, err
		}
		return a.changeApp(ap, ap.doc, "restart")
	})
}

// DeleteApp removes an app: its tasks are killed, its volumes deleted and
// its reservations released. Removing an app that is being removed
// answers with the same deployment.
func (a *Agent) DeleteApp(ctx context.Context, id string, force bool) (DeploymentResult, error) {
	canon, err := marathon.ValidateID(id)
	if err != nil {
		return DeploymentResult{}, err
	}
	return call(a, ctx, func() (DeploymentResult, error) {
		ap := a.apps[canon]
		if ap == nil {
			return DeploymentResult{}, appNotFound(canon)
		}
		if ap.rec.Deleting && ap.deployID != "" {
			d := a.deployments[ap.deployID]
			return DeploymentResult{DeploymentID: d.ID, Version: d.Version}, nil
		}
		if err := checkLock(ap, force); err != nil {
			return DeploymentResult{}, err
		}
		return a.removeApp(ap, "app removal started")
	})
}

// removeApp marks an app for removal (persisted first: nothing happens
// when it cannot be) and starts the deployment that decommissions its
// instances.
func (a *Agent) removeApp(ap *app, logMsg string) (DeploymentResult, error) {
	ap.rec.Deleting = true
	if err := a.saveApp(ap); err != nil {
		ap.rec.Deleting = false
		return DeploymentResult{}, err
	}
	ver := a.nextVersion()
	d := a.startDeployment(ap, [][]string{{ActionStop}}, nil, ver)
	a.log.Info().Str("app_id", ap.id()).Msg(logMsg)
	a.touchApp(ap)
	return DeploymentResult{DeploymentID: d.ID, Version: ver}, nil
}

var taskIDPattern = regexp.MustCompile(`^([a-z0-9][a-z0-9\-._]*)\.instance-([0-9a-f\-]{36})\._app\.([0-9]+)$`)

// TaskAppID returns the safe app id a task id starts with, or "".
func TaskAppID(taskID string) string {
	m := taskIDPattern.FindStringSubmatch(taskID)
	if m == nil {
		return ""
	}
	return m[1]
}

// KillTasks kills tasks by id. Plain kills relaunch the tasks in place;
// scale also lowers the apps' instances (stopped resident instances keep
// their reservations); wipe also destroys the instances' volumes and
// releases their reservations, so new instances replace them. Unknown ids
// are ignored, as Marathon does. It returns the tasks, or, with scale, the
// deployment.
func (a *Agent) KillTasks(ctx context.Context, ids []string, scale, wipe, force bool) ([]*TaskView, *DeploymentResult, error) {
	if scale && wipe {
		return nil, nil, errorf(ErrInvalid, "You cannot use scale and wipe at the same time.")
	}
	for _, id := range ids {
		if TaskAppID(id) == "" {
			return nil, nil, errorf(ErrInvalid, "Invalid task id '%s'.", id)
		}
	}
	type result struct {
		tasks []*TaskView
		dr    *DeploymentResult
	}
	r, err := call(a, ctx, func() (result, error) {
		found := a.instancesOfTasks(ids)
		var res result
		for _, inst := range found {
			res.tasks = append(res.tasks, a.taskView(a.apps[inst.rec.AppID], inst))
		}
		switch {
		case scale:
			dr, err := a.killAndScale(found, force)
			res.dr = dr
			return res, err
		case wipe:
			for _, inst := range found {
				a.log.Info().Str("instance_id", inst.id()).Msg("wiping instance: its volumes will be destroyed")
				a.setGoal(inst, GoalDecommissioned)
			}
		default:
			for _, inst := range found {
				if t := inst.task(); t != nil && t.active() && inst.rec.Goal == GoalRunning {
					inst.killRequested = true
					a.touchInstance(inst)
				}
			}
		}
		return res, nil
	})
	if err != nil {
		return nil, nil, err
	}
	if r.tasks == nil {
		r.tasks = []*TaskView{}
	}
	return r.tasks, r.dr, nil
}

// instancesOfTasks returns the instances whose current tasks have the ids,
// once each, ignoring unknown ids.
func (a *Agent) instancesOfTasks(ids []string) []*instance {
	var found []*instance
	seen := map[*instance]bool{}
	for _, id := range ids {
		inst := a.taskIndex[id]
		if inst == nil || seen[inst] || taskIDOf(inst) != id || a.apps[inst.rec.AppID] == nil {
			continue
		}
		seen[inst] = true
		found = append(found, inst)
	}
	return found
}

// killAndScale stops the instances and lowers their apps' instances by as
// many (a task kill with scale).
func (a *Agent) killAndScale(found []*instance, force bool) (*DeploymentResult, error) {
	byApp := map[string][]*instance{}
	for _, inst := range found {
		byApp[inst.rec.AppID] = append(byApp[inst.rec.AppID], inst)
	}
	appIDs := make([]string, 0, len(byApp))
	for id := range byApp {
		appIDs = append(appIDs, id)
	}
	sort.Strings(appIDs)
	for _, id := range appIDs {
		if err := checkLock(a.apps[id], force); err != nil {
			return nil, err
		}
	}
	var dr *DeploymentResult
	for _, id := range appIDs {
		ap := a.apps[id]
		victims := 0
		for _, inst := range byApp[id] {
			if inst.rec.Goal == GoalRunning {
				victims++
				if ap.spec.HasPersistentVolumes() {
					a.setGoal(inst, GoalStopped)
				} else {
					a.setGoal(inst, GoalDecommissioned)
				}
			}
		}
		doc := maps.Clone(ap.doc)
		doc["instances"] = max(0, ap.spec.Instances-victims)
		r, err := a.changeApp(ap, doc, "")
		if err != nil {
			return nil, err
		}
		dr = &r
	}
	if dr == nil {
		dr = &DeploymentResult{DeploymentID: newUUID(), Version: a.nextVersion()}
	}
	return dr, nil
}

// ResetDelay forgets an app's launch backoff (DELETE /v2/queue/{id}/delay).
func (a *Agent) ResetDelay(ctx context.Context, id string) error {
	canon := marathon.CanonicalID(id)
	_, err := call(a, ctx, func() (struct{}, error) {
		ap := a.apps[canon]
		if ap == nil || ap.rec.Deleting || !a.queued(ap) {
			return struct{}{}, errorf(ErrNotFound, "Application %s not found in tasks queue.", canon)
		}
		ap.delay.reset()
		for _, inst := range a.appInstances(canon) {
			a.touchInstance(inst)
		}
		return struct{}{}, nil
	})
	return err
}

// queued reports whether an app is in the launch queue: an instance wants
// to run and has no task.
func (a *Agent) queued(ap *app) bool {
	for _, inst := range a.appInstances(ap.id()) {
		if t := inst.task(); inst.rec.Goal == GoalRunning && (t == nil || !t.active()) {
			return true
		}
	}
	return false
}

// CancelDeployment stops a deployment. Forced, it only stops it (the apps
// stay as they are and converge to their definitions); otherwise the
// change is rolled back in a new deployment, whose result is returned: the
// apps and groups go back to what they were before it, apps with volumes
// on the same reservations and data.
func (a *Agent) CancelDeployment(ctx context.Context, id string, force bool) (*DeploymentResult, error) {
	return call(a, ctx, func() (*DeploymentResult, error) {
		d := a.deployments[id]
		if d == nil {
			return nil, errorf(ErrNotFound, "DeploymentPlan %s does not exist", id)
		}
		if force {
			a.log.Info().Str("deployment_id", d.ID).Msg("deployment cancelled on request")
			a.finishDeployment(d, false)
			return nil, nil
		}
		if d.Targets == nil && d.Removed == nil && len(d.affected()) == 1 {
			// A change of one app through /v2/apps.
			ap := a.apps[d.affected()[0]]
			if ap == nil {
				return nil, errorf(ErrNotFound, "DeploymentPlan %s does not exist", id)
			}
			return a.rollBack(ap, d)
		}
		return a.rollBackChange(d)
	})
}

// rollBackChange undoes a change of many apps and groups: the records
// before it become the targets of a new change.
func (a *Agent) rollBackChange(d *deployment) (*DeploymentResult, error) {
	ch := newChange(d.Group)
	for id, prev := range d.Previous {
		if prev == nil {
			ch.removed[id] = true
			continue
		}
		spec, doc, err := marathon.Decode(prev.Definition)
		if err != nil {
			return nil, err
		}
		marathon.Normalize(spec)
		ch.apps[id] = &appTarget{spec: spec, doc: doc, path: ""}
	}
	for id, prev := range d.PreviousGroups {
		if prev == nil {
			ch.dropped[id] = true
			continue
		}
		g := *prev
		ch.groups[id] = &g
	}
	a.log.Info().Str("deployment_id", d.ID).Msg("deployment rolled back on request")
	a.finishDeployment(d, false)
	nd, err := a.deployChange(ch, true, false)
	if err != nil {
		return nil, err
	}
	return &DeploymentResult{DeploymentID: nd.ID, Version: nd.Version}, nil
}

// rollBack undoes the change a deployment of one app is making, in a new
// deployment.
func (a *Agent) rollBack(ap *app, d *deployment) (*DeploymentResult, error) {
	prev := d.Previous[ap.id()]
	switch {
	case prev != nil:
		doc, err := marathon.DecodeObject(prev.Definition)
		if err != nil {
			return nil, err
		}
		a.log.Info().Str("deployment_id", d.ID).Msg("deployment rolled back on request")
		a.finishDeployment(d, false)
		dr, err := a.changeApp(ap, doc, "")
		if err != nil {
			return nil, err
		}
		return &dr, nil
	case ap.rec.Deleting:
		// Undo a removal: keep the app; instances already gone are
		// replaced by new ones.
		a.finishDeployment(d, false)
		ap.rec.Deleting = false
		if err := a.saveApp(ap); err != nil {
			ap.rec.Deleting = true
			return nil, err
		}
		for _, inst := range a.appInstances(ap.id()) {
			if inst.rec.Goal == GoalDecommissioned && inst.rec.Reservation != nil && !inst.rec.VolumesDestroyed {
				a.setGoal(inst, GoalRunning)
			}
		}
		d2 := a.startDeployment(ap, [][]string{{ActionScale}}, nil, time.Time{})
		a.touchApp(ap)
		return &DeploymentResult{DeploymentID: d2.ID, Version: ap.rec.Version}, nil
	default:
		// Undo a creation: remove the app.
		a.finishDeployment(d, false)
		dr, err := a.removeApp(ap, "app removal started (creation rolled back)")
		if err != nil {
			return nil, err
		}
		return &dr, nil
	}
}

// AppVersions lists an app's versions, newest first.
func (a *Agent) AppVersions(id string) ([]time.Time, error) {
	canon := marathon.CanonicalID(id)
	s := a.Snapshot()
	if s.App(canon) == nil {
		return nil, appNotFound(canon)
	}
	keys, err := a.store.Keys(kindVersions)
	if err != nil {
		return nil, err
	}
	prefix := versionKeyPrefix(canon)
	out := []time.Time{}
	for _, k := range keys {
		if v, ok := strings.CutPrefix(k, prefix); ok {
			if t, err := time.Parse(timeFormat, v); err == nil {
				out = append(out, t)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].After(out[j]) })
	return out, nil
}

// AppVersion is one version of an app's definition.
type AppVersion struct {
	Definition         map[string]any
	Version            time.Time
	LastScalingAt      time.Time
	LastConfigChangeAt time.Time
}

// AppVersion returns one version of an app's definition.
func (a *Agent) AppVersion(id, version string) (*AppVersion, error) {
	canon := marathon.CanonicalID(id)
	if a.Snapshot().App(canon) == nil {
		return nil, appNotFound(canon)
	}
	rec, err := a.versionRecord(canon, version)
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(rec.Definition, &doc); err != nil {
		return nil, err
	}
	return &AppVersion{Definition: doc, Version: rec.Version, LastScalingAt: rec.LastScalingAt, LastConfigChangeAt: rec.LastConfigChangeAt}, nil
}

func (a *Agent) versionRecord(appID, version string) (*appRecord, error) {
	t, err := time.Parse(time.RFC3339Nano, version)
	if err != nil {
		return nil, errorf(ErrNotFound, "App '%s' does not exist in version %s", appID, version)
	}
	var rec appRecord
	ok, err := a.store.Get(kindVersions, versionKey(appID, t), &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errorf(ErrNotFound, "App '%s' does not exist in version %s", appID, version)
	}
	return &rec, nil
}

func isHostNetwork(n any) bool {
	m, _ := n.(map[string]any)
	mode, _ := m["mode"].(string)
	return mode == marathon.NetworkHost
}

// sameJSON compares two values by their JSON.
// Raw JSON inside them (unreachableStrategy, readiness checks) may differ
// in key order and spacing, so both sides are decoded before comparing.
func sameJSON(x, y any) bool {
	var vx, vy any
	bx, err1 := json.Marshal(x)
	by, err2 := json.Marshal(y)
	if err1 != nil || err2 != nil || json.Unmarshal(bx, &vx) != nil || json.Unmarshal(by, &vy) != nil {
		return false
	}
	return reflect.DeepEqual(vx, vy)
}
