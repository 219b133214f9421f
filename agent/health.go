package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/metrics"
	"github.com/mesolite/mesolite/sandbox/probe"
)

// fastCheckInterval is how often a task is checked until its first
// success, during its grace period, so a new task shows healthy as soon as
// it is. Marathon waits a full interval; failures in the grace period are
// ignored either way, so only the reporting is quicker.
const fastCheckInterval = time.Second

// checkTarget is one health check of one task, resolved to an address.
type checkTarget struct {
	index     int
	check     marathon.HealthCheck
	addr      string // host:port for TCP and HTTP(S)
	network   string // the network addr is on (probe.Request.Network)
	dockerID  string // for COMMAND
	workDir   string // for COMMAND in a command task: its sandbox
	startedAt time.Time
	succeeded bool // the check has passed before (an adopted task)
}

// startHealth starts the health checks of a running task, one goroutine
// per check, bound to a context that stopHealth cancels.
func (a *Agent) startHealth(ap *app, inst *instance) {
	checks := ap.spec.HealthChecks
	t := inst.task()
	if len(checks) == 0 || inst.stopHealth != nil || t == nil || t.State != TaskRunning {
		return
	}
	if len(t.Health) != len(checks) {
		t.Health = make([]HealthResult, len(checks))
	}
	ctx, cancel := context.WithCancel(a.ctx)
	inst.stopHealth = cancel
	inst.healthGen++
	gen, taskID := inst.healthGen, t.ID
	for i, hc := range checks {
		target := checkTarget{
			index: i, check: hc, dockerID: t.DockerID, startedAt: t.StartedAt,
			succeeded: !t.Health[i].FirstSuccess.IsZero(),
		}
		if ap.spec.IsCommand() {
			// A command task's init works in the sandbox, but an exec
			// starts in /: the check runs where the task does, as Mesos's.
			target.workDir = t.SandboxDir
		}
		addr, err := checkAddr(ap, inst, hc)
		if err != nil && hc.Protocol != marathon.ProtoCommand {
			a.log.Error().Err(err).Str("task_id", taskID).Msg("health check has no address")
			continue
		}
		target.addr, target.network = addr, checkNetwork(ap.spec)
		a.goWork(func(context.Context) {
			target.run(ctx, checker{exec: a.rt.Exec, prober: a.rt}, func(res checkResult) {
				a.post(func() { a.onHealthResult(inst, taskID, gen, target.index, res) })
			})
		})
	}
}

// stopHealth stops a task's health checks.
func (a *Agent) stopHealth(inst *instance) {
	if inst.stopHealth != nil {
		inst.stopHealth()
		inst.stopHealth = nil
		inst.healthGen++
	}
}

// checkAddr is where a check connects. For bridge and container networks
// it is the container's own address and port, never the published host
// port: Docker's proxy accepts connections on that port even when nothing
// listens in the container. With host networking the process listens on
// the host port itself.
func checkAddr(ap *app, inst *instance, hc marathon.HealthCheck) (string, error) {
	t := inst.task()
	r := inst.rec.Reservation
	spec := ap.spec
	if spec.NetworkMode() == marathon.NetworkHost {
		host := "127.0.0.1"
		if hc.Port != nil {
			return net.JoinHostPort(host, strconv.Itoa(*hc.Port)), nil
		}
		idx := 0
		if hc.PortIndex != nil {
			idx = *hc.PortIndex
		}
		if r == nil || idx >= len(r.HostPorts) {
			return "", fmt.Errorf("port index %d: the task has %d ports", idx, len(r.HostPorts))
		}
		return net.JoinHostPort(host, strconv.Itoa(r.HostPorts[idx])), nil
	}
	if t.IPAddress == "" {
		return "", errors.New("the container has no IP address on its network")
	}
	port := 0
	switch {
	case hc.Port != nil:
		port = *hc.Port
	default:
		idx := 0
		if hc.PortIndex != nil {
			idx = *hc.PortIndex
		}
		pms := spec.PortMappings()
		if idx >= len(pms) {
			return "", fmt.Errorf("port index %d: the app has %d port mappings", idx, len(pms))
		}
		port = containerPort(spec, r, idx)
	}
	return net.JoinHostPort(t.IPAddress, strconv.Itoa(port)), nil
}

// checkResult is one outcome of a check. ignored is an HTTP 1xx with
// ignoreHttp1xx: neither success nor failure.
type checkResult struct {
	ok      bool
	ignored bool
	cause   string
	took    time.Duration
}

// execFunc runs a command in a container: ContainerRuntime.Exec.
type execFunc func(ctx context.Context, id string, cmd []string) (int, string, error)

