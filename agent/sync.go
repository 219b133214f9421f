package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/mesolite/mesolite/metrics"
	"github.com/mesolite/mesolite/sandbox"
)

// startSync reads every container of this agent from Docker on a worker
// and hands the list to onSync. It runs at start, after the event stream
// reconnects, and periodically as a safety net for missed events.
func (a *Agent) startSync(reason string) {
	if a.syncing {
		return
	}
	a.syncing = true
	start := time.Now()
	a.goWork(func(ctx context.Context) {
		list, err := a.rt.List(ctx)
		if err == nil {
			// Exit codes and times of stopped containers need an inspect.
			for i, c := range list {
				if !c.Running {
					if d, ierr := a.rt.Inspect(ctx, c.ID); ierr == nil {
						list[i] = d
					}
				}
			}
		}
		a.post(func() {
			a.syncing = false
			a.onSync(reason, list, err, time.Since(start))
		})
	})
}

// onSync compares what Docker runs with what the tasks say, and settles
// each difference:
//   - a running container of an active task is adopted as it is (not
//     restarted), and its health checks resume with their history;
//   - an active task whose container stopped or vanished is reported
//     TASK_FAILED ("Executor terminated" after an agent restart) and
//     relaunched in place; a KILLING one is recorded TASK_KILLED;
//   - a STAGING task without a running container has its launch finished
//     (create is idempotent: the name is derived from the task);
//   - a stopped container of an ended task is removed;
//   - a container of this agent that no task owns is an orphan: removed
//     after the orphan grace period (only reported in dry-run mode).
func (a *Agent) onSync(reason string, list []sandbox.Container, err error, took time.Duration) {
	if err != nil {
		if a.dockerUp || !a.synced {
			a.log.Warn().Err(err).Str("reason", reason).Msg("docker unavailable; tasks keep their last known state, retrying")
		}
		a.dockerUp = false
		a.changed = true
		if !a.synced {
			a.retrySync(2 * time.Second)
		}
		return
	}
	first := !a.synced
	if !a.dockerUp && a.synced {
		a.log.Info().Msg("docker answers again; reconciling")
	}
	a.synced, a.dockerUp = true, true
	// A task's container is this agent's, named for the task's container
	// id; a container of another agent id is never adopted (handleOrphans
	// removes it).
	byTask := map[string]sandbox.Container{}
	for _, c := range list {
		if c.Labels[sandbox.LabelAgentID] == a.ident.AgentID {
			byTask[c.TaskID()] = c
		}
	}
	owned := map[string]bool{}
	adopted, relaunched := 0, 0
	for _, inst := range a.sortedInstances() {
		t := inst.task()
		if t == nil {
			continue
		}
		c, found := byTask[t.ID]
		if found && c.Name != "" && c.Name != sandbox.ContainerName(t.ContainerID) {
			found = false // an earlier container under the same task id
		}
		if found {
			owned[c.ID] = true
		}
		if inst.busy != "" {
			continue
		}
		ap := a.apps[inst.rec.AppID]
		switch {
		case !t.active():
			if found {
				a.cleanup(inst, t)
			}
		case found && c.Running:
			if t.State == TaskKilling {
				a.touchInstance(inst)
				continue
			}
			if !inst.adopted || t.State != TaskRunning || t.DockerID != c.ID {
				a.adopt(inst, c)
				if first {
					adopted++
				}
			}
		case found && c.State == "created" && t.State == TaskStaging:
			a.touchInstance(inst) // step finishes the launch: start it
		case t.State == TaskKilling:
			a.syncKilled(ap, inst, c, found)
		case t.State == TaskStaging && !found:
			a.touchInstance(inst) // step finishes the launch: create it
		default:
			// The container stopped or vanished while nobody watched.
			if ap != nil {
				a.syncLost(ap, inst, c, found, first)
				relaunched++
			}
		}
	}
	orphans := a.handleOrphans(list, owned)
	if first {
		a.redoLostDeployments()
	}
	for _, inst := range a.instances {
		a.dirtyInstances[inst.id()] = true
	}
	a.changed = true
	if first {
		a.recovery = Recovery{
			Done: true, At: time.Now().UTC(), Adopted: adopted, Relaunched: relaunched,
			Orphans: orphans, Unreadable: len(a.aside), TookSeconds: took.Seconds(),
		}
		a.log.Info().Int("adopted", adopted).Int("relaunched", relaunched).Int("orphans", orphans).
			Int("unreadable", len(a.aside)).Int("apps", len(a.apps)).Int("instances", len(a.instances)).
			Dur("took", took).Msg("recovered")
		a.bus.publish("mesolite_recovered_event", map[string]any{
			"adopted": adopted, "relaunched": relaunched, "orphans": orphans, "unreadable": len(a.aside),
		})
	}
}

