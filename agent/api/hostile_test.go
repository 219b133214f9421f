package api_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/api"
)

// nothingCreated fails if the agent holds, or has written, any app,
// instance, volume, sandbox or container.
func (e *env) nothingCreated(what string) {
	e.t.Helper()
	if r := e.do("GET", "/v2/apps", nil, "Authorization", "token="+e.token); r.Status != http.StatusOK || len(r.obj(e.t)["apps"].([]any)) != 0 {
		e.t.Fatalf("%s: GET /v2/apps: %s", what, r)
	}
	for _, kind := range []string{"apps", "instances", "versions", "deployments"} {
		if f := files(filepath.Join(e.dir, "meta", kind)); len(f) != 0 {
			e.t.Fatalf("%s: records under meta/%s: %v", what, kind, f)
		}
	}
	// The layout's parent directories may stay after an app has gone;
	// what may not exist is a volume or a sandbox.
	for _, f := range files(filepath.Join(e.dir, "volumes")) {
		if strings.Count(f, string(filepath.Separator)) >= 2 {
			e.t.Fatalf("%s: a volume is left: volumes/%s", what, f)
		}
	}
	for _, f := range files(filepath.Join(e.dir, "slaves")) {
		if strings.Contains(f, string(filepath.Separator)+"executors"+string(filepath.Separator)) {
			e.t.Fatalf("%s: a sandbox is left: slaves/%s", what, f)
		}
	}
	if c := e.rt.Containers(); len(c) != 0 {
		e.t.Fatalf("%s: containers: %v", what, c)
	}
	// Nothing appeared next to the work directory either.
	if got := entries(filepath.Dir(e.dir)); !slices.Equal(got, e.siblings) {
		e.t.Fatalf("%s: next to the work directory: %v, at the start: %v", what, got, e.siblings)
	}
}

// hostVolumeApp is an app with one host volume.
func hostVolumeApp(id, containerPath, hostPath string) map[string]any {
	return with(webApp(id), "container", map[string]any{
		"type":    "DOCKER",
		"docker":  map[string]any{"image": "mesolite/testapp:latest"},
		"volumes": []any{map[string]any{"containerPath": containerPath, "hostPath": hostPath, "mode": "RW"}},
	})
}

// persistentApp is an app with one persistent volume.
func persistentApp(id, containerPath string) map[string]any {
	return with(webApp(id), "container", map[string]any{
		"type":    "DOCKER",
		"docker":  map[string]any{"image": "mesolite/testapp:latest"},
		"volumes": []any{map[string]any{"containerPath": containerPath, "mode": "RW", "persistent": map[string]any{"size": 10}}},
	})
}

