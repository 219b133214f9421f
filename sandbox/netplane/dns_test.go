package netplane

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/sandbox/netplane/netplanetest"
)

func freeLoopback(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}

func ask(t *testing.T, network string, at netip.AddrPort, name string, qtype uint16) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	r, _, err := (&dns.Client{Net: network, Timeout: 3 * time.Second}).Exchange(m, at.String())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.TypeToString[qtype], network, err)
	}
	return r
}

// TestDNSServer answers the records Build makes, over UDP and TCP, and
// forwards other names to an upstream of the test's own on loopback.
func TestDNSServer(t *testing.T) {
	upstream := fakeUpstream(t, netip.MustParseAddrPort("127.0.0.1:0"))
	cfg := buildConfig()
	listen := freeLoopback(t)
	cfg.DNS = &DNSConfig{Listen: listen, Upstreams: []string{upstream.String(), listen.String()}}
	state, _ := Build(testApps(), cfg, nil)
	srv := NewDNSServer(zerolog.Nop())
	defer srv.Close()
	if err := srv.Update(state.DNS); err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"udp", "tcp"} {
		r := ask(t, network, listen, "postgres.marathon.mesos.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "172.17.0.1" {
			t.Errorf("%s: postgres.marathon.mesos A: %v", network, r)
		}
		r = ask(t, network, listen, "_web-shop._tcp.marathon.mesos.", dns.TypeSRV)
		if len(r.Answer) != 3 || len(r.Extra) != 3 {
			t.Errorf("%s: SRV: %d answers, %d extra: %v", network, len(r.Answer), len(r.Extra), r)
		}
		r = ask(t, network, listen, "WEB-SHOP.marathon.containerip.dcos.thisdcos.directory.", dns.TypeA)
		if len(r.Answer) != 3 {
			t.Errorf("%s: containerip (any case): %v", network, r)
		}
		r = ask(t, network, listen, "nothing.marathon.mesos.", dns.TypeA)
		if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 {
			t.Errorf("%s: unknown name: %v, want NXDOMAIN with SOA", network, r)
		}
		r = ask(t, network, listen, "postgres.marathon.mesos.", dns.TypeAAAA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 {
			t.Errorf("%s: AAAA of a known name: %v, want NOERROR, no answer", network, r)
		}
		r = ask(t, network, listen, "marathon.mesos.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess {
			t.Errorf("%s: marathon.mesos: %v, want NOERROR", network, r)
		}
		r = ask(t, network, listen, "elsewhere.example.", dns.TypeA)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.99" {
			t.Errorf("%s: forwarded: %v", network, r)
		}
	}
	// New records replace the old ones; the server keeps its socket.
	apps := testApps()[:1]
	state2, _ := Build(apps, cfg, nil)
	if err := srv.Update(state2.DNS); err != nil {
		t.Fatal(err)
	}
	if r := ask(t, "udp", listen, "web-shop.marathon.mesos.", dns.TypeA); r.Rcode != dns.RcodeNameError {
		t.Errorf("after the update: %v, want NXDOMAIN", r)
	}
	// No upstream answers (its own address is never asked): SERVFAIL.
	cfg.DNS.Upstreams = []string{listen.String()}
	state3, _ := Build(apps, cfg, nil)
	if err := srv.Update(state3.DNS); err != nil {
		t.Fatal(err)
	}
	if r := ask(t, "udp", listen, "elsewhere.example.", dns.TypeA); r.Rcode != dns.RcodeServerFailure {
		t.Errorf("with no upstream: %v, want SERVFAIL", r)
	}
	// Lookup answers the same without a server.
	if r := Lookup(state.DNS, "postgres.marathon.l4lb.thisdcos.directory", dns.TypeA); len(r.Answer) != 1 {
		t.Errorf("Lookup: %v", r)
	}
	srv.Close()
	if srv.Addr().IsValid() {
		t.Error("closed server still has an address")
	}
}

func fakeUpstream(t *testing.T, at netip.AddrPort) netip.AddrPort {
	return netplanetest.FakeUpstream(t, at)
}

// TestDNSServerAddressTaken: an address another server holds fails the
// bind with what to do, and the server answers nothing new.
func TestDNSServerAddressTaken(t *testing.T) {
	other, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	taken := netip.MustParseAddrPort(other.LocalAddr().String())
	cfg := buildConfig()
	cfg.DNS = &DNSConfig{Listen: taken}
	state, _ := Build(testApps(), cfg, nil)
	srv := NewDNSServer(zerolog.Nop())
	defer srv.Close()
	for name, f := range map[string]func(*DNS) error{"Bind": srv.Bind, "Update": srv.Update} {
		err := f(state.DNS)
		if err == nil || !strings.Contains(err.Error(), "another mesolite agent with networking on") || !strings.Contains(err.Error(), "dns_listen") {
			t.Errorf("%s on a taken address: %v, want what to do", name, err)
		}
	}
	if srv.Addr().IsValid() {
		t.Errorf("listening on %s after failing", srv.Addr())
	}
	if z := srv.zone.Load(); len(z.names) != 0 {
		t.Errorf("the zone changed after a failed bind: %d names", len(z.names))
	}
}
