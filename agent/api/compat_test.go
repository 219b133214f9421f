package api_test

// Compatibility tests: for each DC/OS CLI command of SPEC §6 (marathon-ref
// §12), the requests that command sends, exactly, and every field it reads
// from the answers.

import (
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/mesolite/mesolite/agent"
)

const lockedMessage = "App is locked by one or more deployments. Override with the option '?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'."

// deploymentResult checks a DeploymentResult answer and its header, and
// returns the deployment id.
func deploymentResult(t testing.TB, r *resp, status int, what string) (id, version string) {
	t.Helper()
	expect(t, r, status, what)
	m := r.obj(t)
	id, _ = m["deploymentId"].(string)
	version, _ = m["version"].(string)
	if id == "" || version == "" || len(m) != 2 {
		t.Fatalf("%s: want {deploymentId, version}, got %s", what, r)
	}
	if h := r.Header.Get("Marathon-Deployment-Id"); h != id {
		t.Fatalf("%s: Marathon-Deployment-Id %q, body deploymentId %q", what, h, id)
	}
	if !isTimestamp(version) {
		t.Fatalf("%s: version %q is not Marathon's timestamp", what, version)
	}
	return id, version
}

// isTimestamp: Marathon's ISO-8601 UTC with milliseconds.
func isTimestamp(s string) bool {
	return len(s) == len("2006-01-02T15:04:05.000Z") && s[10] == 'T' && strings.HasSuffix(s, "Z") && s[19] == '.'
}

// deployments reads GET /v2/deployments.
func (e *env) deployments() []map[string]any {
	e.t.Helper()
	r := e.do("GET", "/v2/deployments", nil)
	expect(e.t, r, http.StatusOK, "GET /v2/deployments")
	var out []map[string]any
	for _, d := range r.arr(e.t) {
		out = append(out, d.(map[string]any))
	}
	return out
}

func (e *env) deployment(id string) map[string]any {
	e.t.Helper()
	for _, d := range e.deployments() {
		if d["id"] == id {
			return d
		}
	}
	return nil
}

// actionsOf returns each step's actions as "Action app" strings.
func actionsOf(steps any) [][]string {
	var out [][]string
	list, _ := steps.([]any)
	for _, s := range list {
		var acts []string
		for _, a := range get(s, "actions").([]any) {
			acts = append(acts, get(a, "action").(string)+" "+get(a, "app").(string))
		}
		out = append(out, acts)
	}
	return out
}

// TestCLIAppAdd: `app add F` sends GET /v2/apps/<id> (expects 404), then
// POST /v2/apps with the file as read, and prints deployments[0].id.
func TestCLIAppAdd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body, err := os.ReadFile(filepath.Join("..", "..", "testdata", "postgres.marathon.json"))
	if err != nil {
		t.Fatal(err)
	}
	expectMessage(t, e.do("GET", "/v2/apps/postgres", nil), http.StatusNotFound, "App '/postgres' does not exist")

	r := e.do("POST", "/v2/apps", body)
	expect(t, r, http.StatusCreated, "POST /v2/apps")
	app := r.obj(t)
	deps, _ := app["deployments"].([]any)
	if len(deps) != 1 {
		t.Fatalf("POST body deployments %v, want one", app["deployments"])
	}
	depID, _ := get(deps, 0, "id").(string)
	if depID == "" || r.Header.Get("Marathon-Deployment-Id") != depID {
		t.Fatalf("deployments[0].id %q, Marathon-Deployment-Id %q", depID, r.Header.Get("Marathon-Deployment-Id"))
	}
	if loc := r.Header.Get("Location"); !strings.HasSuffix(loc, "/postgres") {
		t.Fatalf("Location %q, want the app's URL", loc)
	}
	if app["id"] != "/postgres" || num(app["instances"]) != 1 || num(app["mem"]) != 1024 || num(app["cpus"]) != 1 {
		t.Fatalf("POST body: %s", r)
	}
	for _, k := range []string{"tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy"} {
		if v, ok := app[k]; !ok || num(v) != 0 {
			t.Fatalf("POST body %s = %v, want 0", k, v)
		}
	}
	if !isTimestamp(app["version"].(string)) {
		t.Fatalf("version %v", app["version"])
	}
	if _, ok := app["versionInfo"]; ok {
		t.Fatalf("POST body has versionInfo (Marathon omits it for a new app): %s", r)
	}
	// Marathon's normalization as the tutorial shows it.
	if app["unreachableStrategy"] != "disabled" || get(app, "residency", "taskLostBehavior") != "WAIT_FOREVER" ||
		get(app, "container", "portMappings", 0, "servicePort") == nil || get(app, "container", "volumes", 0, "persistent", "type") != "root" {
		t.Fatalf("POST body not normalized: %s", r)
	}

	// The deployment is listed (the health check keeps it open until the
	// task is healthy, which nothing here makes it).
	d := e.deployment(depID)
	if d == nil {
		if v := e.a.Snapshot().App("/postgres"); v == nil || len(v.Deployments) != 0 {
			t.Fatalf("deployment %s not listed: %v", depID, e.deployments())
		}
	} else if !reflect.DeepEqual(d["affectedApps"], []any{"/postgres"}) {
		t.Fatalf("deployment: %v", d)
	}

	// app add again: the GET finds it, and a POST anyway is a 409.
	expect(t, e.do("GET", "/v2/apps/postgres", nil), http.StatusOK, "GET existing app")
	expectMessage(t, e.do("POST", "/v2/apps", body), http.StatusConflict, "An app with id [/postgres] already exists.")
	// Also under a relative id.
	expectMessage(t, e.do("POST", "/v2/apps", `{"id":"postgres","container":{"docker":{"image":"x"}}}`), http.StatusConflict, "An app with id [/postgres] already exists.")

	// The Go CLI's variant: go-marathon reads the app with embeds, and
	// posts to v2/apps/ (trailing slash).
	expectMessage(t, e.do("GET", "/v2/apps/other?embed=app.tasks&embed=app.counts&embed=app.deployments&embed=app.readiness&embed=app.lastTaskFailure&embed=app.taskStats", nil), http.StatusNotFound, "App '/other' does not exist")
	r = e.do("POST", "/v2/apps/", webApp("/other"))
	expect(t, r, http.StatusCreated, "POST /v2/apps/")
	if get(r.obj(t), "deployments", 0, "id") != r.Header.Get("Marathon-Deployment-Id") {
		t.Fatalf("POST /v2/apps/: %s", r)
	}
	r = e.do("GET", "/v2/apps/other?embed=app.tasks&embed=app.counts&embed=app.deployments&embed=app.readiness&embed=app.lastTaskFailure&embed=app.taskStats", nil)
	if expect(t, r, http.StatusOK, "GET with embeds"); get(r.obj(t), "app", "id") != "/other" {
		t.Fatalf("GET with embeds: %s", r)
	}
}

