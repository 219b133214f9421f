package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
)

// The API takes no orders from web pages (issue 10, item 1): a body that
// is not declared JSON gets 415, a request from a foreign Origin or with a
// foreign Host (DNS rebinding) gets 403 before anything is read or done,
// on every route; the CLI, JSON clients and same-origin pages keep working.

const victimApp = `{"id":"/victim","cpus":0.1,"mem":32,"instances":1,
 "networks":[{"mode":"host"}],"portDefinitions":[],
 "env":{"NO_LISTEN":"1","SECRET":"hunter2"},
 "container":{"type":"DOCKER","docker":{"image":"mesolite/testapp:latest"}}}`

const evilApp = `{"id":"/evil","cpus":0.1,"mem":32,"cmd":"exit 0",
 "networks":[{"mode":"host"}],"portDefinitions":[],
 "container":{"type":"DOCKER","docker":{"image":"mesolite/testapp:latest"}}}`

// apiRoute is one route of the API with a request that exercises it.
type apiRoute struct {
	method, path, body string
}

// everyRoute lists every route the API serves, at the root and under
// /service/marathon, with bodies for those that take one.
func everyRoute(taskID string) []apiRoute {
	tq := url.QueryEscape(taskID)
	routes := []apiRoute{
		{"GET", "/ping", ""},
		{"GET", "/v2/info", ""},
		{"GET", "/v2/leader", ""},
		{"GET", "/v2/apps", ""},
		{"GET", "/v2/apps?embed=apps.tasks", ""},
		{"POST", "/v2/apps", evilApp},
		{"GET", "/v2/apps/victim", ""},
		{"PUT", "/v2/apps/victim", `{"cmd":"exit 0","instances":3}`},
		{"PATCH", "/v2/apps/victim", `{"instances":3}`},
		{"DELETE", "/v2/apps/victim", ""},
		{"POST", "/v2/apps/victim/restart", ""},
		{"GET", "/v2/apps/victim/tasks", ""},
		{"DELETE", "/v2/apps/victim/tasks", ""},
		{"DELETE", "/v2/apps/victim/tasks/" + taskID + "?wipe=true", ""},
		{"GET", "/v2/apps/victim/versions", ""},
		{"GET", "/v2/tasks", ""},
		{"POST", "/v2/tasks/delete?wipe=true", `{"ids":["` + taskID + `"]}`},
		{"GET", "/v2/deployments", ""},
		{"DELETE", "/v2/deployments/0000", ""},
		{"GET", "/v2/queue", ""},
		{"DELETE", "/v2/queue/victim/delay", ""},
		{"GET", "/v2/groups", ""},
		{"GET", "/v2/groups/victim", ""},
		{"GET", "/v2/events", ""},
		{"GET", "/files/read?task=" + tq + "&path=stdout", ""},
		{"GET", "/files/read.json?task=" + tq + "&path=stdout&offset=-1", ""},
		{"GET", "/mesolite/v1/volumes", ""},
		{"DELETE", "/mesolite/v1/volumes/victim%23data%23x", ""},
		{"GET", "/mesolite/v1/status", ""},
		{"GET", "/ui/", ""},
		{"GET", "/metrics", ""},
		{"OPTIONS", "/v2/apps", ""},
	}
	n := len(routes)
	for _, r := range routes[:n] {
		routes = append(routes, apiRoute{r.method, "/service/marathon" + r.path, r.body})
	}
	return routes
}

// victimState is what the refused requests must leave alone.
func victimState(t *testing.T, p *agentProc) string {
	t.Helper()
	var apps struct {
		Apps []struct {
			ID        string `json:"id"`
			Instances int    `json:"instances"`
			Cmd       string `json:"cmd"`
		} `json:"apps"`
	}
	if err := p.getJSON("/v2/apps", &apps); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, a := range apps.Apps {
		fmt.Fprintf(&b, "app %s instances=%d cmd=%q;", a.ID, a.Instances, a.Cmd)
	}
	for _, tk := range p.tasks("") {
		fmt.Fprintf(&b, "task %s %s;", tk.ID, tk.State)
	}
	return b.String()
}

