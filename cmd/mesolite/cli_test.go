package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/agenttest"
	"github.com/mesolite/mesolite/agent/api"
	"github.com/mesolite/mesolite/internal/conformance"
)

// cliAgent is a real agent over the fake runtime, served by httptest.
type cliAgent struct {
	t   *testing.T
	url string
	a   *agent.Agent
	rt  *agenttest.Runtime
	// auth records the Authorization header of every request.
	mu   sync.Mutex
	auth []string
}

func startCLIAgent(t *testing.T, cfg api.Config) *cliAgent {
	t.Helper()
	ta := &cliAgent{t: t}
	a, err := agenttest.Start(t.TempDir(), agent.Config{
		Cpus: 4, MemMiB: 4096, DiskMiB: 10000, PortMin: 41000, PortMax: 41100,
		KillGracePeriod: time.Second, ReconcileInterval: 200 * time.Millisecond,
		BackoffResetAfter: time.Hour, Logger: zerolog.Nop(),
	}, nil)
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	ta.rt = a.Runtime
	t.Cleanup(func() { _ = a.Stop() }) // Run's result: the agent was cancelled
	h := conformance.Default().Handler(api.New(a.Agent, cfg), conformance.Reporter(t))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ta.mu.Lock()
		ta.auth = append(ta.auth, r.Header.Get("Authorization"))
		ta.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ta.url, ta.a = srv.URL, a.Agent
	return ta
}

// cliResult is one CLI run.
type cliResult struct {
	out, err string
	code     int
}

func (r cliResult) String() string {
	return "exit " + cliItoa(r.code) + "\nstdout:\n" + r.out + "stderr:\n" + r.err
}

func cliItoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// cli runs the command line against the agent with stdin.
func (ta *cliAgent) cli(stdin string, args ...string) cliResult {
	return runCLIArgs(stdin, append([]string{"--url", ta.url}, args...)...)
}

// ok runs a command that must succeed and returns its stdout.
func (ta *cliAgent) ok(args ...string) string {
	ta.t.Helper()
	r := ta.cli("", args...)
	if r.code != 0 || r.err != "" {
		ta.t.Fatalf("mesolite %s: %v", strings.Join(args, " "), r)
	}
	return r.out
}

func runCLIArgs(stdin string, args ...string) cliResult {
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb)
	return cliResult{out: out.String(), err: errb.String(), code: code}
}

// cliWaitUntil polls cond until it holds, failing the test after a deadline.
func cliWaitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// cliTaskRow is one parsed line of "task list".
type cliTaskRow struct{ app, healthy, started, host, id string }

func parseCLITaskList(t *testing.T, out string) []cliTaskRow {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if out == "" {
		return nil
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "APP HEALTHY STARTED HOST ID" {
		t.Fatalf("task list header = %q", lines[0])
	}
	var rows []cliTaskRow
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 5 {
			t.Fatalf("task list line %q has %d fields", l, len(f))
		}
		rows = append(rows, cliTaskRow{f[0], f[1], f[2], f[3], f[4]})
	}
	return rows
}

// waitTasks polls "task list APP" until cond holds for its rows.
func (ta *cliAgent) waitTasks(app, what string, cond func([]cliTaskRow) bool) []cliTaskRow {
	ta.t.Helper()
	var rows []cliTaskRow
	cliWaitUntil(ta.t, what, func() bool {
		args := []string{"task", "list"}
		if app != "" {
			args = append(args, app)
		}
		rows = parseCLITaskList(ta.t, ta.ok(args...))
		return cond(rows)
	})
	return rows
}

// waitDeployed polls "app list" until app has no deployment and tasks
// running/instances is want.
func (ta *cliAgent) waitDeployed(app, tasks string) {
	ta.t.Helper()
	cliWaitUntil(ta.t, app+" deployed with "+tasks+" tasks", func() bool {
		for _, l := range strings.Split(ta.ok("app", "list"), "\n") {
			if f := strings.Fields(l); len(f) > 5 && f[0] == app && f[3] == tasks && f[5] == "---" {
				return true
			}
		}
		return false
	})
}

// serveHealth answers the testapp's HTTP health check (GET /health on
// the container's address, port 8080) so that its deployments finish:
// the fake runtime gives containers a loopback address the test listens on.
func (ta *cliAgent) serveHealth() {
	ta.t.Helper()
	var (
		l   net.Listener
		err error
		ip  string
	)
	for i := 1; i < 60; i++ {
		ip = "127.0.99." + cliItoa(i)
		if l, err = net.Listen("tcp", ip+":8080"); err == nil {
			break
		}
	}
	if err != nil {
		ta.t.Fatalf("no loopback address with port 8080 free: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health" {
			http.NotFound(w, r)
		}
	})}
	go func() { _ = srv.Serve(l) }()
	ta.t.Cleanup(func() { _ = srv.Close() })
	ta.rt.IPAddress = ip
}

func cliStarted(rows []cliTaskRow) bool { return len(rows) == 1 && rows[0].started != "N/A" }

var cliDeploymentLine = regexp.MustCompile(`^Created deployment [0-9a-f-]{36}\n$`)

const cliTestappFile = "../../testdata/testapp.marathon.json"

