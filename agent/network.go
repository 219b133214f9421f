package agent

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/sandbox/netplane"
)

// NetworkConfig connects the agent to its network data plane
// (sandbox/netplane): VIPs, host-port forwards and DNS names. The agent
// computes the desired state from its snapshot and applies it on a worker,
// never on the loop.
type NetworkConfig struct {
	// Plane applies states; nil when networking is off.
	Plane Network
	// Mode is how the plane reaches the kernel ("kernel", "helper"), or
	// "off".
	Mode string
	// Off says why networking is off, in one sentence; shown in the
	// status and for every VIP.
	Off string
	// Table is the nftables table; Helper the helper container's name.
	Table  string
	Helper string
	// Facts reads the host's addresses, routes and Docker's bridges, at
	// start and every reconcile interval. Nil: none known.
	Facts func(ctx context.Context) (netplane.HostFacts, error)
	// InitialFacts are the facts known when the agent is made, so that the
	// first app posted is checked against them (nil: none until Facts).
	InitialFacts *netplane.HostFacts
	// AgentAddr is where tasks and the host reach the agent (host-network
	// backends, forwarded host ports, <app>.marathon.mesos). Zero: the
	// gateway of Docker's default bridge.
	AgentAddr netip.Addr
	// NamedRange is where named VIPs get their addresses.
	NamedRange netip.Prefix
	// DNS configures the DNS server; nil: no DNS.
	DNS *netplane.DNSConfig
	// TaskDNS are the nameservers tasks are given (nil: Docker's default).
	TaskDNS []string
}

// Network is the data plane the agent feeds (netplane.Plane). Its
// methods are called from the network worker, never from the loop.
type Network interface {
	Apply(ctx context.Context, s netplane.State) error
	Read(ctx context.Context) (netplane.State, error)
	Check(ctx context.Context, want netplane.State) error
}

// NetworkView is the state of the network data plane.
type NetworkView struct {
	Mode         string    // kernel, helper, off
	Off          string    // why it is off
	Table        string    // nftables table
	Helper       string    // helper container (helper mode)
	AgentAddress string    // what <app>.marathon.mesos answers
	NamedRange   string    // where named VIPs get their addresses
	DNSAddress   string    // the nameserver tasks get
	DNSListen    string    // where the DNS server listens
	Applied      time.Time // the last state applied
	Error        string    // the last apply's error, if it failed
	VIPs         int       // VIPs in the kernel's rules
}

// VIPView is one VIP label of an app and how it is served.
type VIPView struct {
	AppID    string
	Path     string // the label's path in the app JSON
	Label    string // the label's value
	Address  string // the VIP's address (a named VIP's given one)
	Name     string // a named VIP's DNS name
	Port     int
	Protocol string
	Served   bool
	Reason   string // why it is not served, or has no backend
	Backends []VIPBackend
}

// VIPBackend is one task of a VIP's app.
type VIPBackend struct {
	TaskID  string
	Address string // addr:port connections go to
	State   string // serving, starting, unhealthy, stopped
	InRules bool
}

// netState is what the network worker publishes for readers.
type netState struct {
	view NetworkView
	vips []VIPView
	dns  *netplane.DNS
}

// Network returns the state of the network data plane.
func (a *Agent) Network() NetworkView {
	if s := a.net.Load(); s != nil {
		return s.view
	}
	nc := a.cfg.Network
	return NetworkView{Mode: nc.Mode, Off: nc.Off, Table: nc.Table, Helper: nc.Helper}
}

// VIPs returns every VIP label of every app with its backends, sorted by
// app and path. Before the first state is computed it is empty.
func (a *Agent) VIPs() []VIPView {
	if s := a.net.Load(); s != nil {
		return s.vips
	}
	return nil
}

// DNS returns the DNS records last applied (nil when DNS is off).
func (a *Agent) DNS() *netplane.DNS {
	if s := a.net.Load(); s != nil {
		return s.dns
	}
	return nil
}

// netFacts returns the host facts last read.
func (a *Agent) netFacts() netplane.HostFacts {
	if f := a.facts.Load(); f != nil {
		return *f
	}
	return netplane.HostFacts{}
}

func (a *Agent) refreshFacts(ctx context.Context) {
	if a.cfg.Network.Facts == nil {
		return
	}
	f, err := a.cfg.Network.Facts(ctx)
	if err != nil {
		a.log.Warn().Err(err).Msg("read host network facts")
		return
	}
	a.facts.Store(&f)
}

func (a *Agent) checker() *netplane.Checker {
	c := &netplane.Checker{Facts: a.netFacts(), NamedRange: a.cfg.Network.NamedRange}
	if d := a.cfg.Network.DNS; d != nil && d.Address.IsValid() {
		c.Reserved = map[netip.Addr]string{d.Address: "DNS address ([network] dns_address)"}
	}
	return c
}

// netPorts converts an app's ports for the data plane.
func netPorts(ports []marathon.PortLabels) []netplane.Port {
	out := make([]netplane.Port, len(ports))
	for i, p := range ports {
		out[i] = netplane.Port{Path: p.Path, Protocol: p.Protocol, Name: p.Name, Labels: p.Labels, ContainerPort: uint16(max(0, min(p.ContainerPort, 65535)))}
	}
	return out
}

