package conformance_test

// TestSuiteTraffic starts today's agent over the fake runtime, serves its
// API through the checker and drives every endpoint and every event type
// it can produce, collecting each mismatch with Marathon's schema; any
// mismatch fails the test, reported once with its first full report.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
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

// collector keeps the mismatches, normalized so that ids, times and array
// indexes do not make one mismatch look like many.
type collector struct {
	mu   sync.Mutex
	seen map[string]string // normalized key -> first full report
}

var (
	reUUID  = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}(-S[0-9]+|-[0-9]{4})?`)
	reTime  = regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z`)
	reIndex = regexp.MustCompile(`/[0-9]+(/|$)`)
	reNum   = regexp.MustCompile(`\b[0-9]+(\.[0-9]+)?\b`)
)

func (c *collector) report(err error) {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range list {
		var m *conformance.Mismatch
		if !errors.As(e, &m) {
			c.seen["error: "+e.Error()] = e.Error()
			continue
		}
		what := m.What
		if i := strings.Index(what, "?"); i >= 0 {
			// Keep the query's keys, not its values (task ids).
			q, _ := url.ParseQuery(strings.SplitN(what[i+1:], " ", 2)[0])
			keys := make([]string, 0, len(q))
			for k, v := range q {
				if k == "embed" || k == "plan-format" {
					keys = append(keys, k+"="+strings.Join(v, ","))
				} else {
					keys = append(keys, k)
				}
			}
			sort.Strings(keys)
			what = what[:i] + "?" + strings.Join(keys, "&") + what[strings.Index(what, " → "):]
		}
		where := m.Where
		for reIndex.MatchString(where) {
			where = reIndex.ReplaceAllString(where, "/*$1")
		}
		why := reNum.ReplaceAllString(reTime.ReplaceAllString(reUUID.ReplaceAllString(m.Why, "<id>"), "<time>"), "<n>")
		key := what + " | " + where + " | " + why
		if _, ok := c.seen[key]; !ok {
			c.seen[key] = m.Error()
		}
	}
}

func (c *collector) keys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.seen))
	for k := range c.seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// suite is today's agent over the fake runtime, served through the checker.
type suite struct {
	t   *testing.T
	rt  *agenttest.Runtime
	a   *agent.Agent
	srv *httptest.Server
}

func newSuite(t *testing.T, check *conformance.Checker, report func(error)) *suite {
	ta, err := agenttest.Start(t.TempDir(), agent.Config{
		Cpus: 4, MemMiB: 4096, DiskMiB: 10000, PortMin: 42000, PortMax: 42100,
		KillGracePeriod: time.Second, ReconcileInterval: 200 * time.Millisecond, BackoffResetAfter: time.Hour,
		Logger: testLogger(t),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &suite{t: t, rt: ta.Runtime, a: ta.Agent}
	s.srv = httptest.NewServer(check.Handler(api.New(ta.Agent, api.Config{Version: "test", Leader: "127.0.0.1:8080", KeepAlive: 50 * time.Millisecond}), report))
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
		_ = ta.Stop() // Run's result after a cancel
	})
	return s
}

func testLogger(t *testing.T) zerolog.Logger {
	if os.Getenv("MESOLITE_TEST_LOG") == "" {
		return zerolog.Nop()
	}
	return zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
}

func (s *suite) until(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			s.t.Fatalf("timed out waiting for %s\n%s", what, dumpSnap(s.a))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) obj() map[string]any {
	var m map[string]any
	_ = json.Unmarshal(a.body, &m)
	return m
}

