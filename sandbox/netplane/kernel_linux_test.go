package netplane

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/sandbox/netplane/netplanetest"
)

// The kernel tests own 198.18.11.0/24 (VIPs) and 198.19.211.0/24 (named
// VIPs); the helper tests 198.18.12.0/24 and 198.19.212.0/24.

// freePort is a port free on the bridge's gateway; for "udp", one free
// for UDP and for TCP both, as a DNS server listens on both (a UDP port
// whose TCP twin another test holds made the DNS server fail to start).
func freePort(t testing.TB, network string) uint16 {
	t.Helper()
	switch network {
	case "udp":
		for range 50 {
			c, err := net.ListenPacket("udp4", "172.17.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := c.LocalAddr().(*net.UDPAddr).Port
			l, err := net.Listen("tcp4", net.JoinHostPort("172.17.0.1", strconv.Itoa(port)))
			c.Close()
			if err == nil {
				l.Close()
				return uint16(port)
			}
		}
		t.Fatal("no port free for both UDP and TCP on 172.17.0.1 in 50 tries")
		return 0
	default:
		l, err := net.Listen("tcp4", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return uint16(l.Addr().(*net.TCPAddr).Port)
	}
}

// httpClient opens a new connection for every request.
var httpClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func hostGet(url string) (string, error) {
	resp, err := httpClient.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}

// spread GETs url n times, each on a new connection, and counts the
// answers.
func spread(t *testing.T, url string, n int) map[string]int {
	t.Helper()
	got := map[string]int{}
	for i := 0; i < n; i++ {
		body, err := hostGet(url)
		if err != nil {
			t.Fatalf("request %d to %s: %v", i, url, err)
		}
		got[body]++
	}
	return got
}

// refused checks that a TCP connection to addr is refused at once.
func refused(t *testing.T, addr string) {
	t.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp4", addr, 3*time.Second)
	if err == nil {
		c.Close()
		t.Fatalf("connection to %s accepted, want refused", addr)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("connection to %s: %v, want refused", addr, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("connection to %s refused after %s, want at once", addr, d)
	}
}

func hostname(id string) string { return id[:12] }

// lines counts the lines of a container client's output.
func lines(out string) map[string]int {
	got := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		got[strings.TrimSpace(l)]++
	}
	return got
}

func gateway(t *testing.T, c *client.Client) netip.Addr {
	t.Helper()
	facts, err := ReadHostFacts(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	b, ok := facts.DefaultBridge()
	if !ok || !b.Gateway.IsValid() {
		t.Fatalf("no default bridge gateway in %+v", facts.Bridges)
	}
	return b.Gateway
}

// TestKernelVIPs puts VIPs in the kernel for real containers and checks
// every path: the host's own connections (output hook), a bridge
// container's (prerouting), a backend reaching itself through the VIP
// (hairpin), a host-network backend, a forward of a host port on the
// gateway, a VIP with no backend and another port of a VIP address
// (refused at once), round robin, established connections across a
// change, no gap while the rules are replaced, and read-back.
func TestKernelVIPs(t *testing.T) {
	netplanetest.RequireRoot(t)
	c := netplanetest.Docker(t)
	const guard = "kernel"
	netplanetest.Guard(t, guard, netip.MustParsePrefix("198.18.11.0/24"), netip.MustParsePrefix("198.19.211.0/24"))
	gw := gateway(t, c)

	var be []netplanetest.Container
	for i := 0; i < 3; i++ {
		be = append(be, netplanetest.Run(t, c, fmt.Sprintf("be%d", i), netplanetest.RunOptions{}))
	}
	hostPort := freePort(t, "tcp")
	_ = netplanetest.Run(t, c, "hostbe", netplanetest.RunOptions{HostNetwork: true, Env: []string{fmt.Sprintf("LISTEN=:%d", hostPort)}})
	client := netplanetest.Run(t, c, "client", netplanetest.RunOptions{})
	fwdPort := freePort(t, "tcp")

	vip := netip.MustParseAddr("198.18.11.1")
	empty := netip.MustParseAddr("198.18.11.2")
	hostVIP := netip.MustParseAddr("198.18.11.3")
	backends := func(cs ...netplanetest.Container) []Backend {
		var out []Backend
		for _, x := range cs {
			out = append(out, Backend{x.IP, 8080})
		}
		return out
	}
	state := func(bs []Backend) State {
		return State{
			VIPs: []VIP{
				{Addr: vip, Port: 80, Protocol: TCP, Label: "198.18.11.1:80", Backends: bs},
				{Addr: empty, Port: 80, Protocol: TCP, Label: "198.18.11.2:80"},
				{Addr: hostVIP, Port: 80, Protocol: TCP, Label: "/hostbe:80", Name: "hostbe.marathon.l4lb.thisdcos.directory", Backends: []Backend{{gw, hostPort}}},
			},
			Forwards: []Forward{{Addr: gw, Port: fwdPort, Protocol: TCP, To: Backend{be[1].IP, 8080}}},
			Refuse:   []netip.Prefix{netip.PrefixFrom(vip, 32), netip.PrefixFrom(empty, 32), netip.PrefixFrom(hostVIP, 32), netip.MustParsePrefix("198.19.211.0/24")},
			Hairpin:  []string{"docker0"},
		}
	}
	k := NewKernel("mesolite_t_kernel")
	t.Cleanup(func() {
		if err := k.Remove(); err != nil {
			t.Errorf("remove table: %v", err)
		}
	})
	want := state(backends(be...))
	if err := k.Apply(want); err != nil {
		t.Fatal(err)
	}
	got, err := k.Read()
	if err != nil {
		t.Fatal(err)
	}
	if !Equal(got, want) {
		t.Fatalf("read back %+v, want %+v", got, want)
	}
	waitServing(t, fmt.Sprintf("http://%s:8080/hostname", be[0].IP), fmt.Sprintf("http://%s:8080/hostname", be[2].IP), fmt.Sprintf("http://%s/hostname", netip.AddrPortFrom(gw, hostPort)))

	t.Run("host, round robin", func(t *testing.T) {
		got := spread(t, "http://198.18.11.1/hostname", 30)
		for _, x := range be {
			if got[hostname(x.ID)] != 10 {
				t.Errorf("answers %v: want 10 from each backend", got)
			}
		}
	})
	t.Run("container", func(t *testing.T) {
		out, code := netplanetest.Exec(t, c, client.ID, "get http://198.18.11.1/hostname 30")
		got := lines(out)
		for _, x := range be {
			if code != 0 || got[hostname(x.ID)] != 10 {
				t.Fatalf("answers %v (exit %d): want 10 from each backend", got, code)
			}
		}
	})
	t.Run("hairpin", func(t *testing.T) {
		out, code := netplanetest.Exec(t, c, be[0].ID, "get http://198.18.11.1/hostname 6")
		if got := lines(out); code != 0 || got[hostname(be[0].ID)] != 2 {
			t.Fatalf("answers %v (exit %d): want 2 from the backend itself", got, code)
		}
	})
	t.Run("host-network backend", func(t *testing.T) {
		// With host networking the backend answers the host's name.
		want, err := os.Hostname()
		if err != nil {
			t.Fatal(err)
		}
		if hn, err := hostGet("http://198.18.11.3/hostname"); err != nil || hn != want {
			t.Fatalf("from the host: %q, %v; want %q", hn, err, want)
		}
		out, code := netplanetest.Exec(t, c, client.ID, "get http://198.18.11.3/hostname 2")
		if code != 0 || lines(out)[want] != 2 {
			t.Fatalf("from a container: %q (exit %d), want %q", out, code, want)
		}
	})
	t.Run("forward", func(t *testing.T) {
		out, code := netplanetest.Exec(t, c, client.ID, fmt.Sprintf("get http://%s/hostname", netip.AddrPortFrom(gw, fwdPort)))
		if code != 0 || strings.TrimSpace(out) != hostname(be[1].ID) {
			t.Fatalf("through the forward: %q (exit %d)", out, code)
		}
	})
	t.Run("refused", func(t *testing.T) {
		refused(t, "198.18.11.2:80") // no backend
		refused(t, "198.18.11.1:81") // not a VIP port
		refused(t, "198.19.211.9:80")
		for _, target := range []string{"198.18.11.2:80", "198.18.11.1:81"} {
			out, _ := netplanetest.Exec(t, c, client.ID, "dial "+target)
			if !strings.Contains(out, "connection refused") {
				t.Errorf("from a container to %s: %q, want connection refused", target, out)
			}
		}
	})
	t.Run("established connections keep their backend", func(t *testing.T) {
		keep := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		defer keep.CloseIdleConnections()
		first := keepGet(t, keep)
		var rest []netplanetest.Container
		for _, x := range be {
			if hostname(x.ID) != first {
				rest = append(rest, x)
			}
		}
		if err := k.Apply(state(backends(rest...))); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := k.Apply(want); err != nil {
				t.Fatal(err)
			}
		}()
		for i := 0; i < 3; i++ {
			if got := keepGet(t, keep); got != first {
				t.Fatalf("the established connection moved from %s to %s", first, got)
			}
		}
		for body, n := range spread(t, "http://198.18.11.1/hostname", 10) {
			if body == first {
				t.Fatalf("a new connection reached the removed backend %s (%d times)", first, n)
			}
		}
	})
	t.Run("no gap while replaced", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var ok, failed atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000 && ctx.Err() == nil; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := hostGet("http://198.18.11.1/hostname"); err != nil {
					failed.Add(1)
					t.Logf("request failed: %v", err)
				} else {
					ok.Add(1)
				}
			}
		}()
		for i := 0; i < 40; i++ {
			bs := backends(be...)
			if i%2 == 1 {
				bs = backends(be[i%3])
			}
			if err := k.Apply(state(bs)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond) // pacing the changes, not waiting for anything
		}
		close(stop)
		wg.Wait()
		if failed.Load() != 0 || ok.Load() < 40 {
			t.Fatalf("%d requests failed, %d answered, while the rules were replaced 40 times", failed.Load(), ok.Load())
		}
		t.Logf("%d requests answered, none failed, across 40 replacements", ok.Load())
		if err := k.Apply(want); err != nil {
			t.Fatal(err)
		}
	})
	if n := netplanetest.GuardDrops(t, guard); n != 0 {
		t.Errorf("the guard dropped %d packets: something tried to leave the machine", n)
	}
	if err := k.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Read(); !errors.Is(err, ErrNoTable) {
		t.Fatalf("after Remove: %v, want ErrNoTable", err)
	}
}