// TestHostileInput sends requests that try to escape their directories
// or break the decoder. Each gets a 4xx with a message that says what is
// wrong (and, for a 422, where), never a 500, and leaves nothing behind.
func TestHostileInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	long := strings.Repeat("a", 10000)
	cases := []struct {
		name, method, path string
		body               any
		status             int
		// detailPath is the path a 422 must name; message a substring of
		// the body.
		detailPath, message string
	}{
		// App ids in the body.
		{"relative id climbing", "POST", "/v2/apps", with(webApp("x"), "id", "../x"), 422, "/id", `".."`},
		{"absolute id climbing", "POST", "/v2/apps", with(webApp("x"), "id", "/a/../../etc"), 422, "/id", `".."`},
		{"url-encoded dots in the body", "POST", "/v2/apps", with(webApp("x"), "id", "/%2e%2e/etc"), 422, "/id", "must fully match"},
		{"NUL in id", "POST", "/v2/apps", with(webApp("x"), "id", "/a\x00b"), 422, "/id", "characters"},
		{"10k id", "POST", "/v2/apps", with(webApp("x"), "id", "/"+long), 422, "/id", "at most"},
		{"uppercase id", "POST", "/v2/apps", with(webApp("x"), "id", "/Web"), 422, "/id", "must fully match"},
		{"underscore id", "POST", "/v2/apps", with(webApp("x"), "id", "/my_app"), 422, "/id", "must fully match"},
		{"root id", "POST", "/v2/apps", with(webApp("x"), "id", "/"), 422, "/id", "root"},
		{"reserved id", "POST", "/v2/apps", with(webApp("x"), "id", "/a/tasks"), 422, "/id", "reserved"},
		{"no id", "POST", "/v2/apps", with(webApp("x"), "id", ""), 422, "/id", "required"},
		// App ids in the URL.
		{"url dots", "PUT", "/v2/apps/%2e%2e", webApp("/x"), 422, "/id", `".."`},
		{"url dots in a segment", "PUT", "/v2/apps/x/%2e%2e/%2e%2e/etc", `{"instances":1}`, 422, "/id", `".."`},
		{"url climbing", "PUT", "/v2/apps/x/../../etc", `{"instances":1}`, 422, "/id", `".."`},
		{"url encoded slashes climbing", "PUT", "/v2/apps/x%2F..%2F..%2Fetc", `{"instances":1}`, 422, "/id", `".."`},
		{"url NUL", "PUT", "/v2/apps/a%00b", `{"instances":1}`, 400, "", "NUL"},
		{"url NUL in GET", "GET", "/v2/apps/a%00b", nil, 400, "", "NUL"},
		{"url 10k id", "PUT", "/v2/apps/" + long, `{"instances":1}`, 422, "/id", "at most"},
		{"url uppercase", "PUT", "/v2/apps/Web", `{"instances":1}`, 422, "/id", "must fully match"},
		{"url underscore", "PUT", "/v2/apps/a_b", `{"instances":1}`, 422, "/id", "must fully match"},
		{"url double slash, escaping body", "PUT", "/v2/apps//x", hostVolumeApp("/x", "/data", "/etc"), 422, "/container/volumes(0)/hostPath", "host_path_roots"},
		{"url double slash GET", "GET", "/v2/apps//x", nil, 404, "", "App '/x' does not exist"},
		{"url climbing GET", "GET", "/v2/apps/x/../../etc", nil, 404, "", "does not exist"},
		{"url climbing DELETE", "DELETE", "/v2/apps/x/../../etc", nil, 422, "/id", `".."`},
		{"url climbing restart", "POST", "/v2/apps/..%2F..%2Fetc/restart", `{}`, 422, "/id", `".."`},
		{"url climbing versions", "GET", "/v2/apps/x/../../etc/versions", nil, 404, "", "does not exist"},
		{"url climbing PATCH", "PATCH", "/v2/apps/x/%2e%2e", `{"instances":1}`, 422, "/id", `".."`},
		// Persistent volumes.
		{"persistent containerPath climbing", "POST", "/v2/apps", persistentApp("/x", "../../etc"), 422, "/container/volumes(0)/containerPath", `must not contain "/"`},
		{"persistent containerPath ..", "POST", "/v2/apps", persistentApp("/x", ".."), 422, "/container/volumes(0)/containerPath", "can not be one of (.,..)"},
		{"persistent containerPath absolute", "POST", "/v2/apps", persistentApp("/x", "/etc"), 422, "/container/volumes(0)/containerPath", `must not contain "/"`},
		{"persistent containerPath NUL", "POST", "/v2/apps", persistentApp("/x", "a\x00b"), 422, "/container/volumes(0)/containerPath", "NUL"},
		{"persistent containerPath 10k", "POST", "/v2/apps", persistentApp("/x", long), 422, "/container/volumes(0)/containerPath", "at most"},
		{"persistent containerPath #", "POST", "/v2/apps", persistentApp("/x", "a#b"), 422, "/container/volumes(0)/containerPath", "#"},
		// Host volumes.
		{"hostPath /etc without roots", "POST", "/v2/apps", hostVolumeApp("/x", "/data", "/etc"), 422, "/container/volumes(0)/hostPath", "host_path_roots"},
		{"hostPath /", "POST", "/v2/apps", hostVolumeApp("/x", "/data", "/"), 422, "/container/volumes(0)/hostPath", "host_path_roots"},
		{"hostPath ../x", "POST", "/v2/apps", hostVolumeApp("/x", "/data", "../x"), 422, "/container/volumes(0)/hostPath", `".."`},
		{"relative hostPath climbing", "POST", "/v2/apps", hostVolumeApp("/x", "/data", "a/b/../../../x"), 422, "/container/volumes(0)/hostPath", `".."`},
		{"hostPath NUL", "POST", "/v2/apps", hostVolumeApp("/x", "/data", "a\x00b"), 422, "/container/volumes(0)/hostPath", ""},
		{"hostPath 10k", "POST", "/v2/apps", hostVolumeApp("/x", "/data", long), 422, "/container/volumes(0)/hostPath", ""},
		{"host containerPath climbing", "POST", "/v2/apps", hostVolumeApp("/x", "../../etc", "data"), 422, "/container/volumes(0)/containerPath", `".."`},
		{"host containerPath over the sandbox", "POST", "/v2/apps", hostVolumeApp("/x", "/mnt/mesos/sandbox", "data"), 422, "/container/volumes(0)/containerPath", "sandbox"},
		{"host containerPath /", "POST", "/v2/apps", hostVolumeApp("/x", "/", "data"), 422, "/container/volumes(0)/containerPath", ""},
		// Decoder.
		{"duplicate key", "POST", "/v2/apps", `{"id":"/a","id":"/b","container":{"docker":{"image":"x"}}}`, 422, "/id", "duplicate"},
		{"nested duplicate key", "POST", "/v2/apps", `{"id":"/a","container":{"docker":{"image":"x","image":"y"}}}`, 422, "/container/docker/image", "duplicate"},
		{"duplicate key in PUT", "PUT", "/v2/apps/a", `{"instances":1,"instances":0}`, 422, "/instances", "duplicate"},
		{"wrong type cpus", "POST", "/v2/apps", with(webApp("/x"), "cpus", "lots"), 422, "/cpus", "number"},
		{"wrong type instances", "POST", "/v2/apps", with(webApp("/x"), "instances", "2"), 422, "/instances", "expected an integer"},
		{"wrong type nested", "POST", "/v2/apps", `{"id":"/x","container":{"docker":{"image":"x"},"volumes":[{"containerPath":3,"hostPath":"d","mode":"RW"}]}}`, 422, "/container/volumes(0)/containerPath", "string"},
		{"wrong type in PUT", "PUT", "/v2/apps/x", `{"instances":[1]}`, 422, "/instances", "expected an integer"},
		{"fractional instances", "POST", "/v2/apps", with(webApp("/x"), "instances", 1.5), 422, "/instances", ""},
		{"huge number", "POST", "/v2/apps", `{"id":"/x","cpus":1e999,"container":{"docker":{"image":"x"}}}`, 422, "/cpus", ""},
		{"negative mem", "POST", "/v2/apps", with(webApp("/x"), "mem", -1), 422, "/mem", "0.0 or more"},
		{"top-level array", "POST", "/v2/apps", `[{"id":"/x"}]`, 422, "/", "object"},
		{"malformed JSON", "POST", "/v2/apps", `{"id":"/x",`, 400, "", "Invalid JSON"},
		{"trailing garbage", "POST", "/v2/apps", `{"id":"/x"} {"id":"/y"}`, 400, "", "Invalid JSON"},
		{"empty body", "POST", "/v2/apps", "", 400, "", "Please specify data in JSON format"},
		{"deep nesting", "POST", "/v2/apps", `{"id":"/x","labels":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`, 400, "", "Invalid JSON"},
		{"env NUL", "POST", "/v2/apps", with(webApp("/x"), "env", map[string]any{"A": "a\x00b"}), 422, "/env/A", "NUL"},
		{"env bad name", "POST", "/v2/apps", with(webApp("/x"), "env", map[string]any{"A=B": "x"}), 422, "/env/A=B", ""},
		{"privileged", "POST", "/v2/apps", with(webApp("/x"), "container", map[string]any{"docker": map[string]any{"image": "x", "privileged": true}}), 422, "/container/docker/privileged", "allow_privileged"},
		{"docker parameter widening privileges", "POST", "/v2/apps", with(webApp("/x"), "container", map[string]any{"docker": map[string]any{"image": "x", "parameters": []any{map[string]any{"key": "cap-add", "value": "ALL"}}}}), 422, "/container/docker/parameters(0)/key", "not supported"},
		{"tasks/delete climbing id", "POST", "/v2/tasks/delete", `{"ids":["../../etc"]}`, 400, "", "Invalid task id"},
		{"tasks/delete wrong type", "POST", "/v2/tasks/delete", `{"ids":"x"}`, 422, "/ids", "array"},
		{"tasks/delete wrong element type", "POST", "/v2/tasks/delete", `{"ids":["a",3]}`, 422, "/ids(1)", "string"},
		{"tasks/delete duplicate keys", "POST", "/v2/tasks/delete", `{"ids":[],"ids":["../x"]}`, 422, "/ids", "duplicate"},
		{"tasks/delete malformed", "POST", "/v2/tasks/delete", `{"ids":[`, 400, "", "Invalid JSON"},
		{"queue climbing", "DELETE", "/v2/queue/..%2F..%2Fetc/delay", nil, 404, "", "not found in tasks queue"},
		{"deployment climbing", "DELETE", "/v2/deployments/..%2F..%2Fmeta", nil, 404, "", "does not exist"},
		{"volume remove climbing", "DELETE", "/mesolite/v1/volumes/..%2F..%2F..%2Fmeta", nil, 400, "", ""},
		{"volume remove ..", "DELETE", "/mesolite/v1/volumes/..", nil, 400, "", ""},
		{"volume remove absolute", "DELETE", "/mesolite/v1/volumes/%2Fetc", nil, 400, "", "not a volume of this agent"},
		{"files climbing task", "GET", "/files/read?task=..%2F..%2Fmeta&path=stdout", nil, 404, "", "does not exist"},
		{"files climbing path", "GET", "/files/read?task=x.instance-00000000-0000-4000-8000-000000000000._app.1&path=..%2F..%2Fmeta%2FFORMAT", nil, 400, "", "stdout or stderr"},
		{"files bad offset", "GET", "/files/read?task=x&offset=-x", nil, 404, "", ""},
		{"unknown route", "GET", "/v2/../../etc/passwd", nil, 404, "", "URI not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(c.method, c.path, c.body)
			if r.Status != c.status {
				t.Fatalf("%s %s: want HTTP %d, got %s", c.method, truncate(c.path, 80), c.status, r)
			}
			m := r.obj(t)
			text, _ := m["message"].(string)
			if text == "" {
				t.Fatalf("no message: %s", r)
			}
			if c.detailPath != "" {
				found := false
				for _, d := range m["details"].([]any) {
					if get(d, "path") == c.detailPath {
						found = true
						if errs := get(d, "errors").([]any); len(errs) == 0 || errs[0] == "" {
							t.Fatalf("detail %s has no message: %s", c.detailPath, r)
						}
					}
				}
				if !found {
					t.Fatalf("no detail for %s: %s", c.detailPath, r)
				}
			}
			said := text
			if ds, ok := m["details"].([]any); ok {
				for _, d := range ds {
					for _, x := range get(d, "errors").([]any) {
						said += "\n" + x.(string)
					}
				}
			} else if d, ok := m["details"].(string); ok {
				said += "\n" + d
			}
			if !strings.Contains(said, c.message) {
				t.Fatalf("the answer does not say %q: %s", c.message, r)
			}
			e.nothingCreated(c.name)
		})
	}
}

