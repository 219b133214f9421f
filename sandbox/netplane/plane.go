package netplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/system"
	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/sandbox/helper"
)

// Mode is how the data plane reaches the kernel.
type Mode string

// Modes.
const (
	// ModeKernel: this process changes nftables itself (root, or
	// CAP_NET_ADMIN) and serves DNS.
	ModeKernel Mode = "kernel"
	// ModeHelper: a helper container with host networking and NET_ADMIN
	// does both, fed by docker exec. DNS then survives the agent.
	ModeHelper Mode = "helper"
	// ModeOff: no VIPs, no DNS; Reason says why.
	ModeOff Mode = "off"
)

// Config configures Open.
type Config struct {
	// Mode is auto (kernel if this process may, else helper), kernel,
	// helper or off.
	Mode string
	// Table is the nftables table (ip family) the plane owns.
	Table string
	// Docker is needed for the helper and to tell Docker Desktop and
	// rootless Docker apart; nil: no helper.
	Docker DockerAPI
	// HelperName and HelperOwner name the helper container and label it;
	// HelperBinary is the static binary it is made of (os.Executable()).
	HelperName   string
	HelperOwner  string
	HelperBinary string
	// HelperArgs are the arguments before the helper command, e.g.
	// ["netplane-helper"] for mesolite; default: that.
	HelperArgs []string
	Logger     zerolog.Logger
}

// DockerAPI is what the plane needs of Docker: the helper's calls, and
// Info to recognise where host rules cannot reach containers.
type DockerAPI interface {
	helper.DockerAPI
	Info(ctx context.Context) (system.Info, error)
}

// Plane applies desired states in whichever way this machine allows, and
// says which. It is safe for concurrent use; Apply calls are serialized.
type Plane struct {
	mode   Mode
	reason string
	remote string // why the rules are where Docker's containers are (Remote)
	log    zerolog.Logger
	table  string

	kernel *Kernel
	dns    *DNSServer
	helper *helper.Helper
	args   []string

	mu   sync.Mutex // serializes Apply and guards last
	last *State     // the last state applied, re-applied to a new helper
}

// execTimeout bounds one exchange with the helper.
const execTimeout = 30 * time.Second

// Open chooses the mode and prepares it: in kernel mode it checks that
// netlink answers, in helper mode it makes, adopts or recreates the helper
// container and checks that it can read the kernel's rules. It never
// fails: where nothing works it returns a plane in ModeOff whose Reason
// says, in one sentence, what is off and why. The rules in place are left
// as they are until the first Apply.
func Open(ctx context.Context, cfg Config) *Plane {
	p := &Plane{log: cfg.Logger, table: cfg.Table, args: cfg.HelperArgs}
	if len(p.args) == 0 {
		p.args = []string{HelperCommand}
	}
	if p.table == "" {
		p.table = "mesolite"
	}
	mode := cfg.Mode
	if mode == "" {
		mode = "auto"
	}
	if mode == string(ModeOff) {
		return p.off("VIPs and Mesos-DNS names are off: [network] mode = \"off\"")
	}
	if why := unreachableHost(ctx, cfg.Docker); why != "" {
		// The rules belong where the tasks' network is: the helper, with
		// Docker's host networking, runs there (Docker Desktop's virtual
		// machine, rootless Docker's network namespace) and serves VIPs
		// and names to the tasks; this machine's shell does not reach them.
		if mode == string(ModeKernel) {
			return p.off("VIPs and Mesos-DNS names are off: [network] mode = \"kernel\", but " + why)
		}
		h, err := p.openHelper(ctx, cfg)
		if err != nil {
			return p.off("VIPs and Mesos-DNS names are off: " + why + ", and the helper container that would serve them there does not work: " + err.Error())
		}
		p.mode, p.helper, p.remote = ModeHelper, h, why
		return p
	}
	var kernelErr error
	if mode == "auto" || mode == string(ModeKernel) {
		k := NewKernel(p.table)
		if kernelErr = k.Probe(); kernelErr == nil {
			p.mode, p.kernel, p.dns = ModeKernel, k, NewDNSServer(cfg.Logger)
			return p
		}
		if mode == string(ModeKernel) {
			return p.off(fmt.Sprintf("VIPs and Mesos-DNS names are off: [network] mode = \"kernel\", but this process cannot change nftables: %v", kernelErr))
		}
	}
	h, err := p.openHelper(ctx, cfg)
	if err != nil {
		why := "the helper container does not work: " + err.Error()
		if kernelErr != nil {
			why = fmt.Sprintf("mesolite is not allowed to change nftables (%v), and %s", kernelErr, why)
		}
		return p.off("VIPs and Mesos-DNS names are off: " + why)
	}
	p.mode, p.helper = ModeHelper, h
	return p
}

