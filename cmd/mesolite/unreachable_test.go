package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"

	"github.com/mesolite/mesolite/sandbox/helper"
)

// unreachableGID is the group the agent of TestUnreachableContainers runs
// with (as root otherwise), so that the test's nftables rule can tell its
// connections from everyone else's on this shared machine: Docker's proxy
// for published ports, other tests' agents and the test itself keep
// reaching containers.
const unreachableGID = 47151

// unreachableApp is a bridge app whose process never listens on the port
// its checks use: the test app listens on 8080, the checks go to 9999.
// Docker's proxy accepts connections on the published port all the same.
const unreachableApp = `{
  "id": "/neverlistens",
  "cpus": 0.1, "mem": 32, "instances": 1,
  "networks": [{"mode": "container/bridge"}],
  "container": {"type": "DOCKER", "docker": {"image": "mesolite/testapp:latest"},
    "portMappings": [{"containerPort": 9999, "hostPort": 0, "protocol": "tcp"}]},
  "healthChecks": [
    {"protocol": "TCP", "portIndex": 0, "gracePeriodSeconds": 3, "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3},
    {"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 3, "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}
  ],
  "backoffSeconds": 1
}`

// TestUnreachableContainers makes this Linux host behave as Docker Desktop
// and rootless Docker do for the agent: its connections to containers'
// own addresses are dropped, while published ports keep working (an
// nftables table of the test's own, matching the agent's group, that drops
// the agent's packets to the bridge's subnet unless they are a published
// port's translation). Detection picks the direct path without the rule
// and the helper path with it; through the helper the tutorial's test app
// becomes healthy, an app whose process never listens is never healthy
// and is relaunched after its failures; SIGKILL and a restart of the agent
// adopt the tasks and the helper; a helper that dies is made again; and
// mesolite cleanup removes it.
func TestUnreachableContainers(t *testing.T) {
	c := requireDocker(t)
	requireImage(t, c, "mesolite/testapp:latest", "test-image")
	if os.Geteuid() != 0 {
		missing(t, "the test's nftables rule needs root")
	}
	nft, err := exec.LookPath("nft")
	if err != nil {
		missing(t, "nft is not installed (apt-get install nftables): %v", err)
	}
	subnet := bridgeSubnet(t, c)

	lo := 33200 + int(time.Now().UnixNano()%50)*10
	dir := t.TempDir()
	p := &agentProc{t: t, bin: mesoliteBinary(t), workDir: t.TempDir(), config: filepath.Join(dir, "agent.toml"),
		logPath: filepath.Join(dir, "agent.log"), addr: freeAddr(t),
		cred: &syscall.Credential{Uid: 0, Gid: unreachableGID, Groups: []uint32{}}}
	// The e2e configuration with the check path left to detection.
	cfgText := strings.Replace(fmt.Sprintf(e2eConfig, lo, lo+9), `check_path = "direct"`, `check_path = "auto"`, 1) + e2eNetworkOff
	if err := os.WriteFile(p.config, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		removeAgentContainers(t, p.agentID)
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 120 {
				lines = lines[len(lines)-120:]
			}
			t.Logf("agent log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})

	// Without the rule: the direct path.
	p.start()
	st := waitCheckPath(t, p, "direct")
	t.Logf("without the rule: %s", st.Reason)
	firstHelper := checkHelperID(t, c, p.agentID)
	p.stop(syscall.SIGTERM)

	// With the rule: the helper path, on the same helper container.
	table := fmt.Sprintf("mesolite_lt_%d", os.Getpid())
	rules := fmt.Sprintf(`table inet %[1]s {
	chain out {
		type filter hook output priority 0; policy accept;
		meta skgid %[2]d ip daddr %[3]s ct status dnat accept
		meta skgid %[2]d ip daddr %[3]s counter drop
	}
}
`, table, unreachableGID, subnet)
	nftRun(t, nft, rules, "-f", "-")
	t.Cleanup(func() { nftRun(t, nft, "", "delete", "table", "inet", table) })
	p.start()
	st = waitCheckPath(t, p, "helper")
	t.Logf("with the rule: %s", st.Reason)
	if dropped := nftDropped(t, nft, table); dropped == 0 {
		t.Fatalf("the rule dropped no packet of the agent: detection did not try the direct path")
	}
	if id := checkHelperID(t, c, p.agentID); id != firstHelper {
		t.Fatalf("the agent's restart made a new helper %s instead of adopting %s", id[:12], firstHelper[:12])
	}

	// The tutorial's test app becomes healthy through the helper.
	def, err := os.ReadFile(filepath.Join("..", "..", "testdata", "testapp.marathon.json"))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := p.do("POST", "/v2/apps", rawJSON(string(def))); code != 201 {
		t.Fatalf("POST testapp: %d %s", code, body)
	}
	healthy := p.waitTask("/testapp", "healthy through the helper", 60*time.Second, func(tk e2eTask) bool {
		return tk.State == "TASK_RUNNING" && len(tk.HealthCheckResults) == 1 && tk.HealthCheckResults[0].Alive
	})

	// An app whose process never listens is never healthy, and is killed
	// and relaunched after its failures, although its published port
	// accepts connections (Docker's proxy).
	if code, body := p.do("POST", "/v2/apps", rawJSON(unreachableApp)); code != 201 {
		t.Fatalf("POST neverlistens: %d %s", code, body)
	}
	var first e2eTask
	causes := map[string]bool{} // the failure causes the checks reported
	deadline := time.Now().Add(60 * time.Second)
	for relaunched := false; !relaunched; {
		var r struct {
			Tasks []struct {
				ID                 string `json:"id"`
				HealthCheckResults []struct {
					Alive            bool   `json:"alive"`
					LastFailureCause string `json:"lastFailureCause"`
				} `json:"healthCheckResults"`
			} `json:"tasks"`
		}
		if err := p.getJSON("/v2/apps/neverlistens/tasks", &r); err != nil {
			t.Fatal(err)
		}
		for _, tk := range r.Tasks {
			for i, h := range tk.HealthCheckResults {
				if h.Alive {
					t.Fatalf("task %s of the never-listening app reported healthy by check %d", tk.ID, i)
				}
				if h.LastFailureCause != "" {
					causes[h.LastFailureCause] = true
				}
			}
		}
		for _, tk := range p.tasks("/neverlistens") {
			if tk.State == "TASK_RUNNING" && first.ID == "" {
				first = tk
				if len(tk.Ports) == 1 {
					if conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(tk.Ports[0])), 2*time.Second); err == nil {
						conn.Close()
						t.Logf("its published port %d accepts connections (Docker's proxy): a check there would have lied", tk.Ports[0])
					}
				}
			}
			if first.ID != "" && tk.InstanceID == first.InstanceID && tk.Incarnation > first.Incarnation && tk.State == "TASK_RUNNING" {
				t.Logf("relaunched after its failures: %s -> %s", first.ID, tk.ID)
				relaunched = true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the never-listening app was not relaunched within 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	refused := 0
	for c := range causes {
		if strings.Contains(c, "refused") {
			refused++
		}
	}
	if refused < 2 {
		t.Fatalf("failure causes %v: want the TCP and the HTTP check refused by the container itself", causes)
	}

	// SIGKILL and restart: the tasks and the helper are adopted.
	p.stop(syscall.SIGKILL)
	p.start()
	waitCheckPath(t, p, "helper")
	if id := checkHelperID(t, c, p.agentID); id != firstHelper {
		t.Fatalf("after SIGKILL the agent made a new helper %s instead of adopting %s", id[:12], firstHelper[:12])
	}
	again := p.waitTask("/testapp", "adopted and healthy", 30*time.Second, func(tk e2eTask) bool {
		return tk.State == "TASK_RUNNING" && len(tk.HealthCheckResults) == 1 && tk.HealthCheckResults[0].Alive
	})
	if again.ID != healthy.ID {
		t.Fatalf("the test app's task after the restart is %s, want %s adopted", again.ID, healthy.ID)
	}
	var status struct {
		Recovery struct {
			Adopted int `json:"adopted"`
		} `json:"recovery"`
	}
	if err := p.getJSON("/mesolite/v1/status", &status); err != nil || status.Recovery.Adopted < 2 {
		t.Fatalf("recovery adopted %d tasks (%v), want both apps' tasks", status.Recovery.Adopted, err)
	}

	// The helper dies: it is made again and the checks go on through it.
	ctx := context.Background()
	if err := c.ContainerRemove(ctx, firstHelper, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	removedAt := time.Now()
	waitUntil(t, 60*time.Second, "a new check helper", func() bool {
		id := checkHelperIDMaybe(c, p.agentID)
		return id != "" && id != firstHelper
	})
	waitUntil(t, 60*time.Second, "a check through the new helper", func() bool {
		var r struct {
			Tasks []struct {
				HealthCheckResults []struct {
					Alive       bool   `json:"alive"`
					LastSuccess string `json:"lastSuccess"`
				} `json:"healthCheckResults"`
			} `json:"tasks"`
		}
		if p.getJSON("/v2/apps/testapp/tasks", &r) != nil || len(r.Tasks) != 1 || len(r.Tasks[0].HealthCheckResults) != 1 {
			return false
		}
		h := r.Tasks[0].HealthCheckResults[0]
		at, err := time.Parse(time.RFC3339Nano, h.LastSuccess)
		return err == nil && h.Alive && at.After(removedAt.Add(time.Second))
	})

	// The explicit clean-up removes the helper of a stopped agent.
	p.stop(syscall.SIGTERM)
	out, err := exec.Command(p.bin, "cleanup", "--config", p.config, "--work-dir", p.workDir).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "removed check helper container") {
		t.Fatalf("mesolite cleanup: %v\n%s", err, out)
	}
	if id := checkHelperIDMaybe(c, p.agentID); id != "" {
		t.Fatalf("check helper %s left after mesolite cleanup", id[:12])
	}
}

// bridgeSubnet is the default bridge network's IPv4 subnet.
func bridgeSubnet(t *testing.T, c *client.Client) string {
	t.Helper()
	n, err := c.NetworkInspect(context.Background(), "bridge", network.InspectOptions{})
	if err != nil {
		t.Fatalf("inspect the bridge network: %v", err)
	}
	for _, cfg := range n.IPAM.Config {
		if ip, _, err := net.ParseCIDR(cfg.Subnet); err == nil && ip.To4() != nil {
			return cfg.Subnet
		}
	}
	t.Fatalf("the bridge network has no IPv4 subnet: %+v", n.IPAM.Config)
	return ""
}

type checkPathStatus struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// waitCheckPath waits until the agent has chosen its check path, and
// fails unless it is want.
func waitCheckPath(t *testing.T, p *agentProc, want string) checkPathStatus {
	t.Helper()
	var st struct {
		HealthChecks checkPathStatus `json:"healthChecks"`
	}
	waitUntil(t, 30*time.Second, "the check path", func() bool {
		return p.getJSON("/mesolite/v1/status", &st) == nil && st.HealthChecks.Path != "pending"
	})
	if st.HealthChecks.Path != want {
		t.Fatalf("check path %q (%s), want %q", st.HealthChecks.Path, st.HealthChecks.Reason, want)
	}
	return st.HealthChecks
}

// checkHelperIDMaybe is the id of the agent's running check helper, or "".
func checkHelperIDMaybe(c *client.Client, agentID string) string {
	list, err := c.ContainerList(context.Background(), container.ListOptions{Filters: filters.NewArgs(
		filters.Arg("label", helper.LabelOwner+"=agent:"+agentID), filters.Arg("label", helper.LabelHelper+"=checks"))})
	if err != nil || len(list) != 1 {
		return ""
	}
	return list[0].ID
}

func checkHelperID(t *testing.T, c *client.Client, agentID string) string {
	t.Helper()
	id := checkHelperIDMaybe(c, agentID)
	if id == "" {
		t.Fatal("the agent has no running check helper")
	}
	return id
}

// nftRun runs nft with args and stdin.
func nftRun(t *testing.T, nft, stdin string, args ...string) {
	t.Helper()
	cmd := exec.Command(nft, args...)
	cmd.Stdin = strings.NewReader(stdin)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// nftDropped is the packet count of the table's drop rule.
func nftDropped(t *testing.T, nft, table string) int {
	t.Helper()
	out, err := exec.Command(nft, "-j", "list", "table", "inet", table).Output()
	if err != nil {
		t.Fatalf("nft list table: %v", err)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	for _, item := range doc.Nftables {
		raw, ok := item["rule"]
		if !ok || !bytes.Contains(raw, []byte(`"counter"`)) {
			continue
		}
		m := regexp.MustCompile(`"packets":\s*(\d+)`).FindSubmatch(raw)
		if m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			return n
		}
	}
	t.Fatalf("no counter in table %s:\n%s", table, out)
	return 0
}