// syncKilled records the end of a task a kill was stopping (KILLING) and
// whose container is stopped or gone.
func (a *Agent) syncKilled(ap *app, inst *instance, c sandbox.Container, found bool) {
	t := inst.task()
	code := c.ExitCode
	t.ExitCode = &code
	t.State = TaskKilled
	t.EndedAt = time.Now().UTC()
	t.Message = "Task killed: " + t.KillReason
	// Going on when this save fails is safe: the record keeps the task
	// KILLING and the next start records the kill again.
	_ = a.saveInstance(inst)
	if ap != nil {
		a.emitStatus(ap, inst, t)
	}
	a.touchInstance(inst)
	if found {
		a.cleanup(inst, t)
	}
}

// syncLost records that an active task's container stopped or vanished
// while nobody watched: TASK_FAILED ("Executor terminated" after an agent
// restart); step relaunches it in place.
func (a *Agent) syncLost(ap *app, inst *instance, c sandbox.Container, found, first bool) {
	t := inst.task()
	msg := "Executor terminated"
	if !first {
		msg = "Container stopped while its events were missed"
	}
	a.stopHealth(inst)
	t.State = TaskFailed
	t.Message = msg
	t.EndedAt = time.Now().UTC()
	if found && c.Detailed {
		code := c.ExitCode
		t.ExitCode = &code
		if !c.FinishedAt.IsZero() {
			t.EndedAt = c.FinishedAt.UTC()
		}
	}
	ap.delay.fail(time.Now(), ap.spec)
	a.recordFailure(ap, inst, t)
	a.taskEnded(ap, inst, t, metrics.ReasonLost)
	// Going on when this save fails is safe: the relaunch saves the next
	// task before it starts, and a restart before that finds this one's
	// container gone again.
	_ = a.saveInstance(inst)
	a.emitStatus(ap, inst, t)
	a.log.Warn().Str("task_id", t.ID).Str("reason", msg).Msg("task lost its container; relaunching in place")
	a.touchInstance(inst)
	if found {
		a.cleanup(inst, t)
	}
}

func (a *Agent) retrySync(d time.Duration) {
	time.AfterFunc(d, func() { a.post(func() { a.startSync("retry") }) })
}

// adopt takes a running container as the task's own: same container, same
// task id, TASK_RUNNING; logs and health checks resume.
func (a *Agent) adopt(inst *instance, c sandbox.Container) {
	t := inst.task()
	ap := a.apps[inst.rec.AppID]
	changed := t.State != TaskRunning || t.DockerID != c.ID || t.IPAddress != c.IPAddress
	t.DockerID = c.ID
	t.IPAddress = c.IPAddress
	if t.State != TaskRunning {
		t.State = TaskRunning
		t.Message = ""
		if !c.StartedAt.IsZero() {
			t.StartedAt = c.StartedAt.UTC()
		} else if t.StartedAt.IsZero() {
			t.StartedAt = time.Now().UTC()
		}
	}
	inst.adopted = true
	if changed {
		// Going on when this save fails is safe: the next start adopts
		// the running container again.
		_ = a.saveInstance(inst)
		if ap != nil {
			a.emitStatus(ap, inst, t)
		}
	}
	a.taskIndex.add(inst)
	a.log.Info().Str("task_id", t.ID).Str("container_id", shortID(c.ID)).Msg("container adopted")
	if ap != nil {
		a.watchTask(ap, inst)
	}
	a.touchInstance(inst)
}

// handleOrphans removes the containers that no task owns: those of this
// agent, and those of its work directory under another agent id (List
// returns both). One that mounts a volume of this work directory, runs an
// incarnation of a known instance, or carries another agent id goes at
// once, and until it is gone its volumes and instance are fenced: no task
// launches on them (see fencedBy), so a volume is never mounted by two
// running containers. The others go after the orphan grace period.
// Nothing goes in dry-run mode; fenced instances wait then.
func (a *Agent) handleOrphans(list []sandbox.Container, owned map[string]bool) int {
	n := 0
	seen := map[string]bool{}
	volumesRoot := a.layout.VolumesRoot() + string(filepath.Separator)
	for _, c := range list {
		if owned[c.ID] {
			continue
		}
		n++
		seen[c.ID] = true
		foreign := c.Labels[sandbox.LabelAgentID] != a.ident.AgentID
		first, ok := a.orphans[c.ID]
		if !ok {
			first = time.Now()
			a.orphans[c.ID] = first
			a.log.Warn().Str("container_id", shortID(c.ID)).Str("name", c.Name).Str("task_id", c.TaskID()).Bool("other_agent", foreign).
				Dur("grace", a.cfg.OrphanGrace).Bool("dry_run", a.cfg.OrphanDryRun).Msg("orphan container: no task owns it")
		}
		var fence []string
		for _, m := range c.Mounts {
			if rest, ok := strings.CutPrefix(filepath.Clean(m), volumesRoot); ok {
				fence = append(fence, strings.SplitN(rest, string(filepath.Separator), 2)[0])
			}
		}
		mountsVolume := len(fence) > 0
		if inst := c.Labels[sandbox.LabelInstanceID]; inst != "" {
			fence = append(fence, "instance:"+inst)
		}
		stale := foreign || mountsVolume || a.instances[c.Labels[sandbox.LabelInstanceID]] != nil
		if stale {
			for _, f := range fence {
				a.fences[f] = c.ID
			}
		}
		if a.cfg.OrphanDryRun || a.removing[c.ID] || (!stale && time.Since(first) < a.cfg.OrphanGrace) {
			continue
		}
		a.removeOrphan(c, fence)
	}
	for id := range a.orphans {
		if !seen[id] {
			delete(a.orphans, id)
		}
	}
	// Fences of containers that are gone.
	for f, id := range a.fences {
		if !seen[id] && !a.removing[id] {
			delete(a.fences, f)
			a.touchFenced(f)
		}
	}
	return n
}

