package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/sandbox/helper"
)

// End-to-end tests run the real binary against the real Docker daemon.
// Under CI=true a missing daemon or image fails them; elsewhere they skip
// with the reason.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// mesoliteBinary builds the binary once per test run.
func mesoliteBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mesolite-bin-")
		if err != nil {
			buildErr = err
			return
		}
		// Readable by every user, and static as make build makes it: the
		// network tests run the agent as an unprivileged user, whose helper
		// container is made of this binary alone.
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mesolite")
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// missing ends a test that lacks something it needs: it fails under
// CI=true, where everything must be there, and skips elsewhere.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true, so this fails instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}

// requireDocker fails (under CI=true) or skips when no daemon answers.
func requireDocker(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Ping(ctx)
		cancel()
	}
	if err != nil {
		missing(t, "docker daemon does not answer: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// requireImage fails (under CI=true) or skips when an image is missing.
func requireImage(t *testing.T, c *client.Client, ref, makeTarget string) {
	t.Helper()
	if _, err := c.ImageInspect(context.Background(), ref); err != nil {
		missing(t, "image %s is missing: run make %s: %v", ref, makeTarget, err)
	}
}

// agentProc is a mesolite agent running as a child process.
type agentProc struct {
	t       *testing.T
	bin     string
	workDir string
	addr    string
	config  string
	logPath string
	env     []string
	wrap    []string            // runs the agent through this (setpriv as another user)
	cred    *syscall.Credential // the agent's user and groups, when set
	cmd     *exec.Cmd
	done    chan error
	agentID string
}

const e2eConfig = `
hostname = "127.0.0.1"
publish_address = "127.0.0.1"
log_level = "debug"
log_format = "json"
[resources]
ports = "%d-%d"
[tasks]
kill_grace_period = "5s"
check_path = "direct"
[recovery]
reconcile_interval = "2s"
orphan_grace = "2s"
`

// e2eNetworkOff keeps the agents of the tests that are not about
// networking off it: agents running side by side must not share the
// nftables table and the DNS port of the default configuration.
const e2eNetworkOff = "[network]\nmode = \"off\"\n"

// startAgent starts an agent on a fresh work directory and a free port.
func startAgent(t *testing.T) *agentProc {
	t.Helper()
	return startAgentAs(t, e2eNetworkOff, nil)
}

// startAgentAs starts an agent with extra configuration (a [network]
// section), run through wrap when given (setpriv, as an unprivileged user:
// the directories are then given to that user).
func startAgentAs(t *testing.T, extra string, wrap *agentUser) *agentProc {
	t.Helper()
	p := &agentProc{t: t, bin: mesoliteBinary(t), workDir: t.TempDir()}
	dir := t.TempDir()
	// A port range of its own per test, so parallel runs do not collide.
	lo := 32000 + int(time.Now().UnixNano()%200)*100
	p.config = filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(p.config, []byte(fmt.Sprintf(e2eConfig, lo, lo+99)+extra), 0o644); err != nil {
		t.Fatal(err)
	}
	if wrap != nil {
		p.wrap = wrap.setpriv()
		for _, d := range []string{p.workDir, dir} {
			if err := os.Chown(d, wrap.uid, wrap.gid); err != nil {
				t.Fatal(err)
			}
			// The test's temporary directory above it is root's, 0700.
			if err := os.Chmod(filepath.Dir(d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	p.logPath = filepath.Join(dir, "agent.log")
	p.addr = freeAddr(t)
	checkTraffic(t, p.addr)
	p.start()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		removeAgentContainers(t, p.agentID)
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			t.Logf("agent log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	return p
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (p *agentProc) url() string { return "http://" + p.addr }

func (p *agentProc) start() {
	p.t.Helper()
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		p.t.Fatal(err)
	}
	args := append(append([]string{}, p.wrap...), p.bin, "agent", "--config", p.config, "--work-dir", p.workDir, "--listen", p.addr)
	p.cmd = exec.Command(args[0], args[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), p.env...)
	if p.cred != nil {
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var status struct {
			AgentID string `json:"agentId"`
		}
		if err := p.getJSON("/mesolite/v1/status", &status); err == nil {
			p.agentID = status.AgentID
			return
		}
		select {
		case err := <-p.done:
			b, _ := os.ReadFile(p.logPath)
			p.cmd = nil // gone: nothing for stop to wait for
			p.t.Fatalf("agent exited at start: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatal("agent did not answer within 15s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop signals the agent and waits for it to exit.
func (p *agentProc) stop(sig syscall.Signal) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

func (p *agentProc) getJSON(path string, v any) error {
	resp, err := http.Get(p.url() + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (p *agentProc) do(method, path string, body any) (int, []byte) {
	p.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, p.url()+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// cli runs a mesolite client command against the agent, in process.
func (p *agentProc) cli(args ...string) (string, string, int) {
	var out, errb bytes.Buffer
	code := run(append([]string{"--url", p.url()}, args...), strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// mustCLI runs a command and fails the test unless it exits 0.
func (p *agentProc) mustCLI(args ...string) string {
	p.t.Helper()
	out, errOut, code := p.cli(args...)
	if code != 0 {
		p.t.Fatalf("mesolite %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

type e2eTask struct {
	ID                 string `json:"id"`
	AppID              string `json:"appId"`
	State              string `json:"state"`
	StartedAt          string `json:"startedAt"`
	Ports              []int  `json:"ports"`
	InstanceID         string `json:"instanceId"`
	Incarnation        int    `json:"incarnation"`
	Message            string `json:"message"`
	HealthCheckResults []struct {
		Alive bool `json:"alive"`
	} `json:"healthCheckResults"`
	LocalVolumes []struct {
		PersistenceID string `json:"persistenceId"`
	} `json:"localVolumes"`
}

func (p *agentProc) tasks(appID string) []e2eTask {
	var r struct {
		Tasks []e2eTask `json:"tasks"`
	}
	if err := p.getJSON("/v2/tasks?embed=mesolite", &r); err != nil {
		p.t.Fatal(err)
	}
	var out []e2eTask
	for _, t := range r.Tasks {
		if appID == "" || t.AppID == appID {
			out = append(out, t)
		}
	}
	return out
}

// waitTask polls until the app's only task satisfies cond.
func (p *agentProc) waitTask(appID, what string, d time.Duration, cond func(t e2eTask) bool) e2eTask {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ts := p.tasks(appID)
		if len(ts) == 1 && cond(ts[0]) {
			return ts[0]
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("timed out after %v waiting for %s; tasks: %+v", d, what, ts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDeployments polls until no deployment is in progress.
func (p *agentProc) waitDeployments(d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		var ds []map[string]any
		if err := p.getJSON("/v2/deployments", &ds); err == nil && len(ds) == 0 {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("deployments still in progress after %v: %v", d, ds)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// containers lists the Docker containers labelled for an agent.
func agentContainers(t *testing.T, agentID string) []sandbox.Container {
	t.Helper()
	d, err := docker.New(docker.Config{Layout: sandbox.Layout{AgentID: agentID}, Logger: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	list, err := d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// removeAgentContainers force-removes whatever a test's agent left.
func removeAgentContainers(t *testing.T, agentID string) {
	if agentID == "" {
		return
	}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer c.Close()
	list, err := c.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", sandbox.LabelAgentID+"="+agentID))})
	if err != nil {
		return
	}
	// The agent's helper containers carry no task label, only their owner.
	helpers, err := c.ContainerList(context.Background(), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", helper.LabelOwner+"=agent:"+agentID))})
	if err == nil {
		list = append(list, helpers...)
	}
	for _, ct := range list {
		_ = c.ContainerRemove(context.Background(), ct.ID, container.RemoveOptions{Force: true})
	}
}

// httpGet fetches a URL, retrying until the deadline (a task's port may
// take a moment to accept).
func httpGet(t *testing.T, url string, d time.Duration) (int, string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		resp, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func httpPut(t *testing.T, url, body string, d time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			return resp.StatusCode
		}
		if time.Now().After(deadline) {
			t.Fatalf("PUT %s: %v", url, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// rawJSON marks a string as an already-encoded JSON body.
type rawJSON string

// MarshalJSON returns the string as it is.
func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }

func netDial(addr string) (net.Conn, error) { return net.DialTimeout("tcp", addr, 2*time.Second) }