func (s *suite) do(method, path string, body any) answer {
	s.t.Helper()
	var rd io.Reader
	asJSON := true
	switch b := body.(type) {
	case nil:
	case io.Reader:
		rd, asJSON = b, false // sent without a Content-Type
	case string:
		rd = strings.NewReader(b)
	default:
		js, _ := json.Marshal(b)
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, s.srv.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if rd != nil && asJSON {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, body: b}
}

func (s *suite) must(status int, method, path string, body any) answer {
	s.t.Helper()
	a := s.do(method, path, body)
	if a.status != status {
		s.t.Fatalf("%s %s: want HTTP %d, got %d %s", method, path, status, a.status, a.body)
	}
	return a
}

// stream opens /v2/events with a query and reads it until the test ends;
// the checker sees every event on the server side. It returns the types
// received, in order.
func (s *suite) stream(query string) func() []string {
	ctx, cancel := context.WithCancel(context.Background())
	s.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", s.srv.URL+"/v2/events"+query, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	var mu sync.Mutex
	var types []string
	go func() {
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 8<<20)
		for sc.Scan() {
			if typ, ok := strings.CutPrefix(strings.TrimSuffix(sc.Text(), "\r"), "event: "); ok {
				mu.Lock()
				types = append(types, typ)
				mu.Unlock()
			}
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(types)
	}
}

func (s *suite) settled(id string, running int) *agent.AppView {
	s.t.Helper()
	var v *agent.AppView
	s.until(fmt.Sprintf("%s to run %d tasks with no deployment", id, running), func() bool {
		v = s.a.Snapshot().App(id)
		return v != nil && v.TasksRunning == running && len(v.Deployments) == 0
	})
	return v
}

func webApp(id string) map[string]any {
	return map[string]any{
		"id": id, "cpus": 0.1, "mem": 32, "instances": 1, "cmd": "sleep 1000",
		"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "mesolite/testapp:latest"}},
		"env":       map[string]any{"A": "1"}, "labels": map[string]any{"team": "shop"},
	}
}

func residentApp(id string) map[string]any {
	return map[string]any{
		"id": id, "cpus": 0.5, "mem": 128, "instances": 1,
		"networks": []any{map[string]any{"mode": "container/bridge"}},
		"container": map[string]any{
			"type":         "DOCKER",
			"docker":       map[string]any{"image": "mesolite/testapp:latest"},
			"volumes":      []any{map[string]any{"containerPath": "pgdata", "mode": "RW", "persistent": map[string]any{"size": 16}}},
			"portMappings": []any{map[string]any{"containerPort": 5432, "hostPort": 0, "protocol": "tcp", "labels": map[string]any{"VIP_0": "/pg:5432"}}},
		},
		"backoffSeconds": 1, "maxLaunchDelaySeconds": 2,
	}
}

// checkedApp's HTTP health check reaches target's port (the fake runtime
// gives containers 127.0.0.1).
func checkedApp(id string, port int) map[string]any {
	return map[string]any{
		"id": id, "cpus": 0.1, "mem": 32, "instances": 1,
		"networks": []any{map[string]any{"mode": "container/bridge"}},
		"container": map[string]any{
			"type":         "DOCKER",
			"docker":       map[string]any{"image": "mesolite/testapp:latest"},
			"portMappings": []any{map[string]any{"containerPort": port, "hostPort": 0, "name": "http"}},
		},
		"healthChecks": []any{map[string]any{
			"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 0,
			"intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 2,
		}},
	}
}

func TestSuiteTraffic(t *testing.T) {
	check, err := conformance.New()
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{seen: map[string]string{}}
	s := newSuite(t, check, col.report)

	plain := s.stream("")
	s.stream("?plan-format=light")
	s.stream("?embed=mesolite")
	s.stream("?event_type=deployment_info&event_type=deployment_success")
	s.until("four streams attached", func() bool { return s.a.Bus().Subscribers() == 4 })

	s.basics()
	s.apps()
	s.failures()
	s.health()
	s.groups()
	s.errors()
	s.mesolite()
	s.removal()

	s.until("the deployment events on the plain stream", func() bool {
		return slices.Contains(plain(), "deployment_success") && slices.Contains(plain(), "app_terminated_event")
	})
	// Give the streams' last frames a moment to arrive, bounded.
	s.until("no deployment left", func() bool { return len(s.a.Snapshot().Deployments) == 0 })

	responses, events := check.Counts()
	check.Finish("internal/conformance (TestSuiteTraffic)")
	if responses < 60 || events < 40 {
		t.Errorf("the suite checked only %d answers and %d events; it must cover every endpoint and event type", responses, events)
	}
	noMismatch(t, col)
}

func (s *suite) basics() {
	s.must(200, "GET", "/ping", nil)
	s.must(200, "HEAD", "/ping", nil)
	s.must(200, "GET", "/service/marathon/ping", nil)
	s.must(200, "GET", "/v2/info", nil)
	s.must(200, "GET", "/service/marathon/v2/info", nil)
	s.must(200, "GET", "/v2/leader", nil)
	s.must(200, "GET", "/v2/apps", nil)
	s.must(200, "GET", "/v2/tasks", nil)
	s.must(200, "GET", "/v2/deployments", nil)
	s.must(200, "GET", "/v2/queue", nil)
	s.must(200, "GET", "/v2/groups", nil)
}

func (s *suite) apps() {
	s.must(201, "POST", "/v2/apps", webApp("/web"))
	s.must(201, "POST", "/v2/apps", residentApp("/db/pg"))
	s.settled("/web", 1)
	s.settled("/db/pg", 1)
	for _, q := range []string{"", "?embed=apps.tasks", "?embed=apps.failures", "?embed=apps.counts", "?embed=apps.readiness",
		"?embed=apps.taskStats", "?embed=apps.lastTaskFailure", "?embed=apps.deployments", "?embed=mesolite", "?embed=apps.tasks&embed=mesolite",
		"?id=web", "?label=team==shop"} {
		s.must(200, "GET", "/v2/apps"+q, nil)
	}
	for _, q := range []string{"", "?embed=app.readiness", "?embed=app.taskStats", "?embed=app.mesolite"} {
		s.must(200, "GET", "/v2/apps/web"+q, nil)
		s.must(200, "GET", "/v2/apps/db/pg"+q, nil)
	}
	s.must(200, "GET", "/v2/apps/web/tasks", nil)
	s.must(200, "GET", "/v2/apps/db/pg/tasks?embed=mesolite", nil)
	for _, q := range []string{"", "?status=running", "?embed=mesolite"} {
		s.must(200, "GET", "/v2/tasks"+q, nil)
	}
	vs := s.must(200, "GET", "/v2/apps/web/versions", nil).obj()["versions"].([]any)
	s.must(200, "GET", "/v2/apps/web/versions/"+vs[0].(string), nil)

	// Scale, change, restart, roll back.
	s.must(200, "PUT", "/v2/apps/web", map[string]any{"instances": 2})
	s.settled("/web", 2)
	s.must(200, "PATCH", "/v2/apps/web", map[string]any{"cmd": "sleep 2000"})
	s.settled("/web", 2)
	s.must(200, "POST", "/v2/apps/web/restart", nil)
	s.settled("/web", 2)
	s.must(200, "PUT", "/v2/apps/web", map[string]any{"version": vs[0]})
	s.settled("/web", 1)
	s.must(201, "PUT", "/v2/apps/created", webApp("/created"))
	s.settled("/created", 1)

	// Kill and scale tasks.
	v := s.settled("/web", 1)
	s.must(200, "DELETE", "/v2/apps/web/tasks/"+v.Tasks[0].ID, nil)
	v = s.settled("/web", 1)
	s.must(200, "POST", "/v2/tasks/delete", map[string]any{"ids": []string{v.Tasks[0].ID}})
	s.settled("/web", 1)
	s.must(200, "DELETE", "/v2/apps/web/tasks?embed=mesolite", nil)
	s.settled("/web", 1)
	s.must(200, "PUT", "/v2/apps/created", map[string]any{"instances": 2})
	v = s.settled("/created", 2)
	s.must(200, "DELETE", "/v2/apps/created/tasks/"+v.Tasks[0].ID+"?scale=true", nil)
	v = s.settled("/created", 1)
	s.must(200, "POST", "/v2/tasks/delete?scale=true", map[string]any{"ids": []string{v.Tasks[0].ID}})
	s.settled("/created", 0)
	s.must(200, "PUT", "/v2/apps/db/pg", map[string]any{"instances": 0})
	s.until("the resident task stopped", func() bool {
		v := s.a.Snapshot().App("/db/pg")
		return v != nil && len(v.Deployments) == 0 && len(v.Tasks) == 1 && v.Tasks[0].State == agent.TaskKilled
	})
	s.must(200, "GET", "/v2/apps/db/pg", nil)
	s.must(200, "GET", "/v2/tasks", nil)
	s.must(200, "PUT", "/v2/apps/db/pg", map[string]any{"instances": 1})
	s.settled("/db/pg", 1)
	pg := s.settled("/db/pg", 1)
	s.must(200, "POST", "/v2/tasks/delete?wipe=true", map[string]any{"ids": []string{pg.Tasks[0].ID}})
	s.settled("/db/pg", 1)
}

// failures: an app whose image cannot be pulled fails, waits in the queue
// with a delay and keeps its lastTaskFailure; an app too big to place waits.
func (s *suite) failures() {
	s.rt.SetImageMissing("mesolite/missing:1", true)
	bad := webApp("/bad")
	bad["container"] = map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "mesolite/missing:1"}}
	bad["backoffSeconds"] = 30
	s.must(201, "POST", "/v2/apps", bad)
	s.until("/bad to fail", func() bool {
		v := s.a.Snapshot().App("/bad")
		return v != nil && v.LastTaskFailure != nil
	})
	big := webApp("/big")
	big["mem"] = 1 << 20
	s.must(201, "POST", "/v2/apps", big)
	s.until("/big to wait", func() bool {
		v := s.a.Snapshot().App("/big")
		return v != nil && v.Waiting != ""
	})
	for _, q := range []string{"", "?embed=lastUnusedOffers", "?embed=mesolite"} {
		s.must(200, "GET", "/v2/queue"+q, nil)
	}
	s.must(200, "GET", "/v2/apps/bad", nil)
	s.must(200, "GET", "/v2/apps?embed=apps.lastTaskFailure", nil)
	s.must(200, "GET", "/v2/apps/big?embed=app.mesolite", nil)
	s.must(200, "GET", "/v2/deployments", nil)
	s.must(204, "DELETE", "/v2/queue/bad/delay", nil)
	// A held deployment: locked against a change, cancelled (rollback) and
	// forced.
	lock := s.do("PUT", "/v2/apps/big", map[string]any{"cpus": 0.2})
	if lock.status != 409 {
		s.t.Fatalf("PUT on a locked app: HTTP %d %s", lock.status, lock.body)
	}
	ds := s.must(200, "GET", "/v2/deployments", nil)
	var list []map[string]any
	_ = json.Unmarshal(ds.body, &list)
	for _, d := range list {
		if slices.Contains(d["affectedApps"].([]any), any("/big")) {
			s.must(200, "DELETE", "/v2/deployments/"+d["id"].(string), nil)
		}
	}
	// Cancelling a creation removes the app; a forced cancel only stops
	// the deployment.
	s.until("/big rolled back", func() bool {
		for _, d := range s.a.Snapshot().Deployments {
			if slices.Contains(d.Affected, "/big") {
				return false
			}
		}
		return s.a.Snapshot().App("/big") == nil
	})
	s.must(201, "POST", "/v2/apps", big)
	s.must(200, "PUT", "/v2/apps/big?force=true", map[string]any{"mem": 1 << 21})
	ds = s.must(200, "GET", "/v2/deployments", nil)
	list = nil
	_ = json.Unmarshal(ds.body, &list)
	for _, d := range list {
		if slices.Contains(d["affectedApps"].([]any), any("/big")) {
			s.must(202, "DELETE", "/v2/deployments/"+d["id"].(string)+"?force=true", nil)
		}
	}
	// A task that crashes: TASK_FAILED, relaunched.
	s.must(201, "POST", "/v2/apps", webApp("/crash"))
	v := s.settled("/crash", 1)
	if err := s.rt.Crash(v.Tasks[0].ID, 3); err != nil {
		s.t.Fatal(err)
	}
	s.until("/crash to fail and come back", func() bool {
		v := s.a.Snapshot().App("/crash")
		return v != nil && v.LastTaskFailure != nil && v.TasksRunning == 1
	})
	s.must(200, "GET", "/v2/apps/crash", nil)
}

