package main

// Command apps (no image) end to end: the real binary, real Docker, real
// processes of the host (sh, sleep, python3).

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requirePython3 fails under CI=true (where .ci/run installs it) or
// skips when the host has no /usr/bin/python3.
func requirePython3(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		missing(t, "python3 is not installed at /usr/bin/python3 (apt-get install python3): %v", err)
	}
}

// proc is a process of the host, known by pid and start time (a pid the
// kernel gives again has another start time).
type proc struct {
	pid   int
	start string
	args  string
}

// procStart reads a process's start time (field 22 of /proc/pid/stat).
func procStart(pid int) (string, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	fields := strings.Fields(s[i+2:])
	if len(fields) < 20 || fields[0] == "Z" {
		return "", false
	}
	return fields[19], true
}

// procTree lists the live processes whose ancestry includes root, root too.
func procTree(root int) []proc {
	parent := map[int]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		fields := strings.Fields(s[i+2:])
		if len(fields) > 1 {
			parent[pid], _ = strconv.Atoi(fields[1])
		}
	}
	var out []proc
	for pid := range parent {
		for p, n := pid, 0; p > 1 && n < 64; p, n = parent[p], n+1 {
			if p == root {
				start, ok := procStart(pid)
				args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
				if ok {
					out = append(out, proc{pid: pid, start: start, args: strings.ReplaceAll(string(args), "\x00", " ")})
				}
				break
			}
		}
	}
	return out
}

// stillAlive lists the processes of procs that still run (same pid, same
// start time).
func stillAlive(procs []proc) []proc {
	var out []proc
	for _, p := range procs {
		if start, ok := procStart(p.pid); ok && start == p.start {
			out = append(out, p)
		}
	}
	return out
}

// taskPid is the host pid of a task's first process (taskinit).
func taskPid(t *testing.T, p *agentProc, taskID string) int {
	t.Helper()
	dc := requireDocker(t)
	for _, c := range agentContainers(t, p.agentID) {
		if c.TaskID() == taskID && c.Running {
			ins, err := dc.ContainerInspect(t.Context(), c.ID)
			if err != nil {
				t.Fatal(err)
			}
			return ins.State.Pid
		}
	}
	t.Fatalf("no running container of task %s", taskID)
	return 0
}

// startAgentTop starts an agent as startAgent does, with top-level
// agent.toml lines (host_path_roots).
func startAgentTop(t *testing.T, top string) *agentProc {
	t.Helper()
	lo := 32000 + int(time.Now().UnixNano()%200)*100
	return startAgentWith(t, lo, 100, top, nil)
}

