package netplane

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/sandbox/helper"
	"github.com/mesolite/mesolite/sandbox/netplane/netplanetest"
)

// helperPkg is the helper binary of these tests (mesolite's own binary
// carries it once the agent is wired).
const helperPkg = "github.com/mesolite/mesolite/sandbox/netplane/testdata/helperbin"

// helperGuard is the guard of the helper tests: their VIPs, their DNS
// address and their named range.
func helperGuard(t *testing.T, name string) {
	netplanetest.Guard(t, name, netip.MustParsePrefix("198.18.12.0/24"), netip.MustParsePrefix("198.19.212.0/24"))
}

// TestPlaneKernel: as root, mode auto takes the kernel path and serves
// DNS in this process.
func TestPlaneKernel(t *testing.T) {
	netplanetest.RequireRoot(t)
	c := netplanetest.Docker(t)
	helperGuard(t, "planekernel")
	p := Open(context.Background(), Config{Mode: "auto", Table: "mesolite_t_planekernel", Docker: c, Logger: zerolog.Nop()})
	if p.Mode() != ModeKernel {
		t.Fatalf("mode %s (%s), want kernel as root", p.Mode(), p.Reason())
	}
	defer p.Close()
	scenario(t, c, p, "198.18.12.21", "198.18.12.52")
	if err := p.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := NewKernel("mesolite_t_planekernel").Read(); !errors.Is(err, ErrNoTable) {
		t.Fatalf("after Cleanup: %v, want no table", err)
	}
}

// TestHelperAsRoot runs the helper path as root ([network] mode =
// "helper").
func TestHelperAsRoot(t *testing.T) {
	netplanetest.RequireRoot(t)
	helperGuard(t, "helperroot")
	helperScenario(t, "root", "helper", "198.18.12.1", "198.18.12.53")
}

// TestHelperUnprivileged runs the helper path as a user of the docker
// group who is not root: mode auto finds it may not change nftables and
// uses the helper container. The parent, root, installs the guard and
// checks afterwards that nothing is left.
func TestHelperUnprivileged(t *testing.T) {
	if netplanetest.IsChild() {
		if os.Geteuid() == 0 {
			t.Fatal("the child runs as root")
		}
		if err := NewKernel("mesolite_t_probe").Probe(); !errors.Is(err, ErrPermission) {
			t.Fatalf("as an unprivileged user, Probe = %v, want ErrPermission", err)
		}
		helperScenario(t, "user", "auto", "198.18.12.11", "198.18.12.54")
		return
	}
	netplanetest.RequireRoot(t)
	helperGuard(t, "helperuser")
	netplanetest.RunAsUser(t, "TestHelperUnprivileged", []string{helperPkg})
	if _, err := NewKernel("mesolite_t_helper_user").Read(); !errors.Is(err, ErrNoTable) {
		t.Errorf("after the unprivileged run: %v, want the table removed", err)
	}
}

