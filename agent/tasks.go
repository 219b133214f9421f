package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/metrics"
	"github.com/mesolite/mesolite/sandbox"
)

// How long a task's cleanup waits for its log copier to drain.
const logDrainTimeout = 10 * time.Second

// maxParallelLaunches is how many tasks are launched (sandbox, image,
// container create and start) at once; the others queue for a slot. With
// four, a group of 20 apps launched in 1.5× the time of 20 parallel
// `docker run -d` (Docker runs 20 creates at once faster than four by
// four); with 40 at once on a loaded machine, Docker's calls took more
// than the 30 s timeout. 20 launched such a group within 1.15× Docker.
const maxParallelLaunches = 20

// launch starts the next incarnation of an instance.
//
// Crash windows (each step is persisted before the next side effect):
//  1. save task n (STAGING, container id, sandbox path)
//     crash → recovery finds no container and launches task n again
//  2. create the sandbox directory, pull the image, create mesos-<id>
//     crash → recovery finds the container by its task label; a created
//     but not started one is started, a missing one is created; the
//     name is derived, so a second create adopts instead of duplicating
//  3. start the container
//     crash → recovery adopts the running container
//  4. save task n (RUNNING, docker id)
//     crash → nothing left to do; recovery adopts
func (a *Agent) launch(ap *app, inst *instance) {
	now := time.Now().UTC()
	n := inst.rec.Incarnation + 1
	t := &Task{
		ID:            taskID(inst.id(), n),
		ContainerID:   newUUID(),
		State:         TaskStaging,
		StagedAt:      now,
		Version:       ap.rec.Version,
		ConfigVersion: ap.rec.LastConfigChangeAt,
	}
	dir, err := a.layout.SandboxDir(t.ID, t.ContainerID)
	if err != nil {
		a.log.Error().Err(err).Str("instance_id", inst.id()).Msg("sandbox path")
		return
	}
	t.SandboxDir = dir
	prevTask, prevN := inst.rec.Task, inst.rec.Incarnation
	inst.rec.Incarnation, inst.rec.Task = n, t
	if err := a.saveInstance(inst); err != nil {
		inst.rec.Incarnation, inst.rec.Task = prevN, prevTask
		a.retryLater(inst, 2*time.Second)
		return
	}
	if prevTask != nil {
		delete(a.taskIndex, prevTask.ID)
	}
	a.taskIndex.add(inst)
	a.gcSandboxes(inst)
	a.touchInstance(inst)
	a.emitStatus(ap, inst, t)
	a.cfg.Metrics.Launched(ap.id())
	if n > 1 {
		a.cfg.Metrics.Relaunched(ap.id(), cmp.Or(inst.cause, metrics.ReasonUnknown))
	}
	inst.cause = ""
	a.runTask(ap, inst, t)
}

// taskEnded counts how a task ended, once, and remembers it as the cause
// of the instance's next launch.
func (a *Agent) taskEnded(ap *app, inst *instance, t *Task, cause string) {
	if inst.ended == t.ID {
		return
	}
	inst.ended = t.ID
	inst.cause = cause
	// An unhealthy task is killed (TASK_KILLED, as in Marathon), but it
	// failed all the same.
	if t.State == TaskFailed || t.State == TaskError || cause == metrics.ReasonUnhealthy {
		a.cfg.Metrics.Failed(ap.id(), cause)
	}
}

// runTask hands the container side of a launch to a worker: sandbox,
// image, container. It is also how recovery finishes a launch that a crash
// interrupted.
func (a *Agent) runTask(ap *app, inst *instance, t *Task) {
	spec, err := a.taskSpec(ap, inst, t)
	if err != nil {
		a.failTask(ap, inst, TaskError, err.Error())
		return
	}
	inst.busy = "launch"
	inst.pending, inst.oom = nil, false
	log := a.log.With().Str("app_id", ap.id()).Str("task_id", t.ID).Logger()
	log.Info().Str("image", spec.Image).Msg("launching task")
	taskID := t.ID
	progress := func(line string) {
		a.post(func() { a.onProgress(inst, taskID, line) })
	}
	a.goWork(func(ctx context.Context) {
		start := time.Now()
		c, err := a.launchWork(ctx, spec, progress)
		if ctx.Err() != nil && c.ID == "" && err != nil {
			// Stopping before anything ran: the task stays STAGING and the
			// next start launches it (fetching again, into a swept sandbox).
			return
		}
		if err != nil && !errors.Is(err, sandbox.ErrUnavailable) && ctx.Err() == nil {
			// Do not leave a created-but-not-started container behind.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			if rerr := a.rt.Remove(rctx, spec.Name()); rerr != nil {
				// Recovery removes it: its task is not running.
				a.log.Warn().Err(rerr).Str("task_id", spec.TaskID).Msg("remove the container of a failed launch")
			}
			cancel()
		}
		took := time.Since(start)
		a.post(func() { a.onLaunched(inst, taskID, c, err, took) })
	})
}