// checker is how checks are made: COMMAND checks in the container, TCP
// and HTTP checks through the prober (directly, or through a helper
// inside Docker's network where this process cannot reach containers).
type checker struct {
	exec   execFunc
	prober probe.Prober
}

// checkNetwork is the network a task's checked addresses are on, for a
// prober that must be on it.
func checkNetwork(spec *marathon.App) string {
	switch spec.NetworkMode() {
	case marathon.NetworkHost:
		return probe.NetworkHost
	case marathon.NetworkBridge:
		return "bridge"
	}
	if len(spec.Networks) > 0 {
		return spec.Networks[0].Name
	}
	return ""
}

// run checks a task until ctx ends: the first time right away (after
// delaySeconds for MESOS_ checks), every second until the first success
// while the grace period lasts, then every intervalSeconds. report gets
// each result.
func (tg checkTarget) run(ctx context.Context, c checker, report func(checkResult)) {
	hc := tg.check
	interval := time.Duration(hc.IntervalSeconds) * time.Second
	grace := time.Duration(hc.GracePeriodSeconds) * time.Second
	wait := min(interval, fastCheckInterval)
	if strings.HasPrefix(hc.Protocol, "MESOS_") && hc.DelaySeconds > 0 {
		wait = time.Duration(hc.DelaySeconds) * time.Second
	}
	succeeded := tg.succeeded
	timer := time.NewTimer(alignedWait(wait))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		start := time.Now()
		res := tg.once(ctx, c)
		res.took = time.Since(start)
		if ctx.Err() != nil {
			return
		}
		if res.ok {
			succeeded = true
		}
		report(res)
		next := interval
		if !succeeded && time.Since(tg.startedAt) < grace {
			next = min(interval, fastCheckInterval)
		}
		timer.Reset(alignedWait(next))
	}
}

// alignedWait is how long until the next multiple of d since the Unix
// epoch, at least a quarter of d away. Checks with the same interval, of
// every task, so run in the same instant: the agent wakes once per
// interval for all of them instead of once per check, and a wake-up of an
// idle process costs several times the check itself (50 spread TCP checks
// a second cost about 7 times the CPU of 50 aligned ones). The interval
// between two checks stays d, give or take the time a check took.
func alignedWait(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	w := d - time.Duration(time.Now().UnixNano()%int64(d))
	if w < d/4 {
		w += d
	}
	return w
}

// once checks the target once. A TCP or HTTP check that could not be
// made because the way to the task failed (the helper is down, the path
// is not known yet) is neither a success nor a failure: it says nothing of
// the task.
func (tg checkTarget) once(ctx context.Context, c checker) checkResult {
	hc := tg.check
	timeout := time.Duration(hc.TimeoutSeconds) * time.Second
	switch hc.Protocol {
	case marathon.ProtoTCP, marathon.ProtoMesosTCP:
		res := c.prober.Probe(ctx, probe.Request{Protocol: probe.TCP, Addr: tg.addr, Timeout: timeout, Network: tg.network})
		switch {
		case probe.Transport(res):
			return checkResult{ignored: true, cause: res.Err}
		case res.Err != "":
			return checkResult{cause: res.Err}
		}
		return checkResult{ok: true}
	case marathon.ProtoHTTP, marathon.ProtoHTTPS, marathon.ProtoMesosHTTP, marathon.ProtoMesosHTTPS:
		proto := probe.HTTP
		if strings.HasSuffix(hc.Protocol, "HTTPS") {
			proto = probe.HTTPS
		}
		res := c.prober.Probe(ctx, probe.Request{Protocol: proto, Addr: tg.addr, Path: hc.Path, Timeout: timeout, Network: tg.network})
		switch {
		case probe.Transport(res):
			return checkResult{ignored: true, cause: res.Err}
		case res.Err != "":
			return checkResult{cause: res.Err}
		case res.Code >= 200 && res.Code <= 399:
			return checkResult{ok: true}
		case res.Code < 200 && hc.IgnoreHTTP1xx != nil && *hc.IgnoreHTTP1xx:
			return checkResult{ignored: true}
		}
		return checkResult{cause: res.Status}
	case marathon.ProtoCommand:
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		cmd := hc.Command.Value
		if tg.workDir != "" {
			cmd = "cd '" + strings.ReplaceAll(tg.workDir, "'", `'\''`) + "' || exit 125\n" + cmd
		}
		code, out, err := c.exec(ctx, tg.dockerID, []string{"/bin/sh", "-c", cmd})
		if err != nil {
			return checkResult{cause: "run command: " + err.Error()}
		}
		if code != 0 {
			cause := fmt.Sprintf("command exited with status %d", code)
			if out = strings.TrimSpace(out); out != "" {
				cause += ": " + out
			}
			return checkResult{cause: cause}
		}
		return checkResult{ok: true}
	}
	return checkResult{cause: "unknown protocol " + hc.Protocol}
}