// waitLog polls `mesolite task log` until it shows want.
func waitLog(t *testing.T, p *agentProc, taskID, want string, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, _, code := p.cli("task", "log", taskID)
		if code == 0 && strings.Contains(out, want) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("task log of %s lacks %q after %v:\n%s", taskID, want, d, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestE2ECommandBasic0 runs the first app of every Marathon tutorial: no
// image, a shell loop. Its output is in task log; app stop leaves no
// process of it; app start runs it again.
func TestE2ECommandBasic0(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	p := startAgent(t)
	p.mustCLI("app", "add", filepath.Join("..", "..", "testdata", "basic-0.marathon.json"))
	task := p.waitTask("/basic-0", "a running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	log := waitLog(t, p, task.ID, "Hello Marathon\n", 15*time.Second)
	t.Logf("mesolite task log %s:\n%s", task.ID, log)
	if len(task.Ports) != 1 {
		t.Errorf("ports %v: want Marathon's one default port", task.Ports)
	}
	procs := procTree(taskPid(t, p, task.ID))
	if len(procs) < 2 {
		t.Fatalf("the task's processes: %+v", procs)
	}
	out := p.mustCLI("app", "list")
	if !strings.Contains(out, "MESOS") || !strings.Contains(out, "while [ true ]") {
		t.Errorf("app list:\n%s", out)
	}

	p.mustCLI("app", "stop", "basic-0")
	p.waitDeployments(30 * time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for len(stillAlive(procs)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := stillAlive(procs); len(left) > 0 {
		t.Fatalf("app stop left processes: %+v", left)
	}
	if cs := runningContainers(t, p.agentID); len(cs) != 0 {
		t.Fatalf("app stop left containers running: %v", cs)
	}

	p.mustCLI("app", "start", "basic-0")
	again := p.waitTask("/basic-0", "a running task again", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	waitLog(t, p, again.ID, "Hello Marathon\n", 15*time.Second)
}

// TestE2ECommandHTTPHealth serves python3 -m http.server on $PORT0 with
// an HTTP check on port index 0 and a COMMAND check in the task's
// environment and working directory: healthy, reachable on its host port,
// and killed and relaunched when the HTTP check fails.
func TestE2ECommandHTTPHealth(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	requirePython3(t)
	p := startAgent(t)
	app := map[string]any{
		"id":        "/web",
		"cmd":       "echo ok > ok.txt; exec python3 -m http.server --bind 127.0.0.1 $PORT0",
		"cpus":      0.1,
		"mem":       64,
		"instances": 1,
		"healthChecks": []map[string]any{{
			"protocol": "HTTP", "path": "/ok.txt", "portIndex": 0,
			"gracePeriodSeconds": 10, "intervalSeconds": 1, "timeoutSeconds": 2, "maxConsecutiveFailures": 2,
		}, {
			// In the task's environment and working directory.
			"protocol": "COMMAND", "command": map[string]any{"value": `test -f ok.txt && [ "$MESOS_SANDBOX" = "$(pwd)" ] && [ -n "$PORT0" ]`},
			"gracePeriodSeconds": 10, "intervalSeconds": 1, "timeoutSeconds": 5, "maxConsecutiveFailures": 0,
		}},
	}
	if code, b := p.do(http.MethodPost, "/v2/apps", app); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, b)
	}
	bothAlive := func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && len(t.HealthCheckResults) == 2 && t.HealthCheckResults[0].Alive && t.HealthCheckResults[1].Alive
	}
	task := p.waitTask("/web", "a healthy task", 30*time.Second, bothAlive)
	if code, body := httpGet(t, fmt.Sprintf("http://127.0.0.1:%d/ok.txt", task.Ports[0]), 10*time.Second); code != 200 || body != "ok\n" {
		t.Fatalf("GET ok.txt on the host port: %d %q", code, body)
	}
	// Fail the check: the file it asks for goes away.
	sandboxDir := taskSandbox(t, p, task.ID)
	if err := os.Remove(filepath.Join(sandboxDir, "ok.txt")); err != nil {
		t.Fatal(err)
	}
	next := p.waitTask("/web", "a relaunched healthy task", 60*time.Second, func(t e2eTask) bool {
		return t.Incarnation == task.Incarnation+1 && bothAlive(t)
	})
	if next.InstanceID != task.InstanceID || next.Ports[0] != task.Ports[0] {
		t.Errorf("relaunch: instance %s port %v, was %s %v", next.InstanceID, next.Ports, task.InstanceID, task.Ports)
	}
}

// taskSandbox is a task's sandbox directory (from ?embed=mesolite).
func taskSandbox(t *testing.T, p *agentProc, taskID string) string {
	t.Helper()
	var r struct {
		Tasks []struct {
			ID      string `json:"id"`
			Sandbox string `json:"sandboxDirectory"`
		} `json:"tasks"`
	}
	if err := p.getJSON("/v2/tasks?embed=mesolite", &r); err != nil {
		t.Fatal(err)
	}
	for _, tk := range r.Tasks {
		if tk.ID == taskID && tk.Sandbox != "" {
			return tk.Sandbox
		}
	}
	t.Fatalf("no sandbox for %s", taskID)
	return ""
}

// volumeDir is the host directory of an app's only persistent volume.
func volumeDir(t *testing.T, p *agentProc, task e2eTask) string {
	t.Helper()
	if len(task.LocalVolumes) != 1 {
		t.Fatalf("task volumes: %+v", task.LocalVolumes)
	}
	return filepath.Join(p.workDir, "volumes", "roles", "marathon", task.LocalVolumes[0].PersistenceID)
}

// TestE2EResidentCommandApp: a command app with a persistent volume keeps
// its file across stop and start; a SIGKILL of the agent adopts the task
// (the same process, by start time); the task's process killed behind
// the agent's back is relaunched in place with the file kept.
func TestE2EResidentCommandApp(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	p := startAgent(t)
	app := map[string]any{
		"id":   "/keeper",
		"cmd":  `echo "$MESOS_TASK_ID" >> "$MESOS_SANDBOX/data/tasks.txt"; while true; do sleep 1; done`,
		"cpus": 0.1, "mem": 32, "instances": 1,
		"container": map[string]any{"type": "MESOS", "volumes": []map[string]any{
			{"containerPath": "data", "mode": "RW", "persistent": map[string]any{"size": 16}},
		}},
	}
	if code, b := p.do(http.MethodPost, "/v2/apps", app); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, b)
	}
	first := p.waitTask("/keeper", "a running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	file := filepath.Join(volumeDir(t, p, first), "tasks.txt")
	waitFile(t, file, first.ID+"\n")

	// Stop, start: the same instance and volume, the file still there.
	p.mustCLI("app", "stop", "keeper")
	p.waitTask("/keeper", "a stopped task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_KILLED" && t.StartedAt == "" })
	p.mustCLI("app", "start", "keeper")
	second := p.waitTask("/keeper", "the restarted task", 30*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && t.Incarnation == first.Incarnation+1
	})
	if second.InstanceID != first.InstanceID {
		t.Fatalf("start made instance %s, was %s", second.InstanceID, first.InstanceID)
	}
	waitFile(t, file, first.ID+"\n"+second.ID+"\n")
	t.Logf("stop/start: task %s then %s on instance %s; %s holds both ids", first.ID, second.ID, first.InstanceID, file)

	// SIGKILL the agent: the task is adopted, its process untouched.
	pid := taskPid(t, p, second.ID)
	startBefore, _ := procStart(pid)
	p.stop(syscall.SIGKILL)
	p.start()
	adopted := p.waitTask("/keeper", "the adopted task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	startAfter, ok := procStart(pid)
	if adopted.ID != second.ID || adopted.StartedAt != second.StartedAt || !ok || startAfter != startBefore {
		t.Fatalf("after SIGKILL: task %s started %s, process %d start %s (alive %v); before: %s started %s, start %s",
			adopted.ID, adopted.StartedAt, pid, startAfter, ok, second.ID, second.StartedAt, startBefore)
	}
	t.Logf("agent SIGKILL: task %s adopted, process %d with the same start time %s", adopted.ID, pid, startAfter)

	// Kill the task's process behind the agent's back: relaunched in place.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	third := p.waitTask("/keeper", "the relaunched task", 30*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && t.Incarnation == second.Incarnation+1
	})
	if third.InstanceID != first.InstanceID {
		t.Fatalf("relaunch made instance %s, was %s", third.InstanceID, first.InstanceID)
	}
	waitFile(t, file, first.ID+"\n"+second.ID+"\n"+third.ID+"\n")
	t.Logf("process killed: relaunched in place as %s, the file kept", third.ID)
}

