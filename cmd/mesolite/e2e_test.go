package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testAppImage = "mesolite/testapp:latest"

// TestE2ETutorialTestApp runs the stateful-services tutorial with the test
// app on real Docker, through the CLI as a user would: add, running and
// healthy, write a key through the host port, stop (task listed, STARTED
// N/A), start (same instance, incarnation 2, same port), the key reads
// back, kill (relaunch, data kept), kill --wipe (new instance, empty
// volume), remove (volume gone, no labelled container left).
func TestE2ETutorialTestApp(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	p := startAgent(t)
	appFile := filepath.Join("..", "..", "testdata", "testapp.marathon.json")

	out := p.mustCLI("marathon", "app", "add", appFile)
	if !strings.HasPrefix(out, "Created deployment ") {
		t.Fatalf("app add printed %q", out)
	}
	first := p.waitTask("/testapp", "a healthy task", 30*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive
	})
	p.waitDeployments(30 * time.Second)
	list := p.mustCLI("marathon", "task", "list")
	assertTaskRow(t, list, "/testapp", "True", first.StartedAt, first.ID)

	port := first.Ports[0]
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if code := httpPut(t, base+"/kv/greeting", "hello", 10*time.Second); code != 204 {
		t.Fatalf("PUT through the host port: %d", code)
	}
	volDir := filepath.Join(p.workDir, "volumes", "roles", "marathon", first.LocalVolumes[0].PersistenceID)
	if b, err := os.ReadFile(filepath.Join(volDir, "greeting")); err != nil || string(b) != "hello" {
		t.Fatalf("the key is not in the host volume %s: %q %v", volDir, b, err)
	}

	// Stop: the task stays listed, STARTED N/A.
	if out := p.mustCLI("marathon", "app", "stop", "testapp"); !strings.HasPrefix(out, "Created deployment ") {
		t.Fatalf("app stop printed %q", out)
	}
	p.waitTask("/testapp", "the stopped task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_KILLED" })
	p.waitDeployments(30 * time.Second)
	list = p.mustCLI("marathon", "task", "list")
	assertTaskRow(t, list, "/testapp", "True", "N/A", first.ID)
	if n := len(runningContainers(t, p.agentID)); n != 0 {
		t.Fatalf("%d containers running after stop", n)
	}
	if _, err := os.Stat(volDir); err != nil {
		t.Fatalf("volume gone after stop: %v", err)
	}

	// Start: same instance, incarnation 2, same port, same data.
	if out := p.mustCLI("marathon", "app", "start", "testapp"); !strings.HasPrefix(out, "Created deployment ") {
		t.Fatalf("app start printed %q", out)
	}
	second := p.waitTask("/testapp", "the restarted task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	if second.InstanceID != first.InstanceID || second.Incarnation != 2 || !strings.HasSuffix(second.ID, "._app.2") || second.Ports[0] != port {
		t.Fatalf("after start: %+v; before: %+v", second, first)
	}
	if code, body := httpGet(t, base+"/kv/greeting", 10*time.Second); code != 200 || body != "hello" {
		t.Fatalf("key after start: %d %q", code, body)
	}

	// Kill: relaunched in place, data kept.
	out = p.mustCLI("marathon", "task", "kill", second.ID)
	if !strings.Contains(out, second.ID) {
		t.Fatalf("task kill printed %q", out)
	}
	third := p.waitTask("/testapp", "the relaunch after kill", 30*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && t.Incarnation == 3
	})
	if third.InstanceID != first.InstanceID {
		t.Fatal("kill made a new instance")
	}
	if code, body := httpGet(t, base+"/kv/greeting", 10*time.Second); code != 200 || body != "hello" {
		t.Fatalf("key after kill: %d %q", code, body)
	}

	// Kill --wipe: a new instance with an empty volume.
	p.mustCLI("marathon", "task", "kill", "--wipe", third.ID)
	fresh := p.waitTask("/testapp", "a new instance after wipe", 30*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && t.InstanceID != first.InstanceID
	})
	if fresh.Incarnation != 1 {
		t.Fatalf("wiped instance's successor has incarnation %d", fresh.Incarnation)
	}
	if _, err := os.Stat(volDir); !os.IsNotExist(err) {
		t.Fatalf("wiped volume still exists: %v", err)
	}
	if code, _ := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/kv/greeting", fresh.Ports[0]), 10*time.Second); code != 404 {
		t.Fatalf("new instance's volume is not empty: GET greeting = %d", code)
	}

	// Remove: nothing left.
	if out := p.mustCLI("marathon", "app", "remove", "testapp"); out != "" {
		t.Fatalf("app remove printed %q", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		vols, _ := filepath.Glob(filepath.Join(p.workDir, "volumes", "roles", "*", "*"))
		if len(p.tasks("")) == 0 && len(vols) == 0 && len(agentContainers(t, p.agentID)) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after remove: tasks %v volumes %v containers %v", p.tasks(""), vols, agentContainers(t, p.agentID))
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, errOut, code := p.cli("marathon", "app", "remove", "testapp")
	if code == 0 || !strings.Contains(errOut, "does not exist") {
		t.Fatalf("second remove: exit %d, %q", code, errOut)
	}
}

// assertTaskRow checks the task list table has the row a user expects.
func assertTaskRow(t *testing.T, table, app, healthy, started, id string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) < 2 {
		t.Fatalf("task list:\n%s", table)
	}
	if h := strings.Fields(lines[0]); strings.Join(h, " ") != "APP HEALTHY STARTED HOST ID" {
		t.Fatalf("task list header %q", lines[0])
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) == 5 && f[0] == app && f[1] == healthy && f[2] == started && f[3] == "127.0.0.1" && f[4] == id {
			return
		}
	}
	t.Fatalf("task list lacks the row %s %s %s 127.0.0.1 %s:\n%s", app, healthy, started, id, table)
}

