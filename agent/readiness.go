package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/sandbox/probe"
)

// Readiness checks. While a deployment step scales or restarts an app with
// readinessChecks, each of the app's running tasks at the current
// configuration is checked (an HTTP or HTTPS GET of path on the port named
// portName, every intervalSeconds, each given timeoutSeconds) until it
// answers with one of httpStatusCodesForReady; the step waits until every
// such task is ready. A task that never becomes ready holds the deployment
// (GET /v2/deployments shows why, and DELETE /v2/deployments/{id} rolls it
// back); it is never killed for it, as in Marathon, where readiness is not
// health. As health checks do, the check reaches the process itself: the
// container's own address and port on its network, not the port Docker
// publishes (whose proxy accepts connections even when nothing listens).
// Results are not persisted: after a restart the tasks are checked again.

// readinessBodyLimit bounds the body a preserved response keeps.
const readinessBodyLimit = 64 << 10

// readinessState is the readiness check of one task.
type readinessState struct {
	appID  string
	taskID string
	check  marathon.ReadinessCheck
	ready  bool
	last   *ReadinessResponse // the last response, kept when the check preserves it
	stop   context.CancelFunc
}

// watchReadiness starts and stops the readiness checks of an app's tasks:
// checked while the app's deployment is at the app's step, for its running
// tasks at the current configuration.
func (a *Agent) watchReadiness(ap *app) {
	wanted := map[string]*instance{}
	if a.checksReadiness(ap) {
		for _, inst := range a.appInstances(ap.id()) {
			if t := inst.task(); inst.rec.Goal == GoalRunning && t != nil && t.State == TaskRunning && !outdated(ap, inst) {
				wanted[t.ID] = inst
			}
		}
	}
	for id, st := range a.readiness {
		if st.appID == ap.id() && wanted[id] == nil {
			st.stop()
			delete(a.readiness, id)
			a.changed = true
		}
	}
	for id, inst := range wanted {
		if a.readiness[id] == nil {
			a.startReadiness(ap, inst)
		}
	}
}

// checksReadiness reports whether an app's readiness is checked now: it
// has readiness checks and its deployment is at its step, scaling or
// restarting it.
func (a *Agent) checksReadiness(ap *app) bool {
	d := a.deployments[ap.deployID]
	if d == nil || len(ap.spec.ReadinessChecks) == 0 || d.stepOf(ap.id()) != d.CurrentStep {
		return false
	}
	k := d.actionOf(ap.id())
	return k == ActionScale || k == ActionRestart
}

// notReady reports whether a running task of the current configuration
// waits for its readiness check (not yet started, or not yet ready).
func (a *Agent) notReady(ap *app, inst *instance) bool {
	t := inst.task()
	if t == nil || outdated(ap, inst) || !a.checksReadiness(ap) {
		return false
	}
	st := a.readiness[t.ID]
	return st == nil || !st.ready
}

// startReadiness checks one task on a worker until it is ready.
func (a *Agent) startReadiness(ap *app, inst *instance) {
	t := inst.task()
	rc := ap.spec.ReadinessChecks[0]
	ctx, cancel := context.WithCancel(a.ctx)
	st := &readinessState{appID: ap.id(), taskID: t.ID, check: rc, stop: cancel}
	a.readiness[t.ID] = st
	a.changed = true
	addr, err := readinessAddr(ap, inst, rc.PortName)
	if err != nil {
		a.log.Error().Err(err).Str("task_id", t.ID).Msg("readiness check has no address")
		return
	}
	req := probe.Request{Protocol: rc.Protocol, Addr: addr, Path: rc.Path, Network: checkNetwork(ap.spec),
		Timeout: time.Duration(rc.TimeoutSeconds) * time.Second}
	if rc.PreserveLastResponse {
		req.Body = readinessBodyLimit
	}
	a.goWork(func(context.Context) {
		interval := time.Duration(rc.IntervalSeconds) * time.Second
		for {
			// Through the runtime's prober, as health checks: directly, or
			// from inside Docker's network where this process cannot
			// reach the containers.
			res := a.rt.Probe(ctx, req)
			if ctx.Err() != nil {
				return
			}
			var resp *ReadinessResponse
			var err error
			if res.Err != "" {
				err = errors.New(res.Err)
			} else {
				resp = &ReadinessResponse{Status: res.Code, ContentType: res.ContentType, Body: string(res.Body)}
			}
			ready := err == nil && readyCode(rc, resp.Status)
			a.post(func() { a.onReadiness(st, ready, resp, err) })
			if ready {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(interval):
			}
		}
	})
}

