package netplane

import (
	"net/netip"
	"strings"
	"testing"
)

// testFacts is a machine like CI's: eth0 192.0.2.2/24 with a default
// route, docker0 172.17.0.1/16, a user-defined bridge, a VPN route.
func testFacts() HostFacts {
	p := netip.MustParsePrefix
	return HostFacts{
		Addrs: []IfaceAddr{
			{"lo", p("127.0.0.1/8")}, {"eth0", p("192.0.2.2/24")}, {"docker0", p("172.17.0.1/16")}, {"tun0", p("10.8.0.5/24")},
		},
		Routes: []Route{
			{p("172.17.0.0/16"), "docker0"}, {p("192.0.2.0/24"), "eth0"}, {p("10.8.0.0/24"), "tun0"}, {p("10.20.0.0/16"), "tun0"},
		},
		Bridges: []Bridge{
			{"bridge", "docker0", p("172.17.0.0/16"), netip.MustParseAddr("172.17.0.1")},
			{"apps", "br-0123456789ab", p("172.20.0.0/16"), netip.MustParseAddr("172.20.0.1")},
		},
	}
}

func testChecker() *Checker {
	return &Checker{Facts: testFacts(), NamedRange: netip.MustParsePrefix("198.19.240.0/20"),
		Reserved: map[netip.Addr]string{netip.MustParseAddr("198.18.255.53"): "DNS address"}}
}

func TestCheckAddr(t *testing.T) {
	c := testChecker()
	for _, tc := range []struct{ addr, err string }{
		{"5.4.3.2", ""},
		{"198.18.0.1", ""},
		{"127.0.0.1", "loopback"},
		{"127.1.2.3", "loopback"},
		{"0.0.0.0", "not a unicast address"},
		{"169.254.1.1", "not a unicast address"},
		{"224.0.0.1", "not a unicast address"},
		{"255.255.255.255", "not a unicast address"},
		{"172.17.0.5", `subnet 172.17.0.0/16 of Docker's network "bridge" (docker0)`},
		{"172.17.0.1", `Docker's network "bridge"`},
		{"172.20.3.4", `Docker's network "apps" (br-0123456789ab)`},
		{"192.0.2.2", "an address of this machine (eth0)"},
		{"192.0.2.77", "route 192.0.2.0/24 on eth0"},
		{"10.20.1.1", "route 10.20.0.0/16 on tun0"},
		{"198.19.241.3", "named VIPs take their addresses from"},
		{"198.18.255.53", "mesolite's own DNS address"},
	} {
		err := c.CheckAddr(netip.MustParseAddr(tc.addr))
		if tc.err == "" {
			if err != nil {
				t.Errorf("CheckAddr(%s) = %v, want nil", tc.addr, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("CheckAddr(%s) = %v, want an error with %q", tc.addr, err, tc.err)
		} else if !strings.Contains(err.Error(), "198.18.0.0/15") {
			t.Errorf("CheckAddr(%s) = %v: does not say what to do", tc.addr, err)
		}
	}
}

func TestCheckApp(t *testing.T) {
	c := testChecker()
	pm := func(i int, proto string, labels ...string) Port {
		p := Port{Path: "/container/portMappings(" + string(rune('0'+i)) + ")", Protocol: proto, Labels: map[string]string{}}
		for j := 0; j+1 < len(labels); j += 2 {
			p.Labels[labels[j]] = labels[j+1]
		}
		return p
	}
	others := map[string][]Port{
		"/db":  {pm(0, "tcp", "VIP_0", "5.4.3.2:5432")},
		"/web": {{Path: "/portDefinitions(0)", Labels: map[string]string{"VIP_0": "/web:80"}}},
		"/bad": {pm(0, "tcp", "VIP_0", "nonsense")},
	}
	for _, tc := range []struct {
		name  string
		ports []Port
		want  []string // "path: fragment"
	}{
		{"fine", []Port{pm(0, "tcp", "VIP_0", "5.4.3.3:5432", "VIP_1", "/other:80", "other", "x")}, nil},
		{"same vip, other protocol", []Port{pm(0, "udp", "VIP_0", "5.4.3.2:5432")}, nil},
		{"this app's own vip on update", []Port{pm(0, "tcp", "VIP_0", "5.4.3.2:5432")}, nil},
		{"malformed", []Port{pm(0, "tcp", "VIP_0", "5.4.3.2")}, []string{"/container/portMappings(0)/labels/VIP_0: \"5.4.3.2\" is not a VIP"}},
		{"loopback", []Port{pm(0, "tcp", "VIP_0", "127.0.0.1:80")}, []string{"/container/portMappings(0)/labels/VIP_0: VIP 127.0.0.1:80 refused: 127.0.0.1 is a loopback address"}},
		{"docker subnet", []Port{pm(1, "tcp", "VIP_2", "172.17.0.9:80")}, []string{"/container/portMappings(1)/labels/VIP_2: VIP 172.17.0.9:80 refused"}},
		{"host address", []Port{pm(0, "tcp", "VIP_0", "192.0.2.2:80")}, []string{"an address of this machine"}},
		{"taken", []Port{pm(0, "tcp", "VIP_0", "5.4.3.2:5432")}, []string{"/container/portMappings(0)/labels/VIP_0: VIP 5.4.3.2:5432/tcp is already taken by app /db"}},
		{"taken by name", []Port{pm(0, "tcp", "VIP_0", "/web:80")}, []string{"VIP web:80/tcp is already taken by app /web"}},
		{"udp,tcp half taken", []Port{pm(0, "udp,tcp", "VIP_0", "5.4.3.2:5432")}, []string{"already taken by app /db"}},
		{"twice in one app", []Port{pm(0, "tcp", "VIP_0", "5.4.3.9:80"), pm(1, "tcp", "VIP_0", "5.4.3.9:80")}, []string{"/container/portMappings(1)/labels/VIP_0: VIP 5.4.3.9:80/tcp is also declared at /container/portMappings(0)/labels/VIP_0"}},
		{"bad protocol", []Port{pm(0, "sctp", "VIP_0", "5.4.3.9:80")}, []string{"protocol \"sctp\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "/new"
			if tc.name == "this app's own vip on update" {
				id = "/db"
			}
			probs := c.CheckApp(id, tc.ports, others)
			if len(probs) != len(tc.want) {
				t.Fatalf("CheckApp = %v, want %d problems: %v", probs, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.Contains(probs[i].Error(), w) {
					t.Errorf("problem %d = %q, want %q in it", i, probs[i].Error(), w)
				}
			}
		})
	}
}