func runningContainers(t *testing.T, agentID string) []string {
	var out []string
	for _, c := range agentContainers(t, agentID) {
		if c.Running {
			out = append(out, c.Name)
		}
	}
	return out
}

// TestE2EAgentRestartAdopts: the agent stopped (SIGTERM) and started, or
// killed (SIGKILL) and started, with the app running, adopts the same
// container: same Docker id, same task id, still running, health resumes.
func TestE2EAgentRestartAdopts(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	p := startAgent(t)
	p.mustCLI("app", "add", filepath.Join("..", "..", "testdata", "testapp.marathon.json"))
	task := p.waitTask("/testapp", "a healthy task", 30*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive
	})
	before := agentContainers(t, p.agentID)
	if len(before) != 1 || !before[0].Running {
		t.Fatalf("containers before: %+v", before)
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		p.stop(sig)
		if after := agentContainers(t, p.agentID); len(after) != 1 || !after[0].Running || after[0].ID != before[0].ID {
			t.Fatalf("%v stopped the container: %+v", sig, after)
		}
		p.start()
		got := p.waitTask("/testapp", "the adopted task", 15*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
		if got.ID != task.ID || got.StartedAt != task.StartedAt {
			t.Fatalf("after %v: task %s started %s; before %s started %s", sig, got.ID, got.StartedAt, task.ID, task.StartedAt)
		}
		after := agentContainers(t, p.agentID)
		if len(after) != 1 || after[0].ID != before[0].ID || !after[0].Running {
			t.Fatalf("after %v restart: containers %+v", sig, after)
		}
		var status struct {
			Recovery struct {
				Adopted int `json:"adopted"`
			} `json:"recovery"`
		}
		if err := p.getJSON("/mesolite/v1/status", &status); err != nil || status.Recovery.Adopted != 1 {
			t.Fatalf("recovery after %v: %+v %v", sig, status, err)
		}
		// Health checks resume: the results stay alive with fresh successes.
		p.waitTask("/testapp", "health after adoption", 15*time.Second, func(t e2eTask) bool {
			return len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive
		})
	}
	// A container that died while the agent was down is relaunched in place.
	p.stop(syscall.SIGTERM)
	if err := dc.ContainerKill(t.Context(), before[0].ID, "KILL"); err != nil {
		t.Fatal(err)
	}
	p.start()
	got := p.waitTask("/testapp", "the relaunched task", 30*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && t.Incarnation == 2
	})
	if got.InstanceID != task.InstanceID {
		t.Fatal("relaunch after a dead container made a new instance")
	}
}

