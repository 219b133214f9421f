package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// shopFile is the README's stack: /shop/db (PostgreSQL with a volume and a
// VIP label), /shop/api (depends on db, has a readiness check), /shop/web
// (depends on api).
var shopFile = filepath.Join("..", "..", "testdata", "shop.marathon.json")

// sseEvent is one event of /v2/events.
type sseEvent struct {
	typ  string
	data map[string]any
}

// eventLog reads an agent's event stream in the background.
type eventLog struct {
	mu     sync.Mutex
	events []sseEvent
}

func (p *agentProc) streamEvents(t *testing.T) *eventLog {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url()+"/v2/events", nil)
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /v2/events: %v", err)
	}
	log := &eventLog{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		typ := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				var m map[string]any
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m) == nil {
					log.mu.Lock()
					log.events = append(log.events, sseEvent{typ, m})
					log.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	// The stream is attached once its first event came.
	deadline := time.Now().Add(10 * time.Second)
	for len(log.snapshot()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no event_stream_attached on /v2/events")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return log
}

func (l *eventLog) snapshot() []sseEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]sseEvent(nil), l.events...)
}

// milestones names the events of a stack deployment in the order they
// came: "<app> healthy", "<app> <TASK_STATE>", "<app> ready" (a step
// that scaled or restarted the app succeeded with every readiness check
// ready), "deployment_success" of id.
func (l *eventLog) milestones(id string) []string {
	var out []string
	for _, e := range l.snapshot() {
		d := e.data
		switch e.typ {
		case "health_status_changed_event":
			if d["alive"] == true {
				out = append(out, fmt.Sprint(d["appId"], " healthy"))
			}
		case "status_update_event":
			out = append(out, fmt.Sprint(d["appId"], " ", d["taskStatus"]))
		case "deployment_step_success":
			if get(d, "plan", "id") != id {
				continue
			}
			for _, a := range asList(get(d, "currentStep", "actions")) {
				rs := asList(get(a, "readinessCheckResults"))
				ready := len(rs) > 0
				for _, r := range rs {
					ready = ready && get(r, "ready") == true
				}
				if ready {
					out = append(out, fmt.Sprint(get(a, "app"), " ready"))
				}
			}
		case "deployment_success":
			if d["id"] == id {
				out = append(out, "deployment_success")
			}
		}
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

// get walks a JSON value by keys and indexes.
func get(v any, path ...any) any {
	for _, k := range path {
		switch k := k.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			l, _ := v.([]any)
			if k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func inOrder(t *testing.T, list []string, names ...string) {
	t.Helper()
	last := -1
	for _, n := range names {
		i := -1
		for j := last + 1; j < len(list); j++ {
			if list[j] == n {
				i = j
				break
			}
		}
		if i < 0 {
			t.Fatalf("want %v in this order in the events:\n%s", names, strings.Join(list, "\n"))
		}
		last = i
	}
}

// cliIn runs a client command with stdin.
func (p *agentProc) cliIn(stdin string, args ...string) string {
	p.t.Helper()
	var out, errb bytes.Buffer
	if code := run(append([]string{"--url", p.url()}, args...), strings.NewReader(stdin), &out, &errb); code != 0 {
		p.t.Fatalf("mesolite %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

// shopDef is the stack definition with a change applied.
func shopDef(t *testing.T, change func(apps []any)) string {
	t.Helper()
	b, err := os.ReadFile(shopFile)
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	if err := json.Unmarshal(b, &def); err != nil {
		t.Fatal(err)
	}
	change(def["apps"].([]any))
	out, _ := json.Marshal(def)
	return string(out)
}

func (p *agentProc) taskIDs() map[string]string {
	ids := map[string]string{}
	for _, t := range p.tasks("") {
		if t.State == "TASK_RUNNING" {
			ids[t.AppID] = t.ID
		}
	}
	return ids
}

var deploymentLine = func(out string) string {
	return strings.TrimSpace(strings.TrimPrefix(out, "Created deployment "))
}

// TestE2EShopStack is the README's stack tutorial on real Docker: group
// add starts db, api and web in dependency order (db healthy before api
// starts, api ready before web starts); group scale 0 keeps the database's
// volume and going back to the first version brings the same data; a
// change to one app restarts only that app; a deployment held by a
// readiness check that never passes is cancelled, which rolls the group
// back; group remove leaves nothing. Cycles and id clashes are refused
// with their paths, nothing deployed.
func TestE2EShopStack(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, pgImage, "postgres-image")
	requireImage(t, dc, testAppImage, "test-image")
	requirePsql(t)
	p := startAgent(t)
	ev := p.streamEvents(t)

	start := time.Now()
	dep := deploymentLine(p.mustCLI("group", "add", shopFile))
	p.waitDeployments(3 * time.Minute)
	order := ev.milestones(dep)
	t.Logf("group add deployed in %v; events:\n%s", time.Since(start).Round(time.Millisecond), strings.Join(order, "\n"))
	inOrder(t, order, "/shop/db TASK_RUNNING", "/shop/db healthy", "/shop/api TASK_STAGING", "/shop/api TASK_RUNNING",
		"/shop/api ready", "/shop/web TASK_STAGING", "/shop/web TASK_RUNNING", "deployment_success")
	tasks := p.mustCLI("task", "list")
	for _, app := range []string{"/shop/db", "/shop/api", "/shop/web"} {
		if !strings.Contains(tasks, app+" ") {
			t.Fatalf("task list lacks %s:\n%s", app, tasks)
		}
	}
	db := p.tasks("/shop/db")[0]
	port := db.Ports[0]
	psql(t, port, "CREATE TABLE orders (id serial PRIMARY KEY, item text)")
	psql(t, port, "INSERT INTO orders (item) VALUES ('book'), ('lamp')")
	volDir := filepath.Join(p.workDir, "volumes", "roles", "marathon", db.LocalVolumes[0].PersistenceID)
	var versions []string
	if err := p.getJSON("/v2/groups/shop/versions", &versions); err != nil || len(versions) != 1 {
		t.Fatalf("group versions %v %v", versions, err)
	}

	// Scale to 0: every task stops, the database's reservation and data stay.
	p.mustCLI("marathon", "group", "scale", "/shop", "0")
	p.waitDeployments(2 * time.Minute)
	if ids := p.taskIDs(); len(ids) != 0 {
		t.Fatalf("running after group scale 0: %v", ids)
	}
	if _, err := os.Stat(filepath.Join(volDir, "PG_VERSION")); err != nil {
		t.Fatalf("the database's volume after scale 0: %v", err)
	}
	// Back to the first version: the same instance, the same rows.
	p.mustCLI("group", "update", "/shop", "version="+versions[0])
	p.waitDeployments(3 * time.Minute)
	again := p.waitTask("/shop/db", "the database back", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	if again.InstanceID != db.InstanceID || again.LocalVolumes[0].PersistenceID != db.LocalVolumes[0].PersistenceID {
		t.Fatalf("the database came back as %+v, was %+v", again, db)
	}
	if rows := psql(t, again.Ports[0], "SELECT string_agg(item, ',' ORDER BY id) FROM orders"); rows != "book,lamp" {
		t.Fatalf("rows after scaling back: %q", rows)
	}

	// A change to web alone restarts web alone.
	before := p.taskIDs()
	p.cliIn(shopDef(t, func(apps []any) { apps[2].(map[string]any)["env"] = map[string]any{"GREETING": "hello"} }), "group", "update", "/shop")
	p.waitDeployments(2 * time.Minute)
	after := p.taskIDs()
	if after["/shop/db"] != before["/shop/db"] || after["/shop/api"] != before["/shop/api"] || after["/shop/web"] == before["/shop/web"] || after["/shop/web"] == "" {
		t.Fatalf("tasks before %v, after changing web %v", before, after)
	}

	// A new api that never becomes ready holds the deployment (the old api
	// serves meanwhile); cancelling it rolls the group back.
	dep = deploymentLine(p.cliIn(shopDef(t, func(apps []any) {
		api := apps[1].(map[string]any)
		api["readinessChecks"].([]any)[0].(map[string]any)["path"] = "/never"
	}), "group", "update", "/shop"))
	deadline := time.Now().Add(time.Minute)
	for {
		var ds []map[string]any
		if err := p.getJSON("/v2/deployments", &ds); err != nil {
			t.Fatal(err)
		}
		if len(ds) == 1 && get(ds[0], "currentActions", 0, "readinessCheckResults", 0, "lastResponse", "status") == 404.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deployment does not show the readiness check: %v", ds)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if p.taskIDs()["/shop/api"] == "" {
		t.Fatalf("no api task serves while its successor is not ready")
	}
	if code, body := p.do(http.MethodDelete, "/v2/deployments/"+dep, nil); code != http.StatusOK {
		t.Fatalf("cancel: %d %s", code, body)
	}
	p.waitDeployments(2 * time.Minute)
	var api struct {
		App struct {
			ReadinessChecks []struct {
				Path string `json:"path"`
			} `json:"readinessChecks"`
			TasksRunning int `json:"tasksRunning"`
		} `json:"app"`
	}
	if err := p.getJSON("/v2/apps/shop/api", &api); err != nil || api.App.ReadinessChecks[0].Path != "/health" || api.App.TasksRunning != 1 {
		t.Fatalf("api after the rollback: %+v %v", api, err)
	}
	if p.taskIDs()["/shop/db"] != after["/shop/db"] {
		t.Fatalf("the rollback touched the database")
	}

	// Remove: nothing left.
	if out := p.mustCLI("group", "remove", "/shop"); out != "" {
		t.Fatalf("group remove printed %q", out)
	}
	deadline = time.Now().Add(2 * time.Minute)
	for {
		_, statErr := os.Stat(volDir)
		code, _ := p.do(http.MethodGet, "/v2/groups/shop", nil)
		if os.IsNotExist(statErr) && code == http.StatusNotFound && len(p.tasks("")) == 0 && len(agentContainers(t, p.agentID)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after group remove: volume %v, group %d, tasks %v, containers %+v", statErr, code, p.tasks(""), agentContainers(t, p.agentID))
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.waitDeployments(time.Minute)

	shopRefusals(t, p)
}

// shopRefusals: a cycle is 422 naming it; a group with an app's id, a
// group id that is an app and an app inside an app are 409 naming it;
// none of them deploys anything.
func shopRefusals(t *testing.T, p *agentProc) {
	t.Helper()
	app := func(id string, deps ...string) map[string]any {
		a := map[string]any{"id": id, "cpus": 0.1, "mem": 32, "instances": 1, "cmd": "sleep 1000",
			"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": testAppImage}}}
		if len(deps) > 0 {
			a["dependencies"] = deps
		}
		return a
	}
	code, body := p.do(http.MethodPost, "/v2/apps", app("/x/app"))
	if code != http.StatusCreated {
		t.Fatalf("POST /v2/apps: %d %s", code, body)
	}
	p.waitDeployments(time.Minute)
	for _, tc := range []struct {
		method, path string
		body         any
		status       int
		names        []string
	}{
		{http.MethodPut, "/v2/groups/cyc", map[string]any{"apps": []any{app("a", "b"), app("b", "/cyc/a")}}, 422, []string{"/cyc/a", "/cyc/b"}},
		{http.MethodPost, "/v2/apps", app("/x/app/a"), 409, []string{"/x/app"}},
		{http.MethodPut, "/v2/groups/x", map[string]any{"groups": []any{map[string]any{"id": "app", "apps": []any{app("y")}}}}, 409, []string{"/x/app"}},
		{http.MethodPut, "/v2/groups/x/app", map[string]any{"apps": []any{}}, 409, []string{"/x/app"}},
	} {
		code, body := p.do(tc.method, tc.path, tc.body)
		if code != tc.status {
			t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.path, code, body, tc.status)
		}
		for _, n := range tc.names {
			if !strings.Contains(string(body), n) {
				t.Fatalf("%s %s: %s does not name %s", tc.method, tc.path, body, n)
			}
		}
	}
	var ds []map[string]any
	if err := p.getJSON("/v2/deployments", &ds); err != nil || len(ds) != 0 {
		t.Fatalf("the refused changes deployed: %v %v", ds, err)
	}
	var apps struct {
		Apps []struct {
			ID string `json:"id"`
		} `json:"apps"`
	}
	if err := p.getJSON("/v2/apps", &apps); err != nil || len(apps.Apps) != 1 {
		t.Fatalf("apps after the refused changes: %+v %v", apps, err)
	}
}