// checkVIPs is marathon.Options.CheckVIPs: the app's VIP labels against
// the machine and the other apps of the last snapshot. A command that runs
// on the loop sees a snapshot that includes every command before it (each
// settles and publishes before it answers); CreateApp checks again on the
// loop (vipClash) for two creations racing.
func (a *Agent) checkVIPs(appID string, ports []marathon.PortLabels) []marathon.Detail {
	if !hasVIPLabel(ports) {
		return nil
	}
	others := map[string][]netplane.Port{}
	if s := a.Snapshot(); s != nil {
		for _, v := range s.Apps {
			if v.ID != appID {
				others[v.ID] = netPorts(v.Spec.LabelledPorts())
			}
		}
	}
	return details(a.checker().CheckApp(appID, netPorts(ports), others))
}

// vipClash checks an app's VIP labels against the apps the loop holds.
// Loop only.
func (a *Agent) vipClash(spec *marathon.App) error {
	ports := spec.LabelledPorts()
	if !hasVIPLabel(ports) {
		return nil
	}
	others := map[string][]netplane.Port{}
	for id, ap := range a.apps {
		if id != spec.ID {
			others[id] = netPorts(ap.spec.LabelledPorts())
		}
	}
	if d := details(a.checker().CheckApp(spec.ID, netPorts(ports), others)); len(d) > 0 {
		return &marathon.ValidationError{Details: d}
	}
	return nil
}

func hasVIPPort(ports []netplane.Port) bool {
	for _, p := range ports {
		for k := range p.Labels {
			if netplane.IsVIPLabel(k) {
				return true
			}
		}
	}
	return false
}

func hasVIPLabel(ports []marathon.PortLabels) bool {
	for _, p := range ports {
		for k := range p.Labels {
			if netplane.IsVIPLabel(k) {
				return true
			}
		}
	}
	return false
}

func details(probs []netplane.Problem) []marathon.Detail {
	var out []marathon.Detail
	idx := map[string]int{}
	for _, p := range probs {
		i, ok := idx[p.Path]
		if !ok {
			i = len(out)
			idx[p.Path] = i
			out = append(out, marathon.Detail{Path: p.Path})
		}
		out[i].Errors = append(out[i].Errors, p.Message)
	}
	return out
}

// netApps is the data plane's view of the snapshot's apps.
func netApps(s *Snapshot) []netplane.App {
	out := make([]netplane.App, 0, len(s.Apps))
	for _, v := range s.Apps {
		spec := v.Spec
		na := netplane.App{ID: v.ID, Bridge: spec.NetworkMode() != marathon.NetworkHost, Ports: netPorts(spec.LabelledPorts())}
		checked := len(spec.HealthChecks) > 0
		for _, t := range v.Tasks {
			nt := netplane.Task{ID: t.ID, State: taskNetState(t, checked)}
			for _, ip := range t.IPAddresses {
				if addr, err := netip.ParseAddr(ip); err == nil && addr.Is4() {
					nt.IP = addr
					break
				}
			}
			nt.HostPorts = alignedHostPorts(spec, t.Ports)
			na.Tasks = append(na.Tasks, nt)
		}
		out = append(out, na)
	}
	return out
}

// alignedHostPorts lines a task's host ports up with the app's labelled
// ports (LabelledPorts), index for index: with host networking every port
// definition has one; otherwise only the port mappings with a hostPort do
// (in bridge mode all: it defaults to 0 there), and the others, on a
// container network, get 0 (none).
func alignedHostPorts(spec *marathon.App, ports []int) []uint16 {
	port := func(j int) uint16 {
		if j < len(ports) {
			return uint16(max(0, min(ports[j], 65535)))
		}
		return 0
	}
	if spec.NetworkMode() == marathon.NetworkHost {
		out := make([]uint16, len(ports))
		for j := range ports {
			out[j] = port(j)
		}
		return out
	}
	pms := spec.PortMappings()
	out := make([]uint16, len(pms))
	j := 0
	for i, pm := range pms {
		if pm.HostPort != nil {
			out[i] = port(j)
			j++
		}
	}
	return out
}

// taskNetState: a running task serves when its app has no health checks
// or all its checks pass; it leaves the backends at the first failed check
// (not only when the task is killed for it).
func taskNetState(t *TaskView, checked bool) netplane.TaskState {
	switch {
	case t.State != TaskRunning:
		return netplane.TaskStopped
	case !checked || t.Healthy:
		return netplane.TaskServing
	case !t.Checked:
		return netplane.TaskStarting
	}
	return netplane.TaskUnhealthy
}

func (a *Agent) buildConfig() netplane.BuildConfig {
	nc := a.cfg.Network
	cfg := netplane.BuildConfig{AgentAddr: nc.AgentAddr, NamedRange: nc.NamedRange, Checker: a.checker(), DNS: nc.DNS}
	if !cfg.AgentAddr.IsValid() {
		if b, ok := cfg.Checker.Facts.DefaultBridge(); ok {
			cfg.AgentAddr = b.Gateway
		}
	}
	return cfg
}