// removeOrphan stops and removes an orphan container on a worker; its
// fences fall once it is gone.
func (a *Agent) removeOrphan(c sandbox.Container, fence []string) {
	id, name := c.ID, c.Name
	delete(a.orphans, id)
	a.removing[id] = true
	a.goWork(func(ctx context.Context) {
		err := a.rt.Stop(ctx, id, a.cfg.KillGracePeriod)
		if err == nil {
			err = a.rt.Remove(ctx, id)
		}
		a.post(func() {
			delete(a.removing, id)
			if err != nil {
				a.log.Warn().Err(err).Str("container_id", shortID(id)).Msg("remove orphan container; retrying at the next sync")
				return
			}
			a.log.Info().Str("container_id", shortID(id)).Str("name", name).Msg("orphan container removed")
			for _, f := range fence {
				if a.fences[f] == id {
					delete(a.fences, f)
					a.touchFenced(f)
				}
			}
		})
	})
}

// touchFenced gives the instances a fallen fence held another decision.
func (a *Agent) touchFenced(f string) {
	for _, inst := range a.instances {
		if f == "instance:"+inst.id() {
			a.touchInstance(inst)
			continue
		}
		if r := inst.rec.Reservation; r != nil {
			for _, v := range r.Volumes {
				if v.PersistenceID == f {
					a.touchInstance(inst)
				}
			}
		}
	}
}

// fencedBy says why an instance may not launch yet: a container no task
// owns still mounts one of its volumes, or runs an incarnation of it.
func (a *Agent) fencedBy(inst *instance) string {
	if id := a.fences["instance:"+inst.id()]; id != "" {
		return fmt.Sprintf("container %s of an earlier incarnation or agent is being removed first", shortID(id))
	}
	if r := inst.rec.Reservation; r != nil {
		for _, v := range r.Volumes {
			if id := a.fences[v.PersistenceID]; id != "" {
				what := "is being removed first"
				if a.cfg.OrphanDryRun {
					what = "is not removed (orphan_dry_run): stop it to go on"
				}
				return fmt.Sprintf("container %s, which no task owns, mounts volume %s and %s", shortID(id), v.PersistenceID, what)
			}
		}
	}
	return ""
}

// onDockerEvent handles a container event of this agent. An event is
// about one container: it counts only for the task whose container that
// is, never for another incarnation that happens to share the instance,
// nor for the container of a launch that failed (issue 10: a stale exit
// of a failed launch ended the next, healthy task).
func (a *Agent) onDockerEvent(ev sandbox.Event) {
	if !a.dockerUp && a.synced {
		a.dockerUp = true
	}
	inst := a.taskIndex[ev.TaskID]
	if inst == nil {
		return
	}
	t := inst.task()
	if t == nil || t.ID != ev.TaskID {
		return
	}
	if inst.busy == "launch" {
		// The launch's outcome says which container is the task's.
		if len(inst.pending) < maxPendingEvents {
			inst.pending = append(inst.pending, ev)
		}
		return
	}
	if t.DockerID == "" || ev.ContainerID != t.DockerID {
		a.log.Debug().Str("task_id", t.ID).Str("container_id", shortID(ev.ContainerID)).Str("action", ev.Action).
			Msg("event of a container that is not the task's; ignored")
		return
	}
	a.applyEvent(inst, t, ev)
}

// maxPendingEvents bounds what a launch keeps: a container has few events.
const maxPendingEvents = 16

// applyEvent takes an event of the task's own container.
func (a *Agent) applyEvent(inst *instance, t *Task, ev sandbox.Event) {
	switch ev.Action {
	case "oom":
		inst.oom = true
	case "die", "destroy":
		if !t.active() || inst.busy != "" {
			return // not running, or the operation in flight records it
		}
		if t.State == TaskKilling {
			return // the kill in flight, or the next sync, records it
		}
		a.onExit(inst, ev.ExitCode, ev.Time, inst.oom)
	}
}

// taskIndex maps current task ids to their instances, for events.
type taskIndex map[string]*instance

// add indexes the instance's current task.
func (x taskIndex) add(inst *instance) {
	if t := inst.task(); t != nil {
		x[t.ID] = inst
	}
}

// remove drops the instance's current task.
func (x taskIndex) remove(inst *instance) {
	if t := inst.task(); t != nil {
		delete(x, t.ID)
	}
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