func TestSecurityAPIRefusesWebPages(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	p := startAgentTOML(t, baseTOML(23100, 10, ""))
	if r := p.postJSON("POST", "/v2/apps", victimApp); r.status != 201 {
		t.Fatalf("create the victim app with JSON: %d %s", r.status, r.body)
	}
	task := p.waitTask("/victim", "the victim running", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	p.waitDeployments(30 * time.Second)
	before := victimState(t, p)
	_, port, _ := strings.Cut(p.addr, ":")

	forbidden := func(name string, r rawResponse, key string) {
		t.Helper()
		if r.status != 403 {
			t.Errorf("%s: status %d, want 403; body %.200s", name, r.status, r.body)
			return
		}
		if strings.Contains(r.body, "hunter2") {
			t.Errorf("%s: a refused answer leaks the app's env: %.200s", name, r.body)
		}
		if !strings.Contains(r.body, key) {
			t.Errorf("%s: the 403 does not say how to allow it (%s): %.200s", name, key, r.body)
		}
		if v := r.header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q on a refused request", name, v)
		}
	}

	// DNS rebinding: a name that resolves to 127.0.0.1, so the browser
	// sends the attacker's name as Host. Every route refuses it.
	for _, rt := range everyRoute(task.ID) {
		h := map[string]string{"Host": "evil.example:" + port}
		if rt.body != "" {
			h["Content-Type"] = "application/json"
		}
		forbidden("Host evil.example "+rt.method+" "+rt.path, p.raw(rt.method, rt.path, h, rt.body), "allowed_hosts")
	}
	// A page of another origin, with or without CORS mode: every route
	// refuses it, whatever its content type.
	for _, origin := range []string{"http://evil.example", "null", "http://127.0.0.1:" + port + ".evil.example", "https://127.0.0.1:" + port} {
		for _, rt := range everyRoute(task.ID) {
			h := map[string]string{"Origin": origin}
			if rt.body != "" {
				h["Content-Type"] = "text/plain;charset=UTF-8"
			}
			if rt.method == "OPTIONS" {
				h["Access-Control-Request-Method"] = "POST"
				h["Access-Control-Request-Headers"] = "content-type"
			}
			forbidden("Origin "+origin+" "+rt.method+" "+rt.path, p.raw(rt.method, rt.path, h, rt.body), "allowed_origins")
		}
	}
	// A form or a no-cors fetch without an Origin header (old browsers,
	// privacy extensions) still declares its site.
	forbidden("Sec-Fetch-Site cross-site POST", p.raw("POST", "/v2/apps", map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}, evilApp), "allowed_origins")

	// Bodies that are not declared JSON are never parsed: 415 with
	// Marathon's body, whatever the route.
	for _, rt := range everyRoute(task.ID) {
		if rt.body == "" {
			continue
		}
		for _, ct := range []string{"", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/jsonp", "text/json"} {
			h := map[string]string{}
			if ct != "" {
				h["Content-Type"] = ct
			}
			r := p.raw(rt.method, rt.path, h, rt.body)
			var m struct {
				Message string `json:"message"`
			}
			if r.status != 415 || json.Unmarshal([]byte(r.body), &m) != nil || m.Message != "Unsupported Media Type" {
				t.Errorf("%s %s with Content-Type %q: %d %.200s, want 415 {\"message\":\"Unsupported Media Type\"}", rt.method, rt.path, ct, r.status, r.body)
			}
		}
	}
	if after := victimState(t, p); after != before {
		t.Fatalf("refused requests changed the state:\nbefore %s\nafter  %s", before, after)
	}
	if n := len(runningContainers(t, p.agentID)); n != 1 {
		t.Fatalf("%d containers running, want only the victim's", n)
	}

	// What keeps working: JSON with parameters and any case, loopback and
	// localhost hosts, the agent's own origin, bodiless POST and DELETE,
	// and the CLI.
	for _, host := range []string{p.addr, "localhost:" + port, "LOCALHOST:" + port, "localhost", "127.0.0.2:" + port, "[::1]:" + port, "app.localhost:" + port} {
		if r := p.raw("GET", "/v2/apps", map[string]string{"Host": host}, ""); r.status != 200 {
			t.Errorf("GET /v2/apps with Host %q: %d %.200s", host, r.status, r.body)
		}
	}
	if r := p.raw("POST", "/v2/apps", map[string]string{"Content-Type": "Application/JSON; charset=utf-8"}, strings.Replace(evilApp, "/evil", "/json-ok", 1)); r.status != 201 {
		t.Errorf("POST with Content-Type Application/JSON; charset=utf-8: %d %.200s", r.status, r.body)
	}
	for _, origin := range []string{"http://" + p.addr, "http://localhost:" + port} {
		host := strings.TrimPrefix(origin, "http://")
		r := p.raw("POST", "/v2/apps", map[string]string{"Host": host, "Origin": origin, "Content-Type": "application/json"}, strings.Replace(evilApp, "/evil", "/same-origin", 1))
		if r.status != 201 {
			t.Errorf("same-origin POST from %s: %d %.200s", origin, r.status, r.body)
		}
		r = p.raw("DELETE", "/v2/apps/same-origin", map[string]string{"Host": host, "Origin": origin}, "")
		if r.status != 200 {
			t.Errorf("same-origin DELETE from %s: %d %.200s", origin, r.status, r.body)
		}
		p.waitDeployments(30 * time.Second)
	}
	if r := p.raw("DELETE", "/v2/apps/json-ok", nil, ""); r.status != 200 {
		t.Errorf("DELETE without a body or Content-Type: %d %.200s", r.status, r.body)
	}
	p.waitDeployments(30 * time.Second)
	if out := p.mustCLI("marathon", "app", "list"); !strings.Contains(out, "/victim") {
		t.Errorf("app list: %s", out)
	}
	if r := p.raw("POST", "/v2/apps/victim/restart", nil, ""); r.status != 200 {
		t.Errorf("POST restart without a body or Content-Type: %d %.200s", r.status, r.body)
	}
}