// TestGarbageMethods: a method a path does not serve is a 405.
func TestGarbageMethods(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, p := range []string{"/v2/apps", "/v2/apps/x", "/v2/apps/x/restart", "/v2/apps/x/tasks", "/v2/apps/x/versions",
		"/v2/tasks", "/v2/tasks/delete", "/v2/deployments", "/v2/deployments/x", "/v2/queue", "/v2/queue/x/delay",
		"/v2/info", "/v2/leader", "/v2/events", "/ping", "/files/read", "/mesolite/v1/volumes", "/mesolite/v1/status"} {
		for _, m := range []string{"BREW", "TRACE", "CONNECT-ME", "OPTIONSX"} {
			r := e.do(m, p, nil)
			if r.Status != http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: want 405, got %s", m, p, r)
			}
		}
	}
	for _, c := range []struct{ method, path string }{
		{"POST", "/ping"}, {"DELETE", "/v2/info"}, {"POST", "/v2/tasks"}, {"GET", "/v2/tasks/delete"},
		{"PUT", "/v2/deployments"}, {"POST", "/v2/queue"}, {"POST", "/v2/apps/x/versions"}, {"PUT", "/v2/apps/x/restart"},
		{"POST", "/v2/events"}, {"POST", "/v2/apps/x"},
	} {
		if r := e.do(c.method, c.path, nil); r.Status != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s: want 405, got %s", c.method, c.path, r)
		}
	}
	e.nothingCreated("garbage methods")
}

