package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/agenttest"
	"github.com/mesolite/mesolite/store"
)

// harness runs an agent over the fake runtime in a temporary work
// directory. restart stops the agent and starts a new one on the same
// directory and runtime, as a process restart would.
type harness struct {
	t   *testing.T
	dir string
	cfg agent.Config
	rt  *agenttest.Runtime
	st  *store.Store
	a   *agent.Agent
	ta  *agenttest.Agent // nil once stopped
}

func testConfig() agent.Config {
	return agent.Config{
		Cpus: 8, MemMiB: 8192, DiskMiB: 100000, PortMin: 41000, PortMax: 41100,
		KillGracePeriod: time.Second, ReconcileInterval: 200 * time.Millisecond,
		OrphanGrace: 300 * time.Millisecond, BackoffResetAfter: time.Hour,
		Logger: zerolog.Nop(),
	}
}

func newHarness(t *testing.T, cfg agent.Config) *harness {
	t.Helper()
	h := &harness{t: t, dir: t.TempDir(), cfg: cfg}
	if os.Getenv("MESOLITE_TEST_LOG") != "" {
		h.cfg.Logger = zerolog.New(zerolog.NewTestWriter(t)).With().Timestamp().Logger()
	}
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start() {
	h.t.Helper()
	ta, err := agenttest.Start(h.dir, h.cfg, h.rt)
	if err != nil {
		h.t.Fatalf("start agent: %v", err)
	}
	h.ta, h.st, h.a = ta, ta.Store, ta.Agent
	if h.rt == nil {
		// After a restart it is the same runtime, which a dead agent's
		// goroutines (crash tests) may still read.
		h.rt = ta.Runtime
	}
}

func (h *harness) stop() {
	if h.ta == nil {
		return
	}
	_ = h.ta.Stop() // Run's result: the agent was cancelled
	h.ta = nil
}

// waitFor polls the snapshot until cond holds, failing after a deadline.
func (h *harness) waitFor(what string, cond func(s *agent.Snapshot) bool) *agent.Snapshot {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := h.a.Snapshot()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s; state:\n%s", what, dump(s))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dump(s *agent.Snapshot) string {
	var b strings.Builder
	for _, a := range s.Apps {
		fmt.Fprintf(&b, "app %s instances=%d running=%d healthy=%d deployments=%v waiting=%q\n",
			a.ID, a.Spec.Instances, a.TasksRunning, a.TasksHealthy, a.Deployments, a.Waiting)
		for _, t := range a.Tasks {
			fmt.Fprintf(&b, "  task %s %s started=%v msg=%q health=%d\n", t.ID, t.State, t.StartedAt, t.Message, len(t.Health))
		}
	}
	return b.String()
}

// app builds an app definition from a base and overrides.
func appJSON(t *testing.T, base map[string]any, overrides map[string]any) []byte {
	t.Helper()
	m := map[string]any{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range overrides {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// residentApp is the tutorial's shape with the test image.
func residentApp(id string) map[string]any {
	return map[string]any{
		"id": id, "cpus": 0.5, "mem": 128, "instances": 1,
		"networks": []any{map[string]any{"mode": "container/bridge"}},
		"container": map[string]any{
			"type":    "DOCKER",
			"docker":  map[string]any{"image": "mesolite/testapp:latest"},
			"volumes": []any{map[string]any{"containerPath": "data", "mode": "RW", "persistent": map[string]any{"size": 16}}},
			"portMappings": []any{
				map[string]any{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"},
			},
		},
		"backoffSeconds": 0, "backoffFactor": 2, "maxLaunchDelaySeconds": 2,
	}
}

func (h *harness) create(body []byte) string {
	h.t.Helper()
	_, dep, err := h.a.CreateApp(context.Background(), body)
	if err != nil {
		h.t.Fatalf("create app: %v", err)
	}
	return dep.DeploymentID
}

func (h *harness) scale(id string, n int) {
	h.t.Helper()
	if _, _, err := h.a.UpdateApp(context.Background(), id, []byte(fmt.Sprintf(`{"id":%q,"instances":%d}`, id, n)), agent.UpdateOptions{Partial: true, Force: true}); err != nil {
		h.t.Fatalf("scale %s to %d: %v", id, n, err)
	}
}

// running waits until the app has n running tasks and no deployment.
func (h *harness) running(id string, n int) []*agent.TaskView {
	h.t.Helper()
	s := h.waitFor(fmt.Sprintf("%s to run %d tasks", id, n), func(s *agent.Snapshot) bool {
		a := s.App(id)
		return a != nil && a.TasksRunning == n && len(a.Deployments) == 0
	})
	var out []*agent.TaskView
	for _, t := range s.App(id).Tasks {
		if t.State == agent.TaskRunning {
			out = append(out, t)
		}
	}
	return out
}

func (h *harness) volumeDirs() []string {
	matches, _ := filepath.Glob(filepath.Join(h.dir, "volumes", "roles", "*", "*"))
	return matches
}

func (h *harness) liveContainers() int {
	n := 0
	for _, c := range h.rt.Containers() {
		if c.Running {
			n++
		}
	}
	return n
}