// waitFile polls until the file holds exactly want.
func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil && string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q (%v), want %q", path, b, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestE2ECommandOOM: a command app that allocates past mem ends as
// TASK_FAILED with an OOM message.
func TestE2ECommandOOM(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	requirePython3(t)
	p := startAgent(t)
	app := map[string]any{
		"id": "/hog", "cmd": `python3 -c 'b = bytearray(512 << 20); print(len(b))'`,
		"cpus": 0.1, "mem": 48, "instances": 1, "backoffSeconds": 600,
	}
	if code, b := p.do(http.MethodPost, "/v2/apps", app); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, b)
	}
	task := p.waitTask("/hog", "a failed task", 60*time.Second, func(t e2eTask) bool { return t.State == "TASK_FAILED" })
	if !strings.Contains(task.Message, "out of memory") {
		t.Fatalf("message %q, want an OOM message", task.Message)
	}
	var show struct {
		App struct {
			LastTaskFailure struct {
				Message string `json:"message"`
			} `json:"lastTaskFailure"`
		} `json:"app"`
	}
	if err := p.getJSON("/v2/apps/hog", &show); err != nil || !strings.Contains(show.App.LastTaskFailure.Message, "out of memory") {
		t.Fatalf("lastTaskFailure %+v %v", show, err)
	}
}