// TestBodyLimit: a body above api.MaxBodyBytes is a 413 on every
// endpoint that reads one, and nothing is created.
func TestBodyLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := `{"id":"/x","container":{"docker":{"image":"x"}},"labels":{"pad":"` + strings.Repeat("x", api.MaxBodyBytes) + `"}}`
	for _, c := range []struct{ method, path string }{
		{"POST", "/v2/apps"}, {"PUT", "/v2/apps/x"}, {"PATCH", "/v2/apps/x"}, {"POST", "/v2/tasks/delete"},
	} {
		r := e.do(c.method, c.path, big)
		expect(t, r, http.StatusRequestEntityTooLarge, c.method+" "+c.path)
		if m := r.obj(t)["message"].(string); !strings.Contains(m, fmt.Sprint(api.MaxBodyBytes)) {
			t.Fatalf("413 message %q does not name the limit", m)
		}
	}
	// Just under the limit, the body is read and judged on its content.
	under := `{"id":"/x","mem":-1,"container":{"docker":{"image":"x"}},"labels":{"pad":"` + strings.Repeat("x", api.MaxBodyBytes-200) + `"}}`
	r := e.do("POST", "/v2/apps", under)
	expect(t, r, http.StatusUnprocessableEntity, "a body just under the limit")
	if get(r.obj(t), "details", 0, "path") != "/mem" {
		t.Fatalf("a body just under the limit: %s", r)
	}
	e.nothingCreated("body limit")
}

