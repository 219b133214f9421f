package netplane

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// DNS names, as DC/OS and Mesos-DNS give them.
//
// DC/OS's networking docs ("DC/OS Domain Name Service",
// https://docs.mesosphere.com/1.11/networking/DNS/, and "Using virtual IP
// addresses", https://archive-docs.d2iq.com/mesosphere/dcos/2.1/networking/load-balancing-vips/virtual-ip-addresses/)
// give, for app /mygroup/myapp with the label VIP_0 "/mygroup/myapp:80":
//
//	myapp.mygroup.marathon.mesos                                A, the agent's address (host and bridge networking)
//	myapp-mygroup.marathon.containerip.dcos.thisdcos.directory  A, the container's own address
//	myapp-mygroup.marathon.agentip.dcos.thisdcos.directory      A, the agent's address
//	myapp-mygroup.marathon.autoip.dcos.thisdcos.directory       A, the agent's address (host and bridge)
//	mygroupmyapp.marathon.l4lb.thisdcos.directory               A, the named VIP: the label's name with its slashes removed
//	_myapp._tcp.marathon.mesos                                  SRV, the agent and each task's host port
//
// and "<service-name>.marathon.l4lb.thisdcos.directory:<port>" for named
// VIPs. Mesos-DNS's "Service Naming" (http://mesosphere.github.io/mesos-dns/docs/naming.html)
// names a task by its task name, which Marathon makes from the app id's
// segments in reverse order joined by dots ("myapp.mygroup"), and turns
// each name into an RFC 1123 label: lower case, letters, digits and '-',
// where '.' and '_' become '-' and anything else is dropped, at most 63
// characters, no '-' at either end. So /shop/db is db-shop.marathon.mesos;
// DC/OS 1.11 and later also answer the dotted form db.shop.marathon.mesos,
// and mesolite answers both.
const (
	// MesosDomain is Mesos-DNS's domain for Marathon's tasks.
	MesosDomain = "marathon.mesos."
	// SlaveDomain holds the agents' addresses of Marathon's tasks.
	SlaveDomain = "marathon.slave.mesos."
	// ContainerIPDomain answers the containers' own addresses.
	ContainerIPDomain = "marathon.containerip.dcos.thisdcos.directory."
	// AgentIPDomain answers the agent's address.
	AgentIPDomain = "marathon.agentip.dcos.thisdcos.directory."
	// AutoIPDomain answers the agent's address for host and bridge tasks.
	AutoIPDomain = "marathon.autoip.dcos.thisdcos.directory."
	// L4LBDomain answers the named VIPs' addresses.
	L4LBDomain = "marathon.l4lb.thisdcos.directory."
)

// maxLabel is the longest DNS label (RFC 1123).
const maxLabel = 63

// dnsLabel turns s into one DNS label as Mesos-DNS does (RFC 1123): lower
// case; letters and digits kept; '-', '.' and '_' become '-'; anything
// else dropped; no '-' at either end; at most 63 characters.
func dnsLabel(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'A' && r <= 'Z':
			b.WriteRune(r + ('a' - 'A'))
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '-', r == '.', r == '_':
			b.WriteByte('-')
		}
	}
	l := strings.TrimLeft(b.String(), "-")
	if len(l) > maxLabel {
		l = l[:maxLabel]
	}
	return strings.TrimRight(l, "-")
}

