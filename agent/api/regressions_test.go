package api_test

// Regression tests of agent bugs found through the API: a scale taken for
// a restart, the queue's delay reset, deployment versions and step events.

import (
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"testing"
)

// TestFirstScaleIsAScale: the first change of instances alone of a new
// app without persistent volumes restarts its tasks (RestartApplication)
// instead of scaling. agent/deploy.go scaleOnly compares the two specs'
// JSON byte for byte, and a json.RawMessage field differs in key order
// only: Normalize (agent/marathon/normalize.go) defaults
// unreachableStrategy to the literal
// {"inactiveAfterSeconds":300,"expungeAfterSeconds":600}, while the spec
// rebuilt from the rendered definition has the keys sorted. (A user's own
// unreachableStrategy with other spacing or order does the same.) Fix:
// compare semantically in scaleOnly, e.g. unmarshal both JSON documents
// into `any` and reflect.DeepEqual them; and/or write the default with
// sorted keys.
func TestFirstScaleIsAScale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(webApp("/web"))
	first := e.settled("/web", 1)[0]
	dep, _ := deploymentResult(t, e.do("PUT", "/v2/apps/web", `{"id":"/web","instances":2}`), http.StatusOK, "scale to 2")
	if d := e.deployment(dep); d != nil && !reflect.DeepEqual(actionsOf(d["steps"]), [][]string{{"ScaleApplication /web"}}) {
		t.Errorf("a change of instances alone made the deployment %v", actionsOf(d["steps"]))
	}
	tasks := e.settled("/web", 2)
	var ids []string
	for _, x := range tasks {
		ids = append(ids, x.ID)
	}
	if !slices.Contains(ids, first.ID) {
		t.Fatalf("scaling from 1 to 2 replaced the running task %s: now %v", first.ID, ids)
	}
	if app := e.app("/web"); get(app, "versionInfo", "lastConfigChangeAt") == app["version"] {
		t.Fatalf("a scale counted as a config change: versionInfo %v", app["versionInfo"])
	}
}

// TestRollbackOfCreateVersion: DELETE /v2/deployments/{id} of a create
// answers a DeploymentResult whose version is not that of the deployment
// it lists. agent/commands.go CancelDeployment (the "undo a creation"
// branch) takes ver := a.nextVersion() but never sets d2.Version = ver,
// so GET /v2/deployments shows the app's old version. Fix: take the
// version before startDeployment and set it on the deployment before it
// is persisted and announced (DeleteApp has the same late assignment,
// see TestDeleteDeploymentInfoVersion).
func TestRollbackOfCreateVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	failing := newTarget(t, http.StatusServiceUnavailable)
	dep := e.createApp(checkedApp("/b", failing.port, 300, 3))
	// The rollback may end before GET /v2/deployments could list it; the
	// deployment_info event comes from the same record, always.
	s := e.subscribe("?event_type=deployment_info")
	rb, version := deploymentResult(t, e.do("DELETE", "/v2/deployments/"+dep, nil), http.StatusOK, "rollback of a create")
	if d := e.deployment(rb); d != nil && d["version"] != version {
		t.Fatalf("GET /v2/deployments shows version %v for deployment %s; the DELETE answered version %s", d["version"], rb, version)
	}
	info := s.waitFor("deployment_info", func(m map[string]any) bool { return get(m, "plan", "id") == rb })
	if got := get(info, "plan", "version"); got != version {
		t.Fatalf("deployment_info plan.version %v for the rollback %s; the DELETE answered %s", got, rb, version)
	}
}

// TestDeleteDeploymentInfoVersion: the deployment_info event of an app
// removal carries the app's old version, not the version DELETE answers.
// agent/commands.go DeleteApp sets d.Version = ver after startDeployment,
// which has already persisted the deployment and published
// deployment_info. Fix: let startDeployment take the version (or set it
// before persisting and publishing).
func TestDeleteDeploymentInfoVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(webApp("/web"))
	e.settled("/web", 1)
	s := e.subscribe("?event_type=deployment_info")
	dep, version := deploymentResult(t, e.do("DELETE", "/v2/apps/web", nil), http.StatusOK, "DELETE")
	info := s.waitFor("deployment_info", func(m map[string]any) bool { return get(m, "plan", "id") == dep })
	if got := get(info, "plan", "version"); got != version {
		t.Fatalf("deployment_info plan.version %v, DELETE answered %s", got, version)
	}
}

// TestDeploymentStepFailure: a deployment that does not succeed (here:
// replaced by a forced change) was announced with deployment_step_success
// for the step it never finished, before deployment_failed. The steps it
// did finish (the creation's StartApplication) succeed, as in Marathon;
// the step in progress fails with "deployment_step_failure".
func TestDeploymentStepFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	failing := newTarget(t, http.StatusServiceUnavailable)
	s := e.subscribe("?event_type=deployment_step_success&event_type=deployment_step_failure&event_type=deployment_failed")
	first := e.createApp(checkedApp("/b", failing.port, 300, 3))
	expect(t, e.do("PUT", "/v2/apps/b?force=true", `{"instances":2}`), http.StatusOK, "forced scale")
	s.waitFor("deployment_failed", func(m map[string]any) bool { return m["id"] == first })
	failed := s.waitFor("deployment_step_failure", func(m map[string]any) bool { return get(m, "plan", "id") == first })
	unfinished := fmt.Sprint(get(failed, "currentStep", "actions"))
	types := s.types()
	s.mu.Lock()
	seen := slices.Clone(s.seen)
	s.mu.Unlock()
	for _, ev := range seen {
		if ev.Type == "deployment_step_success" && get(ev.Data, "plan", "id") == first && fmt.Sprint(get(ev.Data, "currentStep", "actions")) == unfinished {
			t.Fatalf("the replaced deployment %s was announced with deployment_step_success for its unfinished step %s: %v", first, unfinished, types)
		}
	}
}

// TestDelayResetOfQueuedApp: an app waiting in the launch queue (here for
// resources, not backed off) is listed by GET /v2/queue, but DELETE
// /v2/queue/{id}/delay answers 404 "not found in tasks queue". Marathon
// answers 404 only when the app has no instance to launch.
// agent/commands.go ResetDelay refuses when ap.delay.notBefore is zero.
// Fix: answer 404 only when no instance of the app has goal running and
// no active task (the condition publish() uses to list the queue), and
// otherwise reset the delay (a no-op here) and answer 204.
func TestDelayResetOfQueuedApp(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(with(webApp("/big"), "cpus", 100))
	waitUntil(t, "/big in the queue", func() bool { return len(e.a.Snapshot().Queue) == 1 })
	q := e.do("GET", "/v2/queue", nil)
	if items := q.obj(t)["queue"].([]any); len(items) != 1 || get(items, 0, "app", "id") != "/big" {
		t.Fatalf("queue: %s", q)
	}
	r := e.do("DELETE", "/v2/queue/big/delay", nil)
	expect(t, r, http.StatusNoContent, "delay reset of an app the queue lists")
}