// health: a checked app goes healthy, then its checks fail until it is
// killed (failed_health_check_event, health_status_changed_event,
// instance_health_changed_event, unhealthy_instance_kill_event).
func (s *suite) health() {
	var status = 200
	var mu sync.Mutex
	tg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		w.WriteHeader(status)
	}))
	s.t.Cleanup(tg.Close)
	u, _ := url.Parse(tg.URL)
	port, _ := strconv.Atoi(u.Port())
	s.must(201, "POST", "/v2/apps", checkedApp("/chk", port))
	s.until("/chk healthy", func() bool {
		v := s.a.Snapshot().App("/chk")
		return v != nil && v.TasksHealthy == 1
	})
	s.must(200, "GET", "/v2/apps/chk", nil)
	s.must(200, "GET", "/v2/tasks", nil)
	mu.Lock()
	status = 500
	mu.Unlock()
	first := s.a.Snapshot().App("/chk").Tasks[0].ID
	s.until("/chk killed for failing its checks", func() bool {
		v := s.a.Snapshot().App("/chk")
		return v != nil && len(v.Tasks) == 1 && v.Tasks[0].ID != first
	})
	s.must(200, "GET", "/v2/apps/chk", nil)
	mu.Lock()
	status = 200
	mu.Unlock()
}

