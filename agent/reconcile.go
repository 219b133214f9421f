package agent

import (
	"context"
	"math"
	"sort"
	"time"

	"github.com/mesolite/mesolite/metrics"
	"github.com/mesolite/mesolite/sandbox"
)

// reconcileApp moves an app's instances towards what the app wants: the
// number of instances, the current configuration, or nothing at all when
// the app is being removed. It only sets goals and starts kills; step
// does the rest for each instance.
func (a *Agent) reconcileApp(ap *app) {
	if ap.deployID != "" {
		a.dirtyDeployments[ap.deployID] = true
	}
	if a.held(ap) {
		return // its deployment step has not come yet
	}
	insts := a.appInstances(ap.id())
	if ap.rec.Removing && !ap.rec.Deleting {
		a.stopRemoving(ap, insts)
		return
	}
	if ap.rec.Deleting {
		for _, inst := range insts {
			if inst.rec.Goal != GoalDecommissioned {
				a.setGoal(inst, GoalDecommissioned)
			}
		}
		if len(insts) == 0 {
			a.forgetApp(ap)
		}
		return
	}
	var active, stopped []*instance
	for _, inst := range insts {
		switch inst.rec.Goal {
		case GoalRunning:
			active = append(active, inst)
		case GoalStopped:
			stopped = append(stopped, inst)
		}
	}
	if ap.spec.HasPersistentVolumes() {
		a.scaleResident(ap, active, stopped)
	} else {
		a.scaleEphemeral(ap, active)
	}
	a.updateWaiting(ap)
	a.watchReadiness(ap)
}

// stopRemoving stops the tasks of an app a group change removes: an
// instance with volumes keeps its reservation (a rollback brings it back
// on the same data), one without is released.
func (a *Agent) stopRemoving(ap *app, insts []*instance) {
	for _, inst := range insts {
		switch {
		case inst.rec.Goal == GoalDecommissioned:
		case inst.rec.Reservation != nil && len(inst.rec.Reservation.Volumes) > 0:
			a.setGoal(inst, GoalStopped)
		default:
			a.setGoal(inst, GoalDecommissioned)
		}
	}
}

// outdated reports whether an instance's task runs an older configuration
// than the app's.
func outdated(ap *app, inst *instance) bool {
	t := inst.task()
	return t != nil && t.active() && t.ConfigVersion.Before(ap.rec.LastConfigChangeAt)
}

// serving reports whether an instance's task is running at any version
// and, if the app checks health, healthy.
func serving(ap *app, inst *instance) bool {
	t := inst.task()
	if t == nil || t.State != TaskRunning {
		return false
	}
	return len(ap.spec.HealthChecks) == 0 || healthy(t, len(ap.spec.HealthChecks))
}

// serves is serving, and for a task of the current configuration whose
// readiness its deployment checks, ready too: Marathon replaces an old
// task only once its successor is healthy and ready.
func (a *Agent) serves(ap *app, inst *instance) bool {
	return serving(ap, inst) && !a.notReady(ap, inst)
}

// healthy: every health check has a result and all are alive.
func healthy(t *Task, checks int) bool {
	if len(t.Health) < checks {
		return false
	}
	for i := 0; i < checks; i++ {
		if !t.Health[i].Alive {
			return false
		}
	}
	return checks > 0
}

// scaleResident keeps the number of running instances of an app with
// persistent volumes at what it wants. Scaling down stops instances but
// keeps their reservations; scaling up reuses stopped ones first (oldest
// reservation first), and only then reserves anew. A configuration change
// replaces tasks in place: the old task is killed first and relaunched on
// its own reservation, never more tasks than reservations.
func (a *Agent) scaleResident(ap *app, active, stopped []*instance) {
	want := ap.spec.Instances
	if len(active) < want {
		sortInstancesForStart(stopped)
		for _, inst := range stopped {
			if len(active) >= want {
				break
			}
			a.setGoal(inst, GoalRunning)
			active = append(active, inst)
		}
		active, _ = a.grow(ap, active, want)
	}
	if len(active) > want {
		for _, inst := range victims(ap, active, len(active)-want) {
			a.setGoal(inst, GoalStopped)
			active = remove(active, inst)
		}
	}
	var old []*instance
	servingCount, pending := 0, 0
	serves := func(inst *instance) bool { return a.serves(ap, inst) }
	for _, inst := range active {
		if outdated(ap, inst) {
			old = append(old, inst)
		}
		if serves(inst) {
			servingCount++
		} else {
			pending++
		}
	}
	minHealthy := int(math.Ceil(float64(want) * ap.spec.UpgradeStrategy.MinimumHealthCapacity))
	busy := func(inst *instance) bool { return inst.busy != "" || inst.task().State == TaskKilling }
	replaceOld(old, serves, servingCount-minHealthy, pending, busy, func(inst *instance) {
		inst.restartFor = "restart"
		inst.cause = metrics.ReasonRestart
		a.kill(inst, "replaced by version "+formatTime(ap.rec.Version))
	})
}