// launchWork is a launch's work on the host and in the runtime.
//
// The host half comes first and outside the launch slots, because a
// download may take minutes: the sandbox, then the fetch (TASK_STAGING,
// its progress in the task's message). Stopping the agent cancels a
// fetch safely, since nothing exists in the runtime yet. Then, in a slot,
// the container: a run under way finishes even when the agent is
// stopping, so it never leaves a container created but not started; the
// agent waits a few seconds for it, and the next start adopts it.
//
// Crash windows of the host half (the task is STAGING throughout, and
// recovery calls runTask again, which prepares and fetches again):
//   - sandbox made, nothing fetched          ("sandbox.create")
//   - before and after the fetch              ("fetch.before", "fetch.after")
//   - a download written and synced in the cache, not yet renamed, and
//     renamed, not yet in use                 ("fetch.cache.write", "fetch.cache.commit")
//
// A crash mid-download leaves temporary files only, which the cache
// sweeps when it opens and the next fetch sweeps from the sandbox.
func (a *Agent) launchWork(ctx context.Context, spec *sandbox.TaskSpec, progress func(string)) (sandbox.Container, error) {
	if err := a.rt.PrepareSandbox(context.WithoutCancel(ctx), spec); err != nil {
		return sandbox.Container{}, err
	}
	a.fail("sandbox.create")
	if len(spec.Fetch) > 0 || spec.HostRoot {
		a.fail("fetch.before")
		if err := a.rt.Fetch(ctx, spec, progress); err != nil {
			return sandbox.Container{}, err
		}
		a.fail("fetch.after")
	}
	// Wait for a launch slot: Docker runs a few launches at once as fast
	// as many, and many at once only make each one slower, until its
	// calls time out.
	select {
	case a.launchSlots <- struct{}{}:
	case <-ctx.Done():
		return sandbox.Container{}, ctx.Err()
	}
	defer func() { <-a.launchSlots }()
	a.fail("docker.run.before")
	c, err := a.rt.Run(context.WithoutCancel(ctx), spec, progress)
	a.fail("docker.run.after")
	return c, err
}

func (a *Agent) onProgress(inst *instance, taskID, line string) {
	if t := inst.task(); t != nil && t.ID == taskID && t.State == TaskStaging {
		t.Message = line
		a.touchInstance(inst)
	}
}

