package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/agenttest"
	"github.com/mesolite/mesolite/agent/api"
	"github.com/mesolite/mesolite/store"
)

// The API's hot paths with 1,000 tasks known to the agent (100 apps × 10
// resident instances over the fake runtime). Each sub-benchmark reports
// p50 and p99 of one request, besides ns/op:
//
//	go test ./agent/api -run '^$' -bench . -benchmem
//
// cmd/mesolite-bench measures the same over a loopback HTTP server; these
// call the handler directly, so they show the handler's own cost.

const (
	benchApps      = 100
	benchInstances = 10
)

func benchApp(id string, instances int) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": id, "cpus": 0.1, "mem": 64, "instances": instances,
		"networks": []any{map[string]any{"mode": "container/bridge"}},
		"container": map[string]any{
			"type":    "DOCKER",
			"docker":  map[string]any{"image": "mesolite/testapp:latest"},
			"volumes": []any{map[string]any{"containerPath": "data", "mode": "RW", "persistent": map[string]any{"size": 16}}},
			"portMappings": []any{
				map[string]any{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"},
			},
		},
	})
	return b
}

// benchAgent starts an agent over the fake runtime with apps × instances
// running tasks, and returns it with its API handler.
func benchAgent(b *testing.B, apps, instances int) (*agent.Agent, http.Handler) {
	b.Helper()
	st, err := store.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	a, err := agent.New(agent.Config{Cpus: 1000, MemMiB: 1e6, DiskMiB: 1e7, PortMin: 20000, PortMax: 40000, Logger: zerolog.Nop()}, st,
		func(id string) (agent.Runtime, error) { return agenttest.New(id), nil })
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done; _ = st.Close() })
	benchWait(b, a, func(s *agent.Snapshot) bool { return s.Recovery.Done })
	for i := 0; i < apps; i++ {
		if _, _, err := a.CreateApp(ctx, benchApp(fmt.Sprintf("/bench/app-%03d", i), instances)); err != nil {
			b.Fatal(err)
		}
	}
	benchWait(b, a, func(s *agent.Snapshot) bool {
		running := 0
		for _, t := range s.Tasks {
			if t.State == agent.TaskRunning {
				running++
			}
		}
		return running == apps*instances && len(s.Deployments) == 0
	})
	return a, api.New(a, api.Config{Version: "bench", Logger: zerolog.Nop(), KeepAlive: time.Hour})
}

func benchWait(b *testing.B, a *agent.Agent, cond func(*agent.Snapshot) bool) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond(a.Snapshot()) {
		if time.Now().After(deadline) {
			b.Fatal("timed out waiting for the agent")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// benchLatency adds p50 and p99 of the recorded request times.
func benchLatency(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))]) / 1e6 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

func benchServe(b *testing.B, h http.Handler, method, path string, body []byte, want int) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != want {
		b.Fatalf("%s %s: %d %s", method, path, w.Code, w.Body.String())
	}
}

func BenchmarkAPI(b *testing.B) {
	a, h := benchAgent(b, benchApps, benchInstances)
	getter := func(path string) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			lat := make([]time.Duration, 0, b.N)
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				benchServe(b, h, "GET", path, nil, http.StatusOK)
				lat = append(lat, time.Since(t0))
			}
			benchLatency(b, lat)
		}
	}
	b.Run("tasks=1000/GET_v2_tasks", getter("/v2/tasks"))
	b.Run("tasks=1000/GET_v2_apps", getter("/v2/apps"))
	b.Run("tasks=1000/GET_v2_apps_embed_tasks", getter("/v2/apps?embed=apps.tasks"))
	var seq atomic.Int64
	b.Run("tasks=1000/POST_v2_apps", func(b *testing.B) {
		b.ReportAllocs()
		lat := make([]time.Duration, 0, b.N)
		for i := 0; i < b.N; i++ {
			body := benchApp(fmt.Sprintf("/bench/post-%05d", seq.Add(1)), 1)
			t0 := time.Now()
			benchServe(b, h, "POST", "/v2/apps", body, http.StatusCreated)
			lat = append(lat, time.Since(t0))
		}
		benchLatency(b, lat)
	})
	b.Run("subscribers=100/events_fanout", func(b *testing.B) { benchFanout(b, a, h, 100) })
}

// benchFanout publishes b.N events to subs /v2/events subscribers over a
// loopback HTTP server and reports how long until every subscriber has
// read each event.
func benchFanout(b *testing.B, a *agent.Agent, h http.Handler, subs int) {
	srv := httptest.NewServer(h)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	before := a.Bus().Subscribers()
	var got atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < subs; i++ {
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v2/events?event_type=bench_event", nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			for {
				line, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(line, "event: bench_event") {
					got.Add(1)
				}
			}
		}()
	}
	for a.Bus().Subscribers() < before+subs {
		time.Sleep(time.Millisecond)
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := int64(i+1) * int64(subs)
		t0 := time.Now()
		a.Bus().Publish("bench_event", map[string]any{"seq": i})
		for got.Load() < want {
			time.Sleep(20 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	benchLatency(b, lat)
	cancel()
	srv.CloseClientConnections()
	wg.Wait()
}

// TestPlainTasksJSON: GET /v2/tasks, written from each task's cached JSON,
// is byte for byte what encoding the tasks would give, filtered or not.
func TestPlainTasksJSON(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{Cpus: 100, MemMiB: 1e5, DiskMiB: 1e6, PortMin: 20000, PortMax: 20100, Logger: zerolog.Nop()}, st,
		func(id string) (agent.Runtime, error) { return agenttest.New(id), nil })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done; _ = st.Close() }()
	h := api.New(a, api.Config{Version: "test", Logger: zerolog.Nop()})
	get := func(path string) string {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, w.Code, w.Body.String())
		}
		if cl := w.Header().Get("Content-Length"); cl != "" && cl != fmt.Sprint(w.Body.Len()) {
			t.Fatalf("GET %s: Content-Length %s, body of %d bytes", path, cl, w.Body.Len())
		}
		return w.Body.String()
	}
	if got := get("/v2/tasks"); got != `{"tasks":[]}` {
		t.Fatalf("no tasks: %s", got)
	}
	for i := 0; i < 3; i++ {
		if _, _, err := a.CreateApp(ctx, benchApp(fmt.Sprintf("/t/app-%d", i), 2)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(a.Snapshot().Tasks) != 6 || len(a.Snapshot().Deployments) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("tasks did not start")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, path := range []string{"/v2/tasks", "/v2/tasks?status=running", "/v2/tasks?status=staging"} {
		body := get(path) // twice: the second answer comes from the cache
		if again := get(path); again != body {
			t.Fatalf("%s changed between two requests", path)
		}
		var plain []*agent.MarathonTask
		for _, tv := range a.Snapshot().Tasks {
			if path != "/v2/tasks?status=staging" {
				plain = append(plain, tv.Plain())
			}
		}
		if plain == nil {
			plain = []*agent.MarathonTask{}
		}
		want, _ := json.Marshal(map[string]any{"tasks": plain})
		if body != string(want) {
			t.Fatalf("GET %s:\n got %s\nwant %s", path, body, want)
		}
	}
}