// segments are the non-empty segments of an app id.
func segments(appID string) []string {
	var out []string
	for _, s := range strings.Split(appID, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// TaskName is the DNS label Mesos-DNS gives the tasks of a Marathon app:
// /shop/db → db-shop, /postgres → postgres.
func TaskName(appID string) string {
	seg := segments(appID)
	slices.Reverse(seg)
	return dnsLabel(strings.Join(seg, "."))
}

// DottedTaskName is the form DC/OS 1.11 and later also answer under
// marathon.mesos: /shop/db → db.shop. Empty when it equals TaskName.
func DottedTaskName(appID string) string {
	seg := segments(appID)
	if len(seg) < 2 {
		return ""
	}
	slices.Reverse(seg)
	for i, s := range seg {
		seg[i] = dnsLabel(s)
		if seg[i] == "" {
			return ""
		}
	}
	return strings.Join(seg, ".")
}

// VIPLabelName is the name part of a named VIP as DC/OS writes it in DNS:
// the label's name split at dots, each part with its slashes and other
// characters that are not allowed dropped, as Mesos-DNS makes labels
// ("/shop/db" → "shopdb", "/my.svc" → "my.svc").
func VIPLabelName(name string) string {
	var parts []string
	for _, p := range strings.Split(name, ".") {
		if l := dnsLabel(strings.ReplaceAll(p, "/", "")); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, ".")
}

// L4LBName is the fully qualified name of a named VIP:
// "/shop/db" → "shopdb.marathon.l4lb.thisdcos.directory.".
func L4LBName(name string) string { return VIPLabelName(name) + "." + L4LBDomain }

// VIPRef is what one VIP_<n> label says: an address or a name, and a port.
type VIPRef struct {
	Addr netip.Addr // an IP VIP; invalid for a named VIP
	Name string     // a named VIP as written, e.g. "/postgres"
	Port uint16
}

// Named reports whether the label names a VIP rather than giving its address.
func (r VIPRef) Named() bool { return r.Name != "" }

func (r VIPRef) String() string {
	if r.Named() {
		return r.Name + ":" + strconv.Itoa(int(r.Port))
	}
	return netip.AddrPortFrom(r.Addr, r.Port).String()
}

// IsVIPLabel reports whether a port label's key declares a VIP, as DC/OS
// reads them: VIP_ followed by anything (VIP_0, VIP_1, …).
func IsVIPLabel(key string) bool { return strings.HasPrefix(key, "VIP_") && len(key) > len("VIP_") }

var (
	looksNumeric = regexp.MustCompile(`^[0-9.]+$`)
	vipNameChars = regexp.MustCompile(`^/?[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$`)
)

// maxNameLength bounds a named VIP's name, so its DNS name fits in 253
// characters.
const maxNameLength = 253 - len(L4LBDomain)

// ParseVIPLabel reads a VIP label's value: "5.4.3.2:5432" (an IP VIP),
// "/postgres:5432" or "/shop/db:5432" (a named VIP). It splits at the last
// colon as DC/OS does. The errors say what is wrong and what is expected.
func ParseVIPLabel(v string) (VIPRef, error) {
	host, portStr, ok := cut(v)
	if !ok || host == "" {
		return VIPRef{}, fmt.Errorf("%q is not a VIP: expected <IPv4 address>:<port> (e.g. 5.4.3.2:5432) or /<name>:<port> (e.g. /postgres:5432)", v)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return VIPRef{}, fmt.Errorf("%q: the port %q must be a number from 1 to 65535", v, portStr)
	}
	if strings.Contains(host, ":") || strings.HasPrefix(host, "[") {
		return VIPRef{}, fmt.Errorf("%q: IPv6 VIPs are not supported by mesolite: use an IPv4 address or a name", v)
	}
	if looksNumeric.MatchString(host) {
		a, err := netip.ParseAddr(host)
		if err != nil || !a.Is4() {
			return VIPRef{}, fmt.Errorf("%q: %q is not an IPv4 address", v, host)
		}
		return VIPRef{Addr: a, Port: uint16(port)}, nil
	}
	if !vipNameChars.MatchString(host) || len(host) > maxNameLength {
		return VIPRef{}, fmt.Errorf("%q: a VIP name is made of letters, digits, '.', '_' and '-', in segments separated by '/' (e.g. /shop/db), at most %d characters", v, maxNameLength)
	}
	if VIPLabelName(host) == "" {
		return VIPRef{}, fmt.Errorf("%q: the name %q gives no DNS label: use letters or digits", v, host)
	}
	return VIPRef{Name: host, Port: uint16(port)}, nil
}

func cut(v string) (string, string, bool) {
	i := strings.LastIndexByte(v, ':')
	if i < 0 {
		return "", "", false
	}
	return v[:i], v[i+1:], true
}

// Protocols splits a port's protocol field ("tcp", "udp", "udp,tcp") into
// the protocols a VIP serves; empty means tcp, as in Marathon.
func Protocols(p string) ([]string, error) {
	if p == "" {
		return []string{TCP}, nil
	}
	var out []string
	for _, s := range strings.Split(p, ",") {
		s = strings.TrimSpace(strings.ToLower(s))
		switch s {
		case TCP, UDP:
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		default:
			return nil, fmt.Errorf("protocol %q: expected tcp, udp or udp,tcp", p)
		}
	}
	return out, nil
}