func (s *suite) groups() {
	for _, p := range []string{"/v2/groups", "/v2/groups/", "/v2/groups/db", "/v2/groups?embed=group.apps.tasks",
		"/v2/groups?embed=group.groups", "/v2/groups?embed=group.apps", "/v2/groups?embed=group.apps.counts&embed=group.apps.deployments",
		"/v2/groups/db?embed=mesolite", "/v2/groups?embed=group.pods"} {
		s.must(200, "GET", p, nil)
	}
	s.must(404, "GET", "/v2/groups/nope", nil)
	// A stack: web depends on api, api on db.
	db, api, web := webApp("db"), webApp("api"), webApp("web")
	api["dependencies"] = []string{"db"}
	web["dependencies"] = []string{"/g/api"}
	stack := map[string]any{"id": "/g", "apps": []any{db, api, web}}
	s.must(200, "PUT", "/v2/groups/g?dryRun=true", stack)
	s.must(201, "POST", "/v2/groups", stack)
	s.must(409, "POST", "/v2/groups", stack)
	s.settled("/g/web", 1)
	s.must(200, "GET", "/v2/groups/g", nil)
	s.must(200, "PUT", "/v2/groups/g", map[string]any{"scaleBy": 2})
	s.settled("/g/db", 2)
	vs := s.must(200, "GET", "/v2/groups/g/versions", nil)
	var versions []string
	_ = json.Unmarshal(vs.body, &versions)
	s.must(200, "GET", "/v2/groups/g/versions/"+versions[len(versions)-1], nil)
	s.must(200, "PUT", "/v2/groups/g", map[string]any{"version": versions[len(versions)-1]})
	s.settled("/g/web", 1)
	s.must(200, "PATCH", "/v2/groups/g", map[string]any{"enforceRole": false})
	cyc := webApp("x")
	cyc["dependencies"] = []string{"y"}
	cyc2 := webApp("y")
	cyc2["dependencies"] = []string{"x"}
	s.must(422, "PUT", "/v2/groups/cyc", map[string]any{"apps": []any{cyc, cyc2}})
	s.must(409, "PUT", "/v2/groups/g/db", map[string]any{"apps": []any{}})
	s.must(200, "PUT", "/v2/apps", []any{map[string]any{"id": "/g/web", "instances": 2}})
	s.settled("/g/web", 2)
	s.must(200, "DELETE", "/v2/groups/g", nil)
	s.until("/g gone", func() bool {
		snap := s.a.Snapshot()
		for _, d := range snap.Deployments {
			for _, id := range d.Affected {
				if strings.HasPrefix(id, "/g/") {
					return false
				}
			}
		}
		return snap.App("/g/db") == nil
	})
}

