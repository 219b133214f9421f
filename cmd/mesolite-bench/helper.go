package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// helperHealth measures health checks through the check helper: the agent
// is restarted with check_path = "helper" on its n health-checked tasks
// (adopted), and the CPU of the agent, the helper's process and the Docker
// proxy of the helper's published port is measured in the same windows,
// per check, against the direct path's figure measured before. The agent
// is then restarted on the direct path again.
func (b *bench) helperHealth(p *agentProc, appID string, n int) error {
	cfg, err := os.ReadFile(p.config)
	if err != nil {
		return err
	}
	restart := func(text string) error {
		if err := p.stop(); err != nil {
			return err
		}
		if err := os.WriteFile(p.config, []byte(text), 0o644); err != nil {
			return err
		}
		if _, err := p.start(); err != nil {
			return err
		}
		_, err := p.waitReady(b.ctx, 60*time.Second)
		return err
	}
	helperCfg := strings.Replace(string(cfg), `check_path = "direct"`, `check_path = "helper"`, 1)
	if err := restart(helperCfg); err != nil {
		return err
	}
	defer func() {
		if err := restart(string(cfg)); err != nil {
			b.step("restart on the direct path: %v", err)
		}
	}()
	if err := b.waitCheckPath(p, "helper"); err != nil {
		return err
	}
	if err := b.waitHealthy(p, appID, n); err != nil {
		return err
	}
	helperPID, port, err := b.checkHelper(p.agentID)
	if err != nil {
		return err
	}
	proxyPID := dockerProxyPID(port) // 0 where published ports need no proxy process
	b.step("checks through the helper (pid %d, published port %d, docker-proxy pid %d)", helperPID, port, proxyPID)
	b.sleep(3 * time.Second)
	var agentCPU, helperCPU, proxyCPU, perCheck []float64
	for i := 0; i < b.p.healthWindows; i++ {
		pids := []int{p.pid(), helperPID, proxyPID}
		c0 := make([]time.Duration, 3)
		for j, pid := range pids {
			if pid != 0 {
				if c0[j], err = procCPU(pid); err != nil {
					return err
				}
			}
		}
		t0 := time.Now()
		b.sleep(b.p.healthWindow)
		wall := time.Since(t0)
		pct := make([]float64, 3)
		for j, pid := range pids {
			if pid != 0 {
				c1, err := procCPU(pid)
				if err != nil {
					return err
				}
				pct[j] = 100 * float64(c1-c0[j]) / float64(wall)
			}
		}
		agentCPU, helperCPU, proxyCPU = append(agentCPU, pct[0]), append(helperCPU, pct[1]), append(proxyCPU, pct[2])
		// n checks a second: CPU-µs per check of the three together.
		perCheck = append(perCheck, (pct[0]+pct[1]+pct[2])/100*1e6/float64(n))
	}
	da, dh, dp, dc := dist(agentCPU, true), dist(helperCPU, true), dist(proxyCPU, true), dist(perCheck, true)
	b.rep.add(&Figure{Key: "health.helper.agent_cpu", Section: "health", Name: fmt.Sprintf("through the helper: agent CPU, %d tasks, an HTTP check each every second", n), Unit: "% of a core", Value: da.P50, Dist: da})
	b.rep.add(&Figure{Key: "health.helper.helper_cpu", Section: "health", Name: "through the helper: the helper's CPU", Unit: "% of a core", Value: dh.P50, Dist: dh})
	b.rep.add(&Figure{Key: "health.helper.proxy_cpu", Section: "health", Name: "through the helper: CPU of the Docker proxy of its published port", Unit: "% of a core", Value: dp.P50, Dist: dp})
	f := b.rep.add(&Figure{Key: "health.helper.per_check", Section: "health", Name: "through the helper: CPU per check (agent + helper + proxy)", Unit: "µs", Value: dc.P50, Dist: dc})
	for _, g := range b.rep.Figures {
		if g.Key == "health.cpu" {
			direct := g.Value / 100 * 1e6 / float64(n)
			b.rep.add(&Figure{Key: "health.direct.per_check", Section: "health", Name: "direct: agent CPU per check", Unit: "µs", Value: direct})
			if direct > 0 {
				f.Note = fmt.Sprintf("%.1f× the direct path's %.0f µs", dc.P50/direct, direct)
			}
		}
	}
	rss := b.sampleRSS(helperPID, 5)
	b.rep.add(&Figure{Key: "memory.helper", Section: "memory", Name: "check helper: RSS of its process", Unit: "MiB", Value: rss.P50, Dist: rss})
	if shim := parentPID(helperPID); shim != 0 {
		srss := b.sampleRSS(shim, 3)
		b.rep.add(&Figure{Key: "memory.helper.shim", Section: "memory", Name: "check helper: RSS of the containerd shim that holds it", Unit: "MiB", Value: srss.P50, Dist: srss})
	}
	return nil
}

// waitCheckPath waits until the agent reports the check path want.
func (b *bench) waitCheckPath(p *agentProc, want string) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var st struct {
			HealthChecks struct {
				Path   string `json:"path"`
				Reason string `json:"reason"`
			} `json:"healthChecks"`
		}
		err := p.api.do(b.ctx, "GET", "/mesolite/v1/status", nil, &st)
		if err == nil && st.HealthChecks.Path == want {
			return nil
		}
		if err == nil && st.HealthChecks.Path != "pending" {
			return fmt.Errorf("check path %q (%s), want %q", st.HealthChecks.Path, st.HealthChecks.Reason, want)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("check path not %q after 60 s (%v)", want, err)
		}
		b.sleep(100 * time.Millisecond)
	}
}

// checkHelper finds the agent's check helper: its process and published
// port.
func (b *bench) checkHelper(agentID string) (pid, port int, err error) {
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	list, err := b.dc.ContainerList(ctx, container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "mesolite.helper.owner=agent:"+agentID))})
	if err != nil || len(list) != 1 {
		return 0, 0, fmt.Errorf("find the check helper of agent %s: %d found (%v)", agentID, len(list), err)
	}
	in, err := b.dc.ContainerInspect(ctx, list[0].ID)
	if err != nil {
		return 0, 0, err
	}
	for _, pb := range in.NetworkSettings.Ports {
		for _, b := range pb {
			if port, err = strconv.Atoi(b.HostPort); err == nil {
				break
			}
		}
	}
	return in.State.Pid, port, nil
}

// dockerProxyPID is the docker-proxy process of a published host port, or
// 0 when there is none.
func dockerProxyPID(port int) int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range dirs {
		b, err := os.ReadFile(d)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "docker-proxy" {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-host-port" && args[i+1] == strconv.Itoa(port) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(d)))
				return pid
			}
		}
	}
	return 0
}

// parentPID is a process's parent, or 0.
func parentPID(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