// writeCLIApp writes an app definition into a temporary file.
func writeCLIApp(t *testing.T, def string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "app.json")
	if err := os.WriteFile(p, []byte(def), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func cliWebApp(id string) string {
	return `{"id":"` + id + `","cmd":"sleep 1000","cpus":0.1,"mem":32,"instances":1,
	  "container":{"type":"DOCKER","docker":{"image":"busybox"}}}`
}

// TestCLITutorialFlow walks the stateful-services tutorial: add, list,
// stop (the task stays with STARTED N/A), start (next incarnation of the
// same instance), remove.
func TestCLITutorialFlow(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	ta.serveHealth()

	if out := ta.ok("marathon", "app", "add", cliTestappFile); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("app add printed %q", out)
	}
	rows := ta.waitTasks("", "the task to start", cliStarted)
	first := rows[0]
	if first.app != "/testapp" || first.healthy != "True" || first.host != "127.0.0.1" ||
		!regexp.MustCompile(`^testapp\.instance-[0-9a-f-]{36}\._app\.1$`).MatchString(first.id) {
		t.Fatalf("task list row = %+v", first)
	}
	if _, err := time.Parse(time.RFC3339Nano, first.started); err != nil {
		t.Fatalf("STARTED %q is not a time: %v", first.started, err)
	}

	ta.waitDeployed("/testapp", "1/1")
	want := regexp.MustCompile(`^ID +MEM +CPUS +TASKS +HEALTH +DEPLOYMENT +WAITING +CONTAINER +CMD\n/testapp +64 +0\.1 +1/1 +1/1 +--- +False +DOCKER +---\n$`)
	if list := ta.ok("app", "list"); !want.MatchString(list) {
		t.Fatalf("app list printed\n%s", list)
	}
	if q := ta.ok("app", "list", "--quiet"); q != "/testapp\n" {
		t.Fatalf("app list --quiet = %q", q)
	}

	if out := ta.ok("marathon", "app", "stop", "testapp"); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("app stop printed %q", out)
	}
	ta.waitDeployed("/testapp", "0/0")
	rows = ta.waitTasks("/testapp", "the task to stop", func(r []cliTaskRow) bool { return len(r) == 1 && r[0].started == "N/A" })
	if rows[0].id != first.id || rows[0].healthy != "True" {
		t.Fatalf("stopped task row = %+v, want id %s", rows[0], first.id)
	}
	if r := ta.cli("", "app", "stop", "testapp"); r.code != 1 || r.err != "Error: app '/testapp' already stopped: 0 instances\n" {
		t.Fatalf("second app stop: %v", r)
	}
	if r := ta.cli("", "app", "restart", "testapp"); r.code != 1 ||
		r.err != "Error: unable to perform rolling restart of application '/testapp' because it has no running tasks\n" {
		t.Fatalf("app restart of a stopped app: %v", r)
	}

	if out := ta.ok("app", "start", "testapp"); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("app start printed %q", out)
	}
	rows = ta.waitTasks("testapp", "the next incarnation to start", cliStarted)
	if want := strings.TrimSuffix(first.id, ".1") + ".2"; rows[0].id != want {
		t.Fatalf("task after start = %s, want %s", rows[0].id, want)
	}
	if r := ta.cli("", "app", "start", "testapp"); r.code != 1 || r.err != "Error: application 'testapp' already started: 1 instances\n" {
		t.Fatalf("second app start: %v", r)
	}
	ta.waitDeployed("/testapp", "1/1")
	if out := ta.ok("app", "restart", "/testapp"); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("app restart printed %q", out)
	}
	ta.waitTasks("testapp", "the restarted incarnation", func(r []cliTaskRow) bool {
		return cliStarted(r) && strings.HasSuffix(r[0].id, "._app.3")
	})

	if out := ta.ok("app", "remove", "testapp"); out != "" {
		t.Fatalf("app remove printed %q", out)
	}
	// As in Marathon the app is gone at once; its tasks stay listed until
	// they are killed.
	if r := ta.cli("", "app", "show", "testapp"); r.code != 1 || r.err != "Error: app '/testapp' does not exist\n" || r.out != "" {
		t.Fatalf("app show after remove: %v", r)
	}
	cliWaitUntil(t, "the tasks to go", func() bool { return ta.ok("task", "list") == "" })
	if r := ta.cli("", "app", "remove", "testapp"); r.code != 1 || r.err != "Error: app '/testapp' does not exist\n" {
		t.Fatalf("second app remove: %v", r)
	}
}

func TestCLIAppAdd(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	// App definitions served over HTTP, as "dcos marathon app add URL" reads them.
	defs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/four.json" {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, cliWebApp("/four"))
	}))
	t.Cleanup(defs.Close)
	tests := []struct {
		name     string
		args     []string
		stdin    string
		code     int
		out, err string // regexps
	}{
		{name: "file", args: []string{"app", "add", writeCLIApp(t, cliWebApp("/one"))}, out: cliDeploymentLine.String()},
		{name: "stdin dash", args: []string{"app", "add", "-"}, stdin: cliWebApp("two"), out: cliDeploymentLine.String()},
		{name: "stdin", args: []string{"app", "add"}, stdin: cliWebApp("/three"), out: cliDeploymentLine.String()},
		{name: "exists", args: []string{"app", "add", writeCLIApp(t, cliWebApp("one"))}, code: 1,
			err: `^Error: Application '/one' already exists\n$`},
		{name: "not json", args: []string{"app", "add", "-"}, stdin: "{", code: 1,
			err: `^Error: the app definition in standard input is not valid JSON: unexpected end of JSON input\n$`},
		{name: "url", args: []string{"app", "add", defs.URL + "/four.json"}, out: cliDeploymentLine.String()},
		{name: "url not found", args: []string{"app", "add", defs.URL + "/nope.json"}, code: 1,
			err: `^Error: can't read from resource http://127\.0\.0\.1:\d+/nope\.json: 404 Not Found; check that it exists\n$`},
		{name: "missing file", args: []string{"app", "add", "/nonexistent/app.json"}, code: 1,
			err: `^Error: read open /nonexistent/app.json: no such file or directory\n$`},
		{name: "invalid", code: 1, args: []string{"app", "add", "-"},
			stdin: `{"id":"/bad","instances":1,"container":{"type":"DOCKER","docker":{"image":"busybox"},
			  "volumes":[{"containerPath":"a/b","mode":"RW","persistent":{"size":10}}]}}`,
			err: `^Error: Object is not valid\n(  .*\n)*  /container/volumes\(0\)/containerPath: value must not contain "/"\n`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ta.cli(tt.stdin, tt.args...)
			if r.code != tt.code || !regexp.MustCompile(tt.out).MatchString(r.out) || !regexp.MustCompile(tt.err).MatchString(r.err) {
				t.Fatalf("got %v\nwant exit %d, stdout =~ %s, stderr =~ %s", r, tt.code, tt.out, tt.err)
			}
			if tt.code != 0 && r.out != "" {
				t.Fatalf("stdout on failure: %q", r.out)
			}
			if tt.code == 0 && r.err != "" {
				t.Fatalf("stderr on success: %q", r.err)
			}
		})
	}
	if q := ta.ok("app", "list", "--quiet"); q != "/four\n/one\n/three\n/two\n" {
		t.Fatalf("app list --quiet = %q", q)
	}
	var apps []map[string]any
	if err := json.Unmarshal([]byte(ta.ok("app", "list", "--json")), &apps); err != nil || len(apps) != 4 || apps[1]["id"] != "/one" {
		t.Fatalf("app list --json: %v %v", apps, err)
	}
	var app map[string]any
	out := ta.ok("app", "show", "one")
	if err := json.Unmarshal([]byte(out), &app); err != nil || app["id"] != "/one" || app["cmd"] != "sleep 1000" {
		t.Fatalf("app show: %v %s", err, out)
	}
	if !strings.HasPrefix(out, "{\n  \"") {
		t.Fatalf("app show is not indented by two spaces: %.40q", out)
	}
}

