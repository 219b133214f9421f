package api_test

import (
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/mesolite/mesolite/sandbox"
)

// idleApp is a command app with no instances: its changes deploy at once.
func idleApp(id string) map[string]any {
	return map[string]any{"id": id, "cmd": "sleep 1000", "cpus": 0.1, "mem": 16, "instances": 0}
}

// TestAppGroupIDClashes: whichever endpoint makes it, an app may not take a
// group's id (given, or implied by the apps inside it), nor sit inside an
// app, and a group may not sit inside an app: 409, nothing changed.
func TestAppGroupIDClashes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(idleApp("/c/a"))
	expect(t, e.do("PUT", "/v2/groups/e", map[string]any{"apps": []any{idleApp("x")}}), http.StatusOK, "PUT /v2/groups/e")
	e.noDeployments()
	for _, tc := range []struct {
		name, method, path string
		body               any
		want               string
	}{
		{"app with an implied group's id", "POST", "/v2/apps", idleApp("/c"), "/c"},
		{"app with a given group's id", "POST", "/v2/apps", idleApp("/e"), "/e"},
		{"app inside an app", "POST", "/v2/apps", idleApp("/c/a/b"), "/c/a"},
		{"app made by PUT with a group's id", "PUT", "/v2/apps/c", idleApp("/c"), "/c"},
		{"app made by PUT inside an app", "PUT", "/v2/apps/c/a/b", idleApp("/c/a/b"), "/c/a"},
		{"app list with a group's id", "PUT", "/v2/apps", []any{idleApp("/c")}, "/c"},
		{"app list with an app inside an app", "PUT", "/v2/apps", []any{idleApp("/c/a/z")}, "/c/a"},
		{"group inside an app", "POST", "/v2/groups", map[string]any{"id": "/c/a/g", "apps": []any{idleApp("y")}}, "/c/a"},
		{"group by PUT inside an app", "PUT", "/v2/groups/c/a/g", map[string]any{"apps": []any{idleApp("y")}}, "/c/a"},
	} {
		r := e.do(tc.method, tc.path, tc.body)
		if r.Status != http.StatusConflict || !strings.Contains(r.String(), tc.want) {
			t.Errorf("%s: %s %s: want 409 naming %s, got %s", tc.name, tc.method, tc.path, tc.want, r)
		}
	}
	apps := e.do("GET", "/v2/apps", nil).obj(t)["apps"].([]any)
	var ids []string
	for _, a := range apps {
		ids = append(ids, a.(map[string]any)["id"].(string))
	}
	if !reflect.DeepEqual(ids, []string{"/c/a", "/e/x"}) {
		t.Fatalf("refused changes left apps %v", ids)
	}
	// A sibling is no clash.
	e.createApp(idleApp("/c/b"))
}

// TestRemovedAppFreesServicePorts: an app the API no longer shows (deleted,
// or removed by the same group change) does not hold its service ports.
func TestRemovedAppFreesServicePorts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	withPort := func(id string, port int) map[string]any {
		return with(webApp(id), "portDefinitions", []any{map[string]any{"port": port}})
	}
	for _, tc := range []struct {
		name  string
		steps func() *resp
	}{
		{"deleted app", func() *resp {
			e.createApp(withPort("/sp1", 10050))
			e.settled("/sp1", 1)
			expect(t, e.do("DELETE", "/v2/apps/sp1", nil), http.StatusOK, "DELETE /v2/apps/sp1")
			return e.do("POST", "/v2/apps", withPort("/sp2", 10050))
		}},
		{"app replaced in one group change", func() *resp {
			expect(t, e.do("PUT", "/v2/groups/spg", map[string]any{"apps": []any{withPort("a", 10060)}}), http.StatusOK, "first group")
			e.settled("/spg/a", 1)
			return e.do("PUT", "/v2/groups/spg", map[string]any{"apps": []any{withPort("b", 10060)}})
		}},
	} {
		r := tc.steps()
		if r.Status != http.StatusCreated && r.Status != http.StatusOK {
			t.Errorf("%s: its service port is still taken: %s", tc.name, r)
		}
	}
}