// onLaunched takes the outcome of runTask.
func (a *Agent) onLaunched(inst *instance, taskID string, c sandbox.Container, err error, took time.Duration) {
	inst.busy = ""
	// Events of the launch's time: only those about the container it ran
	// are the task's; a failed launch's container is no one's.
	pending := inst.pending
	inst.pending = nil
	a.touchInstance(inst)
	t := inst.task()
	ap := a.apps[inst.rec.AppID]
	if t == nil || t.ID != taskID || ap == nil {
		return
	}
	log := a.log.With().Str("app_id", ap.id()).Str("task_id", t.ID).Logger()
	switch {
	case err == nil:
	case errors.Is(err, sandbox.ErrUnavailable), errors.Is(err, context.Canceled):
		// Docker is down or we are stopping: the task stays STAGING and the
		// next sync finishes the launch.
		log.Warn().Err(err).Msg("launch interrupted; will finish when docker answers")
		a.dockerUp = a.dockerUp && !errors.Is(err, sandbox.ErrUnavailable)
		return
	default:
		msg := err.Error()
		var ie *sandbox.ImageError
		if errors.As(err, &ie) {
			msg = imageAdvice(ie)
		}
		log.Error().Str("reason", msg).Dur("retry_in", ap.delay.next(ap.spec)).Msg("launch failed")
		a.failTask(ap, inst, TaskFailed, msg)
		return
	}
	t.DockerID = c.ID
	t.IPAddress = c.IPAddress
	t.Message = ""
	var exited *sandbox.Event
	for i, ev := range pending {
		if ev.ContainerID != c.ID {
			continue
		}
		switch ev.Action {
		case "oom":
			inst.oom = true
		case "die", "destroy":
			if exited == nil {
				exited = &pending[i]
			}
		}
	}
	if !c.Running {
		// It ran and stopped before we looked. onExit saves the task's
		// end with its container id; nothing is lost if the record keeps
		// STAGING meanwhile (recovery finds the stopped container).
		a.onExit(inst, c.ExitCode, c.FinishedAt, c.OOMKilled)
		return
	}
	t.State = TaskRunning
	t.StartedAt = c.StartedAt.UTC()
	if t.StartedAt.IsZero() {
		t.StartedAt = time.Now().UTC()
	}
	if err := a.saveInstance(inst); err != nil {
		return // recovery adopts the running container
	}
	log.Info().Str("container_id", c.ID[:12]).Dur("took", took).Msg("task running")
	a.emitStatus(ap, inst, t)
	a.watchTask(ap, inst)
	if exited != nil {
		a.onExit(inst, exited.ExitCode, exited.Time, inst.oom)
	}
}

// failTask ends a task that did not get to run, and backs off its app.
func (a *Agent) failTask(ap *app, inst *instance, state, msg string) {
	t := inst.task()
	now := time.Now().UTC()
	t.State = state
	t.Message = msg
	t.EndedAt = now
	ap.delay.fail(now, ap.spec)
	a.recordFailure(ap, inst, t)
	a.taskEnded(ap, inst, t, metrics.ReasonLaunch)
	// Going on when this save fails is safe: the record keeps the task
	// STAGING without a container, and recovery launches it again.
	_ = a.saveInstance(inst)
	a.emitStatus(ap, inst, t)
	a.touchInstance(inst)
}

func (a *Agent) recordFailure(ap *app, inst *instance, t *Task) {
	ap.rec.LastTaskFailure = &TaskFailure{
		AppID: ap.id(), Host: a.cfg.Hostname, Message: t.Message, State: t.State,
		TaskID: t.ID, Timestamp: t.EndedAt, Version: t.Version, SlaveID: a.ident.AgentID,
	}
	// Going on when this save fails is safe: lastTaskFailure is only
	// reported, and is kept in memory until the next save of the app.
	_ = a.saveApp(ap)
}

// imageAdvice says what to do about an image that cannot be had.
func imageAdvice(ie *sandbox.ImageError) string {
	msg := ie.Error() + "; build it or load it (docker build, docker load), or change container.docker.image"
	repo := ie.Image
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	if repo == "postgres" || repo == "library/postgres" || repo == "docker.io/library/postgres" {
		msg += ". Offline, run 'make postgres-image' and use testdata/postgres-offline.marathon.json (image mesolite/postgres:15)"
	}
	return msg
}

// watchTask starts what follows a running task: its log copier and its
// health checks.
func (a *Agent) watchTask(ap *app, inst *instance) {
	t := inst.task()
	if inst.logs == nil {
		done := make(chan struct{})
		inst.logs = done
		id, dir := t.DockerID, t.SandboxDir
		a.goWork(func(ctx context.Context) {
			defer close(done)
			if err := a.rt.CopyLogs(ctx, id, dir); err != nil && ctx.Err() == nil {
				a.log.Warn().Err(err).Str("task_id", t.ID).Msg("copy logs")
			}
		})
	}
	a.startHealth(ap, inst)
}