// TestCLIAppList: `app list` reads GET /v2/apps, GET /v2/deployments and
// GET /v2/queue: id, mem, cpus, tasksRunning/instances, healthChecks
// (absent when empty) with tasksHealthy/tasksRunning, deployments[].id
// against the deployments' currentActions, the queue's delay.overdue,
// container.type, cmd and args.
func TestCLIAppList(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	healthy := newTarget(t, http.StatusOK)
	failing := newTarget(t, http.StatusServiceUnavailable)

	e.createApp(with(webApp("/plain"), "instances", 2))
	e.createApp(checkedApp("/checked", healthy.port, 300, 3))
	stuckDep := e.createApp(checkedApp("/stuck", failing.port, 300, 3))
	e.createApp(with(webApp("/crash"), "backoffSeconds", 600, "maxLaunchDelaySeconds", 3600, "cmd", nil, "args", []any{"serve", "--port", "80"}))
	e.settled("/plain", 2)
	e.settled("/checked", 1)
	crashTask := e.settled("/crash", 1)[0]
	if err := e.rt.Crash(crashTask.ID, 3); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "/crash to wait in the queue", func() bool { return len(e.a.Snapshot().Queue) == 1 })
	waitUntil(t, "/stuck's task to run", func() bool { return e.a.Snapshot().App("/stuck").TasksRunning == 1 })

	r := e.do("GET", "/v2/apps", nil)
	expect(t, r, http.StatusOK, "GET /v2/apps")
	apps := map[string]map[string]any{}
	for _, a := range r.obj(t)["apps"].([]any) {
		m := a.(map[string]any)
		apps[m["id"].(string)] = m
		for _, k := range []string{"mem", "cpus", "instances", "tasksRunning", "tasksHealthy", "tasksStaged", "tasksUnhealthy", "deployments", "container", "version", "versionInfo"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("app %s lacks %q: %v", m["id"], k, m)
			}
		}
		if _, ok := m["tasks"]; ok {
			t.Fatalf("GET /v2/apps without embed has tasks: %v", m)
		}
		if get(m, "container", "type") != "DOCKER" {
			t.Fatalf("container.type of %s: %v", m["id"], m["container"])
		}
	}
	if len(apps) != 4 {
		t.Fatalf("apps: %v", apps)
	}
	plain, checked, stuck, crash := apps["/plain"], apps["/checked"], apps["/stuck"], apps["/crash"]
	if num(plain["tasksRunning"]) != 2 || num(plain["instances"]) != 2 || num(plain["mem"]) != 32 || num(plain["cpus"]) != 0.1 || plain["cmd"] != "sleep 1000" {
		t.Fatalf("/plain: %v", plain)
	}
	if _, ok := plain["healthChecks"]; ok {
		t.Fatalf("/plain has healthChecks although it has none (the CLI shows --- only when the key is absent): %v", plain["healthChecks"])
	}
	if _, ok := checked["healthChecks"]; !ok || num(checked["tasksHealthy"]) != 1 || num(checked["tasksRunning"]) != 1 || num(checked["tasksUnhealthy"]) != 0 {
		t.Fatalf("/checked: healthChecks %v tasksHealthy %v tasksRunning %v", checked["healthChecks"], checked["tasksHealthy"], checked["tasksRunning"])
	}
	if !reflect.DeepEqual(crash["args"], []any{"serve", "--port", "80"}) {
		t.Fatalf("/crash args: %v", crash["args"])
	}
	if _, ok := crash["cmd"]; ok {
		t.Fatalf("/crash has cmd %v", crash["cmd"])
	}

	// DEPLOYMENT: the app's deployment ids, looked up in /v2/deployments.
	if ds := stuck["deployments"].([]any); len(ds) != 1 || get(ds, 0, "id") != stuckDep {
		t.Fatalf("/stuck deployments %v, want [{id: %s}]", ds, stuckDep)
	}
	if ds := plain["deployments"].([]any); len(ds) != 0 {
		t.Fatalf("/plain deployments %v, want []", ds)
	}
	d := e.deployment(stuckDep)
	if d == nil {
		t.Fatalf("deployment %s not in %v", stuckDep, e.deployments())
	}
	cur := d["currentActions"].([]any)
	if len(cur) != 1 || get(cur, 0, "app") != "/stuck" || get(cur, 0, "action") != "ScaleApplication" {
		t.Fatalf("currentActions %v", cur)
	}

	// WAITING: the queue's item for /crash is backing off.
	q := e.do("GET", "/v2/queue", nil)
	expect(t, q, http.StatusOK, "GET /v2/queue")
	items := q.obj(t)["queue"].([]any)
	if len(items) != 1 {
		t.Fatalf("queue: %s", q)
	}
	it := items[0]
	if get(it, "app", "id") != "/crash" || num(get(it, "count")) != 1 || get(it, "delay", "overdue") != false || num(get(it, "delay", "timeLeftSeconds")) < 500 {
		t.Fatalf("queue item: %v", it)
	}
	if !isTimestamp(get(it, "since").(string)) {
		t.Fatalf("queue since: %v", get(it, "since"))
	}

	// embed=apps.tasks adds tasks (and deployments).
	r = e.do("GET", "/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure", nil)
	for _, a := range r.obj(t)["apps"].([]any) {
		if _, ok := a.(map[string]any)["tasks"]; !ok {
			t.Fatalf("embed=apps.tasks: no tasks in %v", a)
		}
		if a.(map[string]any)["id"] == "/crash" && get(a, "lastTaskFailure", "state") != "TASK_FAILED" {
			t.Fatalf("embed=apps.lastTaskFailure: %v", get(a, "lastTaskFailure"))
		}
	}
	// Filters.
	r = e.do("GET", "/v2/apps?id=CHECK", nil)
	if apps := r.obj(t)["apps"].([]any); len(apps) != 1 || get(apps, 0, "id") != "/checked" {
		t.Fatalf("?id=CHECK: %s", r)
	}
}

