package netplane

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"slices"
	"sort"
	"strings"
)

// TaskState is what the data plane needs to know of a task.
type TaskState string

// Task states. Only serving tasks are a VIP's backends; every task but a
// stopped one is in DNS, as Mesos-DNS lists running tasks whatever their
// health.
const (
	// TaskServing: running, and healthy where the app has health checks.
	TaskServing TaskState = "serving"
	// TaskStarting: running, its first health check not passed yet.
	TaskStarting TaskState = "starting"
	// TaskUnhealthy: running, its health checks failing.
	TaskUnhealthy TaskState = "unhealthy"
	// TaskStopped: not running (stopped, killed, failed, staging).
	TaskStopped TaskState = "stopped"
)

func (s TaskState) running() bool { return s == TaskServing || s == TaskStarting || s == TaskUnhealthy }

// App is what Build needs of one app.
type App struct {
	ID string
	// Bridge is true for container/bridge networking, false for host
	// networking (where a task's ports are host ports).
	Bridge bool
	Ports  []Port
	Tasks  []Task
}

// Task is what Build needs of one instance's current task.
type Task struct {
	ID    string // the instance or task id, for listings
	State TaskState
	// IP is the container's own address (bridge networking).
	IP netip.Addr
	// HostPorts are the task's host ports by port index; 0 where none.
	HostPorts []uint16
}

// BuildConfig is what Build needs to know of the machine.
type BuildConfig struct {
	// AgentAddr is the address tasks (bridge and host) and the host reach
	// the agent by: Docker's bridge gateway. Host-network backends and
	// host-port forwards use it. Invalid: neither is made.
	AgentAddr netip.Addr
	// NamedRange is where named VIPs get their addresses.
	NamedRange netip.Prefix
	// Checker refuses VIPs whose address is unfit (apps stored before a
	// route or a network appeared); nil: no check.
	Checker *Checker
	// DNS configures the DNS server; nil: no DNS.
	DNS *DNSConfig
}

// DNSConfig configures the DNS server.
type DNSConfig struct {
	// Listen is where the server binds (UDP and TCP).
	Listen netip.AddrPort
	// Address is the nameserver tasks are given. When it differs from
	// Listen's address, or Listen's port is not 53, a forward sends
	// Address:53 to Listen.
	Address netip.Addr
	// Upstreams answer every other name: host:port, tried in order.
	Upstreams []string
}

// VIPStatus says how one VIP label of an app is served.
type VIPStatus struct {
	AppID    string          `json:"appId"`
	Path     string          `json:"path"`  // the label's path in the app JSON
	Label    string          `json:"label"` // the label's value
	Addr     netip.Addr      `json:"address"`
	Name     string          `json:"name,omitempty"` // a named VIP's DNS name
	Port     uint16          `json:"port"`
	Protocol string          `json:"protocol"`
	Served   bool            `json:"served"`
	Reason   string          `json:"reason,omitempty"` // why it is not served, or has no backend
	Backends []BackendStatus `json:"backends"`
}

// BackendStatus is one task of a VIP's app.
type BackendStatus struct {
	TaskID  string    `json:"taskId"`
	Addr    string    `json:"address,omitempty"` // addr:port connections go to
	State   TaskState `json:"state"`
	InRules bool      `json:"inRules"` // connections are sent to it
}

