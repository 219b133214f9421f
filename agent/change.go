package agent

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/agent/plan"
)

// change is a change of many apps and groups at once (a group's, or a list
// of apps'): what one deployment will make of them.
type change struct {
	// group is the group a group change is about, "" for a list of apps.
	group string
	// apps are the apps the change creates or changes, by id.
	apps map[string]*appTarget
	// removed are the apps the change removes.
	removed map[string]bool
	// groups are the group records the change writes; dropped the ones it
	// deletes.
	groups  map[string]*groupRecord
	dropped map[string]bool
	// snapshot: record a version of the group after the change.
	snapshot bool
	// restart: replace these apps' tasks even if their configuration is
	// the same (a rollback of a restart).
	restart map[string]bool
}

// appTarget is an app as a change wants it.
type appTarget struct {
	spec *marathon.App
	doc  map[string]any // the definition as given, unknown fields included
	path string         // where in the request it came from, for 422 details
}

func newChange(group string) *change {
	return &change{group: group, apps: map[string]*appTarget{}, removed: map[string]bool{},
		groups: map[string]*groupRecord{}, dropped: map[string]bool{}, restart: map[string]bool{}}
}

// visibleApps are the apps the API shows: not being removed.
func (a *Agent) visibleApps() map[string]*app {
	out := make(map[string]*app, len(a.apps))
	for id, ap := range a.apps {
		if !ap.rec.Deleting && !ap.rec.Removing {
			out[id] = ap
		}
	}
	return out
}

// planApps are the apps before (original) and after (target) a change, as
// package plan needs them, with the dependencies of apps and of their
// groups resolved to apps. The target's dependencies on ids that name
// neither an app nor a group are returned, by the app that has them.
func (a *Agent) planApps(ch *change) (original, target map[string]plan.App, missing map[string][]string) {
	original, target = map[string]plan.App{}, map[string]plan.App{}
	before, specs := map[string]*marathon.App{}, map[string]*marathon.App{}
	for id, ap := range a.visibleApps() {
		before[id] = ap.spec
		if !ch.removed[id] {
			specs[id] = ap.spec
		}
	}
	for id, t := range ch.apps {
		specs[id] = t.spec
	}
	groups := map[string]*groupRecord{}
	for id, g := range a.groups {
		if !ch.dropped[id] {
			groups[id] = g
		}
	}
	for id, g := range ch.groups {
		groups[id] = g
	}
	// The original's dependencies order the stops (dependents first); a
	// missing one there is no error of this change.
	for id, spec := range before {
		ap := a.apps[id]
		deps := resolveDependencies(id, spec, before, a.groups, nil)
		original[id] = plan.App{ID: id, Instances: spec.Instances, Config: configKey(spec, ap.rec.LastConfigChangeAt), Dependencies: deps}
	}
	missing = map[string][]string{}
	for id, spec := range specs {
		key := configKey(spec, time.Time{})
		if ch.restart[id] {
			key += " restart"
		}
		deps := resolveDependencies(id, spec, specs, groups, missing)
		target[id] = plan.App{ID: id, Instances: spec.Instances, Config: key, Dependencies: deps}
	}
	return original, target, missing
}

// resolveDependencies turns an app's dependencies, and those of the groups
// it is in, into the apps they name: an app id, or every app under a
// group id. A dependency that names neither is added to missing (when
// given) under the app's id.
func resolveDependencies(appID string, spec *marathon.App, specs map[string]*marathon.App, groups map[string]*groupRecord, missing map[string][]string) []string {
	resolve := func(dep string) []string {
		if _, ok := specs[dep]; ok {
			return []string{dep}
		}
		var out []string
		for id := range specs {
			if under(id, dep) && id != appID {
				out = append(out, id)
			}
		}
		if len(out) == 0 && groups[dep] == nil && missing != nil {
			missing[appID] = append(missing[appID], dep)
		}
		return out
	}
	var deps []string
	for _, d := range spec.Dependencies {
		deps = append(deps, resolve(d)...)
	}
	for g := parentGroup(appID); ; g = parentGroup(g) {
		if rec := groups[g]; rec != nil {
			for _, d := range rec.Dependencies {
				deps = append(deps, resolve(d)...)
			}
		}
		if g == "/" {
			break
		}
	}
	return deps
}

// dependencyErrors turns a dependency cycle into a 422 detail at the path
// of the app of the change that has it.
func dependencyErrors(ch *change, cycle *plan.CycleError) error {
	if cycle == nil {
		return nil
	}
	p := "/"
	if t := ch.apps[cycle.Path[0]]; t != nil {
		p = t.path + "/dependencies"
	}
	return &marathon.ValidationError{Details: []marathon.Detail{{Path: p, Errors: []string{"dependency cycle: " + strings.Join(cycle.Path, " -> ")}}}}
}