// TestCLIAppShow: `app show ID [--app-version V|-N]` reads GET
// /v2/apps/<id>, GET /v2/apps/<id>/versions (newest first) and GET
// /v2/apps/<id>/versions/<v> (the bare app).
func TestCLIAppShow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(webApp("/web"))
	first := e.settled("/web", 1)[0]
	v1 := e.app("/web")["version"].(string)
	_, v2 := deploymentResult(t, e.do("PUT", "/v2/apps/web", `{"cmd":"sleep 2000"}`), http.StatusOK, "PUT cmd")
	e.settled("/web", 1)
	if err := e.rt.Crash(e.settled("/web", 1)[0].ID, 2); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the crashed task to be replaced", func() bool {
		v := e.a.Snapshot().App("/web")
		return v.LastTaskFailure != nil && v.TasksRunning == 1
	})

	app := e.app("/web")
	if app["id"] != "/web" || app["cmd"] != "sleep 2000" || app["version"] != v2 {
		t.Fatalf("app: %v", app)
	}
	if get(app, "versionInfo", "lastConfigChangeAt") != v2 || get(app, "versionInfo", "lastScalingAt") != v2 {
		t.Fatalf("versionInfo %v, want both %s", app["versionInfo"], v2)
	}
	for _, k := range []string{"tasks", "deployments", "tasksRunning", "tasksHealthy", "lastTaskFailure"} {
		if _, ok := app[k]; !ok {
			t.Fatalf("GET /v2/apps/web lacks %s: %v", k, app)
		}
	}
	ltf := app["lastTaskFailure"].(map[string]any)
	for _, k := range []string{"appId", "host", "message", "state", "taskId", "timestamp", "version", "slaveId"} {
		if _, ok := ltf[k]; !ok {
			t.Fatalf("lastTaskFailure lacks %s: %v", k, ltf)
		}
	}
	if ltf["state"] != "TASK_FAILED" || ltf["appId"] != "/web" {
		t.Fatalf("lastTaskFailure: %v", ltf)
	}

	r := e.do("GET", "/v2/apps/web/versions", nil)
	expect(t, r, http.StatusOK, "versions")
	vs := r.obj(t)["versions"].([]any)
	if len(vs) != 2 || vs[0] != v2 || vs[1] != v1 {
		t.Fatalf("versions %v, want [%s %s] (newest first)", vs, v2, v1)
	}
	// --app-version=-1: versions[1], the bare app of that version.
	r = e.do("GET", "/v2/apps/web/versions/"+v1, nil)
	expect(t, r, http.StatusOK, "version v1")
	old := r.obj(t)
	if old["id"] != "/web" || old["cmd"] != "sleep 1000" || old["version"] != v1 {
		t.Fatalf("version %s: %s", v1, r)
	}
	for _, k := range []string{"tasks", "tasksRunning", "deployments"} {
		if _, ok := old[k]; ok {
			t.Fatalf("a version's JSON has %s: %s", k, r)
		}
	}
	if _, ok := old["app"]; ok {
		t.Fatalf("a version's JSON is wrapped: %s", r)
	}
	expectMessage(t, e.do("GET", "/v2/apps/web/versions/2001-01-01T00:00:00.000Z", nil), http.StatusNotFound, "App '/web' does not exist in version 2001-01-01T00:00:00.000Z")
	expectMessage(t, e.do("GET", "/v2/apps/web/versions/yesterday", nil), http.StatusNotFound, "App '/web' does not exist in version yesterday")
	expectMessage(t, e.do("GET", "/v2/apps/nope/versions", nil), http.StatusNotFound, "App '/nope' does not exist")
	expectMessage(t, e.do("GET", "/v2/apps/nope/versions/"+v1, nil), http.StatusNotFound, "App '/nope' does not exist")
	expectMessage(t, e.do("GET", "/v2/apps/nope", nil), http.StatusNotFound, "App '/nope' does not exist")

	// Tasks of the app.
	r = e.do("GET", "/v2/apps/web/tasks", nil)
	expect(t, r, http.StatusOK, "app tasks")
	tasks := r.obj(t)["tasks"].([]any)
	if len(tasks) != 1 || get(tasks, 0, "appId") != "/web" || get(tasks, 0, "id") == first.ID {
		t.Fatalf("app tasks: %s", r)
	}
	expectMessage(t, e.do("GET", "/v2/apps/nope/tasks", nil), http.StatusNotFound, "App '/nope' does not exist")
}

// TestCLIAppStopStart: `app stop` is GET /v2/apps/X then PUT
// {"id":"/X","instances":0} as go-marathon writes it (with its null
// fields); `app start X` PUTs {"id":"X","instances":1} with the id as
// typed. A stopped resident task stays listed without startedAt.
func TestCLIAppStopStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(residentApp("/pg"))
	first := e.settled("/pg", 1)[0]
	if first.StartedAt.IsZero() || first.StagedAt.IsZero() || first.Version.IsZero() || len(first.Ports) != 1 {
		t.Fatalf("running task: %+v", first)
	}

	if app := e.app("/pg"); num(app["instances"]) != 1 {
		t.Fatalf("instances %v", app["instances"])
	}
	stop := `{"id":"/pg","instances":0,"ports":null,"dependencies":null,"cmd":null,"args":null,"env":null,"labels":null,"healthChecks":null}`
	depID, version := deploymentResult(t, e.do("PUT", "/v2/apps/pg", stop), http.StatusOK, "PUT instances 0")
	d := e.deployment(depID)
	if d != nil && !reflect.DeepEqual(actionsOf(d["steps"]), [][]string{{"ScaleApplication /pg"}}) {
		t.Fatalf("stop deployment steps: %v", d["steps"])
	}
	waitUntil(t, "the task to be stopped", func() bool {
		v := e.a.Snapshot().App("/pg")
		return len(v.Deployments) == 0 && len(v.Tasks) == 1 && v.Tasks[0].State == agent.TaskKilled
	})
	app := e.app("/pg")
	if num(app["instances"]) != 0 || num(app["tasksRunning"]) != 0 || app["version"] != version {
		t.Fatalf("after stop: instances %v tasksRunning %v version %v", app["instances"], app["tasksRunning"], app["version"])
	}
	// A scale leaves the configuration alone: the null fields of the body
	// did not wipe env or labels.
	if get(app, "env", "PGDATA") != "/mnt/mesos/sandbox/pgdata" || app["labels"] == nil {
		t.Fatalf("scale body's nulls changed the app: env %v labels %v", app["env"], app["labels"])
	}
	if get(app, "versionInfo", "lastScalingAt") != version || get(app, "versionInfo", "lastConfigChangeAt") == version {
		t.Fatalf("versionInfo after a scale: %v", app["versionInfo"])
	}
	// The stopped task: id, host, slaveId, localVolumes, TASK_KILLED, no
	// times or ports (task list shows STARTED N/A).
	r := e.do("GET", "/v2/tasks", nil)
	tasks := r.obj(t)["tasks"].([]any)
	if len(tasks) != 1 {
		t.Fatalf("tasks: %s", r)
	}
	task := tasks[0].(map[string]any)
	if task["id"] != first.ID || task["state"] != "TASK_KILLED" || task["host"] == nil || task["slaveId"] == nil || len(task["ports"].([]any)) != 0 {
		t.Fatalf("stopped task: %v", task)
	}
	for _, k := range []string{"startedAt", "stagedAt", "version"} {
		if _, ok := task[k]; ok {
			t.Fatalf("stopped task has %s: %v", k, task)
		}
	}
	if get(task, "localVolumes", 0, "persistenceId") != first.Volumes[0].PersistenceID {
		t.Fatalf("stopped task localVolumes: %v", task["localVolumes"])
	}
	// ?status=running leaves it out.
	if ts := e.do("GET", "/v2/tasks?status=running", nil).obj(t)["tasks"].([]any); len(ts) != 0 {
		t.Fatalf("status=running: %v", ts)
	}

	// app start pg: the id as typed, no leading slash.
	deploymentResult(t, e.do("PUT", "/v2/apps/pg", `{"id":"pg","instances":1}`), http.StatusOK, "PUT instances 1")
	second := e.settled("/pg", 1)[0]
	if second.InstanceID != first.InstanceID || !strings.HasSuffix(second.ID, "._app.2") || second.StartedAt.IsZero() || second.Ports[0] != first.Ports[0] {
		t.Fatalf("after start: %+v (before %+v)", second, first)
	}
}