// onExit records that a task's container stopped on its own, and removes
// the container once its output is in the sandbox.
func (a *Agent) onExit(inst *instance, code int, at time.Time, oom bool) {
	t := inst.task()
	ap := a.apps[inst.rec.AppID]
	if t == nil || !t.active() || ap == nil {
		return
	}
	a.stopHealth(inst)
	if at.IsZero() {
		at = time.Now()
	}
	t.EndedAt = at.UTC()
	t.ExitCode = &code
	cause := metrics.ReasonExited
	switch {
	case t.KillReason != "" && t.KillFailed:
		t.State = TaskFailed
		t.Message = t.KillReason
		cause = inst.cause
	case t.KillReason != "":
		t.State = TaskKilled
		t.Message = "Task killed: " + t.KillReason
		cause = cmp.Or(inst.cause, metrics.ReasonKilled)
	case oom || inst.oom:
		t.State = TaskFailed
		t.Message = fmt.Sprintf("Container exited after running out of memory (mem %.0f MiB): raise mem", ap.spec.Mem)
		cause = metrics.ReasonOOM
	case code == 0:
		t.State = TaskFinished
		t.Message = "Command exited with status 0"
		cause = metrics.ReasonFinished
	default:
		t.State = TaskFailed
		t.Message = fmt.Sprintf("Command exited with status %d", code)
	}
	inst.oom = false
	a.taskEnded(ap, inst, t, cmp.Or(cause, metrics.ReasonUnknown))
	if t.State != TaskKilled {
		// A task that ran (and was healthy) long enough before it ended
		// starts the backoff afresh.
		since := t.StartedAt
		if len(t.Health) > 0 && !t.Health[0].FirstSuccess.IsZero() {
			since = t.Health[0].FirstSuccess
		}
		if !since.IsZero() && t.EndedAt.Sub(since) >= a.cfg.BackoffResetAfter {
			ap.delay.reset()
		}
		ap.delay.fail(time.Now(), ap.spec)
		a.recordFailure(ap, inst, t)
		a.log.Warn().Str("app_id", ap.id()).Str("task_id", t.ID).Str("state", t.State).Int("exit_code", code).
			Dur("delay", ap.delay.delay).Msg("task exited; relaunching after backoff")
	}
	// Going on when this save fails is safe: the record keeps the task
	// active, and recovery, finding its container gone, relaunches it.
	_ = a.saveInstance(inst)
	a.emitStatus(ap, inst, t)
	a.touchInstance(inst)
	a.cleanup(inst, t)
}

// cleanup removes an ended task's container after its log copier is done.
func (a *Agent) cleanup(inst *instance, t *Task) {
	inst.busy = "cleanup"
	ref := t.DockerID
	if ref == "" {
		ref = sandbox.ContainerName(t.ContainerID)
	}
	logs := inst.logs
	dir := t.SandboxDir
	a.goWork(func(ctx context.Context) {
		err := a.finishContainer(ctx, ref, dir, logs)
		a.post(func() {
			inst.busy = ""
			if err != nil {
				a.log.Warn().Err(err).Str("task_id", t.ID).Msg("remove container; retrying at next sync")
				a.dockerUp = a.dockerUp && !errors.Is(err, sandbox.ErrUnavailable)
				return
			}
			inst.logs = nil
			a.touchInstance(inst)
		})
	})
}

// finishContainer drains a stopped container's output into the sandbox and
// removes the container.
func (a *Agent) finishContainer(ctx context.Context, ref, sandboxDir string, logs chan struct{}) error {
	if logs != nil {
		select {
		case <-logs:
		case <-time.After(logDrainTimeout):
		case <-ctx.Done():
			return ctx.Err()
		}
	} else if sandboxDir != "" {
		// No copier ran (e.g. the agent was down): copy what Docker kept.
		cctx, cancel := context.WithTimeout(ctx, logDrainTimeout)
		err := a.rt.CopyLogs(cctx, ref, sandboxDir)
		cancel()
		if err != nil && !errors.Is(err, sandbox.ErrNotFound) && ctx.Err() == nil {
			a.log.Debug().Err(err).Str("container_id", ref).Msg("copy remaining logs")
		}
	}
	err := a.rt.Remove(ctx, ref)
	a.fail("docker.remove")
	return err
}

