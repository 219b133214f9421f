package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/agenttest"
	"github.com/mesolite/mesolite/agent/api"
	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/internal/conformance"
	"github.com/mesolite/mesolite/sandbox"
)

// env is an agent over the fake runtime in a temporary work directory,
// served by the API on an httptest server.
type env struct {
	t   testing.TB
	dir string
	rt  *agenttest.Runtime
	a   *agent.Agent
	srv *httptest.Server
	api *api.Server
	// siblings are the entries next to the work directory at the start.
	siblings []string
	// token is the API token, which the helpers that check state send.
	token string
	// checked is api with the conformance check around it.
	checked http.Handler
}

type envOption func(*agent.Config, *api.Config)

func withAPI(f func(*api.Config)) envOption {
	return func(_ *agent.Config, c *api.Config) { f(c) }
}

func withAgent(f func(*agent.Config)) envOption {
	return func(c *agent.Config, _ *api.Config) { f(c) }
}

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir()}
	e.siblings = entries(filepath.Dir(e.dir))
	acfg := agent.Config{
		Cpus: 4, MemMiB: 4096, DiskMiB: 10000, PortMin: 41000, PortMax: 41100,
		KillGracePeriod: time.Second, ReconcileInterval: 200 * time.Millisecond,
		BackoffResetAfter: time.Hour, Logger: zerolog.Nop(),
	}
	scfg := api.Config{Version: "test", Leader: "127.0.0.1:8080"}
	for _, o := range opts {
		o(&acfg, &scfg)
	}
	if os.Getenv("MESOLITE_TEST_LOG") != "" {
		acfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
		scfg.Logger = acfg.Logger
	}
	ta, err := agenttest.Start(e.dir, acfg, nil)
	if err != nil {
		t.Fatalf("start agent: %v", err)
	}
	e.a, e.rt = ta.Agent, ta.Runtime
	e.token = scfg.Token
	e.api = api.New(ta.Agent, scfg)
	// Every answer and event of the test is checked against Marathon's
	// schema as it passes; a mismatch fails the test at once.
	e.checked = conformance.Default().Handler(e.api, conformance.Reporter(t))
	e.srv = httptest.NewServer(e.checked)
	t.Cleanup(func() {
		e.srv.CloseClientConnections()
		e.srv.Close()
		_ = ta.Stop() // Run's result: the agent was cancelled
	})
	return e
}

// ts renders a time as Marathon does, to compare a view's time with JSON.
func ts(t time.Time) string { return marathon.FormatTime(t) }

// waitUntil polls cond every 10 ms and fails the test after a deadline.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resp is an answer of the API.
type resp struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *resp) String() string {
	return fmt.Sprintf("HTTP %d %s", r.Status, truncate(string(r.Body), 2000))
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// obj decodes the body as a JSON object.
func (r *resp) obj(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %s", err, r)
	}
	return m
}

// arr decodes the body as a JSON array.
func (r *resp) arr(t testing.TB) []any {
	t.Helper()
	var m []any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not a JSON array (%v): %s", err, r)
	}
	return m
}

// do sends a request. body is a string, []byte, nil, or anything else,
// which is sent as JSON. Extra headers come in name, value pairs.
func (e *env) do(method, path string, body any, headers ...string) *resp {
	e.t.Helper()
	return doURL(e.t, e.srv.URL, method, path, body, headers...)
}

func doURL(t testing.TB, base, method, path string, body any, headers ...string) *resp {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		js, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatalf("new request %s %s: %v", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &resp{Status: res.StatusCode, Header: res.Header, Body: b}
}

// expect fails unless the answer has the status.
func expect(t testing.TB, r *resp, status int, what string) {
	t.Helper()
	if r.Status != status {
		t.Fatalf("%s: want HTTP %d, got %s", what, status, r)
	}
}

// expectMessage fails unless the answer has the status and the exact
// message.
func expectMessage(t testing.TB, r *resp, status int, message string) map[string]any {
	t.Helper()
	expect(t, r, status, message)
	m := r.obj(t)
	if m["message"] != message {
		t.Fatalf("message %q, want %q (%s)", m["message"], message, r)
	}
	return m
}

// webApp is a plain app without volumes.
func webApp(id string) map[string]any {
	return map[string]any{
		"id": id, "cpus": 0.1, "mem": 32, "instances": 1, "cmd": "sleep 1000",
		"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "mesolite/testapp:latest"}},
	}
}

// residentApp is the tutorial's shape: a persistent volume, bridge
// networking, one port mapping.
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
		"env":            map[string]any{"PGDATA": "/mnt/mesos/sandbox/pgdata"},
		"backoffSeconds": 0, "backoffFactor": 2, "maxLaunchDelaySeconds": 2,
	}
}