// TestCLILocked: a change to an app with a deployment in progress is a
// 409 with Marathon's literal message and the locking deployment, unless
// ?force=true.
func TestCLILocked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	failing := newTarget(t, http.StatusServiceUnavailable)
	dep := e.createApp(checkedApp("/b", failing.port, 300, 3))
	waitUntil(t, "/b's task to run", func() bool { return e.a.Snapshot().App("/b").TasksRunning == 1 })

	check := func(r *resp, what string) {
		t.Helper()
		m := expectMessage(t, r, http.StatusConflict, lockedMessage)
		ds, _ := m["deployments"].([]any)
		if len(ds) != 1 || get(ds, 0, "id") != dep {
			t.Fatalf("%s: deployments %v, want [{id: %s}]", what, m["deployments"], dep)
		}
	}
	check(e.do("PUT", "/v2/apps/b", `{"id":"/b","instances":0}`), "app stop")
	check(e.do("PATCH", "/v2/apps/b", `{"env":{"A":"1"}}`), "PATCH")
	check(e.do("POST", "/v2/apps/b/restart", `{}`), "app restart")
	check(e.do("POST", "/v2/tasks/delete?scale=True", map[string]any{"ids": []string{e.a.Snapshot().App("/b").Tasks[0].ID}}), "task kill --scale")
	check(e.do("PUT", "/v2/apps/b?force=false", `{"instances":2}`), "force=false")
	if v := e.a.Snapshot().App("/b"); v.Spec.Instances != 1 {
		t.Fatalf("a refused change changed the app: instances %d", v.Spec.Instances)
	}

	// force=true replaces the deployment.
	newDep, _ := deploymentResult(t, e.do("PUT", "/v2/apps/b?force=true", `{"id":"/b","instances":2}`), http.StatusOK, "PUT force")
	ds := e.deployments()
	if len(ds) != 1 || ds[0]["id"] != newDep {
		t.Fatalf("deployments after a forced change: %v, want only %s", ds, newDep)
	}
	// DELETE /v2/apps defaults to force=true, as Marathon does.
	deploymentResult(t, e.do("DELETE", "/v2/apps/b", nil), http.StatusOK, "DELETE locked app")
	e.gone("/b")
}

// TestCLIAppRestart: `app restart X` is GET then POST
// /v2/apps/X/restart with body {}; every task is replaced and carries the
// new version.
func TestCLIAppRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(with(webApp("/web"), "instances", 2))
	e.createApp(residentApp("/pg"))
	before := e.settled("/web", 2)
	pgBefore := e.settled("/pg", 1)[0]

	depID, version := deploymentResult(t, e.do("POST", "/v2/apps/web/restart", `{}`), http.StatusOK, "restart")
	if d := e.deployment(depID); d != nil && !reflect.DeepEqual(actionsOf(d["steps"]), [][]string{{"RestartApplication /web"}}) {
		t.Fatalf("restart steps: %v", d["steps"])
	}
	after := e.settled("/web", 2)
	for _, a := range after {
		if ts(a.Version) != version {
			t.Fatalf("task %s version %s after restart, want %s", a.ID, a.Version, version)
		}
		for _, b := range before {
			if a.ID == b.ID {
				t.Fatalf("task %s survived the restart", a.ID)
			}
		}
	}
	if app := e.app("/web"); app["version"] != version || get(app, "versionInfo", "lastConfigChangeAt") != version {
		t.Fatalf("app after restart: version %v versionInfo %v", app["version"], app["versionInfo"])
	}

	// A resident app restarts in place: same instance, next incarnation.
	_, pgVersion := deploymentResult(t, e.do("POST", "/v2/apps/pg/restart?force=true", `{"force":false}`), http.StatusOK, "restart pg")
	waitUntil(t, "/pg to restart in place", func() bool {
		v := e.a.Snapshot().App("/pg")
		return len(v.Deployments) == 0 && len(v.Tasks) == 1 && v.Tasks[0].State == agent.TaskRunning && v.Tasks[0].ID != pgBefore.ID
	})
	pgAfter := e.a.Snapshot().App("/pg").Tasks[0]
	if pgAfter.InstanceID != pgBefore.InstanceID || ts(pgAfter.Version) != pgVersion || pgAfter.Ports[0] != pgBefore.Ports[0] ||
		pgAfter.Volumes[0].PersistenceID != pgBefore.Volumes[0].PersistenceID {
		t.Fatalf("resident restart: %+v, before %+v", pgAfter, pgBefore)
	}

	expectMessage(t, e.do("POST", "/v2/apps/nope/restart", `{}`), http.StatusNotFound, "App '/nope' does not exist")
}