// TestGroupDependencyPaths: a group's relative dependencies are relative to
// the group itself, and a dependency that names nothing is accepted, as
// Marathon does; it is kept and orders nothing.
func TestGroupDependencyPaths(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tree := func(svcDeps []any, appDeps []any) map[string]any {
		return map[string]any{"groups": []any{
			map[string]any{"id": "db", "apps": []any{idleApp("pg")}},
			map[string]any{"id": "svc", "dependencies": svcDeps, "apps": []any{with(idleApp("web"), "dependencies", appDeps)}},
		}}
	}
	for _, tc := range []struct {
		name             string
		svcDeps, appDeps []any
		wantGroupDeps    []any
		wantAppDeps      []any
	}{
		{"parent-relative group dependency", []any{"../db"}, []any{}, []any{"/p/db"}, []any{}},
		{"dotted group dependency", []any{"x/../../db"}, []any{}, []any{"/p/db"}, []any{}},
		{"absolute group dependency", []any{"/p/db"}, []any{}, []any{"/p/db"}, []any{}},
		{"app dependency relative to its group", []any{}, []any{"../db/pg"}, []any{}, []any{"/p/db/pg"}},
		{"missing dependencies", []any{"/nowhere"}, []any{"ghost"}, []any{"/nowhere"}, []any{"/p/svc/ghost"}},
	} {
		r := e.do("PUT", "/v2/groups/p", tree(tc.svcDeps, tc.appDeps))
		if r.Status != http.StatusOK {
			t.Errorf("%s: %s", tc.name, r)
			continue
		}
		e.noDeployments()
		g := e.do("GET", "/v2/groups/p/svc", nil).obj(t)
		if got := g["dependencies"]; !sameList(got, tc.wantGroupDeps) {
			t.Errorf("%s: group dependencies %v, want %v", tc.name, got, tc.wantGroupDeps)
		}
		if got := e.app("/p/svc/web")["dependencies"]; !sameList(got, tc.wantAppDeps) {
			t.Errorf("%s: app dependencies %v, want %v", tc.name, got, tc.wantAppDeps)
		}
	}
	// A new app with a dependency on its neighbour group starts after it.
	body := tree([]any{"../db"}, []any{})
	body["groups"].([]any)[0].(map[string]any)["apps"] = []any{with(idleApp("pg2"), "instances", 1)}
	body["groups"].([]any)[1].(map[string]any)["apps"] = []any{with(idleApp("web2"), "instances", 1)}
	plan := e.do("PUT", "/v2/groups/p?dryRun=true", body).String()
	if i, j := strings.Index(plan, "/p/db/pg2"), strings.Index(plan, "/p/svc/web2"); i < 0 || j < 0 || i > j {
		t.Fatalf("the dependency does not order the plan: %s", plan)
	}
}

// sameList compares a JSON list with a wanted one, a list left out (as
// Marathon leaves out an empty one) being empty.
func sameList(got any, want []any) bool {
	if got == nil {
		return len(want) == 0
	}
	return reflect.DeepEqual(got, want)
}

// TestBridgeContainerPortZero: a bridge port mapping with containerPort 0
// is accepted and kept as 0; the container listens on the host port the
// instance gets, as Marathon assigns it.
func TestBridgeContainerPortZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var mu sync.Mutex
	var ports [][]sandbox.PortBinding
	e.rt.RunHook = func(spec *sandbox.TaskSpec) error {
		mu.Lock()
		defer mu.Unlock()
		ports = append(ports, spec.Ports)
		return nil
	}
	for n, tc := range []struct {
		name     string
		mappings []any
		fixed    []int // container ports expected as given; 0: the host port
	}{
		{"one mapping", []any{map[string]any{"containerPort": 0, "hostPort": 0, "name": "http"}}, []int{0}},
		{"mixed mappings", []any{
			map[string]any{"containerPort": 8080, "hostPort": 0},
			map[string]any{"containerPort": 0, "hostPort": 0},
		}, []int{8080, 0}},
	} {
		id := "/bz" + string(rune('a'+n))
		mu.Lock()
		ports = nil
		mu.Unlock()
		app := with(webApp(id), "networks", []any{map[string]any{"mode": "container/bridge"}})
		app["container"].(map[string]any)["portMappings"] = tc.mappings
		e.createApp(app)
		e.settled(id, 1)
		got := e.app(id)["container"].(map[string]any)["portMappings"].([]any)
		for i, pm := range got {
			if want := tc.mappings[i].(map[string]any)["containerPort"].(int); num(pm.(map[string]any)["containerPort"]) != float64(want) {
				t.Errorf("%s: GET shows containerPort %v, posted %v", tc.name, pm.(map[string]any)["containerPort"], want)
			}
		}
		mu.Lock()
		run := ports
		mu.Unlock()
		if len(run) != 1 || len(run[0]) != len(tc.fixed) {
			t.Fatalf("%s: bindings %+v", tc.name, run)
		}
		for i, b := range run[0] {
			want := tc.fixed[i]
			if want == 0 {
				want = b.HostPort
			}
			if b.HostPort == 0 || b.ContainerPort != want {
				t.Errorf("%s: binding %d is %+v, want container port %d", tc.name, i, b, want)
			}
		}
		expect(t, e.do("DELETE", "/v2/apps"+id, nil), http.StatusOK, "DELETE")
		e.gone(id)
	}
}

// TestHeadAnswersAsGet: HEAD on a GET route has the GET's status and
// headers and no body, as Marathon's Jersey answers it; HEAD where GET is
// not allowed is still 405.
func TestHeadAnswersAsGet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.createApp(idleApp("/h/a"))
	for _, path := range []string{"/ping", "/v2/apps", "/v2/apps/h/a", "/v2/apps/nope", "/v2/groups", "/v2/groups/h",
		"/v2/tasks", "/v2/deployments", "/v2/queue", "/v2/info", "/v2/leader", "/v2/apps/h/a/versions", "/v2/nope", "/v2/tasks/delete"} {
		get, head := e.do("GET", path, nil), e.do("HEAD", path, nil)
		if head.Status != get.Status || len(head.Body) != 0 ||
			head.Header.Get("Content-Type") != get.Header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q %q, GET: %d %q", path, head.Status, head.Header.Get("Content-Type"), head.Body, get.Status, get.Header.Get("Content-Type"))
		}
	}
}
