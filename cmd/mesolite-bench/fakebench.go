package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mesolite/mesolite/agent"
)

// cycles adds and removes an app many times on the fake agent in a child
// process, and compares its memory warm against at the end.
func (b *bench) cycles() error {
	c, err := startFakeChild(b.ctx, filepath.Join(b.root, "cycles"))
	if err != nil {
		return err
	}
	b.addStop(c.stop)
	defer c.stop()
	es, err := c.api.subscribe(b.ctx, "status_update_event", "app_terminated_event")
	if err != nil {
		return err
	}
	defer es.Close()
	n := b.p.cycles
	warmAt := max(1, n/10)
	var warm memStats
	var warmRSS float64
	start := time.Now()
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("/cycle-%d", i)
		if err := c.api.do(b.ctx, "POST", "/v2/apps", residentApp(id, 1), nil); err != nil {
			return err
		}
		if _, err := es.waitFor(b.ctx, 30*time.Second, id+" running", statusIs(id, "TASK_RUNNING")); err != nil {
			return err
		}
		if err := c.api.deleteApp(b.ctx, id); err != nil {
			return err
		}
		if _, err := es.waitFor(b.ctx, 30*time.Second, id+" removed", func(ev event) bool {
			return ev.Type == "app_terminated_event" && ev.str("appId") == id
		}); err != nil {
			return err
		}
		if i+1 == warmAt {
			if warm, err = c.memstats(b.ctx); err != nil {
				return err
			}
			warmRSS, _ = procRSS(c.pid())
		}
	}
	took := time.Since(start)
	end, err := c.memstats(b.ctx)
	if err != nil {
		return err
	}
	endRSS, _ := procRSS(c.pid())
	b.step("%d add/remove cycles in %s", n, took.Round(time.Millisecond))
	b.rep.add(&Figure{Key: "memory.cycles.heap", Section: "memory",
		Name: fmt.Sprintf("live heap growth, after %d → %d add/remove cycles (%.2f → %.2f MiB)", warmAt, n, warm.HeapAllocMiB, end.HeapAllocMiB),
		Unit: "MiB", Value: end.HeapAllocMiB - warm.HeapAllocMiB, Target: &Target{"<=", 0.5}})
	b.rep.add(&Figure{Key: "memory.cycles.goroutines", Section: "memory",
		Name: fmt.Sprintf("goroutine growth, after %d → %d cycles (%d → %d)", warmAt, n, warm.Goroutines, end.Goroutines),
		Unit: "", Value: float64(end.Goroutines - warm.Goroutines), Target: &Target{"<=", 2}})
	b.rep.add(&Figure{Key: "memory.cycles.rss", Section: "memory",
		Name: fmt.Sprintf("RSS of the fake-runtime agent after %d → %d cycles (%.1f → %.1f MiB)", warmAt, n, warmRSS, endRSS),
		Unit: "MiB", Value: endRSS - warmRSS})
	b.rep.add(&Figure{Key: "memory.cycles.time", Section: "memory", Name: "one add/remove cycle on the fake runtime", Unit: "ms",
		Value: ms(took) / float64(n)})
	return nil
}