// scaleEphemeral keeps the number of instances of an app without
// persistent volumes at what it wants. A configuration change starts new
// instances first, up to maximumOverCapacity, and decommissions old ones
// as long as minimumHealthCapacity stays serving.
func (a *Agent) scaleEphemeral(ap *app, active []*instance) {
	want := ap.spec.Instances
	var old, current []*instance
	servingCount := 0
	currentPending := 0
	serves := func(inst *instance) bool { return a.serves(ap, inst) }
	for _, inst := range active {
		if outdated(ap, inst) {
			old = append(old, inst)
		} else {
			current = append(current, inst)
			if !serves(inst) {
				currentPending++
			}
		}
		if serves(inst) {
			servingCount++
		}
	}
	limit := want // how many current instances may run beside the old ones
	if len(old) > 0 {
		us := ap.spec.UpgradeStrategy
		minHealthy := int(math.Ceil(float64(want) * us.MinimumHealthCapacity))
		maxCap := int(math.Floor(float64(want) * (1 + us.MaximumOverCapacity)))
		if minHealthy == maxCap && maxCap <= len(active) {
			maxCap++
		}
		limit = min(want, maxCap-len(old))
		var added int
		current, added = a.grow(ap, current, limit)
		currentPending += added
		never := func(*instance) bool { return false }
		replaceOld(old, serves, servingCount-minHealthy, currentPending, never, func(inst *instance) {
			a.setGoal(inst, GoalDecommissioned)
		})
	} else {
		current, _ = a.grow(ap, current, want)
	}
	if len(current) > want {
		for _, inst := range victims(ap, current, len(current)-want) {
			a.setGoal(inst, GoalDecommissioned)
		}
	}
}

// grow adds new instances to list until it holds n, or one cannot be
// recorded. It returns the list and how many it added.
func (a *Agent) grow(ap *app, list []*instance, n int) ([]*instance, int) {
	added := 0
	for len(list) < n {
		inst := a.newInstance(ap)
		if inst == nil {
			break
		}
		list = append(list, inst)
		added++
	}
	return list, added
}

// replaceOld replaces instances that run an older configuration, with
// Marathon's arithmetic: canKill is how many serving ones may go (those
// above ceil(instances × minimumHealthCapacity)); when that leaves no room
// and nothing new is pending, one goes anyway so the change makes
// progress. Old instances that do not serve go first; skip leaves one
// alone this round.
func replaceOld(old []*instance, serves func(*instance) bool, canKill, pending int, skip func(*instance) bool, replace func(*instance)) {
	if len(old) == 0 {
		return
	}
	if canKill < 1 && pending == 0 {
		canKill = 1
	}
	sort.SliceStable(old, func(i, j int) bool { return !serves(old[i]) && serves(old[j]) })
	for _, inst := range old {
		if skip(inst) {
			continue
		}
		if serves(inst) {
			if canKill <= 0 {
				break
			}
			canKill--
		}
		replace(inst)
	}
}

// victims picks n instances to stop, as Marathon does: not yet running
// ones first, then by the app's killSelection (YOUNGEST_FIRST by default).
func victims(ap *app, list []*instance, n int) []*instance {
	c := append([]*instance(nil), list...)
	weight := func(inst *instance) int {
		t := inst.task()
		switch {
		case t == nil || !t.active():
			return 0
		case t.State == TaskStaging:
			return 2
		case t.State == TaskStarting:
			return 3
		case t.State == TaskRunning:
			return 4
		}
		return 5
	}
	since := func(inst *instance) time.Time {
		if t := inst.task(); t != nil {
			if !t.StartedAt.IsZero() {
				return t.StartedAt
			}
			return t.StagedAt
		}
		return inst.rec.Created
	}
	youngest := ap.spec.KillSelection != "OLDEST_FIRST"
	sort.SliceStable(c, func(i, j int) bool {
		wi, wj := weight(c[i]), weight(c[j])
		if wi != wj {
			return wi < wj
		}
		if youngest {
			return since(c[i]).After(since(c[j]))
		}
		return since(c[i]).Before(since(c[j]))
	})
	if n > len(c) {
		n = len(c)
	}
	return c[:n]
}