// TestHeaderLimit: with http.Server.MaxHeaderBytes = api.MaxHeaderBytes
// (as cmd/mesolite sets it), oversized headers are refused with 431.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	srv := httptest.NewUnstartedServer(e.checked)
	srv.Config.MaxHeaderBytes = api.MaxHeaderBytes
	srv.Config.ReadHeaderTimeout = 10 * time.Second
	srv.Start()
	t.Cleanup(srv.Close)

	r := doURL(t, srv.URL, "GET", "/v2/apps", nil, "X-Pad", strings.Repeat("p", api.MaxHeaderBytes/2))
	expect(t, r, http.StatusOK, "a header within the limit")
	r = doURL(t, srv.URL, "POST", "/v2/apps", webApp("/x"), "X-Pad", strings.Repeat("p", 2*api.MaxHeaderBytes))
	expect(t, r, http.StatusRequestHeaderFieldsTooLarge, "an oversized header")

	// Many headers, and a long request line.
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var b strings.Builder
	fmt.Fprintf(&b, "PUT /v2/apps/%s HTTP/1.1\r\nHost: x\r\n", strings.Repeat("a", 1000))
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&b, "X-H%d: %s\r\n", i, strings.Repeat("v", 20))
	}
	b.WriteString("Content-Length: 2\r\n\r\n{}")
	go func() { _, _ = conn.Write([]byte(b.String())) }()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("read the answer to many headers: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("many headers: HTTP %d, want 431", res.StatusCode)
	}
	e.nothingCreated("header limit")
}

// TestSymlinkEscape: a hostPath under an allowed root that is a symlink
// pointing out of it passes validation (it is only a path) but the task
// never gets a container: the mount is resolved before the container is
// created.
func TestSymlinkEscape(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	root := filepath.Join(base, "allowed")
	outside := filepath.Join(base, "secret")
	for _, d := range []string{root, outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withAgent(func(c *agent.Config) { c.HostPathRoots = []string{root} }))
	r := e.do("POST", "/v2/apps", with(hostVolumeApp("/x", "/data", filepath.Join(root, "link")), "backoffSeconds", 60))
	expect(t, r, http.StatusCreated, "POST")
	waitUntil(t, "the task to fail", func() bool {
		v := e.a.Snapshot().App("/x")
		return v != nil && v.LastTaskFailure != nil
	})
	if f := e.a.Snapshot().App("/x").LastTaskFailure; !strings.Contains(f.Message, "outside") {
		t.Fatalf("failure message %q does not say the path is outside its root", f.Message)
	}
	if c := e.rt.Containers(); len(c) != 0 {
		t.Fatalf("a container was created with an escaping mount: %v", c)
	}
	if f := files(outside); len(f) != 0 {
		t.Fatalf("files written outside the root: %v", f)
	}
	// A path through the link to something below it is refused too.
	r = e.do("POST", "/v2/apps", with(hostVolumeApp("/y", "/data", filepath.Join(root, "link", "sub")), "backoffSeconds", 60))
	expect(t, r, http.StatusCreated, "POST /y")
	waitUntil(t, "/y's task to fail", func() bool {
		v := e.a.Snapshot().App("/y")
		return v != nil && v.LastTaskFailure != nil
	})
	if c := e.rt.Containers(); len(c) != 0 {
		t.Fatalf("a container was created with an escaping mount: %v", c)
	}
	if f := files(outside); len(f) != 0 {
		t.Fatalf("files written outside the root: %v", f)
	}
	for _, id := range []string{"x", "y"} {
		expect(t, e.do("DELETE", "/v2/apps/"+id, nil), http.StatusOK, "DELETE")
	}
	e.gone("/x")
	e.gone("/y")
	e.nothingCreated("symlink escape")
}

// TestDoubleSlashIsCanonical: like Marathon, /v2/apps//x names /x (empty
// segments are dropped); the record is that of /x and nothing else.
func TestDoubleSlashIsCanonical(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.do("PUT", "/v2/apps//x//", webApp("/x"))
	expect(t, r, http.StatusCreated, "PUT //x//")
	// A write of the record may be under way (the deployment's end writes
	// the app again): its temporary file is not a record.
	if f := records(filepath.Join(e.dir, "meta", "apps")); len(f) != 1 || f[0] != "x.json" {
		t.Fatalf("app records: %v", f)
	}
	expect(t, e.do("GET", "/v2/apps/x", nil), http.StatusOK, "GET /x")
}
