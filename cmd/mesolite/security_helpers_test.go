package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// Helpers of the tests of issue 10 (safe on a laptop).

// startAgentTOML starts an agent whose agent.toml is exactly cfg (listen
// and work_dir come from flags), on a fresh work directory.
func startAgentTOML(t *testing.T, cfg string) *agentProc {
	t.Helper()
	dir := t.TempDir()
	p := &agentProc{t: t, bin: mesoliteBinary(t), workDir: t.TempDir()}
	p.config = filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(p.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p.logPath = filepath.Join(dir, "agent.log")
	p.addr = freeAddr(t)
	p.start()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		removeWorkDirContainers(t, p.workDir)
		removeAgentContainers(t, p.agentID)
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if !strings.Contains(l, `"message":"api request"`) {
					lines = append(lines, l)
				}
			}
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			t.Logf("agent log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	return p
}

// baseTOML is an agent.toml for the tests: ports [lo, lo+n), short
// grace periods, and extra lines appended (tables of their own).
func baseTOML(lo, n int, extra string) string {
	return fmt.Sprintf(`hostname = "127.0.0.1"
publish_address = "127.0.0.1"
log_level = "debug"
log_format = "json"
[resources]
ports = "%d-%d"
[recovery]
reconcile_interval = "2s"
orphan_grace = "2s"
`, lo, lo+n-1) + extra
}

// removeWorkDirContainers force-removes every container that mounts a
// directory of workDir, whatever agent id it carries: a test that damages
// the agent's identity may leave containers of two ids.
func removeWorkDirContainers(t *testing.T, workDir string) {
	for _, id := range workDirContainers(t, workDir, true) {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return
		}
		_ = c.ContainerRemove(context.Background(), id, container.RemoveOptions{Force: true})
		c.Close()
	}
}

// workDirContainers lists the ids of mesolite's containers (any agent id)
// that mount a directory of workDir; all of them, or the running ones.
func workDirContainers(t *testing.T, workDir string, all bool) []string {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil
	}
	defer c.Close()
	list, err := c.ContainerList(context.Background(), container.ListOptions{All: all, Filters: filters.NewArgs(filters.Arg("label", "mesolite.agent_id"))})
	if err != nil {
		return nil
	}
	var out []string
	for _, ct := range list {
		for _, m := range ct.Mounts {
			if strings.HasPrefix(m.Source, workDir+"/") {
				out = append(out, ct.ID)
				break
			}
		}
	}
	return out
}

// mountsOf returns the running containers (any agent id) that mount dir.
// It may run on a goroutine of its own: it reports errors, not fails.
func mountsOf(dir string) ([]string, error) {
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	list, err := c.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(filters.Arg("label", "mesolite.agent_id"))})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, ct := range list {
		for _, m := range ct.Mounts {
			if m.Source == dir {
				out = append(out, ct.ID[:12])
			}
		}
	}
	return out, nil
}

// rawResponse is what raw got back.
type rawResponse struct {
	status int
	header http.Header
	body   string
}

// raw sends one request with exactly the given headers ("Host" sets the
// Host header) and body.
func (p *agentProc) raw(method, path string, headers map[string]string, body string) rawResponse {
	p.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, p.url()+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return rawResponse{resp.StatusCode, resp.Header, string(b)}
}

// postJSON sends a JSON body with Content-Type: application/json.
func (p *agentProc) postJSON(method, path, body string) rawResponse {
	p.t.Helper()
	return p.raw(method, path, map[string]string{"Content-Type": "application/json"}, body)
}

// eventually polls cond until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", d, what, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// recordApp is the tutorial's test app under another id, healthy within
// seconds.
func recordApp(id string, neverHealthy bool) string {
	env := `"DATA_DIR":"/mnt/mesos/sandbox/data"`
	grace := 10
	if neverHealthy {
		env += `,"NO_LISTEN":"1"`
		grace = 300
	}
	return fmt.Sprintf(`{"id":%q,"cpus":0.1,"mem":32,"instances":1,
 "networks":[{"mode":"container/bridge"}],
 "container":{"type":"DOCKER","docker":{"image":"mesolite/testapp:latest"},
  "volumes":[{"containerPath":"data","mode":"RW","persistent":{"size":4}}],
  "portMappings":[{"containerPort":8080,"hostPort":0}]},
 "env":{%s},
 "healthChecks":[{"protocol":"HTTP","path":"/health","portIndex":0,"gracePeriodSeconds":%d,"intervalSeconds":2,"timeoutSeconds":1,"maxConsecutiveFailures":3}],
 "upgradeStrategy":{"minimumHealthCapacity":0,"maximumOverCapacity":0}}`, id, env, grace)
}
