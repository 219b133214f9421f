package netplane

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
)

// HostFacts is what the address checks know of the machine. ReadHostFacts
// gathers it; tests write it by hand.
type HostFacts struct {
	// Addrs are the addresses of the host's interfaces.
	Addrs []IfaceAddr `json:"addrs,omitempty"`
	// Routes are the routes of the main table other than default routes.
	Routes []Route `json:"routes,omitempty"`
	// Bridges are Docker's bridge networks.
	Bridges []Bridge `json:"bridges,omitempty"`
}

// IfaceAddr is an address of the host on an interface.
type IfaceAddr struct {
	Iface  string       `json:"iface"`
	Prefix netip.Prefix `json:"prefix"`
}

// Route is a route of the host that is not a default route.
type Route struct {
	Dst   netip.Prefix `json:"dst"`
	Iface string       `json:"iface"`
}

// Bridge is one of Docker's bridge networks.
type Bridge struct {
	Network string       `json:"network"` // Docker's name: bridge, or a user-defined one
	Iface   string       `json:"iface"`   // docker0, br-…
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
}

// DefaultBridge is Docker's default bridge network ("bridge"), if known.
func (h HostFacts) DefaultBridge() (Bridge, bool) {
	for _, b := range h.Bridges {
		if b.Network == "bridge" {
			return b, true
		}
	}
	return Bridge{}, false
}

// Port is one entry of an app's container.portMappings or portDefinitions
// as the checks and Build need it.
type Port struct {
	// Path is the port's path in the app JSON, e.g.
	// "/container/portMappings(0)" or "/portDefinitions(0)".
	Path     string
	Protocol string // tcp, udp, udp,tcp; empty is tcp
	Name     string // the port's name, if any
	Labels   map[string]string
	// ContainerPort is the port inside the container (bridge networking);
	// 0 for host networking.
	ContainerPort uint16
}

// Problem is a finding of the checks, at a path of the app JSON.
type Problem struct {
	Path    string
	Message string
}

func (p Problem) Error() string { return p.Path + ": " + p.Message }

// Checker checks the VIP labels of an app against the machine and the other
// apps. Its methods are pure: everything they know is in its fields.
type Checker struct {
	Facts HostFacts
	// NamedRange is where named VIPs get their addresses; an IP VIP may not
	// lie in it.
	NamedRange netip.Prefix
	// Reserved are addresses the data plane uses itself (the DNS address),
	// with what they are for.
	Reserved map[netip.Addr]string
}

var (
	loopback  = netip.MustParsePrefix("127.0.0.0/8")
	linkLocal = netip.MustParsePrefix("169.254.0.0/16")
	multicast = netip.MustParsePrefix("224.0.0.0/4")
	reserved  = netip.MustParsePrefix("240.0.0.0/4")
	thisNet   = netip.MustParsePrefix("0.0.0.0/8")
)

// suggestion ends every refusal of an address.
const suggestion = "choose an address no route or network of this machine uses, e.g. in 198.18.0.0/15 (reserved for testing, never routed), or use a named VIP (/<name>:<port>)"

// CheckAddr says why a is not fit to be an IP VIP on this machine, or nil.
func (c *Checker) CheckAddr(a netip.Addr) error {
	switch {
	case !a.Is4():
		return fmt.Errorf("%s is not an IPv4 address; %s", a, suggestion)
	case loopback.Contains(a):
		return fmt.Errorf("%s is a loopback address; %s", a, suggestion)
	case thisNet.Contains(a), linkLocal.Contains(a), multicast.Contains(a), reserved.Contains(a):
		return fmt.Errorf("%s is not a unicast address a VIP can take; %s", a, suggestion)
	}
	if what, ok := c.Reserved[a]; ok {
		return fmt.Errorf("%s is mesolite's own %s; %s", a, what, suggestion)
	}
	if c.NamedRange.IsValid() && c.NamedRange.Contains(a) {
		return fmt.Errorf("%s is in %s, the range named VIPs take their addresses from ([network] named_vip_range); %s", a, c.NamedRange, suggestion)
	}
	for _, b := range c.Facts.Bridges {
		if b.Subnet.Contains(a) {
			return fmt.Errorf("%s is in the subnet %s of Docker's network %q (%s); %s", a, b.Subnet, b.Network, b.Iface, suggestion)
		}
	}
	for _, h := range c.Facts.Addrs {
		if h.Prefix.Addr() == a {
			return fmt.Errorf("%s is an address of this machine (%s); %s", a, h.Iface, suggestion)
		}
	}
	for _, r := range c.Facts.Routes {
		if r.Dst.Bits() > 0 && r.Dst.Contains(a) {
			return fmt.Errorf("%s is reachable through the route %s on %s, which a VIP would take over; %s", a, r.Dst, r.Iface, suggestion)
		}
	}
	return nil
}

