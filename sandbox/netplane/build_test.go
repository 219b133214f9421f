package netplane

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

var (
	gw    = netip.MustParseAddr("172.17.0.1")
	named = netip.MustParsePrefix("198.19.240.0/20")
)

func ip(s string) netip.Addr { return netip.MustParseAddr(s) }

func testApps() []App {
	return []App{
		{
			ID: "/postgres", Bridge: true,
			Ports: []Port{{Path: "/container/portMappings(0)", Protocol: "tcp", ContainerPort: 5432,
				Labels: map[string]string{"VIP_0": "5.4.3.2:5432", "VIP_1": "/postgres:5432"}}},
			Tasks: []Task{{ID: "pg.1", State: TaskServing, IP: ip("172.17.0.2"), HostPorts: []uint16{31000}}},
		},
		{
			ID: "/shop/web", Bridge: true,
			Ports: []Port{{Path: "/container/portMappings(0)", ContainerPort: 8080, Name: "http", Labels: map[string]string{"VIP_0": "198.18.0.10:80"}}},
			Tasks: []Task{
				{ID: "web.1", State: TaskServing, IP: ip("172.17.0.3"), HostPorts: []uint16{31001}},
				{ID: "web.2", State: TaskUnhealthy, IP: ip("172.17.0.4"), HostPorts: []uint16{31002}},
				{ID: "web.3", State: TaskStarting, IP: ip("172.17.0.5"), HostPorts: []uint16{31003}},
				{ID: "web.4", State: TaskStopped, HostPorts: []uint16{31004}},
			},
		},
		{
			ID:    "/hostapp",
			Ports: []Port{{Path: "/portDefinitions(0)", Protocol: "udp,tcp", Labels: map[string]string{"VIP_0": "/shop/host:53"}}},
			Tasks: []Task{{ID: "h.1", State: TaskServing, HostPorts: []uint16{31010}}},
		},
		{
			ID: "/stopped", Bridge: true,
			Ports: []Port{{Path: "/container/portMappings(0)", ContainerPort: 80, Labels: map[string]string{"VIP_0": "198.18.0.11:80"}}},
			Tasks: []Task{{ID: "s.1", State: TaskStopped}},
		},
	}
}

func buildConfig() BuildConfig {
	return BuildConfig{AgentAddr: gw, NamedRange: named, Checker: testChecker(),
		DNS: &DNSConfig{Listen: netip.MustParseAddrPort("172.17.0.1:53"), Upstreams: []string{"192.0.2.1:53"}}}
}

func vipOf(s State, k Key) (VIP, bool) {
	for _, v := range s.VIPs {
		if v.Key() == k {
			return v, true
		}
	}
	return VIP{}, false
}

func TestBuildBackends(t *testing.T) {
	s, st := Build(testApps(), buildConfig(), nil)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	pg, ok := vipOf(s, Key{ip("5.4.3.2"), 5432, TCP})
	if !ok || !slices.Equal(pg.Backends, []Backend{{ip("172.17.0.2"), 5432}}) || pg.Label != "5.4.3.2:5432" {
		t.Errorf("postgres VIP = %+v", pg)
	}
	web, _ := vipOf(s, Key{ip("198.18.0.10"), 80, TCP})
	if !slices.Equal(web.Backends, []Backend{{ip("172.17.0.3"), 8080}}) {
		t.Errorf("web VIP backends = %v, want only the serving task's container address", web.Backends)
	}
	stopped, ok := vipOf(s, Key{ip("198.18.0.11"), 80, TCP})
	if !ok || len(stopped.Backends) != 0 {
		t.Errorf("stopped app's VIP = %+v, %v: want it with no backend (refused)", stopped, ok)
	}
	// Named VIPs share one address per name, in the named range.
	pgName, ok := vipOf(s, Key{Port: 5432, Protocol: TCP, Addr: namedAddr(t, s, "postgres.marathon.l4lb.thisdcos.directory")})
	if !ok || !named.Contains(pgName.Addr) || len(pgName.Backends) != 1 {
		t.Errorf("named postgres VIP = %+v", pgName)
	}
	// Host networking: the agent's address and the host port, tcp and udp.
	hostAddr := namedAddr(t, s, "shophost.marathon.l4lb.thisdcos.directory")
	for _, proto := range []string{TCP, UDP} {
		v, ok := vipOf(s, Key{hostAddr, 53, proto})
		if !ok || !slices.Equal(v.Backends, []Backend{{gw, 31010}}) {
			t.Errorf("host app VIP %s = %+v, %v", proto, v, ok)
		}
	}
	// Forwards: running bridge tasks' host ports on the gateway.
	var fw []string
	for _, f := range s.Forwards {
		fw = append(fw, f.Key().String()+">"+f.To.String())
	}
	want := []string{
		"172.17.0.1:31000/tcp>172.17.0.2:5432", "172.17.0.1:31001/tcp>172.17.0.3:8080",
		"172.17.0.1:31002/tcp>172.17.0.4:8080", "172.17.0.1:31003/tcp>172.17.0.5:8080",
	}
	if !slices.Equal(fw, want) {
		t.Errorf("forwards = %v, want %v", fw, want)
	}
	// Refused: every VIP address and the named range.
	for _, p := range []string{"5.4.3.2/32", "198.18.0.10/32", "198.18.0.11/32", "198.19.240.0/20"} {
		if !slices.Contains(s.Refuse, netip.MustParsePrefix(p)) {
			t.Errorf("refuse %v lacks %s", s.Refuse, p)
		}
	}
	// Statuses: one per label and protocol, with every task.
	for _, x := range st {
		if x.AppID == "/shop/web" {
			if !x.Served || len(x.Backends) != 4 || !x.Backends[0].InRules || x.Backends[1].InRules || x.Backends[1].State != TaskUnhealthy {
				t.Errorf("web status = %+v", x)
			}
		}
		if x.AppID == "/stopped" && (!x.Served || !strings.Contains(x.Reason, "no backend")) {
			t.Errorf("stopped status = %+v", x)
		}
	}
}

