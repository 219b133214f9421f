package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// agentProc is a mesolite agent (bin/mesolite) running as a child process
// on its own work directory, so its containers carry its own agent id.
type agentProc struct {
	name    string
	bin     string
	workDir string
	config  string
	logPath string
	listen  string
	api     *apiClient

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan error
	agentID string
}

const agentConfig = `# written by mesolite-bench
hostname = "127.0.0.1"
publish_address = "127.0.0.1"
log_level = "info"
log_format = "json"
[resources]
cpus = 64
mem = 65536
disk = 1000000
ports = "%d-%d"
[tasks]
# Health checks connect straight to the containers; the helper path is
# measured on its own (helperHealth).
check_path = "direct"
`

// newAgentProc prepares an agent named name under root: a work directory,
// a config file with the given host port range, and a free API port.
func newAgentProc(root, bin, name string, portMin, portMax int) (*agentProc, error) {
	dir := filepath.Join(root, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(root, name+".toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(agentConfig, portMin, portMax)+agentNetwork), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	listen := "127.0.0.1:" + strconv.Itoa(port)
	return &agentProc{
		name: name, bin: bin, workDir: dir, config: cfg, logPath: filepath.Join(root, name+".log"),
		listen: listen, api: newAPIClient("http://" + listen),
	}, nil
}

// publishPort is a free host port for a Docker baseline container to
// publish, in 29000-29999: below the ephemeral range, from which Docker
// picks the ports it publishes on its own ("127.0.0.1::8080": the check
// helper's, Compose's) and the kernel its clients' ports, and outside the
// agents' range (31000-31999). A port freePort gives may be taken by one
// of those while the baseline container is stopped, and its start then
// fails with "port is already allocated" (seen in a full run).
func publishPort() (int, error) {
	publishMu.Lock()
	defer publishMu.Unlock()
	const low, n = 29000, 1000
	for range n {
		publishNext++
		p := low + publishNext%n
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		_ = l.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d", low, low+n-1)
}

var (
	publishMu   sync.Mutex
	publishNext int
)

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start starts the process and returns when it was started.
func (p *agentProc) start() (time.Time, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return time.Time{}, errors.New("agent already running")
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return time.Time{}, err
	}
	cmd := exec.Command(p.bin, "agent", "--config", p.config, "--work-dir", p.workDir, "--listen", p.listen)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return time.Time{}, fmt.Errorf("start %s: %w", p.bin, err)
	}
	p.cmd = cmd
	done := make(chan error, 1)
	p.done = done
	go func() { done <- cmd.Wait(); logf.Close() }()
	return t0, nil
}

func (p *agentProc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// waitReady polls the status until the first sync with Docker is done.
func (p *agentProc) waitReady(ctx context.Context, timeout time.Duration) (statusJSON, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := p.api.status(ctx)
		if err == nil && s.Recovery.Done {
			p.mu.Lock()
			p.agentID = s.AgentID
			p.mu.Unlock()
			return s, nil
		}
		if p.exited() {
			return s, fmt.Errorf("agent %s exited; see %s", p.name, p.logPath)
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("agent %s not ready after %s (last error: %v); see %s", p.name, timeout, err, p.logPath)
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

func (p *agentProc) exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return true
	}
	select {
	case err := <-p.done:
		p.done <- err
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits for the process to end (SIGKILL after 15 s).
// The agent leaves its containers running, as it does on any stop.
func (p *agentProc) stop() error {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("agent %s did not stop within 15 s; killed", p.name)
	}
}

// id reads the agent id from the work directory (the agent writes it on
// its first start), so cleanup finds its containers even if the API never
// answered.
func agentIDOf(workDir string) string {
	b, err := os.ReadFile(filepath.Join(workDir, "meta", "agent", "agent.json"))
	if err != nil {
		return ""
	}
	var env struct {
		Data struct {
			AgentID string `json:"agentId"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &env) != nil {
		return ""
	}
	return env.Data.AgentID
}

// procRSS is a process's resident memory in MiB.
func procRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				return 0, err
			}
			return float64(kb) / 1024, nil
		}
	}
	return 0, errors.New("no VmRSS")
}

var clkTck = func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && v > 0 {
			return float64(v)
		}
	}
	return 100
}()

// procCPU is a process's CPU time so far, all threads: the sum of each
// thread's run time in /proc/<pid>/task/*/schedstat (nanoseconds), or,
// where that is missing, utime+stime of /proc/<pid>/stat (clock ticks,
// 10 ms).
func procCPU(pid int) (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err == nil {
		var sum time.Duration
		ok := true
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", pid, t.Name()))
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					continue // the thread just ended
				}
				ok = false
				break
			}
			f := strings.Fields(string(b))
			if len(f) == 0 {
				ok = false
				break
			}
			ns, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				ok = false
				break
			}
			sum += time.Duration(ns)
		}
		if ok {
			return sum, nil
		}
	}
	return procStatCPU(pid)
}

// procStatCPU is utime+stime of /proc/<pid>/stat.
func procStatCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; fields count from after its ")".
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errors.New("short /proc stat")
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("bad /proc stat times")
	}
	return time.Duration((ut + st) / clkTck * float64(time.Second)), nil
}

// cpuPercent measures a process's CPU use over d, as % of one core.
func cpuPercent(ctx context.Context, pid int, d time.Duration) (float64, error) {
	c0, err := procCPU(pid)
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	c1, err := procCPU(pid)
	if err != nil {
		return 0, err
	}
	return float64(c1-c0) / float64(time.Since(t0)) * 100, nil
}