// logMissingDependencies says which dependencies of the apps of a change
// name neither an app nor a group. Marathon accepts them (a dependency
// only orders what exists), and so does mesolite: such a dependency
// orders nothing until an app or group of that id appears.
func (a *Agent) logMissingDependencies(ch *change, missing map[string][]string) {
	ids := make([]string, 0, len(missing))
	for id := range missing {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if ch.apps[id] == nil {
			continue // an app the change does not touch keeps its dependencies
		}
		a.log.Info().Str("app_id", id).Strs("dependencies", missing[id]).
			Msg("dependencies name neither an app nor a group: accepted, as Marathon does; they order nothing until one exists")
	}
}

// prepareTargets renders the apps of a change and assigns their service
// ports, checking each against the app it replaces.
func (a *Agent) prepareTargets(ch *change) error {
	var pending []*marathon.App
	for _, id := range sortedTargetIDs(ch.apps) {
		t := ch.apps[id]
		if old := a.apps[id]; old != nil && !old.rec.Deleting {
			if err := marathon.ValidateUpdate(old.spec, t.spec); err != nil {
				return marathon.PrefixDetails(err, t.path)
			}
		}
		if err := a.assignServicePorts(t.spec, pending, ch.removed); err != nil {
			return marathon.PrefixDetails(err, t.path)
		}
		pending = append(pending, t.spec)
	}
	return nil
}

func sortedTargetIDs(m map[string]*appTarget) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// deployChange validates a change, computes its plan and, unless dryRun,
// records and starts its deployment. Nothing is written when it fails:
// validation, dependencies and locks are checked first.
func (a *Agent) deployChange(ch *change, force, dryRun bool) (*deployment, error) {
	if err := a.clashes(ch); err != nil {
		return nil, err
	}
	if err := a.prepareTargets(ch); err != nil {
		return nil, err
	}
	original, target, missing := a.planApps(ch)
	steps, err := plan.Compute(original, target)
	var cycle *plan.CycleError
	if err != nil {
		cycle, _ = err.(*plan.CycleError)
		if cycle == nil {
			return nil, err
		}
	}
	if err := dependencyErrors(ch, cycle); err != nil {
		return nil, err
	}
	if !dryRun {
		a.logMissingDependencies(ch, missing)
	}
	d := &deployment{ID: newUUID(), Plan: steps, CurrentStep: 1, Group: ch.group}
	affected := d.affected()
	if !force {
		if err := a.lockedBy(affected); err != nil {
			return nil, err
		}
	}
	if dryRun {
		return d, nil
	}
	a.forceOut(affected, "replaced by a forced change")
	d.Version = a.nextVersion()
	d.Started = time.Now().UTC()
	if err := a.recordChange(d, ch); err != nil {
		return nil, err
	}
	if err := a.store.Put(kindDeployments, d.ID, d); err != nil {
		return nil, fmt.Errorf("persist deployment: %w", err)
	}
	a.fail("store.put.deployment")
	if err := a.apply(d); err != nil {
		// The intent is on disk: applying it again is retried until it
		// succeeds (and done by restore after a restart).
		a.log.Error().Err(err).Str("deployment_id", d.ID).Msg("apply deployment; retrying")
		a.retryApply(d)
	}
	a.begin(d)
	return d, nil
}

// lockedBy fails with a *LockedError when a deployment holds any of the
// apps.
func (a *Agent) lockedBy(appIDs []string) error {
	var ids []string
	seen := map[string]bool{}
	for _, id := range appIDs {
		if ap := a.apps[id]; ap != nil && ap.deployID != "" && !seen[ap.deployID] {
			seen[ap.deployID] = true
			ids = append(ids, ap.deployID)
		}
	}
	if len(ids) > 0 {
		return &LockedError{Deployments: ids}
	}
	return nil
}