func helperScenario(t *testing.T, tag, mode, vipAddr, dnsAddr string) {
	c := netplanetest.Docker(t)
	bin := netplanetest.StaticBinary(t, helperPkg)
	cfg := Config{
		Mode: mode, Table: "mesolite_t_helper_" + tag, Docker: c, Logger: zerolog.Nop(),
		HelperName: fmt.Sprintf("mesolite-t-netplane-%s-%d", tag, os.Getpid()), HelperOwner: "test-" + tag,
		HelperBinary: bin,
	}
	p := Open(context.Background(), cfg)
	if p.Mode() != ModeHelper {
		t.Fatalf("mode %s (%s), want helper", p.Mode(), p.Reason())
	}
	t.Cleanup(func() {
		if err := p.Cleanup(context.Background()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := c.ContainerInspect(ctx, cfg.HelperName); err == nil {
			t.Errorf("helper container %s left after Cleanup", cfg.HelperName)
		}
	})
	applied := scenario(t, c, p, vipAddr, dnsAddr)

	// The helper dies: the rules stay in the kernel and VIPs keep working;
	// Heal recreates it and applies the state again, DNS included.
	ctx := context.Background()
	before, err := c.ContainerInspect(ctx, cfg.HelperName)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ContainerRemove(ctx, cfg.HelperName, container.RemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	for body, n := range spread(t, "http://"+vipAddr+"/hostname", 4) {
		t.Logf("with the helper gone: %s answered %d", body, n)
	}
	if err := p.Heal(ctx); err != nil {
		t.Fatal(err)
	}
	after, err := c.ContainerInspect(ctx, cfg.HelperName)
	if err != nil || after.ID == before.ID || after.Config.Labels[helper.LabelHelper] != "netplane" {
		t.Fatalf("after Heal: %v, %v: want a new helper container", after.ID, err)
	}
	if err := p.Check(ctx, applied); err != nil {
		t.Fatal(err)
	}
	dnsWorks(t, c, dnsAddr, "web.marathon.mesos")

	// A restarted agent opens the plane again: the running helper is
	// adopted, not recreated, and the rules in place are read back
	// before anything is applied.
	p2 := Open(ctx, cfg)
	if p2.Mode() != ModeHelper {
		t.Fatalf("second Open: %s (%s)", p2.Mode(), p2.Reason())
	}
	again, err := c.ContainerInspect(ctx, cfg.HelperName)
	if err != nil || again.ID != after.ID {
		t.Fatalf("second Open replaced the helper (%s → %s, %v)", short(after.ID), short(again.ID), err)
	}
	got, err := p2.Read(ctx)
	if err != nil || !Equal(got, applied) {
		t.Fatalf("read back after adopting: %+v, %v", got, err)
	}
}

func short(id string) string { return id[:min(12, len(id))] }

// scenario applies a VIP with two real backends, a named VIP and DNS
// through the plane, checks the rules are in place (read back through the
// plane), and connects from the host and from a container, through the
// address and through the names. It returns the state applied.
func scenario(t *testing.T, c dockerClient, p *Plane, vipAddr, dnsAddr string) State {
	t.Helper()
	dc := netplanetest.Docker(t)
	gw := gateway(t, dc)
	upstream := fakeUpstream(t, netip.AddrPortFrom(gw, 0))
	be0 := netplanetest.Run(t, dc, "pbe0", netplanetest.RunOptions{})
	be1 := netplanetest.Run(t, dc, "pbe1", netplanetest.RunOptions{})
	client := netplanetest.Run(t, dc, "pclient", netplanetest.RunOptions{DNS: []string{dnsAddr}})
	apps := []App{{
		ID: "/web", Bridge: true,
		Ports: []Port{{Path: "/container/portMappings(0)", ContainerPort: 8080, Labels: map[string]string{"VIP_0": vipAddr + ":80", "VIP_1": "/web:80"}}},
		Tasks: []Task{
			{ID: "web.1", State: TaskServing, IP: be0.IP, HostPorts: []uint16{31901}},
			{ID: "web.2", State: TaskServing, IP: be1.IP, HostPorts: []uint16{31902}},
		},
	}}
	facts, err := ReadHostFacts(context.Background(), dc)
	if err != nil {
		t.Fatal(err)
	}
	named := netip.MustParsePrefix("198.19.212.0/24")
	cfg := BuildConfig{AgentAddr: gw, NamedRange: named, Checker: &Checker{Facts: facts, NamedRange: named},
		DNS: &DNSConfig{Listen: netip.AddrPortFrom(gw, freePort(t, "udp")), Address: netip.MustParseAddr(dnsAddr), Upstreams: []string{upstream.String()}}}
	state, _ := Build(apps, cfg, nil)
	if err := p.Apply(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	// The rule for each VIP is in place before any connection is opened.
	if err := p.Check(context.Background(), state); err != nil {
		t.Fatal(err)
	}
	waitServing(t, fmt.Sprintf("http://%s:8080/hostname", be0.IP), fmt.Sprintf("http://%s:8080/hostname", be1.IP))
	got := spread(t, "http://"+vipAddr+"/hostname", 20)
	if got[hostname(be0.ID)] != 10 || got[hostname(be1.ID)] != 10 {
		t.Fatalf("from the host: %v, want 10 and 10", got)
	}
	out, code := netplanetest.Exec(t, dc, client.ID, "get http://web.marathon.l4lb.thisdcos.directory/hostname 4")
	if l := lines(out); code != 0 || l[hostname(be0.ID)] != 2 || l[hostname(be1.ID)] != 2 {
		t.Fatalf("from a container, through the named VIP: %q (exit %d)", out, code)
	}
	dnsWorks(t, dc, dnsAddr, "web.marathon.mesos")
	if out, code := netplanetest.Exec(t, dc, client.ID, "lookup elsewhere.example"); code != 0 || strings.TrimSpace(out) != "192.0.2.99" {
		t.Fatalf("a forwarded name: %q (exit %d)", out, code)
	}
	return state
}

type dockerClient = DockerAPI

// dnsWorks asks for name from a fresh container pointed at dnsAddr,
// retrying for a few seconds (a recreated helper reloads its state).
func dnsWorks(t *testing.T, c interface{}, dnsAddr, name string) {
	t.Helper()
	dc := netplanetest.Docker(t)
	client := netplanetest.Run(t, dc, "dnscheck", netplanetest.RunOptions{DNS: []string{dnsAddr}})
	var out string
	for i := 0; i < 50; i++ {
		var code int
		out, code = netplanetest.Exec(t, dc, client.ID, "lookup "+name)
		if code == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("lookup %s through %s: %q", name, dnsAddr, out)
}

// TestPlaneKernelDNSTaken: a second agent on the same table (its DNS
// address held by the first) fails its Apply, saying what to do, and
// leaves the first agent's rules as they are.
func TestPlaneKernelDNSTaken(t *testing.T) {
	netplanetest.RequireRoot(t)
	c := netplanetest.Docker(t)
	vips, namedRange := netip.MustParsePrefix("198.18.13.0/24"), netip.MustParsePrefix("198.19.213.0/24")
	netplanetest.Guard(t, "dnstaken", vips, namedRange)
	const table = "mesolite_t_dnstaken"
	t.Cleanup(func() { _ = NewKernel(table).Remove() })
	held, err := net.ListenPacket("udp4", "127.0.0.1:0") // the first agent's DNS server
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := BuildConfig{Checker: &Checker{NamedRange: namedRange}, NamedRange: namedRange,
		DNS: &DNSConfig{Listen: netip.MustParseAddrPort(held.LocalAddr().String())}}
	app := func(vip string) []App {
		return []App{{ID: "/db", Bridge: true,
			Ports: []Port{{Path: "/container/portMappings(0)", ContainerPort: 5432, Labels: map[string]string{"VIP_0": vip}}},
			Tasks: []Task{{ID: "db.1", State: TaskServing, IP: netip.MustParseAddr("172.31.255.10")}}}}
	}
	first, _ := Build(app("198.18.13.10:5432"), cfg, nil)
	if len(first.VIPs) != 1 {
		t.Fatalf("the first agent's state has %d VIPs, want 1", len(first.VIPs))
	}
	if err := NewKernel(table).Apply(first); err != nil {
		t.Fatal(err)
	}

	p := Open(context.Background(), Config{Mode: "kernel", Table: table, Docker: c, Logger: zerolog.Nop()})
	defer p.Close()
	if p.Mode() != ModeKernel {
		t.Fatalf("mode %s (%s), want kernel as root", p.Mode(), p.Reason())
	}
	second, _ := Build(app("198.18.13.20:5432"), cfg, nil)
	err = p.Apply(context.Background(), second)
	if err == nil || !strings.Contains(err.Error(), "another mesolite agent with networking on") {
		t.Fatalf("Apply with the DNS address taken: %v, want an error saying what to do", err)
	}
	got, err := NewKernel(table).Read()
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(got, first) {
		t.Errorf("the first agent's rules changed:\n got %+v\nwant %+v", got.VIPs, first.VIPs)
	}
}
