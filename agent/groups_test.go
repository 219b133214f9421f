package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/marathon"
)

// events records the agent's events in order.
type events struct {
	mu   sync.Mutex
	seen []eventSeen
}

type eventSeen struct {
	typ  string
	data map[string]any
}

func (h *harness) recordEvents() *events {
	ev := &events{}
	sub := h.a.Bus().Subscribe(agent.SubscribeOptions{Light: true})
	h.t.Cleanup(sub.Close)
	go func() {
		for e := range sub.C {
			var m map[string]any
			if err := json.Unmarshal(e.For(sub), &m); err != nil {
				continue
			}
			ev.mu.Lock()
			ev.seen = append(ev.seen, eventSeen{e.Type, m})
			ev.mu.Unlock()
		}
	}()
	return ev
}

// wait waits until n events of type typ have been seen: the bus delivers
// on a goroutine of its own, after the snapshot shows the change.
func (ev *events) wait(t *testing.T, typ string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev.mu.Lock()
		seen := 0
		for _, e := range ev.seen {
			if e.typ == typ {
				seen++
			}
		}
		ev.mu.Unlock()
		if seen >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s events within 10 s, want %d", seen, typ, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// order lists, in order, "<appId> <taskStatus>" of the status updates and
// "<type>" of the other events of the given types.
func (ev *events) order(types ...string) []string {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	var out []string
	for _, e := range ev.seen {
		if !slices.Contains(types, e.typ) {
			continue
		}
		if e.typ == "status_update_event" {
			out = append(out, e.data["appId"].(string)+" "+e.data["taskStatus"].(string))
			continue
		}
		out = append(out, e.typ)
	}
	return out
}

// before fails unless a occurs in list, and before b.
func before(t *testing.T, list []string, a, b string) {
	t.Helper()
	i, j := slices.Index(list, a), slices.Index(list, b)
	if i < 0 || j < 0 || i > j {
		t.Fatalf("want %q before %q in %v", a, b, list)
	}
}

func (h *harness) changeGroup(id string, body any, opts agent.GroupOptions) agent.GroupResult {
	h.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		h.t.Fatal(err)
	}
	res, err := h.a.ChangeGroup(context.Background(), id, raw, opts)
	if err != nil {
		h.t.Fatalf("change group %s: %v", id, err)
	}
	return res
}

// stack is a three-tier group: web depends on api, api on db, with ids
// relative to the group.
func stack(group string, api map[string]any) map[string]any {
	db := residentApp("db")
	if api == nil {
		api = residentApp("api")
	}
	api["dependencies"] = []any{"db"}
	web := residentApp("web")
	web["dependencies"] = []any{group + "/api"}
	return map[string]any{"id": group, "apps": []any{db, api, web}}
}

func stepsString(steps []agentStep) string {
	var b strings.Builder
	for i, s := range steps {
		if i > 0 {
			b.WriteString(" | ")
		}
		for j, a := range s {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(a.Kind + " " + a.App)
		}
	}
	return b.String()
}

type agentStep = []struct {
	Kind string `json:"action"`
	App  string `json:"app"`
}

func planString(t *testing.T, steps any) string {
	t.Helper()
	raw, _ := json.Marshal(steps)
	var s []agentStep
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatal(err)
	}
	return stepsString(s)
}

func (h *harness) noDeployment(what string) *agent.Snapshot {
	h.t.Helper()
	return h.waitFor(what, func(s *agent.Snapshot) bool { return len(s.Deployments) == 0 })
}