func remove(list []*instance, x *instance) []*instance {
	for i, v := range list {
		if v == x {
			return append(list[:i:i], list[i+1:]...)
		}
	}
	return list
}

// newInstance records a new instance of an app, goal running. Its
// reservation is made by step.
func (a *Agent) newInstance(ap *app) *instance {
	inst := &instance{rec: instanceRecord{
		ID:      instanceID(ap.id()),
		AppID:   ap.id(),
		Goal:    GoalRunning,
		Created: time.Now().UTC(),
	}}
	if err := a.saveInstance(inst); err != nil {
		return nil
	}
	a.instances[inst.id()] = inst
	a.touchInstance(inst)
	return inst
}

// setGoal changes and persists an instance's goal.
func (a *Agent) setGoal(inst *instance, g Goal) {
	if inst.rec.Goal == g {
		return
	}
	prev := inst.rec.Goal
	inst.rec.Goal = g
	if err := a.saveInstance(inst); err != nil {
		inst.rec.Goal = prev
		a.retryLater(inst, 2*time.Second)
		return
	}
	a.log.Info().Str("instance_id", inst.id()).Str("goal", string(g)).Msg("instance goal changed")
	if prev == GoalStopped && g == GoalRunning {
		inst.cause = metrics.ReasonStart
	}
	a.touchInstance(inst)
}

// step takes the next action for one instance towards its goal. At most
// one Docker operation per instance is in flight (inst.busy); its outcome
// calls step again.
func (a *Agent) step(inst *instance) {
	if inst.busy != "" {
		return
	}
	ap := a.apps[inst.rec.AppID]
	if ap == nil {
		return // an instance whose app record was set aside: left alone
	}
	t := inst.task()
	active := t != nil && t.active()
	switch inst.rec.Goal {
	case GoalRunning:
		if active {
			if !a.synced || !a.dockerUp {
				return
			}
			switch {
			case t.State == TaskKilling:
				a.rekill(inst)
			case inst.killRequested:
				inst.cause = metrics.ReasonKilled
				a.kill(inst, "killed on request")
			case t.State == TaskStaging && t.DockerID == "":
				a.runTask(ap, inst, t) // finish a launch a crash or Docker outage interrupted
			}
			return
		}
		a.placeAndLaunch(ap, inst)
	case GoalStopped:
		if active && a.synced && a.dockerUp {
			if t.State == TaskKilling {
				a.rekill(inst)
			} else {
				a.kill(inst, "instance stopped (scaled down)")
			}
		}
	case GoalDecommissioned:
		if active {
			if a.synced && a.dockerUp {
				if t.State == TaskKilling {
					a.rekill(inst)
				} else {
					a.kill(inst, "instance decommissioned")
				}
			}
			return
		}
		a.decommission(ap, inst)
	}
}

// rekill repeats a kill that a crash or a Docker outage interrupted.
func (a *Agent) rekill(inst *instance) {
	t := inst.task()
	reason := t.KillReason
	t.State = TaskRunning // kill() expects an active, not-yet-killing task
	a.kill(inst, reason)
}

// placeAndLaunch reserves resources for an instance, makes its volumes and
// launches its next task, each step persisted before the next:
//  1. save the reservation (ports and volume ids chosen)
//     crash → recovery holds the reservation and goes on from 2
//  2. create the volume directories
//     crash → a volume directory may exist; creating it again is a no-op
//  3. save VolumesCreated
//  4. launch (see launch)
func (a *Agent) placeAndLaunch(ap *app, inst *instance) {
	if inst.rec.Reservation == nil {
		r, reason := a.reserve(ap, inst)
		if reason != "" {
			if ap.waiting != reason {
				a.log.Warn().Str("app_id", ap.id()).Str("reason", reason).Msg("instance waits for resources")
				ap.waiting = reason
				a.changed = true
			}
			return
		}
		inst.rec.Reservation = r
		if err := a.saveInstance(inst); err != nil {
			inst.rec.Reservation = nil
			a.retryLater(inst, 2*time.Second)
			return
		}
		a.log.Info().Str("instance_id", inst.id()).Ints("host_ports", r.HostPorts).Msg("resources reserved")
		a.claimUnowned(inst)
		ap.waiting = ""
		a.touchInstance(inst)
	}
	if r := inst.rec.Reservation; r.PortsPending && !a.pickPendingPorts(ap, inst) {
		return
	}
	if r := inst.rec.Reservation; !r.VolumesCreated {
		a.createVolumes(ap, inst)
		return
	}
	if !a.synced || !a.dockerUp {
		return
	}
	// Never beside a container that still mounts one of its volumes (of a
	// previous agent or incarnation, being removed).
	if reason := a.fencedBy(inst); reason != "" {
		a.waitFor(ap, reason)
		return
	}
	if wait := time.Until(ap.delay.notBefore); wait > 0 {
		a.wakeAt(ap, ap.delay.notBefore)
		return
	}
	a.launch(ap, inst)
}