func (s *suite) errors() {
	s.must(404, "GET", "/v2/apps/nope", nil)
	s.must(404, "GET", "/v2/apps/nope/tasks", nil)
	s.must(404, "GET", "/v2/apps/web/versions/2001-01-01T00:00:00.000Z", nil)
	s.must(404, "DELETE", "/v2/deployments/"+"00000000-0000-4000-8000-000000000000", nil)
	s.must(404, "DELETE", "/v2/queue/nope/delay", nil)
	s.must(404, "GET", "/v2/nothing", nil)
	s.must(405, "POST", "/v2/info", nil)
	s.must(400, "POST", "/v2/apps", "{not json")
	s.must(415, "POST", "/v2/groups", bytes.NewReader([]byte(`{"id":"/g"}`)))
	s.must(400, "POST", "/v2/apps", "")
	s.must(422, "POST", "/v2/apps", map[string]any{"id": "/x", "cpus": -1})
	s.must(409, "POST", "/v2/apps", webApp("/web"))
	s.must(400, "POST", "/v2/tasks/delete?scale=true&wipe=true", map[string]any{"ids": []string{}})
	s.must(422, "GET", "/v2/apps?label=a+in+b", nil)
}

func (s *suite) mesolite() {
	v := s.settled("/web", 1)
	id := v.Tasks[0].ID
	s.must(200, "GET", "/files/read?task="+id+"&path=stdout", nil)
	s.do("GET", "/files/read.json?task="+id+"&path=stderr&offset=-1", nil)
	s.must(200, "GET", "/mesolite/v1/status", nil)
	s.must(200, "GET", "/mesolite/v1/volumes", nil)
	s.must(200, "GET", "/mesolite/v1/vips", nil)
	s.must(404, "DELETE", "/mesolite/v1/volumes/nope", nil)
}