// TestCLIAppUpdate: `app update X k=v…` PUTs a partial object; PATCH
// does too; PUT of an unknown app creates it (201, Location); a body of
// only "version" rolls back; partialUpdate=false replaces.
func TestCLIAppUpdate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(with(webApp("/web"), "env", map[string]any{"KEEP": "1"}, "labels", map[string]any{"team": "a"}))
	orig := e.settled("/web", 1)[0]
	v1 := e.app("/web")["version"].(string)

	// A config change restarts: new task, new version; untouched fields stay.
	_, v2 := deploymentResult(t, e.do("PUT", "/v2/apps/web", `{"env":{"KEEP":"1","NEW":"2"}}`), http.StatusOK, "PUT env")
	task := e.settled("/web", 1)[0]
	app := e.app("/web")
	if get(app, "env", "NEW") != "2" || app["cmd"] != "sleep 1000" || num(app["cpus"]) != 0.1 || get(app, "labels", "team") != "a" || app["version"] != v2 {
		t.Fatalf("after partial PUT: %v", app)
	}
	if task.ID == orig.ID || ts(task.Version) != v2 {
		t.Fatalf("config change did not replace the task: %+v", task)
	}
	if e.rt.Spec(task.ID) == nil || !slices.Contains(e.rt.Spec(task.ID).Env, "NEW=2") {
		t.Fatalf("new task's env lacks NEW=2")
	}

	// A scale keeps the running task and its version.
	deploymentResult(t, e.do("PUT", "/v2/apps/web", `{"instances":2}`), http.StatusOK, "PUT instances")
	tasks := e.settled("/web", 2)
	if !slices.ContainsFunc(tasks, func(x *agent.TaskView) bool { return x.ID == task.ID && ts(x.Version) == v2 }) {
		t.Fatalf("scale replaced the running task: %+v", tasks)
	}

	// PATCH is partial too and cannot create.
	deploymentResult(t, e.do("PATCH", "/v2/apps/web", `{"labels":{"team":"b"}}`), http.StatusOK, "PATCH")
	e.settled("/web", 2)
	if app := e.app("/web"); get(app, "labels", "team") != "b" || get(app, "env", "NEW") != "2" || num(app["instances"]) != 2 {
		t.Fatalf("after PATCH: %v", app)
	}
	expectMessage(t, e.do("PATCH", "/v2/apps/nope", `{"instances":1}`), http.StatusNotFound, "App '/nope' does not exist")

	// The body's id must be the URL's.
	r := e.do("PUT", "/v2/apps/web", `{"id":"/other","instances":1}`)
	expect(t, r, http.StatusUnprocessableEntity, "PUT with another id")
	if get(r.obj(t), "details", 0, "path") != "/id" {
		t.Fatalf("id mismatch: %s", r)
	}

	// Roll back to v1 with a body of only the version.
	deploymentResult(t, e.do("PUT", "/v2/apps/web", map[string]any{"version": v1}), http.StatusOK, "PUT version")
	e.noDeployments()
	if app := e.app("/web"); get(app, "env", "NEW") != nil || get(app, "labels", "team") != "a" || num(app["instances"]) != 1 {
		t.Fatalf("after rollback to %s: %v", v1, app)
	}
	expectMessage(t, e.do("PUT", "/v2/apps/web", `{"version":"2001-01-01T00:00:00.000Z"}`), http.StatusNotFound, "App '/web' does not exist in version 2001-01-01T00:00:00.000Z")

	// partialUpdate=false: the body replaces the definition.
	full := with(webApp("/web"), "cmd", "sleep 3000")
	deploymentResult(t, e.do("PUT", "/v2/apps/web?partialUpdate=false", full), http.StatusOK, "full PUT")
	if app := e.app("/web"); app["cmd"] != "sleep 3000" || get(app, "env", "KEEP") != nil || len(app["labels"].(map[string]any)) != 0 {
		t.Fatalf("after full PUT: %v", app)
	}

	// PUT of an unknown app creates it.
	r = e.do("PUT", "/v2/apps/fresh", webApp("/fresh"))
	depID, _ := deploymentResult(t, r, http.StatusCreated, "PUT unknown app")
	if !strings.HasSuffix(r.Header.Get("Location"), "/fresh") {
		t.Fatalf("Location %q", r.Header.Get("Location"))
	}
	if app := e.app("/fresh"); app["id"] != "/fresh" {
		t.Fatalf("created app: %v", app)
	} else if ds := app["deployments"].([]any); len(ds) == 1 && get(ds, 0, "id") != depID {
		t.Fatalf("created app's deployment %v, want %s", ds, depID)
	}
	e.settled("/fresh", 1)

	// A resident app may not change its resources or volumes.
	e.createApp(residentApp("/pg"))
	e.settled("/pg", 1)
	r = e.do("PUT", "/v2/apps/pg", `{"cpus":2}`)
	expect(t, r, http.StatusUnprocessableEntity, "resident cpus change")
	if !strings.Contains(string(r.Body), "may not change resource requirements") {
		t.Fatalf("resident cpus change: %s", r)
	}
	r = e.do("PUT", "/v2/apps/pg", map[string]any{"container": with(residentApp("/pg")["container"].(map[string]any), "volumes", []any{
		map[string]any{"containerPath": "other", "mode": "RW", "persistent": map[string]any{"size": 16}},
	})})
	expect(t, r, http.StatusUnprocessableEntity, "resident volume change")
	if !strings.Contains(string(r.Body), "Persistent volumes can not be changed!") {
		t.Fatalf("resident volume change: %s", r)
	}
}

// TestCLIAppRemove: `app remove X` is DELETE /v2/apps/X; nothing is left.
func TestCLIAppRemove(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(residentApp("/pg"))
	e.settled("/pg", 1)
	if len(files(filepath.Join(e.dir, "volumes"))) == 0 {
		t.Fatal("no volume directory for /pg")
	}
	r := e.do("DELETE", "/v2/apps/pg", nil)
	depID, _ := deploymentResult(t, r, http.StatusOK, "DELETE")
	if d := e.deployment(depID); d != nil && !reflect.DeepEqual(actionsOf(d["steps"]), [][]string{{"StopApplication /pg"}}) {
		t.Fatalf("remove steps: %v", d["steps"])
	}
	// Removing again while it is being removed answers the same deployment.
	if r := e.do("DELETE", "/v2/apps/pg", nil); r.Status == http.StatusOK {
		if again, _ := deploymentResult(t, r, http.StatusOK, "DELETE again"); again != depID {
			t.Fatalf("second DELETE: deployment %s, want %s", again, depID)
		}
	} else {
		expectMessage(t, r, http.StatusNotFound, "App '/pg' does not exist")
	}
	// As in Marathon, the app is gone from the API at once.
	expectMessage(t, e.do("GET", "/v2/apps/pg", nil), http.StatusNotFound, "App '/pg' does not exist")
	e.gone("/pg")
	e.noDeployments()
	expectMessage(t, e.do("GET", "/v2/apps/pg", nil), http.StatusNotFound, "App '/pg' does not exist")
	expectMessage(t, e.do("DELETE", "/v2/apps/pg", nil), http.StatusNotFound, "App '/pg' does not exist")
	if v := files(filepath.Join(e.dir, "volumes", "roles", "marathon")); len(v) != 0 {
		t.Fatalf("volumes left: %v", v)
	}
	if r := e.do("GET", "/v2/apps", nil); len(r.obj(t)["apps"].([]any)) != 0 {
		t.Fatalf("apps left: %s", r)
	}
}