// TestBuildContainerPortZero: a bridge mapping with containerPort 0 has
// the task listen on its host port (Marathon's rule), so the VIP and the
// gateway forward go to that port of the container's address, never to
// port 0 and never to the published port on the agent's address.
func TestBuildContainerPortZero(t *testing.T) {
	apps := []App{{
		ID: "/zero", Bridge: true,
		Ports: []Port{{Path: "/container/portMappings(0)", Protocol: "tcp", ContainerPort: 0, Labels: map[string]string{"VIP_0": "198.18.0.20:80"}}},
		Tasks: []Task{{ID: "z.1", State: TaskServing, IP: ip("172.17.0.7"), HostPorts: []uint16{31020}}},
	}}
	s, _ := Build(apps, buildConfig(), nil)
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	v, ok := vipOf(s, Key{ip("198.18.0.20"), 80, TCP})
	if !ok || !slices.Equal(v.Backends, []Backend{{ip("172.17.0.7"), 31020}}) {
		t.Errorf("VIP = %+v, %v: want the container's address on its host port", v, ok)
	}
	if len(s.Forwards) != 1 || s.Forwards[0].Key().String()+">"+s.Forwards[0].To.String() != "172.17.0.1:31020/tcp>172.17.0.7:31020" {
		t.Errorf("forwards = %+v, want the gateway's host port to the container's", s.Forwards)
	}
}

func namedAddr(t *testing.T, s State, name string) netip.Addr {
	t.Helper()
	for _, v := range s.VIPs {
		if v.Name == name {
			return v.Addr
		}
	}
	t.Fatalf("no named VIP %s in %+v", name, s.VIPs)
	return netip.Addr{}
}

func TestBuildNamedAddressesStay(t *testing.T) {
	apps := testApps()
	s1, _ := Build(apps, buildConfig(), nil)
	a1 := namedAddr(t, s1, "postgres.marathon.l4lb.thisdcos.directory")
	// Through JSON, as the state comes back from the kernel or the helper.
	b, _ := json.Marshal(s1)
	var prev State
	if err := json.Unmarshal(b, &prev); err != nil {
		t.Fatal(err)
	}
	// More named VIPs appear; the existing name keeps its address.
	for i := 0; i < 50; i++ {
		apps = append(apps, App{ID: "/n" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Bridge: true,
			Ports: []Port{{ContainerPort: 80, Labels: map[string]string{"VIP_0": "/n" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ":80"}}}})
	}
	s2, _ := Build(apps, buildConfig(), &prev)
	if a2 := namedAddr(t, s2, "postgres.marathon.l4lb.thisdcos.directory"); a2 != a1 {
		t.Errorf("named VIP moved from %s to %s", a1, a2)
	}
	seen := map[netip.Addr]string{}
	for _, v := range s2.VIPs {
		if v.Name == "" {
			continue
		}
		if other, ok := seen[v.Addr]; ok && other != v.Name {
			t.Errorf("%s and %s share %s", v.Name, other, v.Addr)
		}
		seen[v.Addr] = v.Name
	}
	// The same input gives the same output.
	s3, _ := Build(apps, buildConfig(), &prev)
	if !Equal(s2, s3) {
		t.Error("Build is not deterministic")
	}
}