// TestE2ECommandUser: a command app runs as its user; one whose user does
// not exist is refused at POST.
func TestE2ECommandUser(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	p := startAgent(t)
	code, b := p.do(http.MethodPost, "/v2/apps", map[string]any{"id": "/ghost", "cmd": "id", "user": "mesolite-no-such-user"})
	if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"/user"`) || !strings.Contains(string(b), "does not exist on this machine") {
		t.Fatalf("POST with an unknown user: %d %s", code, b)
	}
	out, err := exec.Command("id", "-u", "nobody").Output()
	if err != nil {
		missing(t, "the host has no user nobody: %v", err)
	}
	if code, b := p.do(http.MethodPost, "/v2/apps", map[string]any{
		"id": "/as-nobody", "cmd": "id -u > uid.txt; sleep 1000", "user": "nobody", "cpus": 0.1, "mem": 32,
	}); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, b)
	}
	task := p.waitTask("/as-nobody", "a running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	waitFile(t, filepath.Join(taskSandbox(t, p, task.ID), "uid.txt"), string(out))
}

// TestE2ESandboxLinksNotFollowed: a task owns its sandbox and may plant
// links there; the agent never reads or writes through them. A link named
// stdout is not served by task log, and after a restart the log copier
// neither appends to its target nor lets .mesolite-logpos.tmp truncate
// another file.
func TestE2ESandboxLinksNotFollowed(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	p := startAgent(t)
	dir := t.TempDir()
	secret, victim := filepath.Join(dir, "secret"), filepath.Join(dir, "victim")
	for _, f := range []string{secret, victim} {
		if err := os.WriteFile(f, []byte("untouched\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := fmt.Sprintf(`echo first; sleep 0.5; rm -f stdout .mesolite-logpos.tmp; ln -s %s stdout; ln -s %s .mesolite-logpos.tmp; touch planted; while true; do echo more; sleep 0.2; done`, secret, victim)
	if code, b := p.do(http.MethodPost, "/v2/apps", map[string]any{"id": "/planter", "cmd": cmd, "cpus": 0.1, "mem": 32}); code != http.StatusCreated {
		t.Fatalf("POST: %d %s", code, b)
	}
	task := p.waitTask("/planter", "a running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	sb := taskSandbox(t, p, task.ID)
	waitFile(t, filepath.Join(sb, "planted"), "")
	if out, _, _ := p.cli("task", "log", task.ID); strings.Contains(out, "untouched") {
		t.Fatalf("task log served the link's target:\n%s", out)
	}
	p.stop(syscall.SIGTERM)
	p.start()
	p.waitTask("/planter", "the adopted task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" && t.ID == task.ID })
	// Give the copier time to have written through the links if it would.
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		for _, f := range []string{secret, victim} {
			if b, err := os.ReadFile(f); err != nil || string(b) != "untouched\n" {
				t.Fatalf("%s was written through a link of the sandbox: %q %v", f, b, err)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}