// createVolumes makes an instance's volume directories on a worker, then
// records VolumesCreated (steps 2 and 3 of placeAndLaunch); step goes on
// from there.
func (a *Agent) createVolumes(ap *app, inst *instance) {
	r := inst.rec.Reservation
	if len(r.Volumes) == 0 {
		a.onVolumesCreated(inst, "", nil)
		return
	}
	inst.busy = "volumes"
	vols := append([]ReservedVolume(nil), r.Volumes...)
	owner := func(v ReservedVolume) sandbox.VolumeOwner { return a.volumeOwner(inst, v) }
	a.goWork(func(ctx context.Context) {
		var err error
		var failed string
		for _, v := range vols {
			err = a.rt.CreateVolume(ctx, sandbox.Volume{PersistenceID: v.PersistenceID, SizeMiB: v.SizeMiB, Owner: owner(v)})
			a.fail("volume.create")
			if err != nil {
				failed = v.PersistenceID
				break
			}
		}
		a.post(func() {
			inst.busy = ""
			a.onVolumesCreated(inst, failed, err)
		})
	})
}

func (a *Agent) onVolumesCreated(inst *instance, failed string, err error) {
	ap := a.apps[inst.rec.AppID]
	r := inst.rec.Reservation
	if ap == nil || r == nil || a.instances[inst.id()] != inst {
		return
	}
	if err != nil {
		msg := "create volume: " + err.Error()
		if ap.waiting != msg {
			a.log.Error().Err(err).Str("volume", failed).Msg("create volume")
			ap.waiting = msg
			a.changed = true
		}
		a.retryLater(inst, 30*time.Second)
		return
	}
	r.VolumesCreated = true
	if err := a.saveInstance(inst); err != nil {
		r.VolumesCreated = false
		a.retryLater(inst, 2*time.Second)
		return
	}
	if ap.waiting != "" && len(r.Volumes) > 0 {
		ap.waiting = ""
	}
	// A new volume gets its first measurement now, not at the next scan.
	a.startUsageScan()
	a.touchInstance(inst)
}

// decommission destroys a decommissioned instance's volumes, then forgets
// the instance and releases its reservation:
//  1. (goal decommissioned was saved by whoever decided it)
//  2. delete the volume directories
//     crash → recovery deletes them again; deleting a missing one is fine
//  3. save VolumesDestroyed
//  4. delete the sandboxes of its tasks
//     crash → recovery deletes them again (the record still names them)
//  5. delete the instance record, which releases the reservation
//
// Steps 2 and 4 run on workers; each outcome calls step again.
func (a *Agent) decommission(ap *app, inst *instance) {
	r := inst.rec.Reservation
	switch {
	case r != nil && len(r.Volumes) > 0 && !inst.rec.VolumesDestroyed:
		a.destroyVolumes(inst, append([]ReservedVolume(nil), r.Volumes...))
		return
	case !inst.sandboxesRemoved:
		inst.busy = "release"
		var ids []string
		for n := 1; n <= inst.rec.Incarnation; n++ {
			ids = append(ids, taskID(inst.id(), n))
		}
		a.goWork(func(ctx context.Context) {
			a.removeSandboxes(ctx, ids)
			a.post(func() {
				inst.busy = ""
				inst.sandboxesRemoved = true
				a.touchInstance(inst)
			})
		})
		return
	}
	if err := a.store.Delete(kindInstances, inst.id()); err != nil {
		a.log.Error().Err(err).Str("instance_id", inst.id()).Msg("delete instance record")
		a.retryLater(inst, 2*time.Second)
		return
	}
	a.fail("store.delete.instance")
	a.stopHealth(inst)
	a.taskIndex.remove(inst)
	delete(a.instances, inst.id())
	if r != nil {
		for _, v := range r.Volumes {
			a.usage.forget(v.PersistenceID) // its last measurement, else kept forever
		}
	}
	a.log.Info().Str("app_id", ap.id()).Str("instance_id", inst.id()).Msg("instance removed, reservation released")
	a.touchApp(ap)
	a.wakeWaiting()
}