func TestBuildClashes(t *testing.T) {
	apps := testApps()
	apps = append(apps,
		App{ID: "/zz-copy", Bridge: true, Ports: []Port{{Path: "/container/portMappings(0)", ContainerPort: 1, Labels: map[string]string{"VIP_0": "5.4.3.2:5432"}}}},
		App{ID: "/loop", Bridge: true, Ports: []Port{{Path: "/container/portMappings(0)", ContainerPort: 1, Labels: map[string]string{"VIP_0": "127.0.0.1:80", "VIP_1": "garbage"}}}},
	)
	s, st := Build(apps, buildConfig(), nil)
	pg, _ := vipOf(s, Key{ip("5.4.3.2"), 5432, TCP})
	if len(pg.Backends) != 1 || pg.Backends[0].Addr != ip("172.17.0.2") {
		t.Errorf("the first app keeps the VIP: %+v", pg)
	}
	if _, ok := vipOf(s, Key{ip("127.0.0.1"), 80, TCP}); ok {
		t.Error("a loopback VIP made it into the state")
	}
	reasons := map[string]string{}
	for _, x := range st {
		reasons[x.AppID+x.Path] = x.Reason
		if (x.AppID == "/zz-copy" || x.AppID == "/loop") && x.Served {
			t.Errorf("%s %s served", x.AppID, x.Path)
		}
	}
	for k, want := range map[string]string{
		"/zz-copy/container/portMappings(0)/labels/VIP_0": "already the VIP of app /postgres",
		"/loop/container/portMappings(0)/labels/VIP_0":    "loopback",
		"/loop/container/portMappings(0)/labels/VIP_1":    "is not a VIP",
	} {
		if !strings.Contains(reasons[k], want) {
			t.Errorf("reason of %s = %q, want %q in it", k, reasons[k], want)
		}
	}
}

func TestBuildDNSRecords(t *testing.T) {
	s, _ := Build(testApps(), buildConfig(), nil)
	if s.DNS == nil {
		t.Fatal("no DNS")
	}
	has := func(r Record) bool { return slices.Contains(s.DNS.Records, r) }
	pgNamed := namedAddr(t, s, "postgres.marathon.l4lb.thisdcos.directory")
	for _, r := range []Record{
		{Name: "postgres.marathon.mesos.", Type: TypeA, Addr: gw},
		{Name: "postgres.marathon.slave.mesos.", Type: TypeA, Addr: gw},
		{Name: "_postgres._tcp.marathon.mesos.", Type: TypeSRV, Target: "postgres.marathon.mesos.", Port: 31000},
		{Name: "postgres.marathon.containerip.dcos.thisdcos.directory.", Type: TypeA, Addr: ip("172.17.0.2")},
		{Name: "postgres.marathon.l4lb.thisdcos.directory.", Type: TypeA, Addr: pgNamed},
		{Name: "web-shop.marathon.mesos.", Type: TypeA, Addr: gw},
		{Name: "web.shop.marathon.mesos.", Type: TypeA, Addr: gw},
		{Name: "_web-shop._tcp.marathon.mesos.", Type: TypeSRV, Target: "web-shop.marathon.mesos.", Port: 31002},
		{Name: "_http._web-shop._tcp.marathon.mesos.", Type: TypeSRV, Target: "web-shop.marathon.mesos.", Port: 31001},
		{Name: "web-shop.marathon.containerip.dcos.thisdcos.directory.", Type: TypeA, Addr: ip("172.17.0.4")},
		{Name: "hostapp.marathon.containerip.dcos.thisdcos.directory.", Type: TypeA, Addr: gw},
		{Name: "_hostapp._udp.marathon.mesos.", Type: TypeSRV, Target: "hostapp.marathon.mesos.", Port: 31010},
		{Name: "shophost.marathon.l4lb.thisdcos.directory.", Type: TypeA, Addr: namedAddr(t, s, "shophost.marathon.l4lb.thisdcos.directory")},
	} {
		if !has(r) {
			t.Errorf("no record %+v", r)
		}
	}
	for _, r := range s.DNS.Records {
		if strings.Contains(r.Name, "stopped") || r.Port == 31004 {
			t.Errorf("a stopped task is in DNS: %+v", r)
		}
	}
	// DNS listening on the gateway's port 53 needs no forward.
	for _, f := range s.Forwards {
		if f.Port == 53 {
			t.Errorf("unexpected DNS forward %+v", f)
		}
	}
	// Elsewhere: a forward from the address tasks get, which is refused
	// for every other port.
	cfg := buildConfig()
	cfg.DNS.Listen = netip.MustParseAddrPort("172.17.0.1:10053")
	cfg.DNS.Address = ip("198.18.9.53")
	s, _ = Build(testApps(), cfg, nil)
	n := 0
	for _, f := range s.Forwards {
		if f.Addr == ip("198.18.9.53") && f.Port == 53 && f.To == (Backend{gw, 10053}) {
			n++
		}
	}
	if n != 2 || !slices.Contains(s.Refuse, netip.MustParsePrefix("198.18.9.53/32")) {
		t.Errorf("DNS forwards %d (want udp and tcp), refuse %v", n, s.Refuse)
	}
}