func with(base map[string]any, kv ...any) map[string]any {
	out := make(map[string]any, len(base)+len(kv)/2)
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// createApp posts an app and returns the deployment id of the answer.
func (e *env) createApp(app map[string]any) string {
	e.t.Helper()
	r := e.do("POST", "/v2/apps", app)
	expect(e.t, r, http.StatusCreated, "POST /v2/apps")
	return r.Header.Get("Marathon-Deployment-Id")
}

// app reads GET /v2/apps/{id}'s app.
func (e *env) app(id string) map[string]any {
	e.t.Helper()
	r := e.do("GET", "/v2/apps"+id, nil)
	expect(e.t, r, http.StatusOK, "GET /v2/apps"+id)
	return r.obj(e.t)["app"].(map[string]any)
}

// settled waits until the app has no deployment and n running tasks, and
// returns its running tasks.
func (e *env) settled(id string, n int) []*agent.TaskView {
	e.t.Helper()
	var out []*agent.TaskView
	waitUntil(e.t, fmt.Sprintf("%s to run %d tasks with no deployment", id, n), func() bool {
		v := e.a.Snapshot().App(id)
		if v == nil || v.TasksRunning != n || len(v.Deployments) != 0 {
			return false
		}
		out = out[:0]
		for _, t := range v.Tasks {
			if t.State == agent.TaskRunning {
				out = append(out, t)
			}
		}
		return true
	})
	return out
}

// gone waits until an app has left no trace: not in the API, no task
// listed, no record on disk, no container.
func (e *env) gone(id string) {
	e.t.Helper()
	rec := filepath.Join(e.dir, "meta", "apps", strings.ReplaceAll(strings.TrimPrefix(id, "/"), "/", "_")+".json")
	waitUntil(e.t, id+" to be removed", func() bool {
		s := e.a.Snapshot()
		if s.App(id) != nil {
			return false
		}
		for _, t := range s.Tasks {
			if t.AppID == id {
				return false
			}
		}
		if _, err := os.Stat(rec); err == nil {
			return false
		}
		for _, c := range e.rt.Containers() {
			if c.Labels[sandbox.LabelAppID] == id {
				return false
			}
		}
		return true
	})
}

// noDeployments waits until GET /v2/deployments is empty.
func (e *env) noDeployments() {
	e.t.Helper()
	waitUntil(e.t, "no deployments", func() bool { return len(e.a.Snapshot().Deployments) == 0 })
}

// files lists the regular files and directories under dir, relative to
// it ("" when dir does not exist).
func files(dir string) []string {
	var out []string
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, rel)
		return nil
	})
	return out
}

// records lists the files under dir as files does, without the
// temporary files of writes under way (the store's ".<name>.tmp-*").
func records(dir string) []string {
	var out []string
	for _, f := range files(dir) {
		if base := filepath.Base(f); strings.HasPrefix(base, ".") && strings.Contains(base, ".tmp-") {
			continue
		}
		out = append(out, f)
	}
	return out
}

// entries lists the names in a directory.
func entries(dir string) []string {
	list, _ := os.ReadDir(dir)
	out := make([]string, 0, len(list))
	for _, d := range list {
		out = append(out, d.Name())
	}
	return out
}

func get(m any, path ...any) any {
	cur := m
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, ok := cur.(map[string]any)
			if !ok {
				return nil
			}
			cur = mm[k]
		case int:
			aa, ok := cur.([]any)
			if !ok || k >= len(aa) {
				return nil
			}
			cur = aa[k]
		}
	}
	return cur
}

func num(v any) float64 {
	f, _ := v.(float64)
	return f
}

// target is an HTTP server a task's health checks reach: the fake runtime
// gives containers the address 127.0.0.1, so an app whose port mapping's
// containerPort is the target's port is checked against it.
type target struct {
	srv    *httptest.Server
	port   int
	status atomic.Int32
	hits   atomic.Int64
}

func newTarget(t testing.TB, status int) *target {
	t.Helper()
	tg := &target{}
	tg.status.Store(int32(status))
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		tg.hits.Add(1)
		w.WriteHeader(int(tg.status.Load()))
	}))
	t.Cleanup(tg.srv.Close)
	u, err := url.Parse(tg.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	tg.port, _ = strconv.Atoi(u.Port())
	return tg
}

// checkedApp is a bridge-networked app whose HTTP health check hits the
// target on port.
func checkedApp(id string, port, grace, maxFailures int) map[string]any {
	return map[string]any{
		"id": id, "cpus": 0.1, "mem": 32, "instances": 1,
		"networks": []any{map[string]any{"mode": "container/bridge"}},
		"container": map[string]any{
			"type":         "DOCKER",
			"docker":       map[string]any{"image": "mesolite/testapp:latest"},
			"portMappings": []any{map[string]any{"containerPort": port, "hostPort": 0}},
		},
		"healthChecks": []any{map[string]any{
			"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": grace,
			"intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": maxFailures,
		}},
	}
}
