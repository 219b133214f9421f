package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const pgImage = "mesolite/postgres:15"

// requirePsql fails (under CI=true) or skips when the psql client is
// missing.
func requirePsql(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("psql")
	if err != nil {
		missing(t, "psql is missing: apt-get install postgresql-client")
	}
	return path
}

// psql runs SQL against the tutorial's database through the task's host
// port, retrying until the server accepts (it may still be starting).
func psql(t *testing.T, port int, sql string) string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cmd := exec.Command("psql", "-h", "127.0.0.1", "-p", fmt.Sprint(port), "-U", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql)
		cmd.Env = append(os.Environ(), "PGPASSWORD=DC/OS_ROCKS", "PGCONNECT_TIMEOUT=5")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return strings.TrimSpace(string(out))
		}
		s := string(out)
		retry := strings.Contains(s, "starting up") || strings.Contains(s, "Connection refused") ||
			strings.Contains(s, "server closed the connection") || strings.Contains(s, "shutting down") ||
			strings.Contains(s, "timeout expired") || strings.Contains(s, "No route to host")
		if !retry || time.Now().After(deadline) {
			t.Fatalf("psql %q: %v\n%s", sql, err, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestE2EPostgres is the tutorial on real PostgreSQL with the real psql:
// rows written before stop are read back after start, from the same
// instance with the next incarnation and the same host port; the agent
// restarting leaves PostgreSQL untouched; a task kill relaunches it in
// place with the data intact; remove leaves nothing.
func TestE2EPostgres(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, pgImage, "postgres-image")
	requirePsql(t)
	p := startAgent(t)

	out := p.mustCLI("marathon", "app", "add", filepath.Join("..", "..", "testdata", "postgres-offline.marathon.json"))
	if !strings.HasPrefix(out, "Created deployment ") {
		t.Fatalf("app add printed %q", out)
	}
	first := p.waitTask("/postgres", "postgres running and healthy", 90*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive
	})
	port := first.Ports[0]
	psql(t, port, "CREATE TABLE tutorial (id serial PRIMARY KEY, note text)")
	psql(t, port, "INSERT INTO tutorial (note) VALUES ('one'), ('two'), ('three')")
	started := psql(t, port, "SELECT pg_postmaster_start_time()")
	containers := agentContainers(t, p.agentID)
	if len(containers) != 1 {
		t.Fatalf("containers: %+v", containers)
	}

	// The agent stopped and started, or killed and started, while
	// PostgreSQL runs: same container, same server start time.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		p.stop(sig)
		p.start()
		got := p.waitTask("/postgres", "the adopted task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
		if got.ID != first.ID {
			t.Fatalf("after %v the task is %s, was %s", sig, got.ID, first.ID)
		}
		if now := agentContainers(t, p.agentID); len(now) != 1 || now[0].ID != containers[0].ID || !now[0].Running {
			t.Fatalf("after %v: containers %+v", sig, now)
		}
		if s := psql(t, port, "SELECT pg_postmaster_start_time()"); s != started {
			t.Fatalf("after %v PostgreSQL restarted: start time %s, was %s", sig, s, started)
		}
	}

	// task kill: relaunched in place with the data intact.
	p.mustCLI("marathon", "task", "kill", first.ID)
	second := p.waitTask("/postgres", "the relaunch after kill", 90*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && t.Incarnation == 2
	})
	if second.InstanceID != first.InstanceID || second.Ports[0] != port {
		t.Fatalf("kill relaunched as %+v", second)
	}
	if rows := psql(t, port, "SELECT count(*) FROM tutorial"); rows != "3" {
		t.Fatalf("after kill: %s rows, want 3", rows)
	}

	// app stop: the task stays listed, STARTED N/A; the volume stays.
	p.mustCLI("marathon", "app", "stop", "postgres")
	p.waitTask("/postgres", "the stopped task", 60*time.Second, func(t e2eTask) bool { return t.State == "TASK_KILLED" })
	p.waitDeployments(30 * time.Second)
	assertTaskRow(t, p.mustCLI("marathon", "task", "list"), "/postgres", "True", "N/A", second.ID)
	volDir := filepath.Join(p.workDir, "volumes", "roles", "marathon", first.LocalVolumes[0].PersistenceID)
	if _, err := os.Stat(filepath.Join(volDir, "PG_VERSION")); err != nil {
		t.Fatalf("the stopped instance's volume lacks its data: %v", err)
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		// Docker's proxy is gone with the container.
		t.Logf("port %d still accepts while stopped", port)
	}

	// app start: same instance, next incarnation, same port, the rows.
	p.mustCLI("marathon", "app", "start", "postgres")
	third := p.waitTask("/postgres", "the started task", 90*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive
	})
	if third.InstanceID != first.InstanceID || third.Incarnation != 3 || third.Ports[0] != port {
		t.Fatalf("start: %+v, want instance %s incarnation 3 port %d", third, first.InstanceID, port)
	}
	if notes := psql(t, port, "SELECT string_agg(note, ',' ORDER BY id) FROM tutorial"); notes != "one,two,three" {
		t.Fatalf("rows after start: %q", notes)
	}
	// The stop was clean: no crash recovery on the next start.
	logOut := p.mustCLI("task", "log", "--lines", "200", "--stderr", third.ID) + p.mustCLI("task", "log", "--lines", "200", third.ID)
	if strings.Contains(logOut, "not properly shut down") || strings.Contains(logOut, "automatic recovery in progress") {
		t.Fatalf("PostgreSQL needed crash recovery after a stop:\n%s", logOut)
	}

	// app remove: the volume is deleted, no container is left.
	p.mustCLI("marathon", "app", "remove", "postgres")
	deadline := time.Now().Add(60 * time.Second)
	for {
		_, statErr := os.Stat(volDir)
		if os.IsNotExist(statErr) && len(agentContainers(t, p.agentID)) == 0 && len(p.tasks("")) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after remove: volume %v, containers %+v", statErr, agentContainers(t, p.agentID))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestE2EOfflineImage: when the tutorial's image is not present and cannot
// be pulled, the task fails with a message that names the image and says
// how to proceed, visible in app show, task list/show and the log, and is
// retried with backoff.
func TestE2EOfflineImage(t *testing.T) {
	dc := requireDocker(t)
	app := filepath.Join("..", "..", "testdata", "postgres.marathon.json")
	image := "postgres:9.5"
	_, present := dc.ImageInspect(t.Context(), image)
	if addrs, err := net.LookupHost("registry-1.docker.io"); present == nil || (err == nil && len(addrs) > 0) {
		// The tutorial's image is here or could be pulled: the same app
		// with a tag of it that exists nowhere takes the same path.
		image = "postgres:mesolite-no-such-tag"
		t.Logf("postgres:9.5 is present or a registry is reachable; using %s instead", image)
		b, err := os.ReadFile(app)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`"postgres:9.5"`)) {
			t.Fatalf("%s no longer names postgres:9.5", app)
		}
		app = filepath.Join(t.TempDir(), "postgres.marathon.json")
		if err := os.WriteFile(app, bytes.Replace(b, []byte(`"postgres:9.5"`), []byte(`"`+image+`"`), 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := startAgent(t)
	p.mustCLI("app", "add", app)
	task := p.waitTask("/postgres", "the failed launch", 30*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_FAILED" && t.Message != ""
	})
	for _, want := range []string{fmt.Sprintf("%q", image), "could not be pulled", "make postgres-image", "postgres-offline.marathon.json"} {
		if !strings.Contains(task.Message, want) {
			t.Fatalf("task message %q lacks %q", task.Message, want)
		}
	}
	if show := p.mustCLI("app", "show", "postgres"); !strings.Contains(show, "make postgres-image") {
		t.Fatalf("app show does not say what to do:\n%s", show)
	}
	if show := p.mustCLI("task", "show", task.ID); !strings.Contains(show, "make postgres-image") {
		t.Fatalf("task show does not say what to do:\n%s", show)
	}
	// Backoff: attempts come 1s, 1.15s, 1.32s... apart, not in a loop.
	var times []time.Time
	deadline := time.Now().Add(20 * time.Second)
	for len(times) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("saw %d launch attempts in 20s, want 3", len(times))
		}
		time.Sleep(100 * time.Millisecond)
		times = launchFailures(t, p.logPath)
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < 900*time.Millisecond {
			t.Fatalf("launch attempts %v apart: no backoff (%v)", gap, times)
		}
	}
	if b, _ := os.ReadFile(p.logPath); !strings.Contains(string(b), "make postgres-image") {
		t.Fatal("the agent log does not say what to do")
	}
	p.mustCLI("app", "remove", "postgres")
}

// launchFailures returns the times of the "launch failed" lines of an
// agent's JSON log.
func launchFailures(t *testing.T, path string) []time.Time {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Time
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Message string    `json:"message"`
			Time    time.Time `json:"time"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Message == "launch failed" {
			out = append(out, e.Time)
		}
	}
	return out
}