func (p *Plane) off(reason string) *Plane {
	p.mode, p.reason = ModeOff, reason
	return p
}

// unreachableHost says why rules in this machine's kernel would not reach
// Docker's containers: Docker Desktop (containers run in a VM) or rootless
// Docker (containers run in another network namespace). "" otherwise, or
// when Docker does not say.
func unreachableHost(ctx context.Context, d DockerAPI) string {
	if d == nil {
		return ""
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	info, err := d.Info(ictx)
	cancel()
	if err != nil {
		return ""
	}
	for _, o := range info.SecurityOptions {
		if strings.Contains(o, "name=rootless") {
			return "Docker runs rootless, so its containers are in a network namespace this machine's rules do not reach"
		}
	}
	if strings.Contains(info.OperatingSystem, "Docker Desktop") {
		return "Docker Desktop runs containers in a virtual machine this machine's rules do not reach"
	}
	return ""
}

func (p *Plane) openHelper(ctx context.Context, cfg Config) (*helper.Helper, error) {
	if cfg.Docker == nil {
		return nil, errors.New("no Docker client")
	}
	if cfg.HelperBinary == "" || cfg.HelperName == "" {
		return nil, errors.New("no helper binary or name configured")
	}
	spec := helper.Spec{
		Kind:        "netplane",
		Name:        cfg.HelperName,
		Owner:       cfg.HelperOwner,
		Binary:      cfg.HelperBinary,
		Cmd:         append(append([]string{}, p.args...), "serve", "--table", p.table),
		NetworkMode: "host",
		// NET_ADMIN changes nftables; NET_BIND_SERVICE binds DNS on port 53.
		CapAdd: []string{"NET_ADMIN", "NET_BIND_SERVICE"},
	}
	h, err := helper.New(cfg.Docker, spec, cfg.Logger)
	if err != nil {
		return nil, err
	}
	if _, err := h.Ensure(ctx); err != nil {
		return nil, err
	}
	p.helper = h
	if _, _, err := p.readHelper(ctx); err != nil {
		return nil, fmt.Errorf("the helper cannot read nftables: %w", err)
	}
	return h, nil
}

// Mode is the mode Open chose.
func (p *Plane) Mode() Mode { return p.mode }

// Reason says why the plane is off ("" when it is on).
func (p *Plane) Reason() string { return p.reason }

// Remote says why the rules are not in this machine's kernel but where
// Docker's containers are (Docker Desktop, rootless Docker), served by the
// helper to the tasks only; "" when they are on this machine.
func (p *Plane) Remote() string { return p.remote }

// Table is the nftables table the plane owns.
func (p *Plane) Table() string { return p.table }

// HelperName is the helper container's name (helper mode).
func (p *Plane) HelperName() string {
	if p.helper == nil {
		return ""
	}
	return p.helper.Name()
}

// ErrOff: the plane is off; its Reason says why.
var ErrOff = errors.New("the network data plane is off")

// Apply puts s in place: the rules in one atomic batch, then DNS. In
// kernel mode the DNS address is bound first: where another agent serves
// DNS (and so owns the rules), Apply fails with the rules untouched. In
// helper mode it first makes sure the helper runs (recreating it if it
// died). s is remembered and put in place again if the helper is
// recreated (Watch).
func (p *Plane) Apply(ctx context.Context, s State) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	s.Normalize()
	if err := s.Validate(); err != nil {
		return err
	}
	switch p.mode {
	case ModeKernel:
		if err := p.dns.Bind(s.DNS); err != nil {
			return err
		}
		if err := p.kernel.Apply(s); err != nil {
			return err
		}
		if err := p.dns.Update(s.DNS); err != nil {
			return err
		}
	case ModeHelper:
		if _, err := p.helper.Ensure(ctx); err != nil {
			return err
		}
		if err := p.applyHelper(ctx, s); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: %s", ErrOff, p.reason)
	}
	p.last = &s
	return nil
}