// TestCLITaskListShow: `task list` and `task show` read GET /v2/tasks:
// appId, id, host, startedAt (only for active tasks) and
// healthCheckResults[].alive.
func TestCLITaskListShow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	healthy := newTarget(t, http.StatusOK)
	e.createApp(checkedApp("/checked", healthy.port, 300, 3))
	e.createApp(webApp("/plain"))
	e.settled("/checked", 1)
	e.settled("/plain", 1)

	r := e.do("GET", "/v2/tasks", nil)
	expect(t, r, http.StatusOK, "GET /v2/tasks")
	byApp := map[string]map[string]any{}
	for _, x := range r.obj(t)["tasks"].([]any) {
		m := x.(map[string]any)
		byApp[m["appId"].(string)] = m
		for _, k := range []string{"id", "host", "slaveId", "state", "startedAt", "stagedAt", "version", "ports", "servicePorts", "ipAddresses", "healthCheckResults"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("task lacks %s: %v", k, m)
			}
		}
		if !isTimestamp(m["startedAt"].(string)) || m["state"] != "TASK_RUNNING" {
			t.Fatalf("task: %v", m)
		}
		if get(m, "ipAddresses", 0, "protocol") != "IPv4" {
			t.Fatalf("ipAddresses: %v", m["ipAddresses"])
		}
	}
	hc := byApp["/checked"]["healthCheckResults"].([]any)
	if len(hc) != 1 || get(hc, 0, "alive") != true || num(get(hc, 0, "consecutiveFailures")) != 0 || get(hc, 0, "instanceId") == nil || get(hc, 0, "firstSuccess") == nil {
		t.Fatalf("healthCheckResults: %v", hc)
	}
	if hc := byApp["/plain"]["healthCheckResults"].([]any); len(hc) != 0 {
		t.Fatalf("/plain healthCheckResults: %v", hc)
	}
	// task show: find the id in the list.
	id := byApp["/plain"]["id"].(string)
	if e.a.Snapshot().Task(id) == nil {
		t.Fatalf("task %s not known", id)
	}
}

// TestCLITaskKill: `task kill [--scale] [--wipe] T…` and `task stop
// [--wipe] T` are POST /v2/tasks/delete with the Python CLI's booleans.
func TestCLITaskKill(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(with(residentApp("/pg"), "instances", 2))
	tasks := e.settled("/pg", 2)
	a, b := tasks[0], tasks[1]
	unknown := "pg.instance-00000000-0000-4000-8000-000000000000._app.1"

	// Plain kill: {"tasks":[…]} with the known ids only; relaunched in place.
	r := e.do("POST", "/v2/tasks/delete", map[string]any{"ids": []string{a.ID, unknown}})
	expect(t, r, http.StatusOK, "task kill")
	got := r.obj(t)["tasks"].([]any)
	if len(got) != 1 || get(got, 0, "id") != a.ID || get(got, 0, "appId") != "/pg" {
		t.Fatalf("task kill answer: %s", r)
	}
	waitUntil(t, "the killed task to be relaunched in place", func() bool {
		v := e.a.Snapshot().App("/pg")
		for _, x := range v.Tasks {
			if x.InstanceID == a.InstanceID && x.ID != a.ID && x.State == agent.TaskRunning {
				return len(v.Deployments) == 0
			}
		}
		return false
	})

	// Errors.
	expectMessage(t, e.do("POST", "/v2/tasks/delete?scale=True&wipe=True", map[string]any{"ids": []string{b.ID}}), http.StatusBadRequest, "You cannot use scale and wipe at the same time.")
	expectMessage(t, e.do("POST", "/v2/tasks/delete", `{"ids":["nope"]}`), http.StatusBadRequest, "Invalid task id 'nope'.")
	r = e.do("POST", "/v2/tasks/delete", map[string]any{"ids": []string{unknown}})
	expect(t, r, http.StatusOK, "unknown id")
	if got := r.obj(t)["tasks"].([]any); len(got) != 0 {
		t.Fatalf("unknown id: %s", r)
	}
	expect(t, e.do("POST", "/v2/tasks/delete", `{"ids":`), http.StatusBadRequest, "malformed body")

	// task stop --wipe: a new instance with a new volume; instances unchanged.
	r = e.do("POST", "/v2/tasks/delete?wipe=true", map[string]any{"ids": []string{b.ID}})
	expect(t, r, http.StatusOK, "task stop --wipe")
	if got := r.obj(t)["tasks"].([]any); len(got) != 1 || get(got, 0, "id") != b.ID {
		t.Fatalf("wipe answer: %s", r)
	}
	waitUntil(t, "a new instance to replace the wiped one", func() bool {
		v := e.a.Snapshot().App("/pg")
		if v.TasksRunning != 2 || len(v.Tasks) != 2 || len(v.Deployments) != 0 {
			return false
		}
		for _, x := range v.Tasks {
			if x.InstanceID == b.InstanceID {
				return false
			}
		}
		return true
	})
	if n := len(files(filepath.Join(e.dir, "volumes", "roles", "marathon"))); n != 2 {
		t.Fatalf("%d volume directories after wipe, want 2", n)
	}

	// task kill --scale (Python sends scale=True): a deployment, one
	// instance less; the resident instance keeps its reservation.
	victim := e.settled("/pg", 2)[0]
	depID, _ := deploymentResult(t, e.do("POST", "/v2/tasks/delete?scale=True", map[string]any{"ids": []string{victim.ID}}), http.StatusOK, "task kill --scale")
	if d := e.deployment(depID); d != nil && !reflect.DeepEqual(actionsOf(d["steps"]), [][]string{{"ScaleApplication /pg"}}) {
		t.Fatalf("kill --scale steps: %v", d["steps"])
	}
	e.settled("/pg", 1)
	if app := e.app("/pg"); num(app["instances"]) != 1 || len(app["tasks"].([]any)) != 2 {
		t.Fatalf("after kill --scale: instances %v tasks %v", app["instances"], app["tasks"])
	}

	// The per-app endpoints.
	running := e.settled("/pg", 1)[0]
	r = e.do("DELETE", "/v2/apps/pg/tasks/"+running.ID, nil)
	expect(t, r, http.StatusOK, "DELETE app task")
	if get(r.obj(t), "task", "id") != running.ID {
		t.Fatalf("DELETE app task: %s", r)
	}
	expectMessage(t, e.do("DELETE", "/v2/apps/pg/tasks/"+unknown, nil), http.StatusNotFound, "Task '"+unknown+"' does not exist")
	expectMessage(t, e.do("DELETE", "/v2/apps/nope/tasks/"+unknown, nil), http.StatusNotFound, "App '/nope' does not exist")
	expectMessage(t, e.do("DELETE", "/v2/apps/pg/tasks?scale=true&wipe=true", nil), http.StatusBadRequest, "You cannot use scale and wipe at the same time.")
	// app kill (Python): DELETE /v2/apps/X/tasks[?host=…] answers the tasks.
	running = e.settled("/pg", 1)[0]
	r = e.do("DELETE", "/v2/apps/pg/tasks?host=*", nil)
	expect(t, r, http.StatusOK, "DELETE app tasks")
	found := false
	for _, x := range r.obj(t)["tasks"].([]any) {
		found = found || get(x, "id") == running.ID
	}
	if !found {
		t.Fatalf("DELETE app tasks: %s lacks %s", r, running.ID)
	}
	e.settled("/pg", 1)
	deploymentResult(t, e.do("DELETE", "/v2/apps/pg/tasks?scale=true", nil), http.StatusOK, "DELETE app tasks scale")
	e.settled("/pg", 0)
	if app := e.app("/pg"); num(app["instances"]) != 0 {
		t.Fatalf("after DELETE tasks?scale: instances %v", app["instances"])
	}
}

