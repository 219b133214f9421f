package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/docker/docker/client"
	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/sandbox/netplane"
)

// networkConfig is agent.toml's [network]: VIPs, forwarded host ports and
// the DNS names of Mesos-DNS and DC/OS, through sandbox/netplane.
type networkConfig struct {
	Mode          string   `toml:"mode"`
	Table         string   `toml:"table"`
	NamedVIPRange string   `toml:"named_vip_range"`
	AgentAddress  string   `toml:"agent_address"`
	DNS           bool     `toml:"dns"`
	DNSAddress    string   `toml:"dns_address"`
	DNSListen     string   `toml:"dns_listen"`
	DNSUpstream   []string `toml:"dns_upstream"`
}

// defaultNamedVIPRange is where named VIPs take their addresses: the top
// /20 of 198.18.0.0/15, the block RFC 2544 reserves for benchmarking and
// that is never routed on the Internet, so a named VIP can never take over
// a real address. The rest of the block stays free for IP VIPs (the tests
// use it).
const defaultNamedVIPRange = "198.19.240.0/20"

func defaultNetworkConfig() networkConfig {
	return networkConfig{Mode: "auto", Table: "mesolite", NamedVIPRange: defaultNamedVIPRange, DNS: true}
}

var tableName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,30}$`)

func (n networkConfig) validate() []string {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	switch n.Mode {
	case "auto", "kernel", "helper", "off":
	default:
		add("network.mode %q: want auto, kernel, helper or off", n.Mode)
	}
	if !tableName.MatchString(n.Table) {
		add("network.table %q: want a name of lower-case letters, digits and _ (e.g. mesolite)", n.Table)
	}
	if p, err := netip.ParsePrefix(n.NamedVIPRange); err != nil || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 {
		add("network.named_vip_range %q: want an IPv4 range between /8 and /30 that nothing routes, e.g. %s", n.NamedVIPRange, defaultNamedVIPRange)
	}
	for key, v := range map[string]string{"agent_address": n.AgentAddress, "dns_address": n.DNSAddress} {
		if a, err := netip.ParseAddr(v); v != "" && (err != nil || !a.Is4()) {
			add("network.%s %q: want an IPv4 address, or empty", key, v)
		}
	}
	if n.DNSListen != "" {
		if ap, err := netip.ParseAddrPort(n.DNSListen); err != nil || !ap.Addr().Is4() {
			add("network.dns_listen %q: want an IPv4 address and port, e.g. 172.17.0.1:53, or empty", n.DNSListen)
		}
	}
	for _, u := range n.DNSUpstream {
		if _, err := netip.ParseAddrPort(u); err != nil {
			add("network.dns_upstream %q: want address:port, e.g. 192.168.1.1:53", u)
		}
	}
	return errs
}

// openNetwork opens the data plane the [network] section asks for. It
// never fails the agent: where networking cannot be set up it returns a
// configuration that says, once and clearly, which part is off and why
// (logged here, shown in /mesolite/v1/status and for every VIP).
func openNetwork(ctx context.Context, cfg fileConfig, log zerolog.Logger) (agent.NetworkConfig, *netplane.Plane) {
	n := cfg.Network
	off := func(why string) (agent.NetworkConfig, *netplane.Plane) {
		if n.Mode != "off" {
			log.Warn().Str("off", why).Msg("networking is off: VIPs are not served and tasks get no Mesos-DNS names; everything else works")
		}
		return agent.NetworkConfig{Mode: string(netplane.ModeOff), Off: why, Table: n.Table}, nil
	}
	if n.Mode == "off" {
		return off("[network] mode = \"off\"")
	}
	host := cfg.DockerHost
	if host == "" {
		host, _ = docker.ResolveHost(os.Getenv) // the daemon the tasks run on
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation(), client.WithHost(host))
	if err != nil {
		return off(fmt.Sprintf("no Docker client: %v", err))
	}
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	facts, ferr := netplane.ReadHostFacts(fctx, cli)
	cancel()
	agentAddr, _ := netip.ParseAddr(n.AgentAddress)
	if !agentAddr.IsValid() {
		b, ok := facts.DefaultBridge()
		if !ok || !b.Gateway.IsValid() {
			return off(fmt.Sprintf("the gateway of Docker's default bridge is not known (is Docker running? %v); set [network] agent_address", ferr))
		}
		agentAddr = b.Gateway
	}
	// A static Linux build of mesolite for the helper: this binary on
	// Linux, the Linux build beside it on macOS (helperBinary).
	bin, err := helperBinary(runtime.GOARCH)
	if err != nil {
		log.Debug().Err(err).Msg("no binary for the network helper")
		bin = ""
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	plane := netplane.Open(pctx, netplane.Config{
		Mode: n.Mode, Table: n.Table, Docker: cli, Logger: log,
		HelperName: "mesolite-netplane-" + strings.ReplaceAll(n.Table, "_", "-"), HelperOwner: "table:" + n.Table,
		HelperBinary: bin, HelperArgs: []string{netplane.HelperCommand},
	})
	cancel()
	if plane.Mode() == netplane.ModeOff {
		return off(plane.Reason())
	}
	nc := agent.NetworkConfig{
		Plane: plane, Mode: string(plane.Mode()), Table: n.Table, Helper: plane.HelperName(),
		Facts:     func(ctx context.Context) (netplane.HostFacts, error) { return netplane.ReadHostFacts(ctx, cli) },
		AgentAddr: agentAddr, NamedRange: netip.MustParsePrefix(n.NamedVIPRange).Masked(),
	}
	if ferr == nil {
		nc.InitialFacts = &facts
	}
	if n.DNS {
		d := &netplane.DNSConfig{Address: agentAddr, Upstreams: n.DNSUpstream}
		if n.DNSAddress != "" {
			d.Address = netip.MustParseAddr(n.DNSAddress)
		}
		d.Listen = netip.AddrPortFrom(agentAddr, 53)
		if n.DNSListen != "" {
			d.Listen = netip.MustParseAddrPort(n.DNSListen)
		}
		if len(d.Upstreams) == 0 {
			d.Upstreams = resolvConfUpstreams("/etc/resolv.conf", d)
		}
		nc.DNS, nc.TaskDNS = d, []string{d.Address.String()}
	}
	ev := log.Info().Str("mode", nc.Mode).Str("table", n.Table).Str("agent_address", agentAddr.String()).Str("named_vip_range", n.NamedVIPRange)
	if nc.Helper != "" {
		ev = ev.Str("helper", nc.Helper)
	}
	if nc.DNS != nil {
		ev = ev.Str("dns", nc.DNS.Address.String()).Strs("dns_upstream", nc.DNS.Upstreams)
	}
	if r := plane.Remote(); r != "" {
		ev = ev.Str("where", r+": the helper serves VIPs and names there, to the tasks; this machine's shell does not reach them")
	}
	ev.Msg("networking on: VIPs and Mesos-DNS names")
	return nc, plane
}

// resolvConfUpstreams reads the nameservers of a resolv.conf, as
// address:53, leaving out the DNS server's own addresses. The server runs
// in the host's network namespace (in this process or in the helper
// container, with host networking), so a loopback resolver such as
// systemd-resolved's 127.0.0.53 answers it too: tasks get the host's own
// resolution for every name that is not mesolite's.
func resolvConfUpstreams(path string, d *netplane.DNSConfig) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer func() { _ = f.Close() }() // only read
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(fields[1])
		if err != nil || a == d.Address || a == d.Listen.Addr() {
			continue
		}
		u := net.JoinHostPort(a.String(), "53")
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// runNetplaneHelper is "mesolite netplane-helper serve|apply|read|remove":
// the helper container's process and the commands the agent execs in it.
func runNetplaneHelper(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := zerolog.New(stderr).With().Timestamp().Str("component", "netplane-helper").Logger()
	if err := netplane.RunHelper(ctx, args, stdin, stdout, log); err != nil {
		fmt.Fprintf(stderr, "mesolite %s: %v\n", netplane.HelperCommand, err)
		return 1
	}
	return 0
}