// apiBench measures the API with 1,000 tasks on an in-process agent over
// the fake runtime.
func (b *bench) apiBench() error {
	f, err := startFakeAgent(b.ctx, filepath.Join(b.root, "api"), "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer f.close()
	cl := newAPIClient(f.url)
	apps, per := 100, 10
	t0 := time.Now()
	for i := 0; i < apps; i++ {
		if err := cl.do(b.ctx, "POST", "/v2/apps", residentApp(fmt.Sprintf("/api/app-%03d", i), per), nil); err != nil {
			return err
		}
	}
	if err := waitSnapshot(b.ctx, f.a, 120*time.Second, func(s *agent.Snapshot) bool {
		return runningTasks(s) == apps*per && len(s.Deployments) == 0
	}); err != nil {
		return err
	}
	b.step("%d tasks up on the fake runtime in %s", apps*per, time.Since(t0).Round(time.Millisecond))

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, Proxy: nil}}
	get := func(path string) func() error {
		return func() error {
			resp, err := hc.Get(f.url + path)
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("GET %s: %s", path, resp.Status)
			}
			return err
		}
	}
	for _, ep := range []struct {
		key, name, path string
		target          float64
	}{
		{"api.tasks", "GET /v2/tasks (1,000 tasks)", "/v2/tasks", 5},
		{"api.apps", "GET /v2/apps (100 apps)", "/v2/apps", 0},
		{"api.apps.embed", "GET /v2/apps?embed=apps.tasks (100 apps, 1,000 tasks)", "/v2/apps?embed=apps.tasks", 0},
	} {
		fn := get(ep.path)
		for i := 0; i < 10; i++ { // warm-up
			if err := fn(); err != nil {
				return err
			}
		}
		lat, err := latencies(b.ctx, b.p.apiReqs, fn)
		if err != nil {
			return err
		}
		b.latencyFigures(ep.key, ep.name, lat, ep.target)
		rps, err := throughput(b.ctx, 4, b.p.apiThroughput, fn)
		if err != nil {
			return err
		}
		b.rep.add(&Figure{Key: ep.key + ".rps", Section: "api", Name: ep.name + " throughput, 4 clients", Unit: "req/s", Value: rps})
	}
	var seq atomic.Int64
	post := func() error {
		body, _ := json.Marshal(residentApp(fmt.Sprintf("/api/post-%04d", seq.Add(1)), 1))
		resp, err := hc.Post(f.url+"/v2/apps", "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			return fmt.Errorf("POST /v2/apps: %s", resp.Status)
		}
		return nil
	}
	lat, err := latencies(b.ctx, b.p.apiPosts, post)
	if err != nil {
		return err
	}
	b.latencyFigures("api.post", "POST /v2/apps (1,000+ tasks)", lat, 0)
	rps, err := throughput(b.ctx, 4, b.p.apiThroughput, post)
	if err != nil {
		return err
	}
	b.rep.add(&Figure{Key: "api.post.rps", Section: "api", Name: "POST /v2/apps throughput, 4 clients", Unit: "req/s", Value: rps})
	return b.fanout(f)
}

// latencyFigures adds p50 and p99 of a latency sample.
func (b *bench) latencyFigures(key, name string, lat []float64, p99Target float64) {
	d := dist(lat, false)
	b.rep.add(&Figure{Key: key + ".p50", Section: "api", Name: name + " p50", Unit: "ms", Value: d.P50, Dist: d})
	f := &Figure{Key: key + ".p99", Section: "api", Name: name + " p99", Unit: "ms", Value: quantileOf(lat, 0.99)}
	if p99Target > 0 {
		f.Target = &Target{"<=", p99Target}
	}
	b.rep.add(f)
}

func quantileOf(v []float64, q float64) float64 {
	d := dist(v, false)
	if d == nil {
		return 0
	}
	if q == 0.99 && d.P99 > 0 {
		return d.P99
	}
	return d.Max
}

// latencies runs fn n times in a row and returns each run's milliseconds.
func latencies(ctx context.Context, n int, fn func() error) ([]float64, error) {
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		t0 := time.Now()
		if err := fn(); err != nil {
			return nil, err
		}
		out = append(out, ms(time.Since(t0)))
	}
	return out, nil
}