// Build computes the desired state from the apps. It is pure: the same
// apps, config and previous state give the same result. prev is the state
// in place (from Read, or the last one applied): named VIPs keep the
// addresses they have there, so a name's address does not move while
// clients may have it.
func Build(apps []App, cfg BuildConfig, prev *State) (State, []VIPStatus) {
	apps = slices.Clone(apps)
	sort.Slice(apps, func(i, j int) bool { return apps[i].ID < apps[j].ID })
	b := builder{cfg: cfg, vips: map[Key]int{}, owner: map[Key]string{}, forwards: map[Key]bool{}}
	b.alloc = newAllocator(cfg.NamedRange, prev)
	for _, a := range apps {
		b.app(a)
	}
	if cfg.NamedRange.IsValid() {
		b.state.Refuse = append(b.state.Refuse, cfg.NamedRange.Masked())
	}
	if cfg.DNS != nil {
		b.dns(apps)
	}
	if cfg.Checker != nil {
		for _, v := range b.state.VIPs {
			for _, be := range v.Backends {
				for _, br := range cfg.Checker.Facts.Bridges {
					if br.Subnet.Contains(be.Addr) {
						b.state.Hairpin = append(b.state.Hairpin, br.Iface)
					}
				}
			}
		}
	}
	b.state.Normalize()
	sort.SliceStable(b.status, func(i, j int) bool {
		if b.status[i].AppID != b.status[j].AppID {
			return b.status[i].AppID < b.status[j].AppID
		}
		return b.status[i].Path < b.status[j].Path
	})
	return b.state, b.status
}

type builder struct {
	cfg      BuildConfig
	state    State
	status   []VIPStatus
	vips     map[Key]int    // index in state.VIPs
	owner    map[Key]string // app id
	forwards map[Key]bool
	alloc    *allocator
}

func (b *builder) app(a App) {
	for i, p := range a.Ports {
		for _, pv := range portVIPs([]Port{p}) {
			if pv.err != nil {
				b.status = append(b.status, VIPStatus{AppID: a.ID, Path: pv.path, Label: pv.value, Reason: pv.err.Error()})
				continue
			}
			for _, proto := range pv.protocols {
				b.vip(a, i, p, pv, proto)
			}
		}
		b.forward(a, i, p)
	}
}

// vip adds one VIP label, for one protocol, of port i of app a.
func (b *builder) vip(a App, i int, p Port, pv portVIP, proto string) {
	st := VIPStatus{AppID: a.ID, Path: pv.path, Label: pv.ref.String(), Port: pv.ref.Port, Protocol: proto, Backends: []BackendStatus{}}
	var backends []Backend
	for _, t := range a.Tasks {
		be, ok := b.backend(a, i, p, t)
		bs := BackendStatus{TaskID: t.ID, State: t.State}
		if ok {
			bs.Addr = be.String()
			bs.InRules = t.State == TaskServing
			if bs.InRules {
				backends = append(backends, be)
			}
		}
		st.Backends = append(st.Backends, bs)
	}
	if pv.ref.Named() {
		st.Name = strings.TrimSuffix(L4LBName(pv.ref.Name), ".")
		addr, err := b.alloc.addr(VIPLabelName(pv.ref.Name))
		if err != nil {
			st.Reason = err.Error()
			b.status = append(b.status, st)
			return
		}
		st.Addr = addr
	} else {
		st.Addr = pv.ref.Addr
		if b.cfg.Checker != nil {
			if err := b.cfg.Checker.CheckAddr(st.Addr); err != nil {
				st.Reason = "not served: " + err.Error()
				b.status = append(b.status, st)
				return
			}
		}
	}
	k := Key{st.Addr, st.Port, proto}
	if owner, ok := b.owner[k]; ok && owner != a.ID {
		st.Reason = fmt.Sprintf("not served: %s is already the VIP of app %s", k, owner)
		b.status = append(b.status, st)
		return
	}
	st.Served = true
	if len(backends) == 0 {
		st.Reason = "no backend: no instance is running and healthy; connections are refused"
	}
	if idx, ok := b.vips[k]; ok {
		// The same app declares the VIP on two ports: both ports' tasks serve it.
		b.state.VIPs[idx].Backends = append(b.state.VIPs[idx].Backends, backends...)
	} else {
		b.vips[k] = len(b.state.VIPs)
		b.owner[k] = a.ID
		b.state.VIPs = append(b.state.VIPs, VIP{Addr: st.Addr, Port: st.Port, Protocol: proto, Label: pv.ref.String(), Name: st.Name, Backends: backends})
		b.state.Refuse = append(b.state.Refuse, netip.PrefixFrom(st.Addr, 32))
	}
	b.status = append(b.status, st)
}

