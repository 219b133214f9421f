package netplane

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
)

// Error classes of the data plane.
var (
	// ErrPermission: the process may not change the kernel's network
	// rules (it lacks CAP_NET_ADMIN).
	ErrPermission = errors.New("no permission to change nftables (CAP_NET_ADMIN is needed)")
	// ErrNoTable: the table does not exist.
	ErrNoTable = errors.New("nftables table not found")
	// ErrUnsupported: the data plane does not run on this system.
	ErrUnsupported = errors.New("the network data plane needs Linux")
)

// Protocols a VIP, a forward or a DNS record can carry.
const (
	TCP = "tcp"
	UDP = "udp"
)

// State is the desired data plane: what Apply puts in the kernel, in one
// table, and what the DNS server answers. It is plain data, encoded as
// JSON when it crosses to the helper container.
type State struct {
	// VIPs are the load-balanced addresses, one per address, port and
	// protocol.
	VIPs []VIP `json:"vips,omitempty"`
	// Forwards send one address and port to one backend, without load
	// balancing: a task's host port on the address tasks reach the agent
	// by, and the DNS address when the server listens elsewhere.
	Forwards []Forward `json:"forwards,omitempty"`
	// Refuse are addresses (or ranges) whose traffic is refused at once
	// unless a VIP or forward translated it: every VIP address and the
	// named-VIP range, so a connection to a VIP never leaves the machine.
	Refuse []netip.Prefix `json:"refuse,omitempty"`
	// Hairpin are the bridges (docker0, br-…) whose ports get hairpin
	// mode, so that a container can reach itself through a VIP: with
	// br_netfilter, a connection translated to an address on the bridge it
	// came from is forwarded at layer 2, and a bridge sends a frame back
	// out of the port it came in on only in hairpin mode (Docker sets it
	// itself when its userland proxy is off).
	Hairpin []string `json:"hairpin,omitempty"`
	// DNS is what the DNS server answers; nil when DNS is off.
	DNS *DNS `json:"dns,omitempty"`
}

// VIP is one virtual address, port and protocol with its backends.
type VIP struct {
	Addr     netip.Addr `json:"addr"`
	Port     uint16     `json:"port"`
	Protocol string     `json:"protocol"`
	// Label is what the app's label said ("5.4.3.2:5432", "/postgres:5432"),
	// kept for listings and rule comments.
	Label string `json:"label,omitempty"`
	// Name is the DNS name of a named VIP (empty for an IP VIP).
	Name string `json:"name,omitempty"`
	// Backends are the addresses connections are spread over. None: the
	// VIP refuses connections at once.
	Backends []Backend `json:"backends,omitempty"`
}

// Backend is an address and port a VIP sends connections to.
type Backend struct {
	Addr netip.Addr `json:"addr"`
	Port uint16     `json:"port"`
}

func (b Backend) String() string { return netip.AddrPortFrom(b.Addr, b.Port).String() }

// Forward translates connections to Addr:Port to one backend.
type Forward struct {
	Addr     netip.Addr `json:"addr"`
	Port     uint16     `json:"port"`
	Protocol string     `json:"protocol"`
	To       Backend    `json:"to"`
}

// Key identifies a VIP or a forward in the kernel's rules.
type Key struct {
	Addr     netip.Addr
	Port     uint16
	Protocol string
}

func (k Key) String() string {
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(k.Addr, k.Port), k.Protocol)
}

// Key is the VIP's address, port and protocol.
func (v VIP) Key() Key { return Key{v.Addr, v.Port, v.Protocol} }

// Key is the forward's address, port and protocol.
func (f Forward) Key() Key { return Key{f.Addr, f.Port, f.Protocol} }

func compareKeys(a, b Key) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Port, b.Port); c != 0 {
		return c
	}
	return cmp.Compare(a.Protocol, b.Protocol)
}

func compareBackends(a, b Backend) int {
	if c := a.Addr.Compare(b.Addr); c != 0 {
		return c
	}
	return cmp.Compare(a.Port, b.Port)
}