// TestCLIDeployments: `deployment list|stop|rollback` read GET
// /v2/deployments and send DELETE /v2/deployments/<id>[?force=true].
func TestCLIDeployments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	failing := newTarget(t, http.StatusServiceUnavailable)
	r := e.do("POST", "/v2/apps", checkedApp("/b", failing.port, 300, 3))
	expect(t, r, http.StatusCreated, "create")
	created := r.obj(t)
	dep := get(created, "deployments", 0, "id").(string)

	ds := e.deployments()
	if len(ds) != 1 {
		t.Fatalf("deployments: %v", ds)
	}
	d := ds[0]
	if d["id"] != dep || d["version"] != created["version"] || !reflect.DeepEqual(d["affectedApps"], []any{"/b"}) || !reflect.DeepEqual(d["affectedPods"], []any{}) {
		t.Fatalf("deployment: %v", d)
	}
	if got := actionsOf(d["steps"]); !reflect.DeepEqual(got, [][]string{{"StartApplication /b"}, {"ScaleApplication /b"}}) {
		t.Fatalf("create steps: %v", got)
	}
	if num(d["currentStep"]) != 2 || num(d["totalSteps"]) != 2 {
		t.Fatalf("currentStep %v totalSteps %v", d["currentStep"], d["totalSteps"])
	}
	cur := d["currentActions"].([]any)
	if len(cur) != 1 || get(cur, 0, "action") != "ScaleApplication" || get(cur, 0, "app") != "/b" || !reflect.DeepEqual(get(cur, 0, "readinessCheckResults"), []any{}) {
		t.Fatalf("currentActions: %v", cur)
	}

	// A config change: RestartApplication. deployment rollback reverts it.
	dep2, _ := deploymentResult(t, e.do("PUT", "/v2/apps/b?force=true", `{"env":{"X":"1"}}`), http.StatusOK, "config change")
	d = e.deployment(dep2)
	if d == nil || !reflect.DeepEqual(actionsOf(d["steps"]), [][]string{{"RestartApplication /b"}}) || e.deployment(dep) != nil {
		t.Fatalf("deployments after config change: %v", e.deployments())
	}
	r = e.do("DELETE", "/v2/deployments/"+dep2, nil)
	rb, _ := deploymentResult(t, r, http.StatusOK, "deployment rollback")
	if rb == dep2 || e.deployment(dep2) != nil {
		t.Fatalf("rollback %s: deployments %v", rb, e.deployments())
	}
	if app := e.app("/b"); get(app, "env", "X") != nil {
		t.Fatalf("rollback kept env: %v", app["env"])
	}
	// The rollback is itself a deployment (a restart back to the old
	// configuration); stop it to go on.
	expect(t, e.do("DELETE", "/v2/deployments/"+rb+"?force=true", nil), http.StatusAccepted, "stop the rollback")

	// POST /restart: RestartApplication.
	e.noDeployments()
	dep4, _ := deploymentResult(t, e.do("POST", "/v2/apps/b/restart?force=true", `{}`), http.StatusOK, "restart")
	if d := e.deployment(dep4); d == nil || !reflect.DeepEqual(actionsOf(d["steps"]), [][]string{{"RestartApplication /b"}}) {
		t.Fatalf("restart deployment: %v", e.deployments())
	}
	// A scale: ScaleApplication; task kill --scale: ScaleApplication too.
	dep3, _ := deploymentResult(t, e.do("PUT", "/v2/apps/b?force=true", `{"instances":3}`), http.StatusOK, "scale")
	if d := e.deployment(dep3); d == nil || !reflect.DeepEqual(actionsOf(d["steps"]), [][]string{{"ScaleApplication /b"}}) {
		t.Fatalf("scale deployment: %v", e.deployments())
	}
	waitUntil(t, "/b's 3 tasks to run", func() bool { return e.a.Snapshot().App("/b").TasksRunning == 3 })
	victim := e.a.Snapshot().App("/b").Tasks[0].ID
	dep5, _ := deploymentResult(t, e.do("POST", "/v2/tasks/delete?scale=True&force=true", map[string]any{"ids": []string{victim}}), http.StatusOK, "kill --scale")
	if d := e.deployment(dep5); d == nil || !reflect.DeepEqual(actionsOf(d["steps"]), [][]string{{"ScaleApplication /b"}}) {
		t.Fatalf("kill --scale deployment: %v", e.deployments())
	}

	// deployment stop: 202, empty; the app stays as it is.
	r = e.do("DELETE", "/v2/deployments/"+dep5+"?force=true", nil)
	expect(t, r, http.StatusAccepted, "deployment stop")
	if len(r.Body) != 0 {
		t.Fatalf("deployment stop body: %q", r.Body)
	}
	if len(e.deployments()) != 0 {
		t.Fatalf("deployments after stop: %v", e.deployments())
	}
	if app := e.app("/b"); num(app["instances"]) != 2 || len(app["deployments"].([]any)) != 0 {
		t.Fatalf("app after deployment stop: instances %v deployments %v", app["instances"], app["deployments"])
	}
	// With no deployment, changes go through without force.
	deploymentResult(t, e.do("PUT", "/v2/apps/b", `{"instances":1}`), http.StatusOK, "unlocked change")

	expectMessage(t, e.do("DELETE", "/v2/deployments/nope", nil), http.StatusNotFound, "DeploymentPlan nope does not exist")
	expectMessage(t, e.do("DELETE", "/v2/deployments/nope?force=true", nil), http.StatusNotFound, "DeploymentPlan nope does not exist")
	expect(t, e.do("GET", "/v2/deployments/"+dep5, nil), http.StatusMethodNotAllowed, "GET one deployment")
}