func TestSecurityAPIAllowedOriginsAndHosts(t *testing.T) {
	p := startAgentTOML(t, baseTOML(23110, 10, `[security]
allowed_origins = ["http://localhost:3000"]
allowed_hosts = ["mesolite.test"]
`))
	const friend = "http://localhost:3000"
	_, port, _ := strings.Cut(p.addr, ":")

	r := p.raw("GET", "/v2/apps", map[string]string{"Origin": friend}, "")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != friend || !strings.Contains(r.header.Get("Vary"), "Origin") {
		t.Errorf("GET from an allowed origin: %d ACAO=%q Vary=%q", r.status, r.header.Get("Access-Control-Allow-Origin"), r.header.Get("Vary"))
	}
	r = p.raw("OPTIONS", "/v2/apps", map[string]string{"Origin": friend, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type,authorization"}, "")
	if r.status/100 != 2 || r.header.Get("Access-Control-Allow-Origin") != friend ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(strings.ToLower(r.header.Get("Access-Control-Allow-Headers")), "content-type") {
		t.Errorf("preflight from an allowed origin: %d %v", r.status, r.header)
	}
	r = p.raw("POST", "/v2/apps", map[string]string{"Origin": friend, "Content-Type": "application/json"}, `{"id":"/friend","cmd":"exit 0","instances":0,"mem":32,"cpus":0.1,"container":{"docker":{"image":"mesolite/testapp:latest"}}}`)
	if r.status != 201 || r.header.Get("Access-Control-Allow-Origin") != friend {
		t.Errorf("POST from an allowed origin: %d ACAO=%q %.200s", r.status, r.header.Get("Access-Control-Allow-Origin"), r.body)
	}
	if r := p.raw("POST", "/v2/apps", map[string]string{"Origin": friend, "Content-Type": "text/plain"}, `{}`); r.status != 415 {
		t.Errorf("text/plain from an allowed origin: %d, want 415", r.status)
	}
	if r := p.raw("GET", "/v2/apps", map[string]string{"Origin": "http://evil.example"}, ""); r.status != 403 {
		t.Errorf("another origin: %d, want 403", r.status)
	}
	if r := p.raw("GET", "/v2/apps", nil, ""); r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("no Origin: %d ACAO=%q, want 200 without CORS headers", r.status, r.header.Get("Access-Control-Allow-Origin"))
	}
	for host, want := range map[string]int{"mesolite.test:" + port: 200, "MESOLITE.TEST": 200, "other.test:" + port: 403, "mesolite.test.evil.example:" + port: 403} {
		if r := p.raw("GET", "/v2/info", map[string]string{"Host": host}, ""); r.status != want {
			t.Errorf("Host %q: %d, want %d", host, r.status, want)
		}
	}
}