// Normalize sorts everything in s and drops duplicate backends, so two
// states with the same meaning compare equal.
func (s *State) Normalize() {
	for i := range s.VIPs {
		slices.SortFunc(s.VIPs[i].Backends, compareBackends)
		s.VIPs[i].Backends = slices.Compact(s.VIPs[i].Backends)
	}
	slices.SortFunc(s.VIPs, func(a, b VIP) int { return compareKeys(a.Key(), b.Key()) })
	slices.SortFunc(s.Forwards, func(a, b Forward) int { return compareKeys(a.Key(), b.Key()) })
	slices.SortFunc(s.Refuse, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	for i, p := range s.Refuse {
		s.Refuse[i] = p.Masked()
	}
	s.Refuse = slices.Compact(s.Refuse)
	slices.Sort(s.Hairpin)
	s.Hairpin = slices.Compact(s.Hairpin)
}

// Validate checks what the kernel rules need: IPv4 addresses, ports,
// known protocols, no two VIPs or forwards on one key.
func (s *State) Validate() error {
	seen := map[Key]string{}
	check := func(what string, k Key) error {
		if !k.Addr.Is4() {
			return fmt.Errorf("%s %s: only IPv4 addresses are supported", what, k)
		}
		if k.Port == 0 {
			return fmt.Errorf("%s %s: port 0", what, k)
		}
		if k.Protocol != TCP && k.Protocol != UDP {
			return fmt.Errorf("%s %s: protocol must be tcp or udp", what, k)
		}
		if prev, ok := seen[k]; ok {
			return fmt.Errorf("%s %s: the same address, port and protocol as %s", what, k, prev)
		}
		seen[k] = what
		return nil
	}
	for _, v := range s.VIPs {
		if err := check("vip", v.Key()); err != nil {
			return err
		}
		for _, b := range v.Backends {
			if !b.Addr.Is4() || b.Port == 0 {
				return fmt.Errorf("vip %s: backend %s: an IPv4 address and a port are needed", v.Key(), b)
			}
		}
	}
	for _, f := range s.Forwards {
		if err := check("forward", f.Key()); err != nil {
			return err
		}
		if !f.To.Addr.Is4() || f.To.Port == 0 {
			return fmt.Errorf("forward %s: backend %s: an IPv4 address and a port are needed", f.Key(), f.To)
		}
	}
	for _, p := range s.Refuse {
		if !p.Addr().Is4() || p.Bits() < 8 {
			return fmt.Errorf("refuse %s: an IPv4 prefix of /8 or longer is needed", p)
		}
	}
	return nil
}

// DNS is what the DNS server answers.
type DNS struct {
	// Listen is where the server binds, UDP and TCP.
	Listen netip.AddrPort `json:"listen"`
	// Address is the nameserver tasks are given.
	Address netip.Addr `json:"address"`
	// Upstreams answer every name outside mesolite's zones: host:port,
	// tried in order.
	Upstreams []string `json:"upstreams,omitempty"`
	// Records are mesolite's names.
	Records []Record `json:"records,omitempty"`
}

// Record is one DNS record of mesolite's zones.
type Record struct {
	Name string `json:"name"` // fully qualified, lower case, with the final dot
	Type string `json:"type"` // A or SRV
	// Addr is an A record's address.
	Addr netip.Addr `json:"addr,omitzero"`
	// Target and Port are an SRV record's.
	Target string `json:"target,omitempty"`
	Port   uint16 `json:"port,omitempty"`
}

// Record types.
const (
	TypeA   = "A"
	TypeSRV = "SRV"
)

// Same reports whether two states are the same in everything Apply puts
// in place: the rules, the hairpin bridges and DNS.
func Same(a, b State) bool {
	a.Normalize()
	b.Normalize()
	return Equal(a, b) && slices.Equal(a.Hairpin, b.Hairpin) && reflect.DeepEqual(a.DNS, b.DNS)
}

// Equal reports whether two states have the same rules (DNS aside).
func Equal(a, b State) bool {
	a.Normalize()
	b.Normalize()
	if len(a.VIPs) != len(b.VIPs) || len(a.Forwards) != len(b.Forwards) || len(a.Refuse) != len(b.Refuse) {
		return false
	}
	for i := range a.VIPs {
		x, y := a.VIPs[i], b.VIPs[i]
		if x.Key() != y.Key() || x.Label != y.Label || x.Name != y.Name || len(x.Backends) != len(y.Backends) {
			return false
		}
		for j := range x.Backends {
			if x.Backends[j] != y.Backends[j] {
				return false
			}
		}
	}
	for i := range a.Forwards {
		if a.Forwards[i] != b.Forwards[i] {
			return false
		}
	}
	for i := range a.Refuse {
		if a.Refuse[i] != b.Refuse[i] {
			return false
		}
	}
	return true
}