// TestGroupDeploymentOrder: a group starts in dependency order, one step
// after the other (each app's tasks running before its dependents start);
// scaling the group to 0 stops it in reverse order and keeps the volumes.
func TestGroupDeploymentOrder(t *testing.T) {
	h := newHarness(t, testConfig())
	ev := h.recordEvents()
	res := h.changeGroup("/s", stack("/s", nil), agent.GroupOptions{Create: true})
	want := "StartApplication /s/api, StartApplication /s/db, StartApplication /s/web | ScaleApplication /s/db | ScaleApplication /s/api | ScaleApplication /s/web"
	if got := planString(t, res.Steps); got != want {
		t.Fatalf("plan %s\nwant %s", got, want)
	}
	h.noDeployment("the group deployed")
	for _, id := range []string{"/s/db", "/s/api", "/s/web"} {
		h.running(id, 1)
	}
	ev.wait(t, "deployment_success", 1)
	order := ev.order("status_update_event", "deployment_step_success", "deployment_success")
	before(t, order, "/s/db TASK_RUNNING", "/s/api TASK_STAGING")
	before(t, order, "/s/api TASK_RUNNING", "/s/web TASK_STAGING")
	before(t, order, "/s/web TASK_RUNNING", "deployment_success")
	vols, err := h.a.Volumes()
	if err != nil || len(vols) != 3 {
		t.Fatalf("volumes %v %v", vols, err)
	}

	versions, err := h.a.GroupVersions("/s")
	if err != nil || len(versions) != 1 {
		t.Fatalf("group versions %v %v", versions, err)
	}
	res = h.changeGroup("/s", map[string]any{"scaleBy": 0}, agent.GroupOptions{})
	if got, want := planString(t, res.Steps), "ScaleApplication /s/web | ScaleApplication /s/api | ScaleApplication /s/db"; got != want {
		t.Fatalf("scale-down plan %s, want %s", got, want)
	}
	s := h.noDeployment("the group scaled to 0")
	for _, id := range []string{"/s/db", "/s/api", "/s/web"} {
		if a := s.App(id); a.TasksRunning != 0 || a.Spec.Instances != 0 {
			t.Fatalf("%s after scaleBy 0: %d running of %d", id, a.TasksRunning, a.Spec.Instances)
		}
	}
	ev.wait(t, "deployment_success", 2)
	order = ev.order("status_update_event")
	before(t, order, "/s/web TASK_KILLED", "/s/api TASK_KILLED")
	before(t, order, "/s/api TASK_KILLED", "/s/db TASK_KILLED")
	after, err := h.a.Volumes()
	if err != nil || len(after) != 3 {
		t.Fatalf("volumes after scaleBy 0: %v %v", after, err)
	}

	// Removing the group stops the apps in reverse dependency order.
	res = h.changeGroup("/s", map[string]any{"apps": []any{}}, agent.GroupOptions{DryRun: true})
	if got, want := planString(t, res.Steps), "StopApplication /s/web | StopApplication /s/api | StopApplication /s/db"; got != want {
		t.Fatalf("plan of removing every app %s, want %s", got, want)
	}

	// Back to the version before: the same reservations, in order again.
	h.changeGroup("/s", map[string]any{"version": marathon.FormatTime(versions[0])}, agent.GroupOptions{})
	h.noDeployment("the group rolled back")
	for _, id := range []string{"/s/db", "/s/api", "/s/web"} {
		h.running(id, 1)
	}
	again, _ := h.a.Volumes()
	if volumeIDs(again) != volumeIDs(vols) {
		t.Fatalf("volumes after scaling back %s, before %s", volumeIDs(again), volumeIDs(vols))
	}
}

func volumeIDs(vs []agent.VolumeInfo) string {
	var ids []string
	for _, v := range vs {
		ids = append(ids, v.PersistenceID)
	}
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// readyServer answers /ready with 200 once ready is set, 503 before;
// /never with 503 always.
func readyServer(t *testing.T) (port int, ready *atomic.Bool) {
	ready = &atomic.Bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" && ready.Load() {
			_, _ = w.Write([]byte("ready"))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("not yet"))
	}))
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	port, _ = strconv.Atoi(p)
	return port, ready
}

// readyApp is a resident app whose port is the test's server, with a
// readiness check of path.
func readyApp(id string, port int, path string) map[string]any {
	app := residentApp(id)
	app["container"].(map[string]any)["portMappings"] = []any{map[string]any{"containerPort": port, "hostPort": 0, "name": "http"}}
	app["readinessChecks"] = []any{map[string]any{
		"name": "ready", "protocol": "HTTP", "path": path, "portName": "http",
		"intervalSeconds": 2, "timeoutSeconds": 1, "httpStatusCodesForReady": []int{200}, "preserveLastResponse": true,
	}}
	return app
}

// heldAt waits until the group's deployment waits for the app's readiness
// and returns the deployment.
func (h *harness) heldAt(app string) *agent.DeploymentView {
	h.t.Helper()
	s := h.waitFor(app+" running, not ready", func(s *agent.Snapshot) bool {
		a := s.App(app)
		if a == nil || a.TasksRunning != 1 || len(s.Deployments) != 1 {
			return false
		}
		r := s.Deployments[0].Readiness[app]
		return len(r) == 1 && r[0].LastResponse != nil
	})
	return s.Deployments[0]
}