func readyCode(rc marathon.ReadinessCheck, status int) bool {
	for _, c := range rc.HTTPStatusCodesForReady {
		if c == status {
			return true
		}
	}
	return false
}

// onReadiness records a check's result.
func (a *Agent) onReadiness(st *readinessState, ready bool, resp *ReadinessResponse, err error) {
	if a.readiness[st.taskID] != st {
		return // stopped meanwhile
	}
	if st.check.PreserveLastResponse && resp != nil {
		st.last = resp
	}
	if ready != st.ready {
		a.log.Info().Str("task_id", st.taskID).Bool("ready", ready).Msg("readiness changed")
	} else if err != nil {
		a.log.Debug().Err(err).Str("task_id", st.taskID).Msg("readiness check failed")
	}
	st.ready = ready
	a.changed = true
	if ap := a.apps[st.appID]; ap != nil {
		a.touchApp(ap) // a ready successor lets an old task go
		if ap.deployID != "" {
			a.dirtyDeployments[ap.deployID] = true
		}
	}
}

// readinessAddr is where a readiness check connects: the port named
// portName, as checkAddr finds a health check's port.
func readinessAddr(ap *app, inst *instance, portName string) (string, error) {
	spec := ap.spec
	if spec.NetworkMode() == marathon.NetworkHost {
		r := inst.rec.Reservation
		for i, pd := range spec.PortDefinitions {
			if pd.Name == portName && r != nil && i < len(r.HostPorts) {
				return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.HostPorts[i])), nil
			}
		}
		return "", fmt.Errorf("no port definition is named %q", portName)
	}
	t := inst.task()
	if t.IPAddress == "" {
		return "", errors.New("the container has no IP address on its network")
	}
	for i, pm := range spec.PortMappings() {
		if pm.Name == portName {
			return net.JoinHostPort(t.IPAddress, strconv.Itoa(containerPort(spec, inst.rec.Reservation, i))), nil
		}
	}
	return "", fmt.Errorf("no port mapping is named %q", portName)
}

// appReady reports whether every running task of an app at the current
// configuration is ready (true for an app without readiness checks).
func (a *Agent) appReady(ap *app) bool {
	if len(ap.spec.ReadinessChecks) == 0 {
		return true
	}
	for _, inst := range a.appInstances(ap.id()) {
		t := inst.task()
		if inst.rec.Goal != GoalRunning || t == nil || t.State != TaskRunning {
			continue
		}
		if st := a.readiness[t.ID]; st == nil || !st.ready {
			return false
		}
	}
	return true
}

// readinessViews are the readiness results of an app's checked tasks,
// by task id.
func (a *Agent) readinessViews(appID string) []ReadinessView {
	var out []ReadinessView
	for _, st := range a.readiness {
		if st.appID == appID {
			out = append(out, ReadinessView{Name: st.check.Name, TaskID: st.taskID, Ready: st.ready, LastResponse: st.last})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TaskID < out[j].TaskID })
	return out
}

// readinessResults are readinessViews as Marathon's JSON.
func (a *Agent) readinessResults(appID string) []marathon.ReadinessCheckResult {
	out := []marathon.ReadinessCheckResult{}
	for _, v := range a.readinessViews(appID) {
		r := marathon.ReadinessCheckResult{Name: v.Name, TaskID: v.TaskID, Ready: v.Ready}
		if lr := v.LastResponse; lr != nil {
			r.LastResponse = &marathon.HTTPResponse{Status: lr.Status, ContentType: lr.ContentType, Body: lr.Body}
		}
		out = append(out, r)
	}
	return out
}