// vipKey identifies a VIP across apps: an address or a named VIP's DNS
// name, with port and protocol.
type vipKey struct {
	addr     netip.Addr
	name     string
	port     uint16
	protocol string
}

func (k vipKey) String() string {
	if k.name != "" {
		return fmt.Sprintf("%s:%d/%s", k.name, k.port, k.protocol)
	}
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(k.addr, k.port), k.protocol)
}

// portVIP is one VIP label of a port, parsed.
type portVIP struct {
	path      string // the label's path
	value     string // the label's value
	ref       VIPRef
	protocols []string
	err       error
}

// portVIPs parses the VIP labels of ports, in a fixed order.
func portVIPs(ports []Port) []portVIP {
	var out []portVIP
	for _, p := range ports {
		keys := make([]string, 0, len(p.Labels))
		for k := range p.Labels {
			if IsVIPLabel(k) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		protos, perr := Protocols(p.Protocol)
		for _, k := range keys {
			pv := portVIP{path: p.Path + "/labels/" + k, value: p.Labels[k], protocols: protos}
			pv.ref, pv.err = ParseVIPLabel(p.Labels[k])
			if pv.err == nil && perr != nil {
				pv.err = perr
			}
			out = append(out, pv)
		}
	}
	return out
}

func (pv portVIP) keys() []vipKey {
	var out []vipKey
	for _, proto := range pv.protocols {
		k := vipKey{port: pv.ref.Port, protocol: proto}
		if pv.ref.Named() {
			k.name = VIPLabelName(pv.ref.Name)
		} else {
			k.addr = pv.ref.Addr
		}
		out = append(out, k)
	}
	return out
}

// CheckApp checks the VIP labels of one app's ports: each must parse, an
// IP VIP's address must pass CheckAddr, and no address (or name), port and
// protocol may be used twice, by this app or by another. others holds the
// other apps' ports by app id; their own faults are not reported. The
// problems are in a fixed order, each at its label's path.
func (c *Checker) CheckApp(appID string, ports []Port, others map[string][]Port) []Problem {
	taken := map[vipKey]string{}
	ids := make([]string, 0, len(others))
	for id := range others {
		if id != appID {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	for _, id := range ids {
		for _, pv := range portVIPs(others[id]) {
			if pv.err != nil {
				continue
			}
			for _, k := range pv.keys() {
				if _, ok := taken[k]; !ok {
					taken[k] = "app " + id
				}
			}
		}
	}
	var out []Problem
	mine := map[vipKey]string{}
	for _, pv := range portVIPs(ports) {
		if pv.err != nil {
			out = append(out, Problem{pv.path, pv.err.Error()})
			continue
		}
		if !pv.ref.Named() {
			if err := c.CheckAddr(pv.ref.Addr); err != nil {
				out = append(out, Problem{pv.path, fmt.Sprintf("VIP %s refused: %v", pv.ref, err)})
				continue
			}
		}
		for _, k := range pv.keys() {
			if owner, ok := taken[k]; ok {
				out = append(out, Problem{pv.path, fmt.Sprintf("VIP %s is already taken by %s: two apps cannot share a VIP's address, port and protocol; choose another address or port", k, owner)})
				break
			}
			if prev, ok := mine[k]; ok {
				out = append(out, Problem{pv.path, fmt.Sprintf("VIP %s is also declared at %s: one app cannot declare a VIP's address, port and protocol twice", k, prev)})
				break
			}
			mine[k] = pv.path
		}
	}
	return slices.Clip(out)
}
