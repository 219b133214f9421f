package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/netplane"
	"github.com/mesolite/mesolite/sandbox/netplane/netplanetest"
)

// The network tests run every scenario twice: with the agent as root (it
// changes nftables itself) and as mesolite-ci, a member of the docker
// group who is not root (it goes through the helper container). The test
// process itself stays root: it installs each test's guard, which drops
// any packet to the test's VIP addresses that would leave the machine, and
// reads the kernel's rules to check that a VIP's rule is in place before it
// connects. Each test owns 198.18.<n>.0/24 (VIPs and DNS address) and
// 198.19.<n>.0/24 (named VIPs), and the tutorial's test 5.4.3.2.

// agentUser is the unprivileged user an agent runs as.
type agentUser struct {
	name     string
	uid, gid int
}

func (u *agentUser) setpriv() []string {
	return []string{"setpriv", "--reuid=" + strconv.Itoa(u.uid), "--regid=" + strconv.Itoa(u.gid), "--init-groups", "--"}
}

// netVariant is who runs the agent: root (nil user) or the CI user.
type netVariant struct {
	name string
	user *agentUser
}

// netVariants runs fn as root and as the unprivileged user.
func netVariants(t *testing.T, fn func(t *testing.T, v netVariant)) {
	netplanetest.RequireRoot(t)
	t.Run("root", func(t *testing.T) { fn(t, netVariant{name: "root"}) })
	t.Run("user", func(t *testing.T) {
		u, err := user.Lookup(netplanetest.CIUser)
		if err != nil {
			netplanetest.Missing(t, "user %s is missing (.ci/run creates it: useradd -G docker %s): %v", netplanetest.CIUser, netplanetest.CIUser, err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if _, err := exec.LookPath("setpriv"); err != nil {
			netplanetest.Missing(t, "setpriv is missing (util-linux)")
		}
		fn(t, netVariant{name: "user", user: &agentUser{name: u.Username, uid: uid, gid: gid}})
	})
}

// netEnv is one agent with networking on, and what its test owns.
type netEnv struct {
	t       *testing.T
	p       *agentProc
	v       netVariant
	table   string
	net     netip.Prefix // the test's VIPs
	named   netip.Prefix
	dnsAddr netip.Addr
	gw      netip.Addr
	guard   string
}

// vip is address n of the test's VIP network.
func (e *netEnv) vip(n byte) netip.Addr {
	a := e.net.Addr().As4()
	a[3] = n
	return netip.AddrFrom4(a)
}

// startNetAgent starts an agent of variant v with the [network] of test
// n, after installing the guard of the test's addresses (and extra).
func startNetAgent(t *testing.T, n int, v netVariant, extra ...netip.Prefix) *netEnv {
	t.Helper()
	dc := requireDocker(t)
	facts, err := netplane.ReadHostFacts(context.Background(), dc)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := facts.DefaultBridge()
	if !ok || !b.Gateway.IsValid() {
		t.Fatalf("no default bridge in %+v", facts.Bridges)
	}
	e := &netEnv{t: t, v: v, gw: b.Gateway,
		table: fmt.Sprintf("mesolite_t_e2e%d%s", n, v.name),
		net:   netip.MustParsePrefix(fmt.Sprintf("198.18.%d.0/24", 40+n)),
		named: netip.MustParsePrefix(fmt.Sprintf("198.19.%d.0/24", 40+n)),
		guard: fmt.Sprintf("e2e%d%s", n, v.name),
	}
	e.dnsAddr = e.vip(53)
	netplanetest.Guard(t, e.guard, append([]netip.Prefix{e.net, e.named}, extra...)...)
	upstream := netplanetest.FakeUpstream(t, netip.AddrPortFrom(e.gw, 0))
	cfg := fmt.Sprintf(`[network]
mode = "auto"
table = %q
named_vip_range = %q
dns_address = %q
dns_listen = %q
dns_upstream = [%q]
`, e.table, e.named, e.dnsAddr, netip.AddrPortFrom(e.gw, freeUDPPort(t, e.gw)), upstream)
	e.p = startAgentAs(t, cfg, v.user)
	t.Cleanup(e.cleanup)
	var st struct {
		Network struct {
			Mode string `json:"mode"`
			Off  string `json:"off"`
		} `json:"network"`
	}
	if err := e.p.getJSON("/mesolite/v1/status", &st); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"root": "kernel", "user": "helper"}[v.name]
	if st.Network.Mode != want {
		t.Fatalf("network mode %q (%s), want %q", st.Network.Mode, st.Network.Off, want)
	}
	return e
}

// cleanup stops the agent, removes the network rules and the helper the
// way a user does (mesolite network cleanup, as the agent's user), and
// checks that nothing is left.
func (e *netEnv) cleanup() {
	t := e.t
	e.p.stop(syscall.SIGTERM)
	removeAgentContainers(t, e.p.agentID)
	args := append(append([]string{}, wrapOf(e.v)...), e.p.bin, "network", "cleanup", "--config", e.p.config)
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Errorf("mesolite network cleanup: %v\n%s", err, out)
	}
	if _, err := netplane.NewKernel(e.table).Read(); !errors.Is(err, netplane.ErrNoTable) {
		t.Errorf("table %s left after cleanup: %v", e.table, err)
	}
	if n := netplanetest.GuardDrops(t, e.guard); n != 0 {
		t.Errorf("the guard dropped %d packets: something tried to leave the machine", n)
	}
}