// TestReadinessHoldsTheStep: a task that is not ready holds its step (its
// dependents do not start), is never killed for it, and is shown with its
// last response; once ready, the deployment goes on.
func TestReadinessHoldsTheStep(t *testing.T) {
	port, ready := readyServer(t)
	h := newHarness(t, testConfig())
	res := h.changeGroup("/r", stack("/r", readyApp("api", port, "/ready")), agent.GroupOptions{Create: true})
	d := h.heldAt("/r/api")
	if d.ID != res.DeploymentID || d.CurrentStep != 3 {
		t.Fatalf("deployment %s at step %d, want %s at 3", d.ID, d.CurrentStep, res.DeploymentID)
	}
	r := d.Readiness["/r/api"][0]
	if r.Ready || r.Name != "ready" || r.LastResponse.Status != http.StatusServiceUnavailable || r.LastResponse.Body != "not yet" {
		t.Fatalf("readiness %+v %+v", r, r.LastResponse)
	}
	task := h.a.Snapshot().App("/r/api").Tasks[0].ID
	time.Sleep(2500 * time.Millisecond) // more than one interval
	s := h.a.Snapshot()
	if w := s.App("/r/web"); len(w.Tasks) != 0 {
		t.Fatalf("web started before api was ready: %+v", w.Tasks)
	}
	if got := s.App("/r/api").Tasks[0].ID; got != task {
		t.Fatalf("the task that is not ready was replaced: %s, was %s", got, task)
	}
	ready.Store(true)
	h.noDeployment("the deployment to go on")
	h.running("/r/web", 1)
}

// TestGroupCancelRollsBack: cancelling a group deployment held by
// readiness rolls the whole group back to its previous version; the
// volumes stay.
func TestGroupCancelRollsBack(t *testing.T) {
	port, ready := readyServer(t)
	ready.Store(true)
	h := newHarness(t, testConfig())
	h.changeGroup("/c", stack("/c", readyApp("api", port, "/ready")), agent.GroupOptions{Create: true})
	h.noDeployment("the group deployed")
	vols, _ := h.a.Volumes()

	// A new api that never becomes ready, and a bigger db.
	next := stack("/c", readyApp("api", port, "/never"))
	next["apps"].([]any)[0].(map[string]any)["instances"] = 2
	res := h.changeGroup("/c", next, agent.GroupOptions{})
	if got, want := planString(t, res.Steps), "ScaleApplication /c/db | RestartApplication /c/api"; got != want {
		t.Fatalf("plan %s, want %s", got, want)
	}
	h.heldAt("/c/api")
	if err := lockedErr(h.changeGroup2("/c", map[string]any{"scaleBy": 2})); err != nil {
		t.Fatal(err)
	}
	if _, err := h.a.CancelDeployment(context.Background(), res.DeploymentID, false); err != nil {
		t.Fatal(err)
	}
	s := h.noDeployment("the rollback")
	if p := s.App("/c/api").Spec.ReadinessChecks[0].Path; p != "/ready" {
		t.Fatalf("api after the rollback checks %s", p)
	}
	h.running("/c/db", 1)
	h.running("/c/api", 1)
	after, _ := h.a.Volumes()
	if have := volumeIDs(after); !containsAll(strings.Split(have, ","), strings.Split(volumeIDs(vols), ",")) {
		t.Fatalf("volumes after the rollback %s, before %s", volumeIDs(after), volumeIDs(vols))
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (h *harness) changeGroup2(id string, body any) error {
	raw, _ := json.Marshal(body)
	_, err := h.a.ChangeGroup(context.Background(), id, raw, agent.GroupOptions{})
	return err
}

func lockedErr(err error) error {
	var le *agent.LockedError
	if !errors.As(err, &le) {
		return errors.New("a change to a group whose deployment is in progress was not refused as locked: " + errString(err))
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return "no error"
	}
	return err.Error()
}

// TestGroupRefusals: cycles, a clash with an app, a group id that is an
// app or inside one: refused with the path, nothing deployed.
func TestGroupRefusals(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create(appJSON(t, residentApp("/taken/app"), nil))
	h.running("/taken/app", 1)
	x, y := residentApp("x"), residentApp("y")
	x["dependencies"], y["dependencies"] = []any{"y"}, []any{"/cyc/x"}
	for _, tc := range []struct {
		id   string
		body map[string]any
		want []string
		is   error
	}{
		{"/cyc", map[string]any{"apps": []any{x, y}}, []string{"/cyc/x", "/cyc/y", "cycle"}, nil},
		{"/taken/app/g", map[string]any{"apps": []any{residentApp("m")}}, []string{"/taken/app"}, agent.ErrConflict},
		{"/taken", map[string]any{"apps": []any{residentApp("/taken/app")}}, []string{"/taken"}, agent.ErrConflict},
		{"/taken/app", map[string]any{"apps": []any{}}, []string{"/taken/app"}, agent.ErrConflict},
		{"/outside", map[string]any{"apps": []any{residentApp("/elsewhere/a")}}, []string{"/elsewhere/a"}, nil},
	} {
		raw, _ := json.Marshal(tc.body)
		_, err := h.a.ChangeGroup(context.Background(), tc.id, raw, agent.GroupOptions{Create: true})
		if err == nil {
			t.Fatalf("group %s accepted", tc.id)
		}
		msg := err.Error()
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("group %s: error %q lacks %q", tc.id, msg, w)
			}
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("group %s: error %v is not %v", tc.id, err, tc.is)
		}
	}
	s := h.a.Snapshot()
	if len(s.Apps) != 1 || len(s.Deployments) != 0 || len(s.Groups) != 0 {
		t.Fatalf("refused changes left apps %d deployments %d groups %v", len(s.Apps), len(s.Deployments), s.Groups)
	}
}