// inPort is the port task t listens on inside its container for port i
// of a bridge app: the mapping's containerPort, or, for containerPort 0,
// the host port the task was given, as Marathon assigns it (0: none).
func inPort(i int, p Port, t Task) uint16 {
	if p.ContainerPort != 0 {
		return p.ContainerPort
	}
	if i < len(t.HostPorts) {
		return t.HostPorts[i]
	}
	return 0
}

// backend is where task t serves port i of app a.
func (b *builder) backend(a App, i int, p Port, t Task) (Backend, bool) {
	if port := inPort(i, p, t); a.Bridge && port != 0 {
		if !t.IP.Is4() {
			return Backend{}, false
		}
		return Backend{t.IP, port}, true
	}
	if i >= len(t.HostPorts) || t.HostPorts[i] == 0 || !b.cfg.AgentAddr.Is4() {
		return Backend{}, false
	}
	return Backend{b.cfg.AgentAddr, t.HostPorts[i]}, true
}

// forward makes a bridge task's host port reachable on the agent's
// address: Docker publishes ports on publish_address (127.0.0.1 by
// default), which containers cannot reach, while Mesos-DNS's SRV records
// name the agent and the host port.
func (b *builder) forward(a App, i int, p Port) {
	if !a.Bridge || !b.cfg.AgentAddr.Is4() {
		return
	}
	protos, err := Protocols(p.Protocol)
	if err != nil {
		return
	}
	for _, t := range a.Tasks {
		if !t.State.running() || !t.IP.Is4() || i >= len(t.HostPorts) || t.HostPorts[i] == 0 {
			continue
		}
		for _, proto := range protos {
			k := Key{b.cfg.AgentAddr, t.HostPorts[i], proto}
			if b.forwards[k] {
				continue
			}
			b.forwards[k] = true
			b.state.Forwards = append(b.state.Forwards, Forward{Addr: k.Addr, Port: k.Port, Protocol: proto, To: Backend{t.IP, inPort(i, p, t)}})
		}
	}
}

// allocator gives named VIPs addresses in a range: the one they had in
// the previous state, else the first free one from a hash of the name.
type allocator struct {
	rng   netip.Prefix
	prev  map[string]netip.Addr
	given map[string]netip.Addr
	used  map[netip.Addr]bool
}

func newAllocator(rng netip.Prefix, prev *State) *allocator {
	a := &allocator{rng: rng.Masked(), prev: map[string]netip.Addr{}, given: map[string]netip.Addr{}, used: map[netip.Addr]bool{}}
	if prev != nil {
		for _, v := range prev.VIPs {
			if v.Name != "" && a.rng.Contains(v.Addr) {
				a.prev[strings.TrimSuffix(strings.TrimSuffix(v.Name, "."), "."+strings.TrimSuffix(L4LBDomain, "."))] = v.Addr
			}
		}
	}
	// Addresses kept from before are reserved first, so a new name never
	// takes one that an existing name still has.
	for _, addr := range a.prev {
		a.used[addr] = true
	}
	return a
}