// runNetwork is the network worker. The rules in place are left alone
// until the first sync has read Docker's state (a restarted agent must not
// apply a state made before it knows its tasks); then every published
// snapshot that changes the desired state is applied, in one batch. Every
// reconcile interval it reads the host's facts again and checks that the
// rules in the kernel are the ones applied, putting them back if not.
func (a *Agent) runNetwork(ctx context.Context) {
	nc := a.cfg.Network
	a.refreshFacts(ctx)
	var prev *netplane.State
	if nc.Plane != nil {
		s, err := nc.Plane.Read(ctx)
		switch {
		case err == nil:
			prev = &s
			a.log.Info().Int("vips", len(s.VIPs)).Msg("network rules in place kept until the first sync")
		case !errors.Is(err, netplane.ErrNoTable):
			a.log.Warn().Err(err).Msg("read the network rules in place")
		}
	}
	tick := time.NewTicker(a.cfg.ReconcileInterval)
	defer tick.Stop()
	var last *netplane.State
	var view NetworkView
	for {
		verify := false
		select {
		case <-ctx.Done():
			return
		case <-a.netKick:
		case <-tick.C:
			a.refreshFacts(ctx)
			verify = true
		}
		snap := a.Snapshot()
		if snap == nil || !snap.Recovery.Done {
			continue
		}
		cfg := a.buildConfig()
		base := last
		if base == nil {
			base = prev
		}
		apps := netApps(snap)
		if nc.Plane == nil {
			// Off: only the VIPs' statuses are of use.
			apps = slices.DeleteFunc(apps, func(na netplane.App) bool { return !hasVIPPort(na.Ports) })
		}
		state, statuses := netplane.Build(apps, cfg, base)
		view = a.netView(cfg, view)
		if nc.Plane != nil {
			view = a.applyNetwork(ctx, state, &last, verify, view)
		}
		a.net.Store(&netState{view: view, vips: vipViews(statuses, nc), dns: state.DNS})
	}
}

// applyNetwork applies state unless it is what was applied last (and, when
// verify, still in the kernel).
func (a *Agent) applyNetwork(ctx context.Context, state netplane.State, last **netplane.State, verify bool, view NetworkView) NetworkView {
	p := a.cfg.Network.Plane
	if *last != nil && netplane.Same(**last, state) {
		if !verify {
			return view
		}
		err := p.Check(ctx, state)
		if err == nil {
			return view
		}
		a.log.Warn().Err(err).Msg("network rules not as applied; applying them again")
	}
	start := time.Now()
	if err := p.Apply(ctx, state); err != nil {
		if view.Error != err.Error() {
			a.log.Error().Err(err).Msg("apply network rules")
		}
		view.Error = err.Error()
		return view
	}
	s := state
	*last = &s
	view.Error, view.Applied, view.VIPs = "", time.Now().UTC(), len(state.VIPs)
	a.log.Debug().Int("vips", len(state.VIPs)).Int("forwards", len(state.Forwards)).Dur("took", time.Since(start)).Msg("network rules applied")
	return view
}

func (a *Agent) netView(cfg netplane.BuildConfig, v NetworkView) NetworkView {
	nc := a.cfg.Network
	v.Mode, v.Off, v.Table, v.Helper = nc.Mode, nc.Off, nc.Table, nc.Helper
	if cfg.AgentAddr.IsValid() {
		v.AgentAddress = cfg.AgentAddr.String()
	}
	if nc.NamedRange.IsValid() {
		v.NamedRange = nc.NamedRange.String()
	}
	if d := nc.DNS; d != nil {
		v.DNSAddress, v.DNSListen = d.Address.String(), d.Listen.String()
	}
	return v
}

func vipViews(st []netplane.VIPStatus, nc NetworkConfig) []VIPView {
	out := make([]VIPView, 0, len(st))
	for _, s := range st {
		v := VIPView{AppID: s.AppID, Path: s.Path, Label: s.Label, Name: s.Name, Port: int(s.Port), Protocol: s.Protocol, Served: s.Served, Reason: s.Reason}
		if s.Addr.IsValid() {
			v.Address = s.Addr.String()
		}
		if nc.Plane == nil {
			v.Served, v.Reason = false, "not served: "+nc.Off
		}
		for _, b := range s.Backends {
			v.Backends = append(v.Backends, VIPBackend{TaskID: b.TaskID, Address: b.Addr, State: string(b.State), InRules: b.InRules && nc.Plane != nil})
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].AppID != out[j].AppID {
			return out[i].AppID < out[j].AppID
		}
		return out[i].Path < out[j].Path
	})
	return out
}

// kickNetwork tells the network worker a new snapshot is out.
func (a *Agent) kickNetwork() {
	select {
	case a.netKick <- struct{}{}:
	default:
	}
}

// netFields are the agent's fields of the network worker.
type netFields struct {
	net     atomic.Pointer[netState]
	facts   atomic.Pointer[netplane.HostFacts]
	netKick chan struct{}
}