// TestGroupDeploymentSurvivesRestart: a group deployment held at its
// second app survives a restart of the agent: the same deployment at the
// same step, finished once the app is ready.
func TestGroupDeploymentSurvivesRestart(t *testing.T) {
	port, ready := readyServer(t)
	h := newHarness(t, testConfig())
	res := h.changeGroup("/k", stack("/k", readyApp("api", port, "/ready")), agent.GroupOptions{Create: true})
	h.heldAt("/k/api")
	h.stop()
	h.start()
	d := h.heldAt("/k/api")
	if d.ID != res.DeploymentID || d.CurrentStep != 3 {
		t.Fatalf("after the restart: deployment %s at step %d, want %s at 3", d.ID, d.CurrentStep, res.DeploymentID)
	}
	if w := h.a.Snapshot().App("/k/web"); len(w.Tasks) != 0 {
		t.Fatalf("web started after the restart before api was ready")
	}
	ready.Store(true)
	h.noDeployment("the deployment to finish")
	for _, id := range []string{"/k/db", "/k/api", "/k/web"} {
		if n := len(h.running(id, 1)); n != 1 {
			t.Fatalf("%s runs %d tasks", id, n)
		}
	}
}

// TestGroupCrashWindows: an agent killed anywhere in a group change's
// writes either never accepted it (nothing of it on disk) or finishes it
// after a restart: every app of the group running, one task each, and no
// deployment left.
func TestGroupCrashWindows(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   crashAt
		all  bool // the change was accepted: recovery finishes it
	}{
		{"deployment-saved", crashAt{point: "store.put.deployment"}, true},
		{"first-version-saved", crashAt{point: "store.put.version"}, true},
		{"second-app-saved", crashAt{point: "store.put.app", when: func(d disk) bool { return len(d.apps) == 2 }}, true},
		{"first-step-done", crashAt{point: "store.put.deployment", when: func(d disk) bool { return len(d.apps) == 3 && len(d.deployments) == 1 }}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, c := crashHarness(t)
			c.arm(tc.at)
			actErr := make(chan error, 1)
			go func() {
				raw, _ := json.Marshal(stack("/w", nil))
				_, err := h.a.ChangeGroup(context.Background(), "/w", raw, agent.GroupOptions{Create: true})
				actErr <- err
			}()
			cs := c.waitCrash(t, actErr)
			h.recover()
			s := h.noDeployment("the group deployment to finish")
			if !tc.all {
				if len(s.Apps) != 0 {
					t.Fatalf("an unaccepted change left apps")
				}
				return
			}
			for _, id := range []string{"/w/db", "/w/api", "/w/web"} {
				h.running(id, 1)
			}
			if len(h.rt.Containers()) != 3 {
				t.Fatalf("containers after the crash at %s: %s", cs.point, containerList(h.rt.Containers()))
			}
			checkInvariants(t, h)
		})
	}
}

// TestReadinessKeepsTheOldTask: a restart of an app without volumes keeps
// the old task until its successor is ready (upgradeStrategy's
// minimumHealthCapacity 1), as Marathon's task replacement does.
func TestReadinessKeepsTheOldTask(t *testing.T) {
	port, ready := readyServer(t)
	ready.Store(true)
	h := newHarness(t, testConfig())
	app := readyApp("/rolling", port, "/ready")
	app["container"].(map[string]any)["volumes"] = []any{}
	h.create(appJSON(t, app, nil))
	old := h.running("/rolling", 1)[0]
	ready.Store(false)
	if _, _, err := h.a.UpdateApp(context.Background(), "/rolling", []byte(`{"env":{"V":"2"}}`), agent.UpdateOptions{Partial: true}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the successor running, not ready", func(s *agent.Snapshot) bool {
		r := s.App("/rolling")
		return r.TasksRunning == 2 && len(s.Deployments) == 1 && len(s.Deployments[0].Readiness["/rolling"]) == 1 &&
			s.Deployments[0].Readiness["/rolling"][0].LastResponse != nil
	})
	time.Sleep(2500 * time.Millisecond)
	if s := h.a.Snapshot(); s.Task(old.ID) == nil || s.Task(old.ID).State != agent.TaskRunning {
		t.Fatalf("the old task went before its successor was ready")
	}
	ready.Store(true)
	tasks := h.running("/rolling", 1)
	if tasks[0].ID == old.ID {
		t.Fatalf("the old task stayed")
	}
}