// onHealthResult records a check's outcome. A failure before the first
// success within the grace period is ignored; maxConsecutiveFailures
// failures after it kill the task, which is relaunched in place.
func (a *Agent) onHealthResult(inst *instance, taskID string, gen, i int, res checkResult) {
	t := inst.task()
	ap := a.apps[inst.rec.AppID]
	if inst.healthGen != gen || t == nil || t.ID != taskID || t.State != TaskRunning || ap == nil || i >= len(t.Health) || res.ignored {
		return
	}
	hc := ap.spec.HealthChecks[i]
	a.cfg.Metrics.HealthResult(ap.id(), hc.Protocol, res.ok, res.took)
	h := &t.Health[i]
	now := time.Now().UTC()
	wasAlive := h.Alive
	wasHealthy := healthy(t, len(ap.spec.HealthChecks))
	persist := false
	if res.ok {
		if h.FirstSuccess.IsZero() {
			h.FirstSuccess = now
			persist = true
		}
		h.LastSuccess = now
		h.ConsecutiveFailures = 0
		h.Alive = true
	} else {
		grace := time.Duration(hc.GracePeriodSeconds) * time.Second
		if h.FirstSuccess.IsZero() && now.Sub(t.StartedAt) < grace {
			return
		}
		h.ConsecutiveFailures++
		h.LastFailure = now
		h.LastFailureCause = res.cause
		h.Alive = false
		// Marathon's FailedHealthCheckWrites writes the instance id under
		// the key taskId, and no instanceId.
		a.bus.publish("failed_health_check_event", map[string]any{
			"appId": ap.id(), "taskId": inst.id(), "healthCheck": hc,
		})
		a.log.Warn().Str("task_id", t.ID).Int("failures", h.ConsecutiveFailures).Str("cause", res.cause).Msg("health check failed")
	}
	inst.view = nil
	if res.ok && wasAlive && !persist {
		// Only the time of the last success moved: it goes out with the
		// next snapshot, at most healthPublishDelay late, instead of one
		// snapshot per result.
		a.publishSoon()
	} else {
		a.changed = true
	}
	if wasAlive != h.Alive || persist {
		// Going on when this save fails is safe: health results are only
		// reported, and the checks of an adopted task find them again.
		_ = a.saveInstance(inst)
		a.bus.publish("health_status_changed_event", map[string]any{
			"appId": ap.id(), "instanceId": inst.id(), "version": formatTime(t.Version), "alive": h.Alive,
		})
		a.touchInstance(inst)
	}
	if now := healthy(t, len(ap.spec.HealthChecks)); now != wasHealthy {
		// The instance as a whole: healthy when every check is alive.
		a.bus.publish("instance_health_changed_event", map[string]any{
			"instanceId": inst.id(), "runSpecId": ap.id(), "runSpecVersion": formatTime(t.Version), "healthy": now,
		})
	}
	if !res.ok && hc.MaxConsecutiveFailures > 0 && h.ConsecutiveFailures >= hc.MaxConsecutiveFailures {
		a.bus.publish("unhealthy_instance_kill_event", map[string]any{
			"appId": ap.id(), "taskId": t.ID, "instanceId": inst.id(), "version": formatTime(t.Version),
			"reason": h.LastFailureCause, "host": a.cfg.Hostname, "slaveId": a.ident.AgentID,
		})
		inst.cause = metrics.ReasonUnhealthy
		a.kill(inst, fmt.Sprintf("health check failed %d times: %s", h.ConsecutiveFailures, h.LastFailureCause))
	}
}

// healthPublishDelay bounds how late a health result that changes nothing
// but its time shows in the snapshot. Publishing rebuilds the snapshot of
// every task, so with many tasks checked every second one snapshot per
// result would be most of the agent's work.
const healthPublishDelay = 500 * time.Millisecond

// publishSoon publishes a snapshot within healthPublishDelay, together
// with whatever else changes meanwhile.
func (a *Agent) publishSoon() {
	if a.publishPending {
		return
	}
	a.publishPending = true
	time.AfterFunc(healthPublishDelay, func() {
		a.post(func() {
			a.publishPending = false
			a.changed = true
		})
	})
}
