package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/agenttest"
	"github.com/mesolite/mesolite/store"
)

// BenchmarkReconcile: does the agent's work per change grow with the number
// of tasks, or only with the number of changes? At 10, 100 and 1,000 tasks
// (apps of 10 resident instances over the fake runtime, each task with a
// TCP health check every second against a local listener):
//
//   - kill_relaunch: one change at a time, a task killed and relaunched in
//     place; ns/op is the time until the new incarnation runs, cpu-µs/op
//     the process's CPU for it (durable writes included).
//   - health_result: the health results of all the tasks, each one a
//     change the loop takes; cpu-µs/result is the process's CPU per result
//     (the listener's accept included, the same at every size). ns/op is
//     only the wait for the next result and means nothing here.
//
// Both take off the CPU the process used before it had tasks (timers, the
// fake runtime's event poll), measured for a second at the start.
//
// Flat figures from 10 to 1,000 tasks mean the work follows the changes.
//
//	go test ./agent -run '^$' -bench Reconcile -benchtime 2s
func BenchmarkReconcile(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		var checks atomic.Int64
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				checks.Add(1)
				c.Close()
			}
		}()
		a, idle, stop := reconcileAgent(b, n, ln.Addr().(*net.TCPAddr).Port)
		b.Run(fmt.Sprintf("tasks=%d/kill_relaunch", n), func(b *testing.B) { benchKillRelaunch(b, a, idle) })
		b.Run(fmt.Sprintf("tasks=%d/health_result", n), func(b *testing.B) {
			c0, n0, t0 := cpuTime(), checks.Load(), time.Now()
			b.ResetTimer()
			for checks.Load()-n0 < int64(b.N) {
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			got := checks.Load() - n0
			b.ReportMetric(busy(c0, t0, idle)/float64(got), "cpu-µs/result")
		})
		stop()
		ln.Close()
	}
}

// reconcileAgent starts an agent over the fake runtime with n running and
// healthy tasks whose TCP checks go to port. idle is the process's CPU
// per second of wall time before there were tasks (the agent's timers,
// the fake runtime's event poll), which the figures take off.
func reconcileAgent(b *testing.B, n, port int) (*agent.Agent, float64, func()) {
	b.Helper()
	dir := b.TempDir()
	st, err := store.Open(dir)
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
	stop := func() { cancel(); <-done; _ = st.Close() }
	time.Sleep(200 * time.Millisecond)
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(time.Second)
	idle := float64(cpuTime()-c0) / float64(time.Since(t0))
	per := min(n, 10)
	for i := 0; i < n/per; i++ {
		app := residentApp(fmt.Sprintf("/bench/app-%03d", i))
		app["instances"] = per
		app["container"].(map[string]any)["portMappings"] = []any{map[string]any{"containerPort": port, "hostPort": 0, "protocol": "tcp"}}
		app["healthChecks"] = []any{map[string]any{"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 30,
			"intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 5}}
		body, _ := json.Marshal(app)
		if _, _, err := a.CreateApp(ctx, body); err != nil {
			stop()
			b.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		s := a.Snapshot()
		healthy := 0
		for _, v := range s.Apps {
			healthy += v.TasksHealthy
		}
		if healthy == n && len(s.Deployments) == 0 {
			break
		}
		if time.Now().After(deadline) {
			stop()
			b.Fatalf("%d of %d tasks healthy after 5 minutes", healthy, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return a, idle, stop
}

// benchKillRelaunch kills one task per iteration, in turn, and waits until
// its next incarnation runs.
func benchKillRelaunch(b *testing.B, a *agent.Agent, idle float64) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	c0, t0 := cpuTime(), time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tasks := a.Snapshot().Tasks
		t := tasks[i%len(tasks)]
		t0 := time.Now()
		if _, _, err := a.KillTasks(ctx, []string{t.ID}, false, false, false); err != nil {
			b.Fatal(err)
		}
		deadline := t0.Add(30 * time.Second)
		for {
			if v := a.Snapshot().Task(fmt.Sprintf("%s._app.%d", t.InstanceID, t.Incarnation+1)); v != nil && v.State == agent.TaskRunning {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("task %s was not relaunched", t.ID)
			}
			time.Sleep(100 * time.Microsecond)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	b.ReportMetric(busy(c0, t0, idle)/float64(b.N), "cpu-µs/op")
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100])/1e6, "p99-ms")
}

// busy is the CPU, in µs, used since c0 (at t0) beyond the idle rate.
func busy(c0 time.Duration, t0 time.Time, idle float64) float64 {
	used := float64(cpuTime()-c0) - idle*float64(time.Since(t0))
	return max(0, used) / float64(time.Microsecond)
}

// cpuTime is this process's CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
