package agent_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/agenttest"
	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/store"
)

// staleRuntime is the fake runtime whose next launches fail after their
// container was created, started and removed, as Docker's start fails
// when a host port is taken: the failed container's die and destroy
// events reach the agent before the failed launch's outcome does, the
// order that made a stale exit end the next, healthy task (issue 10,
// item 3).
type staleRuntime struct {
	*agenttest.Runtime
	mu        sync.Mutex
	failNext  int
	delivered map[string]chan struct{} // container id -> closed once die and destroy reached the agent
	seen      map[string]int
}

func (r *staleRuntime) Events(ctx context.Context, fn func(sandbox.Event)) error {
	return r.Runtime.Events(ctx, func(ev sandbox.Event) {
		fn(ev)
		r.mu.Lock()
		defer r.mu.Unlock()
		if ev.Action == "die" || ev.Action == "destroy" {
			r.seen[ev.ContainerID]++
			if ch := r.delivered[ev.ContainerID]; ch != nil && r.seen[ev.ContainerID] == 2 {
				close(ch)
			}
		}
	})
}

func (r *staleRuntime) Run(ctx context.Context, spec *sandbox.TaskSpec, progress func(string)) (sandbox.Container, error) {
	r.mu.Lock()
	fail := r.failNext > 0
	if fail {
		r.failNext--
	}
	r.mu.Unlock()
	c, err := r.Runtime.Run(ctx, spec, progress)
	if err != nil || !fail {
		return c, err
	}
	ch := make(chan struct{})
	r.mu.Lock()
	r.delivered[c.ID] = ch
	if r.seen[c.ID] == 2 {
		close(ch)
	}
	r.mu.Unlock()
	if err := r.Runtime.Remove(ctx, c.ID); err != nil {
		return sandbox.Container{}, err
	}
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		return sandbox.Container{}, errors.New("the failed container's events never reached the agent")
	}
	return sandbox.Container{}, errors.New("start container " + spec.Name() + ": Bind for 127.0.0.1:41000 failed: port is already allocated")
}

func TestStaleExitOfFailedLaunchSparesTheNextTask(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var rt *staleRuntime
	a, err := agent.New(testConfig(), st, func(l sandbox.Layout) (agent.Runtime, error) {
		rt = &staleRuntime{Runtime: agenttest.New(l), delivered: map[string]chan struct{}{}, seen: map[string]int{}}
		return rt, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	h := &harness{t: t, a: a}
	h.waitFor("the first sync", func(s *agent.Snapshot) bool { return s.Recovery.Done })

	for cycle := 0; cycle < 3; cycle++ {
		rt.mu.Lock()
		rt.failNext = 1
		rt.mu.Unlock()
		if cycle == 0 {
			h.create(appJSON(t, residentApp("/stale"), nil))
		} else {
			h.scale("/stale", 1)
		}
		// The first launch fails; the next one runs, and keeps running.
		tasks := h.running("/stale", 1)
		id := tasks[0].ID
		deadline := time.Now().Add(500 * time.Millisecond)
		for time.Now().Before(deadline) {
			tv := a.Snapshot().Task(id)
			if tv == nil || tv.State != agent.TaskRunning {
				t.Fatalf("cycle %d: task %s ended after a failed launch: %+v", cycle, id, tv)
			}
			time.Sleep(10 * time.Millisecond)
		}
		h.scale("/stale", 0)
		h.waitFor("the app stopped", func(s *agent.Snapshot) bool {
			ap := s.App("/stale")
			return ap != nil && ap.TasksRunning == 0 && len(ap.Deployments) == 0
		})
	}
}
