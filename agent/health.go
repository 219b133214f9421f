package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
)

// fastCheckInterval is how often a task is checked until its first
// success, during its grace period, so a new task shows healthy as soon as
// it is. Marathon waits a full interval; failures in the grace period are
// ignored either way, so only the reporting is quicker.
const fastCheckInterval = time.Second

// healthClient does HTTP and HTTPS checks. Certificates are not verified,
// as in Marathon, and redirects count as success (3xx), so none is followed.
var healthClient = &http.Client{
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // Marathon's checks trust any certificate
		DisableKeepAlives: true,
		Proxy:             nil,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// checkTarget is one health check of one task, resolved to an address.
type checkTarget struct {
	index     int
	check     marathon.HealthCheck
	addr      string // host:port for TCP and HTTP(S)
	dockerID  string // for COMMAND
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
		addr, err := a.checkAddr(ap, inst, hc)
		if err != nil && hc.Protocol != marathon.ProtoCommand {
			a.log.Error().Err(err).Str("task_id", taskID).Msg("health check has no address")
			continue
		}
		target.addr = addr
		a.goWork(func(context.Context) { a.runCheck(ctx, inst, taskID, gen, target) })
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
func (a *Agent) checkAddr(ap *app, inst *instance, hc marathon.HealthCheck) (string, error) {
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
		port = pms[idx].ContainerPort
	}
	return net.JoinHostPort(t.IPAddress, strconv.Itoa(port)), nil
}

// checkResult is one outcome of a check. ignored is an HTTP 1xx with
// ignoreHttp1xx: neither success nor failure.
type checkResult struct {
	ok      bool
	ignored bool
	cause   string
}

// runCheck checks a task until ctx ends: the first time right away (after
// delaySeconds for MESOS_ checks), every second until the first success
// while the grace period lasts, then every intervalSeconds.
func (a *Agent) runCheck(ctx context.Context, inst *instance, taskID string, gen int, tg checkTarget) {
	hc := tg.check
	interval := time.Duration(hc.IntervalSeconds) * time.Second
	grace := time.Duration(hc.GracePeriodSeconds) * time.Second
	wait := min(interval, fastCheckInterval)
	if strings.HasPrefix(hc.Protocol, "MESOS_") && hc.DelaySeconds > 0 {
		wait = time.Duration(hc.DelaySeconds) * time.Second
	}
	succeeded := tg.succeeded
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		res := a.doCheck(ctx, tg)
		if ctx.Err() != nil {
			return
		}
		if res.ok {
			succeeded = true
		}
		a.post(func() { a.onHealthResult(inst, taskID, gen, tg.index, res) })
		next := interval
		if !succeeded && time.Since(tg.startedAt) < grace {
			next = min(interval, fastCheckInterval)
		}
		timer.Reset(next)
	}
}

func (a *Agent) doCheck(ctx context.Context, tg checkTarget) checkResult {
	hc := tg.check
	timeout := time.Duration(hc.TimeoutSeconds) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	switch hc.Protocol {
	case marathon.ProtoTCP, marathon.ProtoMesosTCP:
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", tg.addr)
		if err != nil {
			return checkResult{cause: err.Error()}
		}
		_ = conn.Close()
		return checkResult{ok: true}
	case marathon.ProtoHTTP, marathon.ProtoHTTPS, marathon.ProtoMesosHTTP, marathon.ProtoMesosHTTPS:
		scheme := "http"
		if strings.HasSuffix(hc.Protocol, "HTTPS") {
			scheme = "https"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+tg.addr+hc.Path, nil)
		if err != nil {
			return checkResult{cause: err.Error()}
		}
		resp, err := healthClient.Do(req)
		if err != nil {
			return checkResult{cause: err.Error()}
		}
		_ = resp.Body.Close()
		switch {
		case resp.StatusCode >= 200 && resp.StatusCode <= 399:
			return checkResult{ok: true}
		case resp.StatusCode < 200 && hc.IgnoreHTTP1xx != nil && *hc.IgnoreHTTP1xx:
			return checkResult{ignored: true}
		}
		return checkResult{cause: resp.Status}
	case marathon.ProtoCommand:
		code, out, err := a.rt.Exec(ctx, tg.dockerID, []string{"/bin/sh", "-c", hc.Command.Value})
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
	h := &t.Health[i]
	now := time.Now().UTC()
	wasAlive := h.Alive
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
		a.bus.publish("failed_health_check_event", map[string]any{
			"appId": ap.id(), "taskId": t.ID, "instanceId": inst.id(), "healthCheck": hc,
		})
		a.log.Warn().Str("task_id", t.ID).Int("failures", h.ConsecutiveFailures).Str("cause", res.cause).Msg("health check failed")
	}
	inst.view = nil
	a.changed = true
	if wasAlive != h.Alive || persist {
		a.saveInstance(inst)
		a.bus.publish("health_status_changed_event", map[string]any{
			"appId": ap.id(), "taskId": t.ID, "instanceId": inst.id(), "version": formatTime(t.Version), "alive": h.Alive,
		})
		a.touchInstance(inst)
	}
	if !res.ok && hc.MaxConsecutiveFailures > 0 && h.ConsecutiveFailures >= hc.MaxConsecutiveFailures {
		a.bus.publish("unhealthy_instance_kill_event", map[string]any{
			"appId": ap.id(), "taskId": t.ID, "instanceId": inst.id(), "version": formatTime(t.Version),
			"reason": h.LastFailureCause, "host": a.cfg.Hostname, "slaveId": a.ident.AgentID,
		})
		a.kill(inst, fmt.Sprintf("health check failed %d times: %s", h.ConsecutiveFailures, h.LastFailureCause))
	}
}