// recordChange fills a deployment's before and after: the records of the
// apps and groups it changes, new versions for the changed ones.
func (a *Agent) recordChange(d *deployment, ch *change) error {
	d.Previous, d.Targets = map[string]*appRecord{}, map[string]*appRecord{}
	d.PreviousGroups, d.TargetGroups = map[string]*groupRecord{}, map[string]*groupRecord{}
	configChanged, affected := map[string]bool{}, map[string]bool{}
	for _, s := range d.Plan {
		for _, act := range s {
			configChanged[act.App] = act.Kind == ActionRestart
			affected[act.App] = true
		}
	}
	for _, id := range sortedTargetIDs(ch.apps) {
		t := ch.apps[id]
		rendered, err := marathon.Render(t.spec, t.doc)
		if err != nil {
			return err
		}
		def, err := json.Marshal(rendered)
		if err != nil {
			return err
		}
		rec := &appRecord{ID: id, Version: d.Version, LastScalingAt: d.Version, LastConfigChangeAt: d.Version, Definition: def}
		if affected[id] {
			// The app points at its deployment, so that losing the
			// deployment's record is noticed (recover.go).
			rec.Deployment = d.ID
		}
		if old := a.apps[id]; old != nil && !old.rec.Deleting {
			prev := old.rec
			d.Previous[id] = &prev
			if !configChanged[id] && !old.rec.Removing {
				rec.LastConfigChangeAt = old.rec.LastConfigChangeAt
			}
			rec.LastTaskFailure = old.rec.LastTaskFailure
		} else {
			d.Previous[id] = nil
		}
		d.Targets[id] = rec
	}
	for id := range ch.removed {
		if ap := a.apps[id]; ap != nil {
			prev := ap.rec
			d.Previous[id] = &prev
			d.Removed = append(d.Removed, id)
		}
	}
	sort.Strings(d.Removed)
	for id, g := range ch.groups {
		d.PreviousGroups[id] = a.groups[id]
		c := *g
		c.Version = d.Version
		d.TargetGroups[id] = &c
	}
	for id := range ch.dropped {
		if g := a.groups[id]; g != nil {
			d.PreviousGroups[id] = g
		}
	}
	return nil
}

// apply makes the records say what a recorded deployment wants: the
// targets' versions and app records, the removed apps marked removing, the
// group records, the group's new version. Each write is idempotent, so a
// crash anywhere is finished by applying again (restore).
func (a *Agent) apply(d *deployment) error {
	for _, id := range sortedRecordIDs(d.Targets) {
		if err := a.applyTarget(d.Targets[id]); err != nil {
			return err
		}
	}
	for _, id := range d.Removed {
		ap := a.apps[id]
		if ap == nil || ap.rec.Removing || ap.rec.Deleting {
			continue
		}
		prev := ap.rec
		ap.rec.Removing, ap.rec.Deployment = true, d.ID
		if err := a.saveApp(ap); err != nil {
			ap.rec = prev
			return err
		}
		a.touchApp(ap)
	}
	for id, prev := range d.PreviousGroups {
		if _, kept := d.TargetGroups[id]; kept || prev == nil || a.groups[id] == nil {
			continue
		}
		if err := a.store.Delete(kindGroups, groupKey(id)); err != nil {
			return err
		}
		delete(a.groups, id)
	}
	for id, g := range d.TargetGroups {
		if cur := a.groups[id]; cur != nil && !cur.Version.Before(g.Version) {
			continue
		}
		if err := a.store.Put(kindGroups, groupKey(id), g); err != nil {
			return err
		}
		a.groups[id] = g
	}
	return a.snapshotChange(d)
}

// applyTarget writes an app's target version and record, unless the app is
// already there (or further).
func (a *Agent) applyTarget(rec *appRecord) error {
	ap := a.apps[rec.ID]
	if ap != nil && !ap.rec.Version.Before(rec.Version) && !ap.rec.Deleting {
		return nil
	}
	next, err := appFromRecord(*rec)
	if err != nil {
		return err
	}
	if err := a.saveVersion(*rec); err != nil {
		return err
	}
	if ap != nil {
		configChanged := ap.rec.LastConfigChangeAt != rec.LastConfigChangeAt
		keep := ap.deployID
		next.delay, next.waiting, next.deployID = ap.delay, ap.waiting, keep
		if configChanged {
			next.delay.reset()
		}
	}
	if err := a.saveApp(next); err != nil {
		return err
	}
	a.apps[rec.ID] = next
	if rec.Version.After(a.lastVersion) {
		a.lastVersion = rec.Version
	}
	a.touchApp(next)
	return nil
}

// snapshotChange records the new version of the group a group change is
// about, once.
func (a *Agent) snapshotChange(d *deployment) error {
	if d.Group == "" {
		return nil
	}
	s := a.snapshotGroup(d.Group, d.Version)
	if s == nil {
		return nil // the change removed the group
	}
	key := groupVersionKey(d.Group, d.Version)
	if ok, err := a.store.Get(kindGroupVersions, key, &groupSnapshot{}); err != nil || ok {
		return err
	}
	return a.store.Put(kindGroupVersions, key, s)
}

// retryApply applies a recorded deployment again later, until it works.
func (a *Agent) retryApply(d *deployment) {
	time.AfterFunc(2*time.Second, func() {
		a.post(func() {
			if a.deployments[d.ID] != d {
				return
			}
			if err := a.apply(d); err != nil {
				a.retryApply(d)
				return
			}
			for _, id := range d.affected() {
				if ap := a.apps[id]; ap != nil {
					ap.deployID = d.ID
					a.touchApp(ap)
				}
			}
			a.dirtyDeployments[d.ID] = true
		})
	})
}