// kill stops an instance's task.
//
// Crash windows:
//  1. save task (KILLING, reason)
//     crash → recovery sees KILLING and kills again
//  2. stop and remove the container
//     crash → recovery finds it stopped (or gone) and records TASK_KILLED
//  3. save task (KILLED)
func (a *Agent) kill(inst *instance, reason string) {
	t := inst.task()
	ap := a.apps[inst.rec.AppID]
	if t == nil || !t.active() || inst.busy != "" {
		return
	}
	a.stopHealth(inst)
	wasState := t.State
	t.State = TaskKilling
	t.KillReason = reason
	if err := a.saveInstance(inst); err != nil {
		t.State = wasState
		a.retryLater(inst, 2*time.Second)
		return
	}
	if ap != nil {
		a.emitStatus(ap, inst, t)
	}
	a.touchInstance(inst)
	a.log.Info().Str("app_id", inst.rec.AppID).Str("task_id", t.ID).Str("reason", reason).Msg("killing task")
	inst.busy = "kill"
	ref := t.DockerID
	if ref == "" {
		ref = sandbox.ContainerName(t.ContainerID)
	}
	var spec *marathon.App
	if ap != nil {
		spec = ap.spec
	}
	grace := a.cfg.killGrace(spec)
	logs, dir := inst.logs, t.SandboxDir
	a.goWork(func(ctx context.Context) {
		err := a.rt.Stop(ctx, ref, grace)
		a.fail("docker.stop")
		var c sandbox.Container
		if err == nil {
			var ierr error
			c, ierr = a.rt.Inspect(ctx, ref)
			if ierr != nil && !errors.Is(ierr, sandbox.ErrNotFound) {
				err = ierr
			}
		}
		if err == nil {
			err = a.finishContainer(ctx, ref, dir, logs)
		}
		a.post(func() { a.onKilled(inst, t.ID, c, err) })
	})
}

func (a *Agent) onKilled(inst *instance, taskID string, c sandbox.Container, err error) {
	inst.busy = ""
	a.touchInstance(inst)
	t := inst.task()
	if t == nil || t.ID != taskID {
		return
	}
	if err != nil {
		a.log.Warn().Err(err).Str("task_id", taskID).Msg("kill failed; retrying at next sync")
		a.dockerUp = a.dockerUp && !errors.Is(err, sandbox.ErrUnavailable)
		return
	}
	inst.logs = nil
	inst.pending = nil
	t.State = TaskKilled
	t.EndedAt = time.Now().UTC()
	if c.Detailed && !c.Running {
		code := c.ExitCode
		t.ExitCode = &code
	}
	t.Message = "Task killed: " + t.KillReason
	ap := a.apps[inst.rec.AppID]
	if t.KillFailed && ap != nil {
		t.State = TaskFailed
		t.Message = t.KillReason
		ap.delay.fail(time.Now(), ap.spec)
		a.recordFailure(ap, inst, t)
	}
	if ap != nil {
		a.taskEnded(ap, inst, t, cmp.Or(inst.cause, metrics.ReasonKilled))
	}
	// Going on when this save fails is safe: the record keeps the task
	// KILLING, and recovery, finding no container, records it killed.
	_ = a.saveInstance(inst)
	if ap != nil {
		a.emitStatus(ap, inst, t)
	}
	inst.killRequested = false
	inst.restartFor = ""
}

// retryLater marks an instance for another decision after d.
func (a *Agent) retryLater(inst *instance, d time.Duration) {
	time.AfterFunc(d, func() {
		a.post(func() {
			if a.instances[inst.id()] == inst {
				a.touchInstance(inst)
			}
		})
	})
}

// gcSandboxes keeps the sandboxes of the last three incarnations of an
// instance and deletes older ones, on a worker.
func (a *Agent) gcSandboxes(inst *instance) {
	var old []string
	for n := inst.rec.Incarnation - 3; n >= 1 && n > inst.rec.Incarnation-6; n-- {
		old = append(old, taskID(inst.id(), n))
	}
	if len(old) == 0 {
		return
	}
	a.goWork(func(ctx context.Context) { a.removeSandboxes(ctx, old) })
}

// removeSandboxes deletes the sandboxes of tasks. A failure leaves
// directories behind, never state: it is logged and the caller goes on.
func (a *Agent) removeSandboxes(ctx context.Context, taskIDs []string) {
	for _, id := range taskIDs {
		if err := a.rt.RemoveSandbox(ctx, id); err != nil {
			a.log.Warn().Err(err).Str("task_id", id).Msg("remove sandbox")
		}
	}
}

// killGrace is the grace period of an app's tasks: the app's
// taskKillGracePeriodSeconds, else the configured default.
func (c *Config) killGrace(spec *marathon.App) time.Duration {
	if spec != nil && spec.TaskKillGracePeriodSeconds != nil {
		return time.Duration(*spec.TaskKillGracePeriodSeconds * float64(time.Second))
	}
	return c.KillGracePeriod
}
