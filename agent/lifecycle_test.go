package agent_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/sandbox"
)

// TestTutorialLifecycle walks every row of SPEC §3 with the fake runtime.
func TestTutorialLifecycle(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create(appJSON(t, residentApp("/db"), nil))
	first := h.running("/db", 1)[0]
	if !strings.HasSuffix(first.ID, "._app.1") || !strings.HasPrefix(first.ID, "db.instance-") {
		t.Fatalf("task id %q: want db.instance-<uuid>._app.1", first.ID)
	}
	if len(first.Ports) != 1 || first.StartedAt.IsZero() || len(first.Volumes) != 1 {
		t.Fatalf("running task: ports %v startedAt %q volumes %v", first.Ports, first.StartedAt, first.Volumes)
	}
	vols := h.volumeDirs()
	if len(vols) != 1 || !strings.Contains(vols[0], first.Volumes[0].PersistenceID) {
		t.Fatalf("volume dirs %v, want the one of %s", vols, first.Volumes[0].PersistenceID)
	}
	if err := os.WriteFile(filepath.Join(vols[0], "row"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}

	// app stop: the task stays listed, killed, without times or ports.
	h.scale("/db", 0)
	s := h.waitFor("the task to be killed", func(s *agent.Snapshot) bool {
		a := s.App("/db")
		return len(a.Tasks) == 1 && a.Tasks[0].State == agent.TaskKilled && len(a.Deployments) == 0
	})
	stopped := s.App("/db").Tasks[0]
	if stopped.ID != first.ID || !stopped.StartedAt.IsZero() || !stopped.StagedAt.IsZero() || !stopped.Version.IsZero() || len(stopped.Ports) != 0 {
		t.Fatalf("stopped task: %+v", stopped)
	}
	if len(stopped.Volumes) != 1 || h.liveContainers() != 0 {
		t.Fatalf("stopped task volumes %v, live containers %d", stopped.Volumes, h.liveContainers())
	}
	if b, err := os.ReadFile(filepath.Join(vols[0], "row")); err != nil || string(b) != "kept" {
		t.Fatalf("volume content after stop: %q, %v", b, err)
	}

	// app start: same instance, next incarnation, same host port.
	h.scale("/db", 1)
	second := h.running("/db", 1)[0]
	if second.InstanceID != first.InstanceID || !strings.HasSuffix(second.ID, "._app.2") || second.Ports[0] != first.Ports[0] {
		t.Fatalf("after start: %s port %v; before: %s port %v", second.ID, second.Ports, first.ID, first.Ports)
	}

	// task kill: relaunched in place.
	if _, _, err := h.a.KillTasks(context.Background(), []string{second.ID}, false, false, false); err != nil {
		t.Fatal(err)
	}
	third := h.waitFor("the relaunch after kill", func(s *agent.Snapshot) bool {
		ts := s.App("/db").Tasks
		return len(ts) == 1 && strings.HasSuffix(ts[0].ID, "._app.3") && ts[0].State == agent.TaskRunning
	}).App("/db").Tasks[0]
	if third.InstanceID != first.InstanceID {
		t.Fatalf("kill made a new instance %s", third.InstanceID)
	}
	if b, err := os.ReadFile(filepath.Join(vols[0], "row")); err != nil || string(b) != "kept" {
		t.Fatalf("volume content after kill: %q, %v", b, err)
	}

	// task kill --wipe: a new instance with a new, empty volume.
	if _, _, err := h.a.KillTasks(context.Background(), []string{third.ID}, false, true, false); err != nil {
		t.Fatal(err)
	}
	fresh := h.waitFor("a new instance after wipe", func(s *agent.Snapshot) bool {
		ts := s.App("/db").Tasks
		return len(ts) == 1 && ts[0].InstanceID != first.InstanceID && ts[0].State == agent.TaskRunning
	}).App("/db").Tasks[0]
	if !strings.HasSuffix(fresh.ID, "._app.1") {
		t.Fatalf("wiped instance's successor %s: want incarnation 1", fresh.ID)
	}
	if _, err := os.Stat(vols[0]); !os.IsNotExist(err) {
		t.Fatalf("wiped volume %s still exists (%v)", vols[0], err)
	}
	if v := h.volumeDirs(); len(v) != 1 || v[0] == vols[0] {
		t.Fatalf("volumes after wipe: %v", v)
	}

	// app remove: nothing left.
	if _, err := h.a.DeleteApp(context.Background(), "/db", true); err != nil {
		t.Fatal(err)
	}
	if s := h.a.Snapshot(); s.App("/db") != nil {
		t.Fatal("a removed app is still listed")
	}
	h.waitFor("the app's tasks to be gone", func(s *agent.Snapshot) bool { return len(s.Tasks) == 0 && len(s.Deployments) == 0 })
	if v := h.volumeDirs(); len(v) != 0 {
		t.Fatalf("volumes after remove: %v", v)
	}
	if c := h.rt.Containers(); len(c) != 0 {
		t.Fatalf("containers after remove: %v", c)
	}
	if keys, _ := h.st.Keys("instances"); len(keys) != 0 {
		t.Fatalf("instance records after remove: %v", keys)
	}
	if _, err := h.a.DeleteApp(context.Background(), "/db", true); !isNotFound(err) {
		t.Fatalf("second remove: %v, want not found", err)
	}
}

func isNotFound(err error) bool {
	return errors.Is(err, agent.ErrNotFound)
}

// TestCrashRelaunchWithBackoff: a task that exits is relaunched in place,
// each time after a longer delay.
func TestCrashRelaunchWithBackoff(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create(appJSON(t, residentApp("/crashy"), map[string]any{"backoffSeconds": 1, "backoffFactor": 2, "maxLaunchDelaySeconds": 10}))
	task := h.running("/crashy", 1)[0]
	var gaps []time.Duration
	for i := 0; i < 2; i++ {
		if err := h.rt.Crash(task.ID, 1); err != nil {
			t.Fatal(err)
		}
		died := time.Now()
		next := h.waitFor("the relaunch", func(s *agent.Snapshot) bool {
			ts := s.App("/crashy").Tasks
			return len(ts) == 1 && ts[0].ID != task.ID && ts[0].State == agent.TaskRunning
		}).App("/crashy").Tasks[0]
		gaps = append(gaps, time.Since(died))
		if next.InstanceID != task.InstanceID {
			t.Fatalf("crash made a new instance")
		}
		task = next
	}
	// Delays 1s, 2s (backoffSeconds is a whole number of seconds, as in
	// Marathon): each gap at least its delay and growing.
	for i, min := range []time.Duration{time.Second, 2 * time.Second} {
		if gaps[i] < min {
			t.Fatalf("relaunch %d after %v, want at least %v (gaps %v)", i+1, gaps[i], min, gaps)
		}
	}
	if f := h.a.Snapshot().App("/crashy").LastTaskFailure; f == nil || f.State != agent.TaskFailed || !strings.Contains(f.Message, "status 1") {
		t.Fatalf("lastTaskFailure %+v", f)
	}
}

// TestHealthChecks: a healthy task counts as healthy; one whose check
// fails after the grace period is killed and relaunched in place.
func TestHealthChecks(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() && r.URL.Path == "/health" {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	cport, _ := strconv.Atoi(port)

	h := newHarness(t, testConfig())
	app := residentApp("/web")
	app["container"].(map[string]any)["portMappings"] = []any{map[string]any{"containerPort": cport, "hostPort": 0}}
	h.create(appJSON(t, app, map[string]any{"healthChecks": []any{map[string]any{
		"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 0,
		"intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 2,
	}}}))
	s := h.waitFor("a healthy task", func(s *agent.Snapshot) bool {
		a := s.App("/web")
		return a.TasksHealthy == 1 && len(a.Deployments) == 0
	})
	task := s.App("/web").Tasks[0]
	if r := task.Health; len(r) != 1 || !r[0].Alive || r[0].FirstSuccess.IsZero() {
		t.Fatalf("health results %+v", r)
	}

	healthy.Store(false)
	s = h.waitFor("the unhealthy task to be replaced", func(s *agent.Snapshot) bool {
		ts := s.App("/web").Tasks
		return len(ts) == 1 && ts[0].ID != task.ID
	})
	if got := s.App("/web").Tasks[0]; got.InstanceID != task.InstanceID {
		t.Fatalf("health kill made a new instance")
	}
	healthy.Store(true)
	h.waitFor("healthy again", func(s *agent.Snapshot) bool { return s.App("/web").TasksHealthy == 1 })
}

// TestNeverListeningIsNeverHealthy: a process that never listens is never
// reported healthy, and is killed after its failures.
func TestNeverListeningIsNeverHealthy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens on port now

	h := newHarness(t, testConfig())
	app := residentApp("/mute")
	app["container"].(map[string]any)["portMappings"] = []any{map[string]any{"containerPort": port, "hostPort": 0}}
	h.create(appJSON(t, app, map[string]any{"healthChecks": []any{map[string]any{
		"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 1,
		"intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 2,
	}}}))
	var first string
	h.waitFor("a task", func(s *agent.Snapshot) bool {
		ts := s.App("/mute").Tasks
		if len(ts) == 1 && ts[0].State == agent.TaskRunning {
			first = ts[0].ID
		}
		return first != ""
	})
	deadline := time.Now().Add(8 * time.Second)
	replaced := false
	for time.Now().Before(deadline) && !replaced {
		s := h.a.Snapshot()
		a := s.App("/mute")
		if a.TasksHealthy != 0 {
			t.Fatalf("a task that never listens was reported healthy: %s", dump(s))
		}
		replaced = len(a.Tasks) == 1 && a.Tasks[0].ID != first
		time.Sleep(20 * time.Millisecond)
	}
	if !replaced {
		t.Fatalf("task %s was not killed after its health check failures: %s", first, dump(h.a.Snapshot()))
	}
}

// TestAgentRestartAdopts: a running task survives an agent restart as it
// is; one whose container died meanwhile is relaunched in place.
func TestAgentRestartAdopts(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create(appJSON(t, residentApp("/keep"), nil))
	h.create(appJSON(t, residentApp("/lost"), nil))
	keep := h.running("/keep", 1)[0]
	lost := h.running("/lost", 1)[0]
	runs := h.rt.Runs()

	h.stop()
	h.rt.Vanish(lost.ID)
	h.start()

	s := h.waitFor("recovery", func(s *agent.Snapshot) bool {
		ts := s.App("/lost").Tasks
		return len(ts) == 1 && ts[0].ID != lost.ID && ts[0].State == agent.TaskRunning
	})
	if got := s.App("/keep").Tasks[0]; got.ID != keep.ID || got.State != agent.TaskRunning || !got.StartedAt.Equal(keep.StartedAt) {
		t.Fatalf("adopted task changed: %+v, was %+v", got, keep)
	}
	if r := s.Recovery; r.Adopted != 1 || r.Relaunched != 1 {
		t.Fatalf("recovery report %+v, want 1 adopted and 1 relaunched", r)
	}
	if got := s.App("/lost").Tasks[0]; got.InstanceID != lost.InstanceID || !strings.HasSuffix(got.ID, "._app.2") {
		t.Fatalf("lost task relaunched as %s", got.ID)
	}
	if f := s.App("/lost").LastTaskFailure; f == nil || f.Message != "Executor terminated" || f.TaskID != lost.ID {
		t.Fatalf("lastTaskFailure %+v", f)
	}
	if h.rt.Runs() != runs+1 {
		t.Fatalf("runtime Run called %d times after restart, want 1 (only the lost task)", h.rt.Runs()-runs)
	}
}

// TestInsufficientResources: an app that does not fit waits and says why.
func TestInsufficientResources(t *testing.T) {
	cfg := testConfig()
	cfg.MemMiB = 512
	h := newHarness(t, cfg)
	h.create(appJSON(t, residentApp("/big"), map[string]any{"mem": 1024}))
	s := h.waitFor("a waiting reason", func(s *agent.Snapshot) bool { return s.App("/big").Waiting != "" })
	if want := "insufficient mem: need 1024 MiB, 512 MiB unreserved"; s.App("/big").Waiting != want {
		t.Fatalf("waiting %q, want %q", s.App("/big").Waiting, want)
	}
	if len(s.Queue) != 1 || s.Queue[0].Count != 1 || !s.Queue[0].Overdue {
		t.Fatalf("queue %+v", s.Queue)
	}
	// The app's JSON says why only when asked (?embed=mesolite): see
	// TestWaitingReasonOnlyWhenAsked in agent/api.
	// Making room lets it run.
	h.scale("/big", 0)
	h.create(appJSON(t, residentApp("/small"), map[string]any{"mem": 256}))
	h.running("/small", 1)
}

// TestMissingImage: a task whose image cannot be had fails with a message
// that names the image and says what to do, and is retried with backoff.
func TestMissingImage(t *testing.T) {
	h := newHarness(t, testConfig())
	h.rt.SetImageMissing("postgres:9.5", true)
	app := residentApp("/postgres")
	app["container"].(map[string]any)["docker"] = map[string]any{"image": "postgres:9.5"}
	h.create(appJSON(t, app, map[string]any{"backoffSeconds": 1, "backoffFactor": 2, "maxLaunchDelaySeconds": 60}))
	s := h.waitFor("a failed launch", func(s *agent.Snapshot) bool { return s.App("/postgres").LastTaskFailure != nil })
	msg := s.App("/postgres").LastTaskFailure.Message
	for _, want := range []string{`"postgres:9.5"`, "could not be pulled", "make postgres-image", "postgres-offline.marathon.json"} {
		if !strings.Contains(msg, want) {
			t.Fatalf("failure message %q lacks %q", msg, want)
		}
	}
	if task := s.App("/postgres").Tasks[0]; task.State != agent.TaskFailed || !strings.Contains(task.Message, "postgres:9.5") {
		t.Fatalf("task %+v", task)
	}
	// With delays of 1, 2, 4 s, two seconds allow at most two attempts; a
	// tight loop would make hundreds.
	start, runs := time.Now(), h.rt.Runs()
	for time.Since(start) < 2*time.Second {
		time.Sleep(50 * time.Millisecond)
	}
	if n := h.rt.Runs() - runs; n > 2 || n < 1 {
		t.Fatalf("%d launch attempts in 2s, want 1 or 2", n)
	}
}

// TestStartReusesStoppedReservations: scaling up takes stopped instances
// first, oldest reservation first, and only then makes new ones.
func TestStartReusesStoppedReservations(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create(appJSON(t, residentApp("/pair"), map[string]any{"instances": 2}))
	tasks := h.running("/pair", 2)
	byInstance := map[string]bool{}
	for _, tk := range tasks {
		byInstance[tk.InstanceID] = true
	}
	h.scale("/pair", 0)
	h.waitFor("both stopped", func(s *agent.Snapshot) bool {
		a := s.App("/pair")
		return a.TasksRunning == 0 && len(a.Tasks) == 2 && len(a.Deployments) == 0
	})
	h.scale("/pair", 1)
	one := h.running("/pair", 1)[0]
	if !byInstance[one.InstanceID] {
		t.Fatalf("start made a new instance %s", one.InstanceID)
	}
	h.scale("/pair", 3)
	three := h.running("/pair", 3)
	reused := 0
	for _, tk := range three {
		if byInstance[tk.InstanceID] {
			reused++
		}
	}
	if reused != 2 {
		t.Fatalf("scale to 3 reused %d stopped instances, want 2", reused)
	}
	if n := len(h.volumeDirs()); n != 3 {
		t.Fatalf("%d volumes, want 3", n)
	}
}

// TestRestartInPlace: a configuration change replaces each task on its own
// reservation; there is never more than one task per instance.
func TestRestartInPlace(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create(appJSON(t, residentApp("/cfg"), map[string]any{"instances": 2}))
	before := h.running("/cfg", 2)
	inst := map[string]bool{}
	for _, tk := range before {
		inst[tk.InstanceID] = true
	}
	res, _, err := h.a.UpdateApp(context.Background(), "/cfg", []byte(`{"env":{"MODE":"new"}}`), agent.UpdateOptions{Partial: true})
	if err != nil {
		t.Fatal(err)
	}
	s := h.waitFor("the restart to finish", func(s *agent.Snapshot) bool {
		a := s.App("/cfg")
		if len(a.Deployments) != 0 || a.TasksRunning != 2 {
			return false
		}
		for _, tk := range a.Tasks {
			if !tk.Version.Equal(res.Version) {
				return false
			}
		}
		return true
	})
	for _, tk := range s.App("/cfg").Tasks {
		if !inst[tk.InstanceID] || !strings.HasSuffix(tk.ID, "._app.2") {
			t.Fatalf("restart: task %s not the next incarnation of an old instance", tk.ID)
		}
		spec := h.rt.Spec(tk.ID)
		if spec == nil || !contains(spec.Env, "MODE=new") {
			t.Fatalf("task %s does not run the new env", tk.ID)
		}
	}
	if n := len(h.volumeDirs()); n != 2 {
		t.Fatalf("%d volumes after restart, want 2", n)
	}
	if n := len(h.rt.Containers()); n != 2 {
		t.Fatalf("%d containers after restart, want 2", n)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestResidentUpdateRules: resources and volumes of an app with persistent
// volumes cannot change.
func TestResidentUpdateRules(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create(appJSON(t, residentApp("/fixed"), nil))
	h.running("/fixed", 1)
	for _, tc := range []struct {
		name, body, want string
	}{
		{"mem", `{"mem": 256}`, "may not change resource requirements"},
		{"cpus", `{"cpus": 1}`, "may not change resource requirements"},
		{"volumes", `{"container":{"type":"DOCKER","docker":{"image":"mesolite/testapp:latest"},"volumes":[{"containerPath":"other","mode":"RW","persistent":{"size":16}}],"portMappings":[{"containerPort":8080,"hostPort":0}]}}`, "Persistent volumes can not be changed!"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := h.a.UpdateApp(context.Background(), "/fixed", []byte(tc.body), agent.UpdateOptions{Partial: true, Force: true})
			var ve *marathon.ValidationError
			if !errors.As(err, &ve) || !strings.Contains(ve.Error(), tc.want) {
				t.Fatalf("update %s: %v, want a 422 saying %q", tc.body, err, tc.want)
			}
		})
	}
}

// TestDeploymentLock: a change to an app with a deployment in progress is
// refused unless forced.
func TestDeploymentLock(t *testing.T) {
	h := newHarness(t, testConfig())
	h.rt.SetImageMissing("never:1", true)
	app := residentApp("/locked")
	app["container"].(map[string]any)["docker"] = map[string]any{"image": "never:1"}
	dep := h.create(appJSON(t, app, nil))
	_, _, err := h.a.UpdateApp(context.Background(), "/locked", []byte(`{"instances":2}`), agent.UpdateOptions{Partial: true})
	var le *agent.LockedError
	if !errors.As(err, &le) || len(le.Deployments) != 1 || le.Deployments[0] != dep {
		t.Fatalf("update during deployment: %v, want locked by %s", err, dep)
	}
	res, _, err := h.a.UpdateApp(context.Background(), "/locked", []byte(`{"instances":2}`), agent.UpdateOptions{Partial: true, Force: true})
	if err != nil || res.DeploymentID == dep {
		t.Fatalf("forced update: %+v %v", res, err)
	}
	s := h.a.Snapshot()
	if len(s.Deployments) != 1 || s.Deployments[0].ID != res.DeploymentID {
		t.Fatalf("deployments after force: %+v", s.Deployments)
	}
}

// TestOrphans: a container labelled for this agent that no task owns is
// removed after the grace period; another agent's container is untouched.
func TestOrphans(t *testing.T) {
	h := newHarness(t, testConfig())
	agentID := h.a.AgentID()
	orphan := h.rt.AddForeign("mesos-orphan", map[string]string{sandbox.LabelAgentID: agentID, sandbox.LabelTaskID: "gone.instance-00000000-0000-0000-0000-000000000000._app.1"})
	other := h.rt.AddForeign("mesos-other", map[string]string{sandbox.LabelAgentID: "someone-else-S0", sandbox.LabelTaskID: "x"})
	deadline := time.Now().Add(5 * time.Second)
	for {
		gone, kept := true, false
		for _, c := range h.rt.Containers() {
			if c.ID == orphan {
				gone = false
			}
			if c.ID == other && c.Running {
				kept = true
			}
		}
		if !kept {
			t.Fatal("another agent's container was touched")
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("orphan container not removed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDockerDown: while Docker does not answer, the agent keeps its state
// and its API; when Docker is back it reconciles.
func TestDockerDown(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create(appJSON(t, residentApp("/steady"), nil))
	task := h.running("/steady", 1)[0]
	h.rt.SetDown(true)
	h.waitFor("docker down to be noticed", func(s *agent.Snapshot) bool { return !s.DockerUp })
	if s := h.a.Snapshot(); s.App("/steady").Tasks[0].State != agent.TaskRunning {
		t.Fatalf("task lost its state while docker was down: %s", dump(s))
	}
	// A kill asked while Docker is down happens when it is back.
	if _, _, err := h.a.KillTasks(context.Background(), []string{task.ID}, false, false, false); err != nil {
		t.Fatal(err)
	}
	h.rt.SetDown(false)
	s := h.waitFor("the kill and relaunch", func(s *agent.Snapshot) bool {
		ts := s.App("/steady").Tasks
		return s.DockerUp && len(ts) == 1 && ts[0].ID != task.ID && ts[0].State == agent.TaskRunning
	})
	if got := s.App("/steady").Tasks[0]; got.InstanceID != task.InstanceID {
		t.Fatal("docker outage made a new instance")
	}
	if n := h.liveContainers(); n != 1 {
		t.Fatalf("%d live containers, want 1", n)
	}
}

// TestUnreadableRecord: a corrupt record is set aside and reported; the
// agent starts with the rest.
func TestUnreadableRecord(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create(appJSON(t, residentApp("/fine"), nil))
	h.running("/fine", 1)
	h.stop()
	bad := filepath.Join(h.dir, "meta", "instances", "broken.instance-1._app.json")
	if err := os.WriteFile(bad, []byte(`{"schema":1,"data":{"id":`), 0o644); err != nil {
		t.Fatal(err)
	}
	h.start()
	s := h.a.Snapshot()
	if len(s.Unreadable) != 1 || !strings.Contains(s.Unreadable[0], ".corrupt-") || s.Recovery.Unreadable != 1 {
		t.Fatalf("unreadable %v, recovery %+v", s.Unreadable, s.Recovery)
	}
	if _, err := os.Stat(s.Unreadable[0]); err != nil {
		t.Fatalf("set-aside record not kept: %v", err)
	}
	if s.App("/fine") == nil || s.App("/fine").TasksRunning != 1 {
		t.Fatalf("the other records did not load: %s", dump(s))
	}
}

// TestValidationErrors: bad definitions are refused with Marathon's 422
// details and nothing is created.
func TestValidationErrors(t *testing.T) {
	h := newHarness(t, testConfig())
	for _, tc := range []struct{ name, body, path string }{
		{"slash in volume path", `{"id":"/v","container":{"docker":{"image":"x"},"volumes":[{"containerPath":"a/b","mode":"RW","persistent":{"size":1}}]}}`, "/container/volumes(0)/containerPath"},
		{"dotdot id", `{"id":"/a/../b","container":{"docker":{"image":"x"}}}`, "/id"},
		{"absolute host path", `{"id":"/h","container":{"docker":{"image":"x"},"volumes":[{"containerPath":"/x","hostPath":"/etc","mode":"RO"}]}}`, "/container/volumes(0)/hostPath"},
		{"duplicate key", `{"id":"/d","cpus":1,"cpus":2,"container":{"docker":{"image":"x"}}}`, "/cpus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := h.a.CreateApp(context.Background(), []byte(tc.body))
			var ve *marathon.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("err %v, want a validation error", err)
			}
			found := false
			for _, d := range ve.Details {
				found = found || d.Path == tc.path
			}
			if !found {
				t.Fatalf("details %+v lack path %s", ve.Details, tc.path)
			}
		})
	}
	if n := len(h.a.Snapshot().Apps); n != 0 {
		t.Fatalf("%d apps after refused creates", n)
	}
	if keys, _ := h.st.Keys("apps"); len(keys) != 0 {
		t.Fatalf("records after refused creates: %v", keys)
	}
}

// TestEnvironment: the container gets Marathon's and Mesos's variables,
// and the app's env wins.
func TestEnvironment(t *testing.T) {
	h := newHarness(t, testConfig())
	app := residentApp("/envy")
	app["container"].(map[string]any)["portMappings"] = []any{map[string]any{"containerPort": 8080, "hostPort": 0, "name": "http"}}
	h.create(appJSON(t, app, map[string]any{"labels": map[string]any{"team": "db"}, "env": map[string]any{"HOST": "override"}}))
	task := h.running("/envy", 1)[0]
	spec := h.rt.Spec(task.ID)
	env := map[string]string{}
	for _, kv := range spec.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v // later entries win, as in Docker
	}
	port := strconv.Itoa(task.Ports[0])
	want := map[string]string{
		"MESOS_SANDBOX": "/mnt/mesos/sandbox", "MESOS_TASK_ID": task.ID, "MARATHON_APP_ID": "/envy",
		"MARATHON_APP_DOCKER_IMAGE": "mesolite/testapp:latest", "MARATHON_APP_RESOURCE_CPUS": "0.5",
		"MARATHON_APP_RESOURCE_MEM": "128.0", "MARATHON_APP_LABELS": "TEAM", "MARATHON_APP_LABEL_TEAM": "db",
		"PORT0": port, "PORT": port, "PORTS": port, "PORT_HTTP": port, "PORT_8080": port, "HOST": "override",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s=%q, want %q", k, env[k], v)
		}
	}
	if !strings.HasPrefix(env["MESOS_CONTAINER_NAME"], "mesos-") {
		t.Errorf("MESOS_CONTAINER_NAME=%q", env["MESOS_CONTAINER_NAME"])
	}
	var sandboxMount, volumeMount bool
	for _, m := range spec.Binds {
		volumeMount = volumeMount || (m.Target == "/mnt/mesos/sandbox/data" && strings.Contains(m.Source, "/volumes/roles/marathon/envy#data#"))
	}
	sandboxMount = strings.Contains(spec.SandboxDir, "/slaves/"+h.a.AgentID()+"/frameworks/") && strings.HasSuffix(filepath.Dir(filepath.Dir(spec.SandboxDir)), task.ID)
	if !sandboxMount || !volumeMount {
		t.Fatalf("sandbox %s, mounts %+v", spec.SandboxDir, spec.Binds)
	}
	if spec.MemoryBytes != 128<<20 || spec.CPUShares != 512 {
		t.Fatalf("resources: mem %d shares %d", spec.MemoryBytes, spec.CPUShares)
	}
	for _, p := range spec.Ports {
		if p.HostIP != "127.0.0.1" {
			t.Fatalf("port published on %q, want 127.0.0.1", p.HostIP)
		}
	}
}

// TestUpdateSwitchesNetwork: a partial update that changes networks does
// not carry the old mode's ports over.
func TestUpdateSwitchesNetwork(t *testing.T) {
	h := newHarness(t, testConfig())
	h.create([]byte(`{"id":"/net","cpus":0.1,"mem":32,"container":{"docker":{"image":"mesolite/testapp:latest"}}}`))
	h.running("/net", 1)
	if a := h.a.Snapshot().App("/net"); len(a.Spec.PortDefinitions) != 1 {
		t.Fatalf("host-mode app: portDefinitions %+v, want Marathon's default one", a.Spec.PortDefinitions)
	}
	body := `{"networks":[{"mode":"container/bridge"}],"container":{"docker":{"image":"mesolite/testapp:latest"},"portMappings":[{"containerPort":8080,"hostPort":0}]}}`
	if _, _, err := h.a.UpdateApp(context.Background(), "/net", []byte(body), agent.UpdateOptions{Partial: true, Force: true}); err != nil {
		t.Fatalf("switch to bridge: %v", err)
	}
	a := h.a.Snapshot().App("/net")
	if a.Spec.NetworkMode() != marathon.NetworkBridge || len(a.Spec.PortDefinitions) != 0 || len(a.Spec.PortMappings()) != 1 {
		t.Fatalf("after switch: mode %s portDefinitions %+v portMappings %+v", a.Spec.NetworkMode(), a.Spec.PortDefinitions, a.Spec.PortMappings())
	}
	if _, _, err := h.a.UpdateApp(context.Background(), "/net", []byte(`{"networks":[{"mode":"host"}]}`), agent.UpdateOptions{Partial: true, Force: true}); err != nil {
		t.Fatalf("switch back to host: %v", err)
	}
	if a := h.a.Snapshot().App("/net"); a.Spec.NetworkMode() != marathon.NetworkHost || len(a.Spec.PortMappings()) != 0 {
		t.Fatalf("after switching back: mode %s portMappings %+v", a.Spec.NetworkMode(), a.Spec.PortMappings())
	}
}