func keepGet(t *testing.T, c *http.Client) string {
	t.Helper()
	resp, err := c.Get("http://198.18.11.1/hostname")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// waitServing polls the URLs until each answers (containers start in
// about a second).
func waitServing(t *testing.T, urls ...string) {
	t.Helper()
	for _, u := range urls {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := hostGet(u); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("%s does not answer: %v", u, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestKernelDNS runs the DNS server on the gateway at a high port with
// the DNS address a VIP-like address forwarded to it (UDP and TCP), and
// asks from a container: Mesos-DNS names, the container's address, SRV,
// the named VIP, NXDOMAIN, and a name forwarded to an upstream (a fake
// resolver of the test's own, on this machine).
func TestKernelDNS(t *testing.T) {
	netplanetest.RequireRoot(t)
	c := netplanetest.Docker(t)
	const guard = "kerneldns"
	netplanetest.Guard(t, guard, netip.MustParsePrefix("198.18.11.0/24"), netip.MustParsePrefix("198.19.211.0/24"))
	gw := gateway(t, c)
	upstream := fakeUpstream(t, netip.AddrPortFrom(gw, 0))

	web := netplanetest.Run(t, c, "dnsweb", netplanetest.RunOptions{})
	apps := []App{{
		ID: "/shop/web", Bridge: true,
		Ports: []Port{{Path: "/container/portMappings(0)", ContainerPort: 8080, Labels: map[string]string{"VIP_0": "/shop/web:80"}}},
		Tasks: []Task{{ID: "web.1", State: TaskServing, IP: web.IP, HostPorts: []uint16{31555}}},
	}}
	dnsAddr := netip.MustParseAddr("198.18.11.53")
	cfg := BuildConfig{AgentAddr: gw, NamedRange: netip.MustParsePrefix("198.19.211.0/24"),
		Checker: &Checker{NamedRange: netip.MustParsePrefix("198.19.211.0/24")},
		DNS:     &DNSConfig{Listen: netip.AddrPortFrom(gw, freePort(t, "udp")), Address: dnsAddr, Upstreams: []string{upstream.String()}}}
	state, _ := Build(apps, cfg, nil)
	k := NewKernel("mesolite_t_kerneldns")
	t.Cleanup(func() { _ = k.Remove() })
	if err := k.Apply(state); err != nil {
		t.Fatal(err)
	}
	srv := NewDNSServer(zerolog.Nop())
	defer srv.Close()
	if err := srv.Update(state.DNS); err != nil {
		t.Fatal(err)
	}
	client := netplanetest.Run(t, c, "dnsclient", netplanetest.RunOptions{DNS: []string{dnsAddr.String()}})
	named := namedAddr(t, state, "shopweb.marathon.l4lb.thisdcos.directory")
	for _, tc := range []struct{ script, want string }{
		{"lookup web-shop.marathon.mesos", gw.String()},
		{"lookup web.shop.marathon.mesos", gw.String()},
		{"lookup web-shop.marathon.containerip.dcos.thisdcos.directory", web.IP.String()},
		{"lookup shopweb.marathon.l4lb.thisdcos.directory", named.String()},
		{"srv _web-shop._tcp.marathon.mesos", "web-shop.marathon.mesos. 31555"},
		{"lookup elsewhere.example", "192.0.2.99"},
		{"get http://shopweb.marathon.l4lb.thisdcos.directory/hostname", hostname(web.ID)},
	} {
		out, code := netplanetest.Exec(t, c, client.ID, tc.script)
		if code != 0 || strings.TrimSpace(out) != tc.want {
			t.Errorf("%s: %q (exit %d), want %q", tc.script, out, code, tc.want)
		}
	}
	if out, code := netplanetest.Exec(t, c, client.ID, "lookup nothing.marathon.mesos"); code == 0 || !strings.Contains(out, "no such host") {
		t.Errorf("an unknown name: %q (exit %d), want no such host", out, code)
	}
	// Over TCP too, straight to the server from the host.
	m := new(dns.Msg)
	m.SetQuestion("web-shop.marathon.mesos.", dns.TypeA)
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 3 * time.Second}).Exchange(m, netip.AddrPortFrom(dnsAddr, 53).String())
	if err != nil || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != gw.String() {
		t.Errorf("over TCP through the DNS address: %v, %v", r, err)
	}
	if n := netplanetest.GuardDrops(t, guard); n != 0 {
		t.Errorf("the guard dropped %d packets", n)
	}
}