func (a *allocator) addr(name string) (netip.Addr, error) {
	if addr, ok := a.given[name]; ok {
		return addr, nil
	}
	if addr, ok := a.prev[name]; ok {
		a.given[name] = addr
		return addr, nil
	}
	if !a.rng.IsValid() || !a.rng.Addr().Is4() || a.rng.Bits() > 30 {
		return netip.Addr{}, fmt.Errorf("not served: no range for named VIPs ([network] named_vip_range)")
	}
	size := uint32(1) << (32 - a.rng.Bits())
	h := fnv.New32a()
	h.Write([]byte(name))
	start := h.Sum32() % size
	base := a.rng.Addr().As4()
	b := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for n := uint32(0); n < size; n++ {
		off := (start + n) % size
		if off == 0 || off == size-1 {
			continue // the range's network and broadcast addresses
		}
		v := b + off
		addr := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
		if !a.used[addr] {
			a.used[addr] = true
			a.given[name] = addr
			return addr, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("not served: the named VIP range %s is full", a.rng)
}

// defaultTTL is the TTL of mesolite's records: short, as dcos-dns gives,
// since tasks move on every relaunch.
const defaultTTL = 5

// dns fills in the DNS server's part of the state: Mesos-DNS's and
// DC/OS's names of every app with a running task, and the named VIPs.
func (b *builder) dns(apps []App) {
	c := b.cfg.DNS
	d := &DNS{Listen: c.Listen, Address: c.Address, Upstreams: slices.Clone(c.Upstreams)}
	if !d.Address.IsValid() {
		d.Address = c.Listen.Addr()
	}
	if d.Address != c.Listen.Addr() || c.Listen.Port() != 53 {
		for _, proto := range []string{UDP, TCP} {
			b.state.Forwards = append(b.state.Forwards, Forward{Addr: d.Address, Port: 53, Protocol: proto, To: Backend{c.Listen.Addr(), c.Listen.Port()}})
		}
		if d.Address != c.Listen.Addr() && b.cfg.Checker != nil && b.cfg.Checker.CheckAddr(d.Address) == nil {
			b.state.Refuse = append(b.state.Refuse, netip.PrefixFrom(d.Address, 32))
		}
	}
	seen := map[Record]bool{}
	add := func(r Record) {
		if !seen[r] {
			seen[r] = true
			d.Records = append(d.Records, r)
		}
	}
	agent := b.cfg.AgentAddr
	for _, a := range apps {
		b.appRecords(a, agent, add)
	}
	for _, v := range b.state.VIPs {
		if v.Name != "" {
			add(Record{Name: v.Name + ".", Type: TypeA, Addr: v.Addr})
		}
	}
	slices.SortFunc(d.Records, func(x, y Record) int {
		if c := strings.Compare(x.Name, y.Name); c != 0 {
			return c
		}
		if c := strings.Compare(x.Type, y.Type); c != 0 {
			return c
		}
		if c := x.Addr.Compare(y.Addr); c != 0 {
			return c
		}
		if c := strings.Compare(x.Target, y.Target); c != 0 {
			return c
		}
		return int(x.Port) - int(y.Port)
	})
	b.state.DNS = d
}

// appRecords adds the records of one app's running tasks.
func (b *builder) appRecords(a App, agent netip.Addr, add func(Record)) {
	name := TaskName(a.ID)
	if name == "" || !agent.Is4() {
		return
	}
	names := []string{name}
	if dotted := DottedTaskName(a.ID); dotted != "" && dotted != name {
		names = append(names, dotted)
	}
	for _, t := range a.Tasks {
		if !t.State.running() {
			continue
		}
		for _, n := range names {
			add(Record{Name: n + "." + MesosDomain, Type: TypeA, Addr: agent})
			add(Record{Name: n + "." + SlaveDomain, Type: TypeA, Addr: agent})
		}
		add(Record{Name: name + "." + AgentIPDomain, Type: TypeA, Addr: agent})
		add(Record{Name: name + "." + AutoIPDomain, Type: TypeA, Addr: agent})
		if a.Bridge && t.IP.Is4() {
			add(Record{Name: name + "." + ContainerIPDomain, Type: TypeA, Addr: t.IP})
		} else if !a.Bridge {
			add(Record{Name: name + "." + ContainerIPDomain, Type: TypeA, Addr: agent})
		}
		for i, p := range a.Ports {
			if i >= len(t.HostPorts) || t.HostPorts[i] == 0 {
				continue
			}
			protos, err := Protocols(p.Protocol)
			if err != nil {
				continue
			}
			for _, proto := range protos {
				add(Record{Name: "_" + name + "._" + proto + "." + MesosDomain, Type: TypeSRV, Target: name + "." + MesosDomain, Port: t.HostPorts[i]})
				add(Record{Name: "_" + name + "._" + proto + "." + SlaveDomain, Type: TypeSRV, Target: name + "." + SlaveDomain, Port: t.HostPorts[i]})
				if pn := dnsLabel(p.Name); pn != "" {
					add(Record{Name: "_" + pn + "._" + name + "._" + proto + "." + MesosDomain, Type: TypeSRV, Target: name + "." + MesosDomain, Port: t.HostPorts[i]})
				}
			}
		}
	}
}