func (s *suite) removal() {
	for _, id := range []string{"/web", "/db/pg", "/created", "/bad", "/big", "/crash", "/chk"} {
		s.must(200, "DELETE", "/v2/apps"+id, nil)
	}
	s.until("every app gone", func() bool { return len(s.a.Snapshot().Apps) == 0 && len(s.a.Snapshot().Tasks) == 0 })
	s.must(200, "GET", "/v2/groups", nil)
}

// noMismatch fails the test for every difference from Marathon's schema
// the suite's traffic showed, each once with its first full report.
func noMismatch(t *testing.T, col *collector) {
	for _, k := range col.keys() {
		t.Errorf("mismatch: %s\n    %s", k, col.seen[k])
	}
}

// dumpSnap describes the agent's apps, tasks and deployments for a
// timed-out wait.
func dumpSnap(a *agent.Agent) string {
	s := a.Snapshot()
	var b strings.Builder
	for _, v := range s.Apps {
		fmt.Fprintf(&b, "app %s deployments=%v running=%d\n", v.ID, v.Deployments, v.TasksRunning)
	}
	for _, t := range s.Tasks {
		fmt.Fprintf(&b, "task %s %s\n", t.ID, t.State)
	}
	for _, d := range s.Deployments {
		fmt.Fprintf(&b, "deployment %s step %d/%d %v\n", d.ID, d.CurrentStep, len(d.Steps), d.Steps)
	}
	return b.String()
}