// TestCLIGroups: group list and group show read the group tree the
// applications' ids make.
func TestCLIGroups(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	if out := ta.ok("group", "list"); out != "" {
		t.Fatalf("group list without apps printed %q", out)
	}
	for _, id := range []string{"/top", "/shop/db", "/shop/web/frontend", "/shop/web/backend"} {
		ta.ok("app", "add", writeCLIApp(t, cliWebApp(id)))
	}
	want := "ID         APPS\n/shop       3\n/shop/web   2\n"
	if out := ta.ok("marathon", "group", "list"); out != want {
		t.Fatalf("group list:\n%s\nwant:\n%s", out, want)
	}
	var gs []map[string]any
	if err := json.Unmarshal([]byte(ta.ok("group", "list", "--json")), &gs); err != nil || len(gs) != 1 || gs[0]["id"] != "/shop" {
		t.Fatalf("group list --json: %v %v", gs, err)
	}
	var g map[string]any
	if err := json.Unmarshal([]byte(ta.ok("group", "show", "shop/web")), &g); err != nil || g["id"] != "/shop/web" || len(g["apps"].([]any)) != 2 {
		t.Fatalf("group show shop/web: %v %v", g, err)
	}
	if err := json.Unmarshal([]byte(ta.ok("group", "show", "/")), &g); err != nil || g["id"] != "/" {
		t.Fatalf("group show /: %v %v", g, err)
	}
	r := ta.cli("", "group", "show", "/nope")
	if r.code != 1 || r.err != "Error: group '/nope' does not exist\n" {
		t.Fatalf("group show /nope: %v", r)
	}
}

// TestCLIGroupCommands: group add, update, scale, show --group-version
// and remove, with and without "marathon", printing as the DC/OS CLI does.
func TestCLIGroupCommands(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	stack := `{"id":"/stack","apps":[` + cliWebApp("db") + `,` +
		strings.Replace(cliWebApp("web"), `"cmd"`, `"dependencies":["db"],"cmd"`, 1) + `]}`
	file := writeCLIApp(t, stack)
	if out := ta.ok("group", "add", file); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("group add printed %q", out)
	}
	if r := ta.cli("", "marathon", "group", "add", file); r.code != 1 || r.err != "Error: Group '/stack' already exists\n" {
		t.Fatalf("group add twice: %v", r)
	}
	if r := ta.cli("{}", "group", "add"); r.code != 1 || r.err != "Error: the group definition in standard input has no id\n" {
		t.Fatalf("group add without id: %v", r)
	}
	ta.waitDeployed("/stack/db", "1/1")
	ta.waitDeployed("/stack/web", "1/1")
	if out := ta.ok("group", "list"); out != "ID      APPS\n/stack   2\n" {
		t.Fatalf("group list:\n%s", out)
	}
	var versions []string
	raw, _, err := ta.cliClientGet("/v2/groups/stack/versions")
	if err != nil || json.Unmarshal(raw, &versions) != nil || len(versions) != 1 {
		t.Fatalf("versions %s %v", raw, err)
	}

	if out := ta.ok("marathon", "group", "scale", "stack", "2"); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("group scale printed %q", out)
	}
	ta.waitDeployed("/stack/db", "2/2")
	ta.waitDeployed("/stack/web", "2/2")
	if out := ta.ok("group", "update", "/stack", "version="+versions[0]); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("group update printed %q", out)
	}
	ta.waitDeployed("/stack/web", "1/1")
	var old map[string]any
	if err := json.Unmarshal([]byte(ta.ok("group", "show", "--group-version", versions[0], "stack")), &old); err != nil || old["id"] != "/stack" {
		t.Fatalf("group show --group-version: %v %v", old, err)
	}
	if r := ta.cli("", "group", "scale", "stack", "x"); r.code != 2 || !strings.Contains(r.err, `the scale factor "x" is not a number`) {
		t.Fatalf("group scale x: %v", r)
	}
	cycle := `{"apps":[` + strings.Replace(cliWebApp("a"), `"cmd"`, `"dependencies":["b"],"cmd"`, 1) + `,` +
		strings.Replace(cliWebApp("b"), `"cmd"`, `"dependencies":["a"],"cmd"`, 1) + `]}`
	if r := ta.cli(cycle, "group", "update", "stack"); r.code != 1 || !strings.Contains(r.err, "/stack/a") {
		t.Fatalf("group update with a cycle: %v", r)
	}
	if out := ta.ok("group", "remove", "stack"); out != "" {
		t.Fatalf("group remove printed %q", out)
	}
	cliWaitUntil(t, "the group gone", func() bool { return ta.ok("group", "list") == "" })
	if r := ta.cli("", "group", "remove", "stack"); r.code != 1 || r.err != "Error: group '/stack' does not exist\n" {
		t.Fatalf("group remove twice: %v", r)
	}
}