func (p *Plane) applyHelper(ctx context.Context, s State) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	if _, err := p.helper.Exec(ctx, p.cmd("apply"), b); err != nil {
		return fmt.Errorf("apply in helper: %w", err)
	}
	return nil
}

func (p *Plane) cmd(name string) []string {
	return append(append([]string{}, p.args...), name, "--table", p.table)
}

func (p *Plane) readHelper(ctx context.Context) (State, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, execTimeout)
	defer cancel()
	out, err := p.helper.Exec(ctx, p.cmd("read"), nil)
	if err != nil {
		return State{}, false, err
	}
	var r HelperReadout
	if err := json.NewDecoder(bytes.NewReader(out)).Decode(&r); err != nil {
		return State{}, false, fmt.Errorf("read helper's answer: %w", err)
	}
	return r.State, r.Table, nil
}

// Read reads the rules in place from the kernel (through the helper in
// helper mode, where DNS comes from the helper's state file; in kernel
// mode DNS is the last state applied). A missing table is ErrNoTable.
func (p *Plane) Read(ctx context.Context) (State, error) {
	switch p.mode {
	case ModeKernel:
		s, err := p.kernel.Read()
		if err != nil {
			return s, err
		}
		p.mu.Lock()
		if p.last != nil {
			s.DNS = p.last.DNS
		}
		p.mu.Unlock()
		return s, nil
	case ModeHelper:
		s, ok, err := p.readHelper(ctx)
		if err != nil {
			return State{}, err
		}
		if !ok {
			return s, fmt.Errorf("read nftables table %s: %w", p.table, ErrNoTable)
		}
		return s, nil
	}
	return State{}, fmt.Errorf("%w: %s", ErrOff, p.reason)
}

// Check reads the rules back and says how they differ from want; nil
// when the kernel has exactly want's rules.
func (p *Plane) Check(ctx context.Context, want State) error {
	got, err := p.Read(ctx)
	if err != nil {
		return err
	}
	if !Equal(got, want) {
		return fmt.Errorf("the rules in table %s are not the ones applied", p.table)
	}
	return nil
}

// WatchInterval is how often Watch looks at the helper container.
const WatchInterval = 5 * time.Second

// Watch keeps the helper container running until ctx ends: when it died
// or was removed, it is started or recreated and the last state applied
// again (the rules stay in the kernel meanwhile; DNS is back with it). It
// returns at once outside helper mode.
func (p *Plane) Watch(ctx context.Context) {
	if p.mode != ModeHelper {
		return
	}
	t := time.NewTicker(WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.Heal(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn().Err(err).Msg("netplane helper")
		}
	}
}

// Heal makes sure the helper runs, and applies the last state again when
// it had to start or recreate it.
func (p *Plane) Heal(ctx context.Context) error {
	if p.mode != ModeHelper {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	st, err := p.helper.Ensure(ctx)
	if err != nil {
		return err
	}
	if (st.Created || st.Started) && p.last != nil {
		if err := p.applyHelper(ctx, *p.last); err != nil {
			return err
		}
		p.log.Info().Bool("recreated", st.Created).Msg("netplane helper back; state applied again")
	}
	return nil
}

// Close stops what runs in this process (the DNS server in kernel mode).
// The rules stay in the kernel and the helper keeps running.
func (p *Plane) Close() {
	if p.dns != nil {
		p.dns.Close()
	}
}

// Cleanup removes everything the plane made: the table, and in helper
// mode the helper container and its image. Explicit clean-up only.
func (p *Plane) Cleanup(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.last = nil
	switch p.mode {
	case ModeKernel:
		p.dns.Close()
		return p.kernel.Remove()
	case ModeHelper:
		ectx, cancel := context.WithTimeout(ctx, execTimeout)
		_, err := p.helper.Exec(ectx, p.cmd("remove"), nil)
		cancel()
		if err != nil {
			return fmt.Errorf("remove the table through the helper: %w", err)
		}
		return p.helper.Remove(ctx)
	}
	return nil
}