// throughput runs fn from workers goroutines for d and returns calls/s.
func throughput(ctx context.Context, workers int, d time.Duration, fn func() error) (float64, error) {
	var n atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	t0 := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				if err := fn(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(t0).Seconds(), first
}

func runningTasks(s *agent.Snapshot) int {
	n := 0
	for _, t := range s.Tasks {
		if t.State == agent.TaskRunning {
			n++
		}
	}
	return n
}

func waitSnapshot(ctx context.Context, a *agent.Agent, timeout time.Duration, cond func(*agent.Snapshot) bool) error {
	deadline := time.Now().Add(timeout)
	for !cond(a.Snapshot()) {
		if time.Now().After(deadline) {
			return errors.New("timed out waiting for the agent")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

// fanout measures /v2/events with 100 subscribers over HTTP.
func (b *bench) fanout(f *fakeAgent) error {
	const subs = 100
	m := b.p.fanoutEvents
	burst := b.p.fanoutBurst
	total := m + burst
	sent := make([]atomic.Int64, total)
	type sub struct {
		lat  []float64
		got  atomic.Int64
		last atomic.Int64 // unix ns of the last event read
	}
	ss := make([]*sub, subs)
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: subs, Proxy: nil}
	before := f.a.Bus().Subscribers()
	var wg sync.WaitGroup
	for i := range ss {
		s := &sub{lat: make([]float64, 0, total)}
		ss[i] = s
		req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/v2/events?event_type=bench_fanout_event", nil)
		resp, err := (&http.Client{Transport: tr}).Do(req)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer resp.Body.Close()
			r := bufio.NewReader(resp.Body)
			var seq struct {
				Seq int `json:"seq"`
			}
			for {
				line, err := r.ReadBytes('\n')
				if err != nil {
					return
				}
				data, ok := bytes.CutPrefix(line, []byte("data: "))
				if !ok {
					continue
				}
				now := time.Now().UnixNano()
				if json.Unmarshal(bytes.TrimSpace(data), &seq) != nil || seq.Seq >= total {
					continue
				}
				s.lat = append(s.lat, float64(now-sent[seq.Seq].Load())/1e6)
				s.last.Store(now)
				s.got.Add(1)
			}
		}()
	}
	if err := waitUntil(ctx, 10*time.Second, func() bool { return f.a.Bus().Subscribers() >= before+subs }); err != nil {
		return fmt.Errorf("subscribers did not attach: %w", err)
	}
	all := func(n int64) func() bool {
		return func() bool {
			for _, s := range ss {
				if s.got.Load() < n {
					return false
				}
			}
			return true
		}
	}
	// Latency: one event every 5 ms.
	for i := 0; i < m; i++ {
		sent[i].Store(time.Now().UnixNano())
		f.a.Bus().Publish("bench_fanout_event", map[string]any{"seq": i})
		time.Sleep(5 * time.Millisecond)
	}
	if err := waitUntil(ctx, 30*time.Second, all(int64(m))); err != nil {
		return fmt.Errorf("fan-out: not every subscriber got %d events: %w", m, err)
	}
	// Throughput: a burst as fast as Publish goes.
	t0 := time.Now()
	for i := m; i < total; i++ {
		sent[i].Store(time.Now().UnixNano())
		f.a.Bus().Publish("bench_fanout_event", map[string]any{"seq": i})
	}
	if err := waitUntil(ctx, 60*time.Second, all(int64(total))); err != nil {
		return fmt.Errorf("fan-out burst: not every subscriber got %d events (a slow one is dropped): %w", total, err)
	}
	var lastAt int64
	for _, s := range ss {
		lastAt = max(lastAt, s.last.Load())
	}
	burstTook := time.Duration(lastAt - t0.UnixNano())
	cancel()
	wg.Wait()
	var lat []float64
	var worst []float64 // per event: the slowest subscriber
	worstBy := make([]float64, m)
	for _, s := range ss {
		for i := 0; i < m && i < len(s.lat); i++ {
			lat = append(lat, s.lat[i])
		}
	}
	for _, s := range ss {
		// Events arrive in order, so the first m latencies are the paced ones.
		for i := 0; i < m && i < len(s.lat); i++ {
			worstBy[i] = max(worstBy[i], s.lat[i])
		}
	}
	worst = append(worst, worstBy...)
	b.latencyFigures("api.events", "/v2/events, 100 subscribers: publish → read, per subscriber", lat, 0)
	dw := dist(worst, false)
	b.rep.add(&Figure{Key: "api.events.all", Section: "api", Name: "/v2/events, 100 subscribers: publish → read by the last of them", Unit: "ms", Value: dw.P50, Dist: dw})
	b.rep.add(&Figure{Key: "api.events.rate", Section: "api",
		Name: fmt.Sprintf("/v2/events burst of %d events to 100 subscribers (%.0f ms)", burst, ms(burstTook)), Unit: "events/s delivered",
		Value: float64(burst*subs) / burstTook.Seconds()})
	return nil
}

func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return errors.New("timed out")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// reconcileWork measures the agent's work per change as the number of
// tasks grows: each task has a TCP health check every second against a
// local listener, and each check result is a change the loop handles. The
// agent runs over the fake runtime in a child process, so its CPU is its
// own; the listener counts the checks.
func (b *bench) reconcileWork() error {
	var perResult []float64
	for _, n := range b.p.reconcileSizes {
		us, killMs, err := b.reconcileAt(n)
		if err != nil {
			return err
		}
		perResult = append(perResult, us)
		b.rep.add(&Figure{Key: fmt.Sprintf("scale.work.n%d", n), Section: "scale",
			Name: fmt.Sprintf("agent CPU per health result, %d tasks (%d results/s), idle CPU taken off", n, n), Unit: "µs", Value: us})
		d := dist(killMs, true)
		b.rep.add(&Figure{Key: fmt.Sprintf("scale.kill.n%d", n), Section: "scale",
			Name: fmt.Sprintf("one change among %d tasks: task kill → relaunched TASK_RUNNING", n), Unit: "ms", Value: d.P50, Dist: d})
	}
	if len(perResult) >= 2 {
		first, last := perResult[0], perResult[len(perResult)-1]
		sizes := b.p.reconcileSizes
		b.rep.add(&Figure{Key: "scale.work.growth", Section: "scale",
			Name: fmt.Sprintf("growth of the work per result from %d to %d tasks (1 = flat, %d = linear in tasks)", sizes[0], sizes[len(sizes)-1], sizes[len(sizes)-1]/sizes[0]),
			Unit: "×", Value: last / first})
	}
	return nil
}

func (b *bench) reconcileAt(n int) (float64, []float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, nil, err
	}
	defer ln.Close()
	var accepts atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	c, err := startFakeChild(b.ctx, filepath.Join(b.root, fmt.Sprintf("reconcile-%d", n)))
	if err != nil {
		return 0, nil, err
	}
	b.addStop(c.stop)
	defer c.stop()
	es, err := c.api.subscribe(b.ctx, "status_update_event")
	if err != nil {
		return 0, nil, err
	}
	defer es.Close()
	// The agent's own background (timers, the fake runtime's event poll)
	// is measured first without tasks, and taken off below.
	b.sleep(time.Second)
	idle, err := cpuPercent(b.ctx, c.pid(), b.p.reconcileWindow)
	if err != nil {
		return 0, nil, err
	}
	per := min(n, 10)
	for i := 0; i < n/per; i++ {
		if err := c.api.do(b.ctx, "POST", "/v2/apps", tcpCheckedApp(fmt.Sprintf("/work/app-%03d", i), per, port), nil); err != nil {
			return 0, nil, err
		}
	}
	deadline := time.Now().Add(120 * time.Second)
	for {
		ts, err := c.api.tasks(b.ctx)
		healthy := 0
		for _, t := range ts {
			if t.State == "TASK_RUNNING" && len(t.Health) == 1 && t.Health[0].Alive {
				healthy++
			}
		}
		if err == nil && healthy == n {
			break
		}
		if time.Now().After(deadline) {
			return 0, nil, fmt.Errorf("reconcile work: %d of %d tasks healthy after 120 s", healthy, n)
		}
		b.sleep(100 * time.Millisecond)
	}
	b.sleep(2 * time.Second)
	c0, err := procCPU(c.pid())
	if err != nil {
		return 0, nil, err
	}
	a0 := accepts.Load()
	b.sleep(b.p.reconcileWindow)
	c1, _ := procCPU(c.pid())
	checks := accepts.Load() - a0
	if checks == 0 {
		return 0, nil, errors.New("reconcile work: no health checks reached the listener")
	}
	background := time.Duration(idle / 100 * float64(b.p.reconcileWindow))
	us := max(0, float64(c1-c0-background)) / float64(time.Microsecond) / float64(checks)

	// One change at a time: kill a task and wait for its relaunch.
	ts, err := c.api.tasks(b.ctx)
	if err != nil {
		return 0, nil, err
	}
	var kills []float64
	for i := 0; i < b.p.killReps && i < len(ts); i++ {
		t := ts[i]
		t0 := time.Now()
		if err := c.api.do(b.ctx, "DELETE", "/v2/apps"+t.AppID+"/tasks/"+t.ID, nil, nil); err != nil {
			return 0, nil, err
		}
		inst := instanceOf(t.ID)
		ev, err := es.waitFor(b.ctx, 30*time.Second, t.ID+" relaunched", func(ev event) bool {
			return ev.Type == "status_update_event" && ev.str("taskStatus") == "TASK_RUNNING" &&
				instanceOf(ev.str("taskId")) == inst && ev.str("taskId") != t.ID
		})
		if err != nil {
			return 0, nil, err
		}
		kills = append(kills, ms(ev.At.Sub(t0)))
	}
	b.step("reconcile work at %d tasks: %.0f µs CPU per health result (%d results), kill→running p50 %.1f ms", n, us, checks, dist(kills, false).P50)
	return us, kills, nil
}