// cliClientGet is a GET through the CLI's client.
func (ta *cliAgent) cliClientGet(path string) ([]byte, http.Header, error) {
	c, err := newAPIClient(ta.url, "")
	if err != nil {
		return nil, nil, err
	}
	return c.do(context.Background(), http.MethodGet, path, nil, nil)
}

func TestCLIAppErrors(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	ta.ok("app", "add", writeCLIApp(t, cliWebApp("/web")))
	tests := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"show unknown", []string{"app", "show", "nope"}, 1, "Error: app '/nope' does not exist\n"},
		{"stop unknown", []string{"app", "stop", "/nope"}, 1, "Error: app '/nope' does not exist\n"},
		{"start unknown", []string{"app", "start", "nope"}, 1, "Error: app '/nope' does not exist\n"},
		{"restart unknown", []string{"app", "restart", "nope"}, 1, "Error: app '/nope' does not exist\n"},
		{"update unknown", []string{"app", "update", "nope", "instances=2"}, 1, "Error: app '/nope' does not exist\n"},
		{"remove unknown", []string{"app", "remove", "nope"}, 1, "Error: app '/nope' does not exist\n"},
		{"start zero", []string{"app", "start", "web", "0"}, 1, "Error: the number of instances must be positive: 0\n"},
		{"start negative", []string{"app", "start", "web", "-2"}, 1, "Error: the number of instances must be positive: -2\n"},
		{"start not a number", []string{"app", "start", "web", "two"}, 2,
			"mesolite: the number of instances must be an integer: \"two\"\nusage: mesolite [marathon] app start ID [N] [--force]\n"},
		{"start running", []string{"app", "start", "web", "3"}, 1, "Error: application 'web' already started: 1 instances\n"},
		{"empty id", []string{"app", "show", "/"}, 2, "mesolite: the application id \"/\" is empty\nusage: mesolite [marathon] app show ID\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ta.cli("", tt.args...)
			if r.code != tt.code || r.err != tt.err || r.out != "" {
				t.Fatalf("got %v\nwant exit %d, stderr %q", r, tt.code, tt.err)
			}
		})
	}
}

func TestCLIAppUpdate(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	ta.ok("app", "add", writeCLIApp(t, cliWebApp("/web")))
	ta.waitDeployed("/web", "1/1")

	if out := ta.ok("app", "update", "web", `cmd="sleep 2000"`, `env={"A":"b"}`, "labels={}", "mem=48"); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("app update printed %q", out)
	}
	var app struct {
		Cmd    string            `json:"cmd"`
		Env    map[string]string `json:"env"`
		Mem    float64           `json:"mem"`
		Labels map[string]string `json:"labels"`
	}
	if err := json.Unmarshal([]byte(ta.ok("app", "show", "web")), &app); err != nil {
		t.Fatal(err)
	}
	if app.Cmd != "sleep 2000" || app.Env["A"] != "b" || app.Mem != 48 {
		t.Fatalf("after update: %+v", app)
	}

	r := ta.cli(`{"cmd":"sleep 3000"}`, "app", "update", "/web", "--force")
	if r.code != 0 || !cliDeploymentLine.MatchString(r.out) {
		t.Fatalf("app update from stdin: %v", r)
	}
	if err := json.Unmarshal([]byte(ta.ok("app", "show", "web")), &app); err != nil || app.Cmd != "sleep 3000" {
		t.Fatalf("after stdin update: %+v %v", app, err)
	}

	for _, tt := range []struct {
		args  []string
		stdin string
		err   string
	}{
		{[]string{"app", "update", "web", "mem=1", "mem=2"}, "", "Error: Key 'mem' was specified more than once\n"},
		{[]string{"app", "update", "web", "mem"}, "", "Error: 'mem' is not a valid json-item\n"},
		{[]string{"app", "update", "web"}, "[1]", "Error: the update on standard input is not a JSON object\n"},
		{[]string{"app", "update", "web", "instances=-1", "--force"}, "", "Error: Object is not valid\n  /instances: got -1, expected 0 or more\n"},
	} {
		if r := ta.cli(tt.stdin, tt.args...); r.code != 1 || r.err != tt.err {
			t.Errorf("%v: %v\nwant stderr %q", tt.args, r, tt.err)
		}
	}
}

func TestCLIParseJSONItem(t *testing.T) {
	tests := []struct {
		item, key, want string // want: the value as JSON
		err             string
	}{
		{item: "instances=3", key: "instances", want: "3"},
		{item: "cpus=0.5", key: "cpus", want: "0.5"},
		{item: "cpus=1e2", key: "cpus", want: "100"},
		{item: "x=true", key: "x", want: "true"},
		{item: "x=False", key: "x", want: `"False"`},
		{item: "x=null", key: "x", want: "null"},
		{item: `args=["a", "b"]`, key: "args", want: `["a","b"]`},
		{item: `env={"A": 1}`, key: "env", want: `{"A":1}`},
		{item: "cmd=sleep 10", key: "cmd", want: `"sleep 10"`},
		{item: `cmd="sleep 10"`, key: "cmd", want: `"sleep 10"`},
		{item: `cmd='5'`, key: "cmd", want: "5"},
		{item: "x=nan", key: "x", want: `"nan"`},
		{item: "x=a=b", key: "x", want: `"a=b"`},
		{item: "x=", key: "x", want: `""`},
		{item: "x={bad", key: "x", want: `"{bad"`},
		{item: "novalue", err: "'novalue' is not a valid json-item"},
		{item: "=1", err: "'=1' is not a valid json-item"},
	}
	for _, tt := range tests {
		t.Run(tt.item, func(t *testing.T) {
			k, v, err := parseJSONItem(tt.item)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("err = %v, want %s", err, tt.err)
				}
				return
			}
			b, _ := json.Marshal(v)
			if err != nil || k != tt.key || string(b) != tt.want {
				t.Fatalf("got %q %s %v, want %q %s", k, b, err, tt.key, tt.want)
			}
		})
	}
}