// destroyVolumes deletes an instance's volume directories on a worker,
// then records VolumesDestroyed (steps 2 and 3 of decommission).
func (a *Agent) destroyVolumes(inst *instance, vols []ReservedVolume) {
	inst.busy = "destroy"
	a.goWork(func(ctx context.Context) {
		var err error
		for _, v := range vols {
			err = a.rt.DestroyVolume(ctx, v.PersistenceID)
			a.fail("volume.destroy")
			if err != nil {
				break
			}
		}
		a.post(func() {
			inst.busy = ""
			if err != nil {
				a.log.Error().Err(err).Str("instance_id", inst.id()).Msg("destroy volume; retrying")
				a.retryLater(inst, 10*time.Second)
				return
			}
			for _, v := range vols {
				a.log.Info().Str("volume", v.PersistenceID).Msg("volume destroyed")
			}
			inst.rec.VolumesDestroyed = true
			if a.saveInstance(inst) != nil {
				a.retryLater(inst, 2*time.Second)
				return
			}
			a.touchInstance(inst)
		})
	})
}

// wakeWaiting gives instances that wait for resources another try.
func (a *Agent) wakeWaiting() {
	for _, inst := range a.instances {
		if inst.rec.Goal == GoalRunning && inst.rec.Reservation == nil {
			a.dirtyInstances[inst.id()] = true
		}
	}
}

// wakeAt makes the app's waiting instances try again at t.
func (a *Agent) wakeAt(ap *app, t time.Time) {
	if w, ok := a.wakeups[ap.id()]; ok && !w.After(t) && w.After(time.Now()) {
		return
	}
	a.wakeups[ap.id()] = t
	id := ap.id()
	time.AfterFunc(time.Until(t)+time.Millisecond, func() {
		a.post(func() {
			delete(a.wakeups, id)
			for _, inst := range a.appInstances(id) {
				a.dirtyInstances[inst.id()] = true
			}
		})
	})
}

// updateWaiting clears an app's waiting reason when nothing waits.
func (a *Agent) updateWaiting(ap *app) {
	if ap.waiting == "" {
		return
	}
	for _, inst := range a.appInstances(ap.id()) {
		if inst.rec.Goal == GoalRunning && (inst.rec.Reservation == nil || !inst.rec.Reservation.VolumesCreated) {
			return
		}
	}
	ap.waiting = ""
	a.changed = true
}

// appSettled reports whether an app is where its last deployment wanted
// it: the wanted number of tasks running (and healthy) at the current
// configuration, and nothing else running.
func (a *Agent) appSettled(ap *app) bool {
	running := 0
	for _, inst := range a.appInstances(ap.id()) {
		t := inst.task()
		switch inst.rec.Goal {
		case GoalRunning:
			if t == nil || t.State != TaskRunning || outdated(ap, inst) || !serving(ap, inst) {
				return false
			}
			if t.ConfigVersion.Before(ap.rec.LastConfigChangeAt) {
				return false
			}
			running++
		case GoalStopped:
			if t != nil && t.active() {
				return false
			}
		case GoalDecommissioned:
			return false
		}
	}
	return running == ap.spec.Instances
}

// forgetApp deletes a removed app's records once its last instance is gone.
// The app record goes last: once it is gone, nothing of the app is left on
// disk (its deployment and versions are deleted first), so a crash between
// two deletes leaves an app whose removal recovery finishes, never records
// of an app that no longer exists.
func (a *Agent) forgetApp(ap *app) {
	if d := a.deployments[ap.deployID]; d != nil {
		// Its deployment's stop is done once the app is gone: the
		// deployment moves on now (and ends, when this app was the last it
		// waited for), before the app's records go, so that the app record
		// is the last of them on disk. A deployment that still waits for
		// other apps goes on after.
		delete(a.apps, ap.id())
		a.advance(d)
		a.apps[ap.id()] = ap
		a.dirtyDeployments[d.ID] = true
	}
	a.cfg.Metrics.ForgetApp(ap.id())
	keys, err := a.store.Keys(kindVersions)
	if err != nil {
		a.log.Error().Err(err).Msg("list versions")
		return
	}
	prefix := versionKeyPrefix(ap.id())
	for _, k := range keys {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			if err := a.store.Delete(kindVersions, k); err != nil {
				a.log.Error().Err(err).Msg("delete version")
				return
			}
		}
	}
	if err := a.store.Delete(kindApps, safeKey(ap.id())); err != nil {
		a.log.Error().Err(err).Msg("delete app")
		return
	}
	a.fail("store.delete.app")
	delete(a.apps, ap.id())
	a.log.Info().Str("app_id", ap.id()).Msg("app removed")
	a.bus.publish("app_terminated_event", map[string]any{"appId": ap.id()})
	a.changed = true
}