func wrapOf(v netVariant) []string {
	if v.user == nil {
		return nil
	}
	return v.user.setpriv()
}

func freeUDPPort(t *testing.T, at netip.Addr) uint16 {
	t.Helper()
	c, err := net.ListenPacket("udp4", netip.AddrPortFrom(at, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return uint16(c.LocalAddr().(*net.UDPAddr).Port)
}

// vipJSON is an entry of GET /mesolite/v1/vips.
type vipJSON struct {
	AppID    string `json:"appId"`
	Path     string `json:"path"`
	Address  string `json:"address"`
	Name     string `json:"name"`
	Port     int    `json:"port"`
	Served   bool   `json:"served"`
	Reason   string `json:"reason"`
	Backends []struct {
		TaskID  string `json:"taskId"`
		Address string `json:"address"`
		State   string `json:"state"`
		InRules bool   `json:"inRules"`
	} `json:"backends"`
}

func (v vipJSON) inRules() []string {
	var out []string
	for _, b := range v.Backends {
		if b.InRules {
			out = append(out, b.Address)
		}
	}
	return slices.Sorted(slices.Values(out))
}

func (e *netEnv) vips() []vipJSON {
	var r struct {
		VIPs []vipJSON `json:"vips"`
	}
	if err := e.p.getJSON("/mesolite/v1/vips", &r); err != nil {
		e.t.Fatal(err)
	}
	return r.VIPs
}

// kernelBackends reads the VIP's backends from the kernel's rules.
func (e *netEnv) kernelBackends(addr netip.Addr, port uint16) ([]string, bool) {
	s, err := netplane.NewKernel(e.table).Read()
	if err != nil {
		return nil, false
	}
	for _, v := range s.VIPs {
		if v.Addr == addr && v.Port == port && v.Protocol == netplane.TCP {
			var out []string
			for _, b := range v.Backends {
				out = append(out, b.String())
			}
			return slices.Sorted(slices.Values(out)), true
		}
	}
	return nil, false
}

// waitBackends polls until the VIP (an address, or a named VIP's name)
// has n backends in the agent's view and the very same ones in the
// kernel's rules; this is also how a test checks the VIP's rule is in
// place before it connects. It returns the VIP and how long it took.
func (e *netEnv) waitBackends(appID, label string, n int, d time.Duration) (vipJSON, time.Duration) {
	e.t.Helper()
	start := time.Now()
	deadline := start.Add(d)
	var last []vipJSON
	for {
		last = e.vips()
		for _, v := range last {
			if v.AppID != appID || !strings.HasSuffix(v.Path, label) || !v.Served {
				continue
			}
			in := v.inRules()
			if len(in) != n {
				break
			}
			got, ok := e.kernelBackends(netip.MustParseAddr(v.Address), uint16(v.Port))
			if ok && slices.Equal(got, in) {
				return v, time.Since(start)
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("VIP %s %s: not %d backends in the rules after %v: %+v", appID, label, n, d, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (e *netEnv) postApp(def any) {
	e.t.Helper()
	code, body := e.p.do(http.MethodPost, "/v2/apps", def)
	if code != http.StatusCreated {
		e.t.Fatalf("POST /v2/apps: %d %s", code, body)
	}
}

// appContainer is the running container of an app's task.
func (e *netEnv) appContainer(appID string) sandbox.Container {
	e.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		for _, c := range agentContainers(e.t, e.p.agentID) {
			if c.Labels[sandbox.LabelAppID] == appID && c.Running {
				return c
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("no running container of %s", appID)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// psqlIn runs SQL with psql inside a container, retrying while the server
// is not there yet.
func psqlIn(t *testing.T, id, host string, port int, sql string) string {
	t.Helper()
	dc := requireDocker(t)
	script := fmt.Sprintf("psql -h %s -p %d -U postgres -At -v ON_ERROR_STOP=1 -c %q", host, port, sql)
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, code := netplanetest.Exec(t, dc, id, script)
		if code == 0 {
			t.Logf("client$ %s\n%s", script, out)
			return strings.TrimSpace(out)
		}
		if time.Now().After(deadline) || !(strings.Contains(out, "starting up") || strings.Contains(out, "Connection refused")) {
			t.Fatalf("in the client: %s: exit %d\n%s", script, code, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// hostPsql runs psql on the host as the variant's user.
func hostPsql(t *testing.T, v netVariant, host string, sql string) (string, error) {
	args := append(append([]string{}, wrapOf(v)...), "psql", "-h", host, "-U", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PGPASSWORD=DC/OS_ROCKS", "PGCONNECT_TIMEOUT=5")
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// TestE2ENetworkPostgres is the tutorial's step "connect a second app
// through the VIP": PostgreSQL with VIP_0 5.4.3.2:5432 (and, in the test's
// copy, the named VIP /postgres:5432), and a second app, a client
// container, writing and reading rows with psql through the address,
// through postgres.marathon.l4lb.thisdcos.directory and through
// postgres.marathon.mesos with the port of its SRV record; psql -h
// 5.4.3.2 from the host; app stop refuses at once; app start brings the
// same rows back through the VIP.
func TestE2ENetworkPostgres(t *testing.T) {
	netVariants(t, func(t *testing.T, v netVariant) {
		dc := requireDocker(t)
		requireImage(t, dc, pgImage, "postgres-image")
		requirePsql(t)
		e := startNetAgent(t, 1, v, netip.MustParsePrefix("5.4.3.2/32"))

		var def map[string]any
		b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "postgres-offline.marathon.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &def); err != nil {
			t.Fatal(err)
		}
		pm := def["container"].(map[string]any)["portMappings"].([]any)[0].(map[string]any)
		pm["labels"].(map[string]any)["VIP_1"] = "/postgres:5432"
		e.postApp(def)
		e.waitBackends("/postgres", "VIP_0", 1, 90*time.Second)
		e.waitBackends("/postgres", "VIP_1", 1, 10*time.Second)

		e.postApp(map[string]any{
			"id": "/pgclient", "cpus": 0.1, "mem": 64, "instances": 1, "cmd": "exec sleep 100000",
			"networks":  []any{map[string]any{"mode": "container/bridge"}},
			"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": pgImage}},
			"env":       map[string]any{"PGPASSWORD": "DC/OS_ROCKS", "PGCONNECT_TIMEOUT": "5"},
		})
		client := e.appContainer("/pgclient")

		psqlIn(t, client.ID, "5.4.3.2", 5432, "CREATE TABLE notes (id serial PRIMARY KEY, via text)")
		psqlIn(t, client.ID, "5.4.3.2", 5432, "INSERT INTO notes (via) VALUES ('ip vip 5.4.3.2:5432')")
		psqlIn(t, client.ID, "postgres.marathon.l4lb.thisdcos.directory", 5432, "INSERT INTO notes (via) VALUES ('named vip')")
		// The SRV record, resolved as the client resolves (its network
		// namespace and resolv.conf).
		resolver := netplanetest.Run(t, dc, "srv", netplanetest.RunOptions{NetworkMode: "container:" + client.ID})
		out, code := netplanetest.Exec(t, dc, resolver.ID, "srv _postgres._tcp.marathon.mesos")
		f := strings.Fields(out)
		if code != 0 || len(f) != 2 || f[0] != "postgres.marathon.mesos." {
			t.Fatalf("SRV _postgres._tcp.marathon.mesos from the client: %q (exit %d)", out, code)
		}
		srvPort, _ := strconv.Atoi(f[1])
		t.Logf("client$ srv _postgres._tcp.marathon.mesos\n%s", out)
		psqlIn(t, client.ID, "postgres.marathon.mesos", srvPort, "INSERT INTO notes (via) VALUES ('postgres.marathon.mesos SRV port')")
		want := "ip vip 5.4.3.2:5432\nnamed vip\npostgres.marathon.mesos SRV port"
		if got := psqlIn(t, client.ID, "5.4.3.2", 5432, "SELECT via FROM notes ORDER BY id"); got != want {
			t.Fatalf("rows through the VIP: %q, want %q", got, want)
		}
		got, err := hostPsql(t, v, "5.4.3.2", "SELECT via FROM notes ORDER BY id")
		if err != nil || got != want {
			t.Fatalf("psql -h 5.4.3.2 on the host as %s: %q, %v", v.name, got, err)
		}
		t.Logf("host$ psql -h 5.4.3.2 -U postgres -c 'SELECT via FROM notes ORDER BY id'\n%s", got)
		if out := e.p.mustCLI("dns", "postgres.marathon.mesos"); !strings.Contains(out, "IN A "+e.gw.String()) {
			t.Fatalf("mesolite dns postgres.marathon.mesos: %q", out)
		}

		// app stop: the VIP refuses at once, from the host and the client.
		e.p.mustCLI("app", "stop", "postgres")
		e.waitBackends("/postgres", "VIP_0", 0, 60*time.Second)
		start := time.Now()
		if out, err := hostPsql(t, v, "5.4.3.2", "SELECT 1"); err == nil || !strings.Contains(out, "Connection refused") || time.Since(start) > 3*time.Second {
			t.Fatalf("psql to the stopped app's VIP: %q, %v after %v; want refused at once", out, err, time.Since(start))
		}
		if out, code := netplanetest.Exec(t, dc, client.ID, "psql -h 5.4.3.2 -U postgres -c 'SELECT 1'"); code == 0 || !strings.Contains(out, "Connection refused") {
			t.Fatalf("from the client to the stopped app's VIP: %q (exit %d)", out, code)
		}
		// app show says why.
		var shown struct {
			App struct {
				VIPs []vipJSON `json:"vips"`
			} `json:"app"`
		}
		if err := e.p.getJSON("/v2/apps/postgres?embed=mesolite", &shown); err != nil || len(shown.App.VIPs) != 2 || !strings.Contains(shown.App.VIPs[0].Reason, "no backend") {
			t.Fatalf("app show of the stopped app: %+v, %v; want its VIPs saying they have no backend", shown.App.VIPs, err)
		}
		// app start: the same rows, through the VIP.
		e.p.waitDeployments(60 * time.Second)
		e.p.mustCLI("app", "start", "postgres")
		e.waitBackends("/postgres", "VIP_0", 1, 90*time.Second)
		if got := psqlIn(t, client.ID, "5.4.3.2", 5432, "SELECT via FROM notes ORDER BY id"); got != want {
			t.Fatalf("rows after app start: %q, want %q", got, want)
		}
	})
}

// webApp is the test app behind a VIP with an HTTP health check.
func webApp(e *netEnv, id string, instances int, vip netip.Addr, interval int) map[string]any {
	return map[string]any{
		"id": id, "cpus": 0.1, "mem": 32, "instances": instances,
		"networks": []any{map[string]any{"mode": "container/bridge"}},
		"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": netplanetest.ClientImage(e.t, requireDocker(e.t), "netplane")},
			"portMappings": []any{map[string]any{"containerPort": 8080, "hostPort": 0, "labels": map[string]any{"VIP_0": vip.String() + ":80"}}}},
		"healthChecks": []any{map[string]any{"protocol": "HTTP", "path": "/health", "portIndex": 0,
			"intervalSeconds": interval, "gracePeriodSeconds": 30, "timeoutSeconds": 1, "maxConsecutiveFailures": 0}},
		"upgradeStrategy": map[string]any{"minimumHealthCapacity": 0, "maximumOverCapacity": 0},
	}
}

// counts parses the client's "get" output: one host name per line.
func counts(out string) (map[string]int, int) {
	got, failed := map[string]int{}, 0
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.HasPrefix(l, "error:") {
			failed++
			continue
		}
		got[strings.TrimSpace(l)]++
	}
	return got, failed
}

// TestE2ENetworkSpread: three instances of the test app behind one VIP;
// 300 requests from a container, each on a new connection, spread over all
// three (each at least 20%); one instance made unhealthy leaves the VIP
// within one health-check interval and no request fails afterwards; back
// healthy it joins again; scale to 1 and back to 3.
func TestE2ENetworkSpread(t *testing.T) {
	netVariants(t, func(t *testing.T, v netVariant) {
		dc := requireDocker(t)
		e := startNetAgent(t, 2, v)
		vip := e.vip(1)
		const interval = 2
		e.postApp(webApp(e, "/web", 3, vip, interval))
		vj, _ := e.waitBackends("/web", "VIP_0", 3, 90*time.Second)
		client := netplanetest.Run(t, dc, "client", netplanetest.RunOptions{DNS: []string{e.dnsAddr.String()}})
		url := "http://" + vip.String() + "/hostname"

		out, code := netplanetest.Exec(t, dc, client.ID, "get "+url+" 300")
		got, failed := counts(out)
		t.Logf("300 requests through %s: %v", vip, got)
		if code != 0 || failed != 0 || len(got) != 3 {
			t.Fatalf("300 requests: %v, %d failed (exit %d)", got, failed, code)
		}
		for h, n := range got {
			if n < 60 {
				t.Errorf("%s answered %d of 300 requests, want at least 20%%", h, n)
			}
		}

		// One instance made unhealthy (its /health and /hostname answer
		// 503) leaves within one interval.
		victim := vj.Backends[0]
		bad := strings.TrimSuffix(victim.Address, ":8080")
		if code, _ := httpPost(t, "http://"+victim.Address+"/unhealthy"); code != http.StatusOK {
			t.Fatalf("POST /unhealthy to %s: %d", bad, code)
		}
		marked := time.Now()
		e.waitBackends("/web", "VIP_0", 2, 10*time.Second)
		took := time.Since(marked)
		t.Logf("unhealthy instance %s left the VIP %v after it turned unhealthy (interval %ds)", victim.Address, took.Round(time.Millisecond), interval)
		if took > interval*time.Second+500*time.Millisecond {
			t.Errorf("the unhealthy instance left after %v, more than one interval (%ds)", took, interval)
		}
		out, code = netplanetest.Exec(t, dc, client.ID, "get "+url+" 100")
		got, failed = counts(out)
		if code != 0 || failed != 0 || len(got) != 2 {
			t.Fatalf("100 requests after it left: %v, %d failed (exit %d)", got, failed, code)
		}
		// Healthy again: it joins.
		if code, _ := httpPost(t, "http://"+victim.Address+"/healthy"); code != http.StatusOK {
			t.Fatalf("POST /healthy: %d", code)
		}
		e.waitBackends("/web", "VIP_0", 3, time.Duration(interval+5)*time.Second)

		// Scale to 1 and back to 3.
		e.p.waitDeployments(60 * time.Second)
		if code, body := e.p.do(http.MethodPut, "/v2/apps/web", map[string]any{"instances": 1}); code != http.StatusOK {
			t.Fatalf("scale to 1: %d %s", code, body)
		}
		e.waitBackends("/web", "VIP_0", 1, 60*time.Second)
		out, code = netplanetest.Exec(t, dc, client.ID, "get "+url+" 20")
		if got, failed := counts(out); code != 0 || failed != 0 || len(got) != 1 {
			t.Fatalf("20 requests at 1 instance: %v, %d failed", got, failed)
		}
		e.p.waitDeployments(60 * time.Second)
		if code, body := e.p.do(http.MethodPut, "/v2/apps/web", map[string]any{"instances": 3}); code != http.StatusOK {
			t.Fatalf("scale to 3: %d %s", code, body)
		}
		e.waitBackends("/web", "VIP_0", 3, 90*time.Second)
		out, code = netplanetest.Exec(t, dc, client.ID, "get "+url+" 30")
		if got, failed := counts(out); code != 0 || failed != 0 || len(got) != 3 {
			t.Fatalf("30 requests back at 3 instances: %v, %d failed", got, failed)
		}
	})
}

func httpPost(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestE2ENetworkKill: the agent is killed with SIGKILL and started again
// while clients (the host, and a container) loop over new connections to
// a VIP: none fails. The restarted agent keeps the rules until it has
// read Docker's state, then replaces them with the same in one batch; in
// helper mode it adopts the running helper.
func TestE2ENetworkKill(t *testing.T) {
	netVariants(t, func(t *testing.T, v netVariant) {
		dc := requireDocker(t)
		e := startNetAgent(t, 3, v)
		vip := e.vip(1)
		e.postApp(webApp(e, "/web", 2, vip, 1))
		e.waitBackends("/web", "VIP_0", 2, 90*time.Second)
		before, _ := e.kernelBackends(vip, 80)
		helperID := func() string {
			if v.user == nil {
				return ""
			}
			c, err := dc.ContainerInspect(context.Background(), "mesolite-netplane-"+strings.ReplaceAll(e.table, "_", "-"))
			if err != nil {
				t.Fatalf("helper container: %v", err)
			}
			return c.ID
		}
		helper := helperID()
		url := "http://" + vip.String() + "/hostname"
		client := netplanetest.Run(t, dc, "client", netplanetest.RunOptions{})

		var ok, failed atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // the host, new connections one after the other
			defer wg.Done()
			c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = errors.New(resp.Status)
					}
				}
				if err != nil {
					failed.Add(1)
					t.Logf("host request failed: %v", err)
					continue
				}
				ok.Add(1)
			}
		}()
		var inContainer strings.Builder
		wg.Add(1)
		go func() { // a container, batches of 100 new connections until the end
			defer wg.Done()
			for i := 0; i < 500; i++ {
				select {
				case <-stop:
					return
				default:
				}
				out, _ := netplanetest.Exec(t, dc, client.ID, "get "+url+" 100")
				inContainer.WriteString(out)
			}
		}()
		waitCount := func(n int64) {
			deadline := time.Now().Add(30 * time.Second)
			for ok.Load() < n && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
		}
		waitCount(50)
		e.p.stop(syscall.SIGKILL)
		down := ok.Load()
		waitCount(down + 200) // answered while the agent is dead
		t.Logf("%d requests answered while the agent was dead", ok.Load()-down)
		e.p.start()
		// The restarted agent applies its state once it has synced.
		deadline := time.Now().Add(30 * time.Second)
		for {
			var st struct {
				Network struct {
					Applied string `json:"lastApplied"`
				} `json:"network"`
			}
			if err := e.p.getJSON("/mesolite/v1/status", &st); err == nil && st.Network.Applied != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the restarted agent applied no state")
			}
			time.Sleep(20 * time.Millisecond)
		}
		after := ok.Load()
		waitCount(after + 200)
		close(stop)
		wg.Wait()
		got, cfailed := counts(inContainer.String())
		t.Logf("across SIGKILL and restart: host %d answered, %d failed; container %v, %d failed", ok.Load(), failed.Load(), got, cfailed)
		if failed.Load() != 0 || cfailed != 0 || len(got) != 2 {
			t.Fatalf("failed connections: host %d, container %d (answers %v)", failed.Load(), cfailed, got)
		}
		if now, _ := e.kernelBackends(vip, 80); !slices.Equal(now, before) {
			t.Errorf("backends after the restart %v, before %v", now, before)
		}
		if h := helperID(); h != helper {
			t.Errorf("the helper was replaced across the restart (%s → %s)", helper, h)
		}
	})
}

// TestE2ENetworkBadInput: VIP labels that mesolite must not take over, a
// malformed one, and two apps on one VIP address and port are refused with
// 422 at the label's path, and nothing of them reaches the kernel.
func TestE2ENetworkBadInput(t *testing.T) {
	netVariants(t, func(t *testing.T, v netVariant) {
		dc := requireDocker(t)
		e := startNetAgent(t, 4, v)
		facts, err := netplane.ReadHostFacts(context.Background(), dc)
		if err != nil {
			t.Fatal(err)
		}
		var hostAddr string
		for _, a := range facts.Addrs {
			if a.Prefix.Addr().Is4() && !a.Prefix.Addr().IsLoopback() && !strings.HasPrefix(a.Iface, "docker") && !strings.HasPrefix(a.Iface, "br-") {
				hostAddr = a.Prefix.Addr().String()
				break
			}
		}
		if hostAddr == "" {
			t.Fatalf("no address of this host in %+v", facts.Addrs)
		}
		app := func(id, label string) map[string]any {
			return map[string]any{"id": id, "cpus": 0.1, "mem": 32, "instances": 0,
				"networks": []any{map[string]any{"mode": "container/bridge"}},
				"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "mesolite/testapp:latest"},
					"portMappings": []any{map[string]any{"containerPort": 8080, "labels": map[string]any{"VIP_0": label}}}}}
		}
		first := e.vip(7).String() + ":80"
		e.postApp(app("/first", first))
		e.postApp(app("/named", "/shared:80"))
		const path = "/container/portMappings(0)/labels/VIP_0"
		for _, tc := range []struct{ name, label, want string }{
			{"loopback", "127.0.0.1:5432", "loopback"},
			{"docker subnet", "172.17.250.1:5432", "Docker's network \"bridge\""},
			{"host address", hostAddr + ":5432", "an address of this machine"},
			{"malformed", "5.4.3.2", "is not a VIP"},
			{"two apps, one VIP", first, "already taken by app /first"},
			{"two apps, one named VIP", "/shared:80", "already taken by app /named"},
		} {
			code, body := e.p.do(http.MethodPost, "/v2/apps", app("/bad", tc.label))
			var r struct {
				Message string `json:"message"`
				Details []struct {
					Path   string   `json:"path"`
					Errors []string `json:"errors"`
				} `json:"details"`
			}
			_ = json.Unmarshal(body, &r)
			if code != http.StatusUnprocessableEntity || len(r.Details) != 1 || r.Details[0].Path != path || !strings.Contains(strings.Join(r.Details[0].Errors, " "), tc.want) {
				t.Errorf("%s (%s): %d %s; want 422 at %s saying %q", tc.name, tc.label, code, body, path, tc.want)
			}
			// The same through an update of an existing app.
			code, body = e.p.do(http.MethodPut, "/v2/apps/named", app("/named", tc.label))
			if tc.name != "two apps, one named VIP" && code != http.StatusUnprocessableEntity {
				t.Errorf("%s by PUT: %d %s, want 422", tc.name, code, body)
			}
		}
		if code, _ := e.p.do(http.MethodGet, "/v2/apps/bad", nil); code != http.StatusNotFound {
			t.Errorf("a refused app exists: GET /v2/apps/bad = %d", code)
		}
		// Nothing of them is in the kernel: only the two good VIPs.
		deadline := time.Now().Add(10 * time.Second)
		for {
			s, err := netplane.NewKernel(e.table).Read()
			var keys []string
			for _, x := range s.VIPs {
				keys = append(keys, x.Key().String())
			}
			if err == nil && len(s.VIPs) == 2 && slices.Contains(keys, first+"/tcp") {
				for _, x := range s.VIPs {
					if !e.net.Contains(x.Addr) && !e.named.Contains(x.Addr) {
						t.Errorf("a VIP outside the test's addresses is in the kernel: %s", x.Key())
					}
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the kernel's VIPs: %v, %v; want only %s and the named one", keys, err, first)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