func TestCLIAppRow(t *testing.T) {
	type dep = deploymentInfo
	mkDep := func(id string, actions ...string) dep {
		d := dep{ID: id}
		for _, a := range actions {
			d.CurrentActions = append(d.CurrentActions, struct {
				Action string `json:"action"`
				App    string `json:"app"`
			}{a, "/a"})
		}
		return d
	}
	tests := []struct {
		name    string
		app     string
		deps    []dep
		overdue bool
		want    string
	}{
		{name: "no checks, no deployment", app: `{"id":"/a","mem":1024,"cpus":0.5,"instances":2,"tasksRunning":1,"cmd":"sleep 1"}`,
			want: "/a 1024 0.5 1/2 --- --- False MESOS sleep 1"},
		{name: "checks", app: `{"id":"/a","mem":64,"cpus":1,"instances":1,"tasksRunning":1,"tasksHealthy":1,"healthChecks":[{}],"container":{"type":"DOCKER"}}`,
			want: "/a 64 1 1/1 1/1 --- False DOCKER ---"},
		{name: "empty checks", app: `{"id":"/a","mem":64,"cpus":0.1,"instances":0,"healthChecks":[]}`,
			want: "/a 64 0.1 0/0 --- --- False MESOS ---"},
		{name: "scale, waiting", app: `{"id":"/a","mem":64,"cpus":0.1,"instances":1,"deployments":[{"id":"d1"}],"args":["x","y"]}`,
			deps: []dep{mkDep("d0", "StopApplication"), mkDep("d1", "ScaleApplication")}, overdue: true,
			want: "/a 64 0.1 0/1 --- scale True MESOS [x, y]"},
		{name: "several actions", app: `{"id":"/a","mem":64,"cpus":0.1,"instances":1,"deployments":[{"id":"d1"}]}`,
			deps: []dep{mkDep("d1", "StartApplication", "RestartApplication")},
			want: "/a 64 0.1 0/1 --- (start,restart) False MESOS ---"},
		{name: "long cmd", app: `{"id":"/a","mem":64,"cpus":0.1,"instances":1,"cmd":"while true; do echo hello; sleep 1; done"}`,
			want: "/a 64 0.1 0/1 --- --- False MESOS while true; do echo hello; ..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var app appInfo
			if err := json.Unmarshal([]byte(tt.app), &app); err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(appRow(&app, tt.deps, tt.overdue), " "); got != tt.want {
				t.Fatalf("row = %q\nwant  %q", got, tt.want)
			}
		})
	}
}

// TestCLITaskTableMatchesTutorial renders the tutorial's two task lists
// and compares them character for character.
func TestCLITaskTableMatchesTutorial(t *testing.T) {
	id := "postgres.f2419e31-018a-11e6-b721-0261677b407a"
	tests := []struct {
		name    string
		started string
		want    string
	}{
		{"running", "2016-04-13T17:25:08.301Z", "" +
			"APP        HEALTHY          STARTED              HOST     ID\n" +
			"/postgres    True   2016-04-13T17:25:08.301Z  10.0.1.223  " + id + "\n"},
		{"stopped", "", "" +
			"APP        HEALTHY  STARTED     HOST     ID\n" +
			"/postgres    True     N/A    10.0.1.223  " + id + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			writeTable(&b, taskColumns, taskRows([]*taskInfo{{AppID: "/postgres", ID: id, Host: "10.0.1.223", StartedAt: tt.started}}))
			if b.String() != tt.want {
				t.Fatalf("got\n%s\nwant\n%s", b.String(), tt.want)
			}
		})
	}
}

func TestCLILastLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\n", 5, "a\nb\n"},
		{"a\n", 1, "a\n"},
		{"\n\n", 1, "\n"},
	}
	for _, tt := range tests {
		if got := lastLines(tt.in, tt.n); got != tt.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

// taskOf reads the one task of an app through the CLI.
func (ta *cliAgent) taskOf(app string) map[string]any {
	ta.t.Helper()
	var tasks []map[string]any
	if err := json.Unmarshal([]byte(ta.ok("task", "list", "--json", app)), &tasks); err != nil || len(tasks) != 1 {
		ta.t.Fatalf("task list --json %s: %v %v", app, tasks, err)
	}
	return tasks[0]
}

func TestCLITaskCommands(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	ta.ok("app", "add", writeCLIApp(t, cliWebApp("/web")))
	ta.ok("app", "add", writeCLIApp(t, cliWebApp("/db")))
	rows := ta.waitTasks("web", "web to start", cliStarted)
	web := rows[0].id
	ta.waitTasks("db", "db to start", cliStarted)

	all := parseCLITaskList(t, ta.ok("task", "list"))
	if len(all) != 2 || all[0].app != "/db" || all[1].app != "/web" {
		t.Fatalf("task list not sorted by app: %+v", all)
	}
	if q := ta.ok("task", "list", "--quiet", "/web"); q != web+"\n" {
		t.Fatalf("task list --quiet = %q", q)
	}

	var shown map[string]any
	if err := json.Unmarshal([]byte(ta.ok("task", "show", web)), &shown); err != nil || shown["id"] != web || shown["appId"] != "/web" {
		t.Fatalf("task show: %v %v", shown, err)
	}
	unknown := "web.instance-00000000-0000-0000-0000-000000000000._app.1"
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"task", "show", unknown}, "Error: Task '" + unknown + "' does not exist\n"},
		{[]string{"task", "stop", unknown}, "Error: Task '" + unknown + "' does not exist\n"},
		{[]string{"task", "kill", unknown}, "Error: Failed to kill tasks. task-ids seems to be unknown\n"},
		{[]string{"task", "kill", "--scale", "--wipe", web}, "Error: You cannot use scale and wipe at the same time.\n"},
		{[]string{"task", "kill", "not-a-task"}, "Error: Invalid task id 'not-a-task'.\n"},
	} {
		if r := ta.cli("", tt.args...); r.code != 1 || r.err != tt.err || r.out != "" {
			t.Errorf("%v: %v\nwant stderr %q", tt.args, r, tt.err)
		}
	}

	if out := ta.ok("task", "kill", web); out != "Killed tasks: ["+web+"]\n" {
		t.Fatalf("task kill printed %q", out)
	}
	next := strings.TrimSuffix(web, ".1") + ".2"
	ta.waitTasks("web", "web's relaunch", func(r []cliTaskRow) bool { return cliStarted(r) && r[0].id == next })

	var stopped map[string]any
	out := ta.ok("task", "stop", next)
	if err := json.Unmarshal([]byte(out), &stopped); err != nil || stopped["id"] != next {
		t.Fatalf("task stop printed %q (%v)", out, err)
	}
	third := strings.TrimSuffix(web, ".1") + ".3"
	ta.waitTasks("web", "web's second relaunch", func(r []cliTaskRow) bool { return cliStarted(r) && r[0].id == third })

	if out := ta.ok("task", "kill", "--scale", third); !regexp.MustCompile(`^Created deployment: [0-9a-f-]{36}\n$`).MatchString(out) {
		t.Fatalf("task kill --scale printed %q", out)
	}
	ta.waitDeployed("/web", "0/0")
}