// TestE2ENeverListeningNeverHealthy: with Docker's proxy a published port
// accepts connections even when nothing listens in the container. A task
// that never listens must never be reported healthy, and is killed and
// relaunched after its failures.
func TestE2ENeverListeningNeverHealthy(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	p := startAgent(t)
	app := fmt.Sprintf(`{"id":"/mute","cpus":0.1,"mem":32,"env":{"NO_LISTEN":"1"},
	  "networks":[{"mode":"container/bridge"}],
	  "container":{"docker":{"image":%q},"portMappings":[{"containerPort":8080,"hostPort":0}]},
	  "healthChecks":[{"protocol":"TCP","portIndex":0,"gracePeriodSeconds":2,"intervalSeconds":1,"timeoutSeconds":1,"maxConsecutiveFailures":2}]}`, testAppImage)
	if code, body := p.do("POST", "/v2/apps", rawJSON(app)); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	first := p.waitTask("/mute", "a running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	// The published port does accept connections (Docker's proxy)...
	httpGetNoRetry := func() error {
		conn, err := netDial(fmt.Sprintf("127.0.0.1:%d", first.Ports[0]))
		if err == nil {
			conn.Close()
		}
		return err
	}
	proxyAccepts := httpGetNoRetry() == nil
	// ...but the task is never healthy, and gets replaced.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ts := p.tasks("/mute")
		for _, tk := range ts {
			for _, h := range tk.HealthCheckResults {
				if h.Alive {
					t.Fatalf("a task that never listens was reported healthy (proxy accepts: %v)", proxyAccepts)
				}
			}
		}
		if len(ts) == 1 && ts[0].ID != first.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the unhealthy task was not replaced: %+v", ts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("published port accepted a connection with nothing listening: %v", proxyAccepts)
}

// TestE2ECrashBackoff: a container that exits is relaunched in place with
// growing delays.
func TestE2ECrashBackoff(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	p := startAgent(t)
	app := fmt.Sprintf(`{"id":"/crash","cpus":0.1,"mem":32,"cmd":"exit 3",
	  "container":{"docker":{"image":%q},"volumes":[{"containerPath":"data","mode":"RW","persistent":{"size":1}}]},
	  "portDefinitions":[],"backoffSeconds":1,"backoffFactor":2,"maxLaunchDelaySeconds":30}`, testAppImage)
	if code, body := p.do("POST", "/v2/apps", rawJSON(app)); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	// Record when each incarnation is first seen staged or running.
	seen := map[int]time.Time{}
	deadline := time.Now().Add(40 * time.Second)
	for len(seen) < 4 && time.Now().Before(deadline) {
		for _, tk := range p.tasks("/crash") {
			if _, ok := seen[tk.Incarnation]; !ok && tk.State != "TASK_FAILED" {
				seen[tk.Incarnation] = time.Now()
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(seen) < 4 {
		t.Fatalf("saw incarnations %v in 40s, want 4", seen)
	}
	g1, g2, g3 := seen[2].Sub(seen[1]), seen[3].Sub(seen[2]), seen[4].Sub(seen[3])
	// Delays 1s, 2s, 4s: each gap at least its delay, and growing.
	if g1 < time.Second || g2 < 2*time.Second || g3 < 4*time.Second || !(g1 < g2 && g2 < g3) {
		t.Fatalf("relaunch gaps %v %v %v: want at least 1s, 2s, 4s and growing", g1, g2, g3)
	}
	var app0 struct {
		App struct {
			LastTaskFailure struct {
				Message string `json:"message"`
				State   string `json:"state"`
			} `json:"lastTaskFailure"`
		} `json:"app"`
	}
	if err := p.getJSON("/v2/apps/crash", &app0); err != nil || !strings.Contains(app0.App.LastTaskFailure.Message, "status 3") {
		t.Fatalf("lastTaskFailure %+v %v", app0.App.LastTaskFailure, err)
	}
	var q struct {
		Queue []struct {
			Delay struct {
				TimeLeftSeconds int  `json:"timeLeftSeconds"`
				Overdue         bool `json:"overdue"`
			} `json:"delay"`
		} `json:"queue"`
	}
	if err := p.getJSON("/v2/queue", &q); err != nil {
		t.Fatal(err)
	}
	t.Logf("gaps %v %v %v; queue %+v", g1, g2, g3, q.Queue)
}
