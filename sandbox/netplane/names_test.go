package netplane

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNames(t *testing.T) {
	for _, tc := range []struct {
		app, task, dotted string
	}{
		{"/postgres", "postgres", ""},
		{"/shop/db", "db-shop", "db.shop"},
		{"/a/b/c", "c-b-a", "c.b.a"},
		{"/My_App", "my-app", ""},
		{"/x." + strings.Repeat("y", 70), "x-" + strings.Repeat("y", 61), ""},
	} {
		if got := TaskName(tc.app); got != tc.task {
			t.Errorf("TaskName(%q) = %q, want %q", tc.app, got, tc.task)
		}
		if got := DottedTaskName(tc.app); got != tc.dotted {
			t.Errorf("DottedTaskName(%q) = %q, want %q", tc.app, got, tc.dotted)
		}
	}
	for _, tc := range []struct{ name, want string }{
		{"/postgres", "postgres.marathon.l4lb.thisdcos.directory."},
		{"/mygroup/myapp", "mygroupmyapp.marathon.l4lb.thisdcos.directory."},
		{"/shop/db", "shopdb.marathon.l4lb.thisdcos.directory."},
		{"my.svc", "my.svc.marathon.l4lb.thisdcos.directory."},
		{"/Web_Front", "web-front.marathon.l4lb.thisdcos.directory."},
	} {
		if got := L4LBName(tc.name); got != tc.want {
			t.Errorf("L4LBName(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestParseVIPLabel(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     VIPRef
		err      string
	}{
		{"ip", "5.4.3.2:5432", VIPRef{Addr: netip.MustParseAddr("5.4.3.2"), Port: 5432}, ""},
		{"named", "/postgres:5432", VIPRef{Name: "/postgres", Port: 5432}, ""},
		{"group", "/shop/db:5432", VIPRef{Name: "/shop/db", Port: 5432}, ""},
		{"no slash", "web:80", VIPRef{Name: "web", Port: 80}, ""},
		{"no port", "5.4.3.2", VIPRef{}, "expected <IPv4 address>:<port>"},
		{"empty host", ":80", VIPRef{}, "expected <IPv4 address>:<port>"},
		{"port zero", "5.4.3.2:0", VIPRef{}, "from 1 to 65535"},
		{"port big", "5.4.3.2:70000", VIPRef{}, "from 1 to 65535"},
		{"port text", "/a:http", VIPRef{}, "from 1 to 65535"},
		{"bad ip", "5.4.3:80", VIPRef{}, "not an IPv4 address"},
		{"bad ip 2", "300.1.1.1:80", VIPRef{}, "not an IPv4 address"},
		{"ipv6", "[fd00::1]:80", VIPRef{}, "IPv6"},
		{"ipv6 bare", "fd00::1:80", VIPRef{}, "IPv6"},
		{"bad name", "/a b:80", VIPRef{}, "a VIP name is made of"},
		{"empty segment", "/a//b:80", VIPRef{}, "a VIP name is made of"},
		{"no label", "/---:80", VIPRef{}, "gives no DNS label"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseVIPLabel(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseVIPLabel(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseVIPLabel(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestProtocols(t *testing.T) {
	for in, want := range map[string]string{"": "tcp", "tcp": "tcp", "udp": "udp", "udp,tcp": "udp,tcp", "TCP, udp": "tcp,udp"} {
		got, err := Protocols(in)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("Protocols(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	if _, err := Protocols("sctp"); err == nil {
		t.Error("Protocols(sctp): no error")
	}
}