func TestCLITaskLog(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	ta.ok("app", "add", writeCLIApp(t, cliWebApp("/web")))
	ta.waitTasks("web", "web to start", cliStarted)
	task := ta.taskOf("web")
	id := task["id"].(string)
	sandbox, _ := task["sandboxDirectory"].(string)
	if sandbox == "" {
		t.Fatalf("task has no sandboxDirectory: %v", task)
	}
	if out := ta.ok("task", "log", id); !regexp.MustCompile(`^fake container mesos-\S+ started\n$`).MatchString(out) {
		t.Fatalf("task log printed %q", out)
	}

	f, err := os.OpenFile(filepath.Join(sandbox, "stdout"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 1; i <= 20; i++ {
		if _, err := f.WriteString("line " + cliItoa(i) + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	if out := ta.ok("task", "log", id); !strings.HasPrefix(out, "line 11\n") || !strings.HasSuffix(out, "line 20\n") || strings.Count(out, "\n") != 10 {
		t.Fatalf("task log (default 10 lines) printed %q", out)
	}
	if out := ta.ok("task", "log", "--lines", "3", id); out != "line 18\nline 19\nline 20\n" {
		t.Fatalf("task log --lines 3 printed %q", out)
	}
	if out := ta.ok("task", "log", "--lines=0", id); out != "" {
		t.Fatalf("task log --lines=0 printed %q", out)
	}
	if r := ta.cli("", "task", "log", "--stderr", id); r.code != 1 || r.err != "Error: stderr of task '"+id+"' does not exist yet\n" {
		t.Fatalf("task log --stderr: %v", r)
	}
	if r := ta.cli("", "task", "log", "--lines", "x", id); r.code != 2 || !strings.HasPrefix(r.err, "mesolite: --lines takes a number of lines, not \"x\"\n") {
		t.Fatalf("task log --lines x: %v", r)
	}

	// --follow prints what is appended until the context ends.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cliSyncBuffer{}
	c := &cli{stdin: strings.NewReader(""), stdout: out, stderr: out, getenv: func(string) string { return "" }, pollEvery: 20 * time.Millisecond}
	done := make(chan int, 1)
	go func() { done <- c.run(ctx, []string{"--url", ta.url, "task", "log", "--follow", "--lines", "1", id}) }()
	cliWaitUntil(t, "the tail", func() bool { return out.String() == "line 20\n" })
	if _, err := f.WriteString("line 21\npartial"); err != nil {
		t.Fatal(err)
	}
	cliWaitUntil(t, "followed lines", func() bool { return out.String() == "line 20\nline 21\npartial" })

	// A relaunch of the instance: the follow goes on with the next
	// incarnation's file, from its start, after a note.
	if _, err := f.WriteString(" end of 1\n"); err != nil {
		t.Fatal(err)
	}
	ta.ok("task", "kill", id)
	ta.waitTasks("web", "the relaunch", func(r []cliTaskRow) bool { return cliStarted(r) && r[0].id != id })
	next := ta.taskOf("web")["id"].(string)
	want := "line 20\nline 21\npartial end of 1\n==> task " + id + " was relaunched as " + next + "\nfake container "
	cliWaitUntil(t, "the next incarnation's log", func() bool { return strings.HasPrefix(out.String(), want) })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("task log --follow exited %d: %s", code, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("task log --follow did not stop with its context")
	}

	// Part of a task id will do when one task matches: the current one.
	if out := ta.ok("task", "log", "--lines", "1", "web"); !strings.HasPrefix(out, "fake container mesos-") {
		t.Fatalf("task log web printed %q", out)
	}
	ta.ok("app", "add", writeCLIApp(t, cliWebApp("/web2")))
	ta.waitTasks("web2", "web2 to start", cliStarted)
	web2 := ta.taskOf("web2")["id"].(string)
	ids := []string{next, web2}
	sort.Strings(ids)
	if r := ta.cli("", "task", "log", "web"); r.code != 1 || r.err != "Error: 2 tasks have an ID containing 'web': "+strings.Join(ids, ", ")+"; give one of them\n" {
		t.Fatalf("task log of an ambiguous id: %v", r)
	}
	if r := ta.cli("", "task", "log", "nothing"); r.code != 1 || r.err != "Error: no task ID found containing 'nothing'\n" {
		t.Fatalf("task log of an unknown id: %v", r)
	}
	unknown := "web.instance-00000000-0000-0000-0000-000000000000._app.1"
	if r := ta.cli("", "task", "log", unknown); r.code != 1 || !strings.HasPrefix(r.err, "Error: Task '"+unknown+"' does not exist") {
		t.Fatalf("task log of an unknown whole id: %v", r)
	}

	// A past incarnation keeps its log.
	if out := ta.ok("task", "log", "--lines", "2", id); out != "line 21\npartial end of 1\n" {
		t.Fatalf("task log of the past incarnation printed %q", out)
	}
}

// cliSyncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type cliSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *cliSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *cliSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCLIEvents(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &cliSyncBuffer{}
	c := &cli{stdin: strings.NewReader(""), stdout: out, stderr: out, getenv: func(string) string { return "" }, pollEvery: time.Second}
	done := make(chan int, 1)
	go func() {
		done <- c.run(ctx, []string{"--url", ta.url, "events", "--type", "event_stream_attached", "--type=deployment_success"})
	}()
	cliWaitUntil(t, "event_stream_attached", func() bool { return strings.HasPrefix(out.String(), "event_stream_attached {") })
	ta.ok("app", "add", writeCLIApp(t, cliWebApp("/web")))
	cliWaitUntil(t, "deployment_success", func() bool { return strings.Contains(out.String(), "\ndeployment_success {") })
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("events exited %d: %s", code, out.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("events did not stop with its context")
	}
	for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		typ, data, _ := strings.Cut(line, " ")
		if typ != "event_stream_attached" && typ != "deployment_success" {
			t.Errorf("event of type %q passed the filter", typ)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(data), &ev); err != nil || ev["eventType"] != typ {
			t.Errorf("event line %q: %v", line, err)
		}
	}
}

func TestCLIVolumeList(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	ta.ok("app", "add", cliTestappFile)
	ta.waitTasks("testapp", "testapp to start", cliStarted)
	inst := ta.taskOf("testapp")["instanceId"].(string)

	// USED is the last measurement, which a new volume gets at once.
	want := regexp.MustCompile(`^PERSISTENCE-ID +APP +INSTANCE +GOAL +USED +SIZE\ntestapp#data#[0-9a-f-]+ +/testapp +` + regexp.QuoteMeta(inst) + ` +running +\d+(\.\d)? (B|KiB) +16 MiB\n$`)
	var out string
	cliWaitUntil(t, "the volume measured", func() bool {
		out = ta.ok("volume", "list")
		return want.MatchString(out)
	})
	var vols []struct {
		PersistenceID string `json:"persistenceId"`
		Path          string `json:"path"`
	}
	if err := json.Unmarshal([]byte(ta.ok("volume", "list", "--json")), &vols); err != nil || len(vols) != 1 {
		t.Fatalf("volume list --json: %v %v", vols, err)
	}
	if out := ta.ok("volume", "list", "--orphans"); out != "" {
		t.Fatalf("volume list --orphans without orphans printed %q", out)
	}
	orphan := filepath.Join(filepath.Dir(vols[0].Path), "old#data#1")
	if err := os.Mkdir(orphan, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(orphan, "f"), make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	// A new orphan is measured at the agent's next measurement.
	out = ta.ok("volume", "list", "--orphans")
	if !regexp.MustCompile(`^PERSISTENCE-ID +APP +INSTANCE +GOAL +USED +SIZE\nold#data#1 +--- +--- +\(orphan\) +(\d+\.\d KiB|\(not measured yet\)) +---\n$`).MatchString(out) {
		t.Fatalf("volume list --orphans printed\n%s", out)
	}
	// Released: kept, marked, never given to an instance.
	if out := ta.ok("volume", "release", "old#data#1"); out != "Released old#data#1 (kept in "+orphan+")\n" {
		t.Fatalf("volume release printed %q", out)
	}
	if out := ta.ok("volume", "list", "--orphans"); !regexp.MustCompile(`\nold#data#1 +/old +--- +\(released\) `).MatchString(out) {
		t.Fatalf("volume list --orphans after release printed\n%s", out)
	}
	if r := ta.cli("", "volume", "release", vols[0].PersistenceID); r.code != 1 || !strings.Contains(r.err, "belongs to instance") {
		t.Fatalf("release of a reserved volume: %+v", r)
	}
}

func TestCLIUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	want := "mesolite: cannot reach the agent at http://" + addr + " (connection refused): start one with 'make run' or 'mesolite agent', or set --url / MESOLITE_URL\n"
	for _, args := range [][]string{
		{"--url", "http://" + addr, "app", "list"},
		{"app", "show", "x", "--url=" + addr},
		{"task", "log", "--follow", "t", "--url", addr},
		{"events", "--url", addr},
	} {
		r := runCLIArgs("", args...)
		if r.code != 1 || r.err != want || r.out != "" {
			t.Errorf("%v: %v\nwant stderr %q", args, r, want)
		}
	}
	t.Setenv("MESOLITE_URL", "http://"+addr)
	if r := runCLIArgs("", "ping"); r.code != 1 || r.err != want {
		t.Errorf("ping with MESOLITE_URL: %v", r)
	}
}

func TestCLIToken(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test", Token: "s3cret"})
	t.Setenv("MESOLITE_TOKEN", "")
	r := ta.cli("", "app", "list")
	if r.code != 1 || !strings.HasPrefix(r.err, "Error: Authentication required") || !strings.Contains(r.err, "set MESOLITE_TOKEN") {
		t.Fatalf("without a token: %v", r)
	}
	t.Setenv("MESOLITE_TOKEN", "wrong")
	if r := ta.cli("", "app", "list"); r.code != 1 || !strings.HasPrefix(r.err, "Error: the agent refused the token in MESOLITE_TOKEN: ") {
		t.Fatalf("with a wrong token: %v", r)
	}
	t.Setenv("MESOLITE_TOKEN", "s3cret")
	ta.mu.Lock()
	ta.auth = nil
	ta.mu.Unlock()
	if out := ta.ok("app", "add", writeCLIApp(t, cliWebApp("/web"))); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("app add with the token printed %q", out)
	}
	ta.mu.Lock()
	defer ta.mu.Unlock()
	if len(ta.auth) != 2 {
		t.Fatalf("app add sent %d requests, want GET and POST", len(ta.auth))
	}
	for _, h := range ta.auth {
		if h != "token=s3cret" {
			t.Fatalf("Authorization = %q, want token=s3cret", h)
		}
	}
}

// TestCLILocked covers a deployment in progress (an app that cannot be
// placed: more cpus than the agent has) and --force.
func TestCLILocked(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test"})
	ta.ok("app", "add", writeCLIApp(t, `{"id":"/big","cmd":"sleep 1000","cpus":64,"mem":32,"instances":1,
	  "container":{"type":"DOCKER","docker":{"image":"busybox"}}}`))
	list := ta.ok("app", "list")
	if !regexp.MustCompile(`(?m)^/big +32 +64 +0/1 +--- +(start|scale) +`).MatchString(list) {
		t.Fatalf("app list during the deployment:\n%s", list)
	}
	r := ta.cli("", "app", "stop", "big")
	if r.code != 1 || !regexp.MustCompile(`^Error: changes blocked: deployment [0-9a-f-]{36} already in progress for app '/big'; .* run again with --force to override it\n$`).MatchString(r.err) {
		t.Fatalf("app stop of a locked app: %v", r)
	}
	if out := ta.ok("app", "stop", "big", "--force"); !cliDeploymentLine.MatchString(out) {
		t.Fatalf("app stop --force printed %q", out)
	}
	cliWaitUntil(t, "the stop", func() bool {
		return regexp.MustCompile(`(?m)^/big +32 +64 +0/0 +--- +--- +False`).MatchString(ta.ok("app", "list"))
	})
}

func TestCLIUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		out  string // prefix of stdout
		err  string // prefix of stderr
	}{
		{name: "unknown command", args: []string{"frob"}, code: 2, err: "mesolite: unknown command \"frob\"; run 'mesolite help'"},
		{name: "unknown app command", args: []string{"app", "frob"}, code: 2, err: "mesolite: unknown command \"app frob\"\nusage:\n  mesolite [marathon] app add [FILE|URL|-]\n"},
		{name: "group alone", args: []string{"marathon", "task"}, code: 2, err: "mesolite: \"task\" needs a command\nusage:\n"},
		{name: "missing id", args: []string{"app", "stop"}, code: 2, err: "mesolite: app stop needs ID\nusage: mesolite [marathon] app stop ID [--force]\n"},
		{name: "extra argument", args: []string{"app", "show", "a", "b"}, code: 2, err: "mesolite: unexpected argument \"b\"\nusage: mesolite [marathon] app show ID\n"},
		{name: "unknown option", args: []string{"app", "list", "--yaml"}, code: 2, err: "mesolite: app list has no option --yaml\nusage: mesolite [marathon] app list [--json] [--quiet]\n"},
		{name: "url without value", args: []string{"app", "list", "--url"}, code: 2, err: "mesolite: option --url needs a value\n"},
		{name: "bad url", args: []string{"--url", "ftp://x", "ping"}, code: 2, err: "mesolite: invalid agent URL \"ftp://x\": want http://HOST:PORT\nusage: mesolite ping\n"},
		{name: "command help", args: []string{"marathon", "app", "add", "--help"}, out: "usage: mesolite [marathon] app add [FILE|URL|-]\n\nAdd an application"},
		{name: "help between", args: []string{"task", "-h", "kill"}, out: "usage: mesolite [marathon] task kill [--scale] [--wipe] TASK...\n"},
		{name: "group help", args: []string{"volume", "--help"}, out: "usage:\n  mesolite volume list [--orphans] [--json]\n"},
		{name: "marathon help", args: []string{"marathon", "--help"}, out: usage},
		{name: "marathon alone", args: []string{"marathon"}, code: 2, err: usage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCLIArgs("", tt.args...)
			if r.code != tt.code || !strings.HasPrefix(r.out, tt.out) || !strings.HasPrefix(r.err, tt.err) ||
				(tt.out == "") != (r.out == "") || (tt.err == "") != (r.err == "") {
				t.Fatalf("got %v\nwant exit %d, stdout %q…, stderr %q…", r, tt.code, tt.out, tt.err)
			}
		})
	}
}

func TestCLIPing(t *testing.T) {
	ta := startCLIAgent(t, api.Config{Version: "test", Token: "s3cret"})
	if out := ta.ok("ping"); out != "pong\n" {
		t.Fatalf("ping printed %q", out)
	}
	if out := ta.ok("marathon", "ping"); out != "pong\n" {
		t.Fatalf("marathon ping printed %q", out)
	}
}

func TestCLIOneLine(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"a":1}`, `{"a":1}`},
		{"{\n  \"a\": [1,\n 2]\n}", `{"a":[1,2]}`},
		{"not\njson", "not json"},
	}
	for _, tt := range tests {
		if got := oneLine(tt.in); got != tt.want {
			t.Errorf("oneLine(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
