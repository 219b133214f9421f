package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// TestE2EDockerRestart restarts the Docker daemon under a running
// resident app: the agent keeps answering with the last known state while
// the daemon is down, and when it is back relaunches the task (stopped by
// the daemon's restart) in place, on the same volume, with the data.
//
// It stops dockerd for everyone, so it runs only with
// MESOLITE_DOCKER_RESTART=1, on its own (make test runs it in a step of its
// own, after the other tests). Under CI=true it fails instead of skipping,
// so CI cannot silently leave it out.
func TestE2EDockerRestart(t *testing.T) {
	const reason = "restarts dockerd; make test runs it on its own"
	if os.Getenv("MESOLITE_DOCKER_RESTART") != "1" {
		missing(t, "%s (with MESOLITE_DOCKER_RESTART=1)", reason)
	}
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	d := findDockerDaemon(t)
	t.Logf("dockerd pid %d, restarted by %s", d.pid, d.how)
	p := startAgentWith(t, 21900, 10, "", nil)
	dockerOutage(t, p, dc, d.stop, d.start)
}

// TestE2EDockerOutage is the same scenario without touching the daemon:
// the agent talks to Docker through a socket proxy that the test closes,
// and the app's container is stopped meanwhile, as a daemon restart does.
// It runs with the other Docker tests.
func TestE2EDockerOutage(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	px := newDockerProxy(t)
	p := startAgentWith(t, 21910, 10, fmt.Sprintf("docker_host = %q\n", "unix://"+px.path), nil)
	down := func() {
		px.down()
		for _, c := range agentContainers(t, p.agentID) {
			if err := dc.ContainerStop(context.Background(), c.ID, container.StopOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	dockerOutage(t, p, dc, down, px.up)
}

// dockerOutage runs the test app, writes a key, takes Docker away with
// down and brings it back with up, and checks what the agent does.
func dockerOutage(t *testing.T, p *agentProc, dc *client.Client, down, up func()) {
	p.mustCLI("marathon", "app", "add", filepath.Join("..", "..", "testdata", "testapp.marathon.json"))
	before := p.waitTask("/testapp", "a healthy task", 60*time.Second, func(t e2eTask) bool {
		return t.State == "TASK_RUNNING" && len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive
	})
	p.waitDeployments(30 * time.Second)
	base := fmt.Sprintf("http://127.0.0.1:%d", before.Ports[0])
	if code := httpPut(t, base+"/kv/survivor", "kept across the outage", 10*time.Second); code != http.StatusNoContent {
		t.Fatalf("PUT through the host port: %d", code)
	}
	volume := before.LocalVolumes[0].PersistenceID

	down()
	// The agent answers throughout, and shows the instance's task as it
	// last knew it; it notices that Docker is gone.
	api := &http.Client{Timeout: 5 * time.Second, Transport: hostChecked{}}
	var states []string
	deadline := time.Now().Add(60 * time.Second)
	for polls := 0; ; polls++ {
		var ts struct {
			Tasks []e2eTask `json:"tasks"`
		}
		resp, err := api.Get(p.url() + "/v2/tasks?embed=mesolite")
		if err != nil {
			t.Fatalf("the agent did not answer GET /v2/tasks while Docker was down: %v", err)
		}
		err = jsonBody(resp, &ts)
		if err != nil || len(ts.Tasks) != 1 || ts.Tasks[0].InstanceID != before.InstanceID {
			t.Fatalf("GET /v2/tasks while Docker was down: %+v %v, want the task of instance %s", ts.Tasks, err, before.InstanceID)
		}
		states = append(states, ts.Tasks[0].ID+" "+ts.Tasks[0].State)
		var status struct {
			DockerUp bool `json:"dockerUp"`
		}
		if err := p.getJSON("/mesolite/v1/status", &status); err != nil {
			t.Fatalf("GET /mesolite/v1/status while Docker was down: %v", err)
		}
		if !status.DockerUp && polls >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent still says dockerUp after 60s of outage; tasks seen: %v", states)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("while Docker was down the agent showed: %v", compact(states))
	up()

	after := p.waitTask("/testapp", "the task relaunched in place", 90*time.Second, func(t e2eTask) bool {
		return t.ID != before.ID && t.State == "TASK_RUNNING" && len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive
	})
	if after.InstanceID != before.InstanceID || after.Incarnation <= before.Incarnation {
		t.Fatalf("after the outage the task is %s, want a later incarnation of %s", after.ID, before.InstanceID)
	}
	if after.Incarnation != before.Incarnation+1 {
		var app struct {
			App struct {
				LastTaskFailure map[string]any `json:"lastTaskFailure"`
			} `json:"app"`
		}
		_ = p.getJSON("/v2/apps/testapp", &app)
		t.Logf("relaunched as incarnation %d; the last failure: %v", after.Incarnation, app.App.LastTaskFailure)
	}
	if len(after.Ports) != 1 || after.Ports[0] != before.Ports[0] || len(after.LocalVolumes) != 1 || after.LocalVolumes[0].PersistenceID != volume {
		t.Fatalf("relaunched on ports %v volumes %+v, the reservation has port %v volume %s", after.Ports, after.LocalVolumes, before.Ports, volume)
	}
	if code, body := httpGet(t, base+"/kv/survivor", 10*time.Second); code != http.StatusOK || body != "kept across the outage" {
		t.Fatalf("the key after the outage: %d %q", code, body)
	}
	deadline = time.Now().Add(30 * time.Second)
	for {
		cs := agentContainers(t, p.agentID)
		if len(cs) == 1 && cs[0].Running && cs[0].TaskID() == after.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers after the outage: %+v, want one running for %s", cs, after.ID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	vols, _ := filepath.Glob(filepath.Join(p.workDir, "volumes", "roles", "*", "*"))
	if len(vols) != 1 || filepath.Base(vols[0]) != volume {
		t.Fatalf("volumes after the outage: %v, want only %s", vols, volume)
	}
	var status struct {
		DockerUp bool `json:"dockerUp"`
	}
	if err := p.getJSON("/mesolite/v1/status", &status); err != nil || !status.DockerUp {
		t.Fatalf("status after the outage: %+v %v", status, err)
	}
}

func jsonBody(resp *http.Response, v any) error {
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// compact drops consecutive repeats.
func compact(list []string) []string {
	var out []string
	for _, s := range list {
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// dockerDaemon is this machine's Docker daemon, to stop and start again.
// Through /etc/init.d/docker when that script manages it (its
// start-stop-daemon pid file names the daemon); otherwise the daemon in
// /var/run/docker.pid gets SIGTERM and is started again with the same
// command line, environment and directory.
type dockerDaemon struct {
	t       *testing.T
	how     string // "service" or "signal"
	pid     int
	cmdline []string
	env     []string
	dir     string
	stopped bool
}

const (
	dockerPidfile = "/var/run/docker.pid"
	initPidfile   = "/var/run/docker-ssd.pid" // written by /etc/init.d/docker
)

func readPid(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func findDockerDaemon(t *testing.T) *dockerDaemon {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("restarting dockerd needs root")
	}
	pid := readPid(dockerPidfile)
	if pid == 0 {
		t.Fatalf("no daemon pid in %s: cannot tell which dockerd to restart", dockerPidfile)
	}
	d := &dockerDaemon{t: t, how: "signal", pid: pid}
	if readPid(initPidfile) == pid {
		if _, err := exec.LookPath("service"); err == nil {
			d.how = "service"
		}
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		t.Fatal(err)
	}
	d.cmdline = strings.Split(strings.TrimRight(string(cmdline), "\x00"), "\x00")
	if filepath.Base(d.cmdline[0]) != "dockerd" {
		t.Fatalf("%s names pid %d, which runs %v, not dockerd", dockerPidfile, pid, d.cmdline)
	}
	env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	d.env = strings.Split(strings.TrimRight(string(env), "\x00"), "\x00")
	d.dir, _ = os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	// Whatever happens to the test, Docker is running again after it.
	t.Cleanup(func() {
		if d.stopped {
			d.start()
		}
	})
	return d
}

// stop stops the daemon and waits until its process is gone (it stops
// the containers first).
func (d *dockerDaemon) stop() {
	switch d.how {
	case "service":
		if out, err := exec.Command("service", "docker", "stop").CombinedOutput(); err != nil {
			d.t.Fatalf("service docker stop: %v: %s", err, out)
		}
	default:
		if err := syscall.Kill(d.pid, syscall.SIGTERM); err != nil {
			d.t.Fatalf("stop dockerd (pid %d): %v", d.pid, err)
		}
	}
	d.stopped = true
	deadline := time.Now().Add(2 * time.Minute)
	for alive(d.pid) {
		if time.Now().After(deadline) {
			d.t.Fatalf("dockerd (pid %d) still running 2 minutes after it was asked to stop", d.pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// alive: the process exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...
	if i := strings.LastIndexByte(string(b), ')'); i > 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// start starts the daemon again and waits until it answers.
func (d *dockerDaemon) start() {
	switch d.how {
	case "service":
		if out, err := exec.Command("service", "docker", "start").CombinedOutput(); err != nil {
			d.t.Fatalf("service docker start: %v: %s", err, out)
		}
	default:
		logf, err := os.OpenFile("/var/log/docker.log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			d.t.Fatal(err)
		}
		cmd := exec.Command(d.cmdline[0], d.cmdline[1:]...)
		cmd.Env, cmd.Dir = d.env, d.dir
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives the test
		if err := cmd.Start(); err != nil {
			d.t.Fatalf("start %v: %v", d.cmdline, err)
		}
		logf.Close()
		go func() { _ = cmd.Wait() }()
	}
	d.stopped = false
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		d.t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := c.Ping(ctx)
		cancel()
		if pid := readPid(dockerPidfile); err == nil && pid != 0 && pid != d.pid {
			d.pid = pid
			return
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("dockerd does not answer 2 minutes after it was started again: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// dockerProxy forwards a unix socket to the Docker daemon's, and can be
// closed (connections refused, streams cut) and opened again.
type dockerProxy struct {
	t      *testing.T
	path   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newDockerProxy(t *testing.T) *dockerProxy {
	t.Helper()
	target := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		rest, ok := strings.CutPrefix(h, "unix://")
		if !ok {
			missing(t, "DOCKER_HOST=%s is not a unix socket; the proxy forwards only those", h)
		}
		target = rest
	}
	dir, err := os.MkdirTemp("", "mesolite-docker-proxy-")
	if err != nil {
		t.Fatal(err)
	}
	px := &dockerProxy{t: t, path: filepath.Join(dir, "docker.sock"), target: target, conns: map[net.Conn]bool{}}
	px.up()
	t.Cleanup(func() {
		px.down()
		os.RemoveAll(dir)
	})
	return px
}

func (px *dockerProxy) up() {
	ln, err := net.Listen("unix", px.path)
	if err != nil {
		px.t.Fatal(err)
	}
	px.mu.Lock()
	px.ln = ln
	px.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go px.forward(c)
		}
	}()
}

func (px *dockerProxy) forward(c net.Conn) {
	d, err := net.Dial("unix", px.target)
	if err != nil {
		c.Close()
		return
	}
	px.mu.Lock()
	if px.ln == nil { // closed meanwhile
		px.mu.Unlock()
		c.Close()
		d.Close()
		return
	}
	px.conns[c], px.conns[d] = true, true
	px.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(d, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, d); done <- struct{}{} }()
	<-done
	c.Close()
	d.Close()
	px.mu.Lock()
	delete(px.conns, c)
	delete(px.conns, d)
	px.mu.Unlock()
}

// down refuses new connections and cuts the open ones.
func (px *dockerProxy) down() {
	px.mu.Lock()
	defer px.mu.Unlock()
	if px.ln != nil {
		px.ln.Close()
		px.ln = nil
	}
	for c := range px.conns {
		c.Close()
	}
}