// TestCLIDelayReset: `delay reset X` is DELETE /v2/queue/X/delay: 204
// when the app is backing off, then it launches at once; 404 otherwise.
func TestCLIDelayReset(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(with(webApp("/crash"), "backoffSeconds", 600, "maxLaunchDelaySeconds", 3600))
	first := e.settled("/crash", 1)[0]
	if err := e.rt.Crash(first.ID, 1); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "/crash in the queue", func() bool { return len(e.a.Snapshot().Queue) == 1 })
	r := e.do("DELETE", "/v2/queue/crash/delay", nil)
	expect(t, r, http.StatusNoContent, "delay reset")
	if len(r.Body) != 0 {
		t.Fatalf("delay reset body %q", r.Body)
	}
	second := e.settled("/crash", 1)[0]
	if second.ID == first.ID {
		t.Fatalf("no relaunch after the delay reset")
	}
	q := e.do("GET", "/v2/queue", nil)
	if items := q.obj(t)["queue"].([]any); len(items) != 0 {
		t.Fatalf("queue after relaunch: %s", q)
	}
	expectMessage(t, e.do("DELETE", "/v2/queue/crash/delay", nil), http.StatusNotFound, "Application /crash not found in tasks queue.")
	expectMessage(t, e.do("DELETE", "/v2/queue/nope/delay", nil), http.StatusNotFound, "Application /nope not found in tasks queue.")
}

// TestQueueWaitingForResources: an instance the agent cannot place waits
// in the queue, not backed off (delay.overdue true: the CLI's WAITING
// column), with mesolite's reason.
func TestQueueWaitingForResources(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(with(webApp("/big"), "cpus", 100, "instances", 2))
	waitUntil(t, "/big in the queue", func() bool { return len(e.a.Snapshot().Queue) == 1 })
	// waitingReason is mesolite's own field: only with embed=mesolite.
	q := e.do("GET", "/v2/queue?embed=mesolite", nil)
	items := q.obj(t)["queue"].([]any)
	if len(items) != 1 {
		t.Fatalf("queue: %s", q)
	}
	it := items[0]
	if get(it, "app", "id") != "/big" || num(get(it, "count")) != 2 || get(it, "delay", "overdue") != true || num(get(it, "delay", "timeLeftSeconds")) != 0 {
		t.Fatalf("queue item: %v", it)
	}
	if r, _ := get(it, "waitingReason").(string); !strings.Contains(r, "cpus") {
		t.Fatalf("waitingReason %q does not name the resource", r)
	}
	if app := e.app("/big"); num(app["tasksRunning"]) != 0 || len(app["deployments"].([]any)) != 1 {
		t.Fatalf("waiting app: %v", app)
	}
}

// TestCLIPingAbout: `ping` is GET /ping (text), `about` GET /v2/info.
func TestCLIPingAbout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range []string{"/ping", "/service/marathon/ping"} {
		r := e.do("GET", p, nil)
		expect(t, r, http.StatusOK, p)
		if string(r.Body) != "pong\n" || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("%s: %q %v", p, r.Body, r.Header)
		}
	}
	r := e.do("GET", "/v2/info", nil)
	expect(t, r, http.StatusOK, "info")
	info := r.obj(t)
	for _, k := range []string{"name", "version", "leader", "frameworkId", "elected", "marathon_config", "http_config"} {
		if _, ok := info[k]; !ok {
			t.Fatalf("info lacks %s: %s", k, r)
		}
	}
	if info["leader"] != "127.0.0.1:8080" || info["version"] != "test" || info["frameworkId"] != e.a.FrameworkID() {
		t.Fatalf("info: %s", r)
	}
	if get(info, "marathon_config", "local_port_min") == nil || get(info, "http_config", "http_port") != float64(8080) {
		t.Fatalf("info config: %s", r)
	}
	r = e.do("GET", "/v2/leader", nil)
	if expect(t, r, http.StatusOK, "leader"); r.obj(t)["leader"] != "127.0.0.1:8080" {
		t.Fatalf("leader: %s", r)
	}
}

// TestServicePrefix: DC/OS clients use <cluster>/service/marathon/v2/….
func TestServicePrefix(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("POST", "/service/marathon/v2/apps", webApp("/web"))
	expect(t, r, http.StatusCreated, "POST under the prefix")
	e.settled("/web", 1)
	for _, p := range []string{"/v2/apps/web", "/v2/apps", "/v2/tasks", "/v2/deployments", "/v2/queue", "/v2/info", "/v2/apps/web/versions"} {
		a, b := e.do("GET", p, nil), e.do("GET", "/service/marathon"+p, nil)
		if a.Status != http.StatusOK || b.Status != http.StatusOK {
			t.Fatalf("%s: %s / prefixed: %s", p, a, b)
		}
	}
	deploymentResult(t, e.do("PUT", "/service/marathon/v2/apps/web", `{"instances":2}`), http.StatusOK, "PUT under the prefix")
	e.settled("/web", 2)
	deploymentResult(t, e.do("DELETE", "/service/marathon/v2/apps/web", nil), http.StatusOK, "DELETE under the prefix")
	expect(t, e.do("GET", "/service/marathonx/v2/apps", nil), http.StatusNotFound, "a look-alike prefix")
}
