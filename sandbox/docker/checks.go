package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"

	"github.com/mesolite/mesolite/sandbox/helper"
	"github.com/mesolite/mesolite/sandbox/probe"
)

// How TCP and HTTP checks reach the tasks. The agent's process connects to
// a container's own address where it can (Docker Engine on Linux); where
// it cannot (Docker Desktop, whose containers live in a virtual machine;
// rootless Docker, whose bridge lives in a network namespace of its own),
// a helper container on the tasks' network connects for it, and the agent
// reaches the helper through a port the helper publishes on the host's
// loopback, which works on every Docker. Which one is decided at start:
// the helper container is made (or adopted), then the agent tries to open
// a connection to the helper's own address and to speak the helper's
// protocol there (so an answer from anything else, such as a container of
// another daemon with the same address, does not count).
//
// The helper is the sandbox/helper mechanism: an image imported from
// mesolite's own binary, labelled with this agent as its owner (and never
// with task labels, so it is never taken for an orphan task), adopted by a
// restarted agent, recreated when it dies, and removed only by an explicit
// clean-up (RemoveChecksHelper).

// Check path modes ([tasks] check_path).
const (
	CheckPathAuto   = "auto"
	CheckPathDirect = "direct"
	CheckPathHelper = "helper"
)

// ChecksHelperKind is the helper kind (label) of the check helper.
const ChecksHelperKind = "checks"

// ChecksHelperCommand is the mesolite subcommand the helper runs.
const ChecksHelperCommand = "check-helper"

// ChecksTokenEnv holds the helper's token in its environment.
const ChecksTokenEnv = "MESOLITE_CHECKS_TOKEN"

// checksPort is the port the helper listens on inside its container.
const checksPort = 7070

// ChecksConfig says how the runtime finds its path to the containers.
type ChecksConfig struct {
	// Mode is CheckPathAuto (detect), CheckPathDirect or CheckPathHelper.
	Mode string
	// Binary finds a static Linux build of mesolite for the daemon's
	// architecture (goarch) to run as the helper, or says why there is
	// none.
	Binary func(goarch string) (string, error)
	// Recheck is how often the helper is looked after (default 30s).
	Recheck time.Duration
}

// ChecksHelperSpec is the helper container of the agent with this id.
func ChecksHelperSpec(agentID, binary, token string) helper.Spec {
	short := agentID
	if len(short) > 8 {
		short = short[:8]
	}
	return helper.Spec{
		Kind: ChecksHelperKind, Name: "mesolite-checks-" + short, Owner: "agent:" + agentID,
		Binary: binary, Cmd: []string{ChecksHelperCommand, "--listen", ":" + strconv.Itoa(checksPort)},
		Env: []string{ChecksTokenEnv + "=" + token}, NetworkMode: "bridge",
		Publish: []int{checksPort}, PublishIP: "127.0.0.1",
	}
}

// checks is the runtime's side of the check path.
type checks struct {
	d   *Runtime
	cfg ChecksConfig

	mu        sync.Mutex
	h         *helper.Helper
	id        string          // the helper container
	published string          // its published address, 127.0.0.1:port
	token     string          // its token
	networks  map[string]bool // user networks it was connected to
	client    *probe.Client
	kick      chan struct{} // asks the loop to look after the helper now
}

// StartChecks decides the check path and looks after the helper until ctx
// ends. It returns at once; checks wait for the decision (probe.Router).
func (d *Runtime) StartChecks(ctx context.Context, cfg ChecksConfig) {
	if cfg.Recheck <= 0 {
		cfg.Recheck = 30 * time.Second
	}
	if cfg.Mode == "" {
		cfg.Mode = CheckPathAuto
	}
	c := &checks{d: d, cfg: cfg, networks: map[string]bool{}, kick: make(chan struct{}, 1)}
	go c.loop(ctx)
}

// loop decides the path (again after a failure) and looks after the
// helper: every Recheck, and at once when its connection broke.
func (c *checks) loop(ctx context.Context) {
	decided := false
	wait := time.Duration(0)
	for {
		select {
		case <-ctx.Done():
			c.mu.Lock()
			cl := c.client
			c.mu.Unlock()
			if cl != nil {
				_ = cl.Close() // the agent stops; the helper runs on
			}
			return
		case <-time.After(wait):
		case <-c.kick:
		}
		if !decided {
			decided = c.decide(ctx)
		} else {
			c.lookAfter(ctx)
		}
		wait = c.cfg.Recheck
		if !decided {
			wait = min(c.cfg.Recheck, 5*time.Second)
		}
	}
}

// decide chooses the path; false: try again later (Docker does not
// answer yet).
func (c *checks) decide(ctx context.Context) bool {
	d := c.d
	if c.cfg.Mode == CheckPathDirect {
		c.set(probe.PathDirect, "[tasks] check_path = \"direct\": checks connect to the containers' own addresses", probe.Direct{})
		return true
	}
	facts, err := d.Facts(ctx)
	if err != nil {
		d.log.Debug().Err(err).Msg("check path: docker does not answer yet")
		return false
	}
	hostCannot := facts.Rootless || facts.Desktop
	noHelper := func(err error) bool {
		if c.cfg.Mode == CheckPathAuto && !hostCannot && facts.OS == "linux" && runtime.GOOS == "linux" {
			c.set(probe.PathDirect, fmt.Sprintf("no helper container (%v); checks connect to the containers' own addresses, which works with Docker Engine on Linux", err), probe.Direct{})
			return true
		}
		c.set(probe.PathNone, fmt.Sprintf("TCP and HTTP checks need the helper container here, and there is none: %v", err), nil)
		return true
	}
	if err := c.ensure(ctx, facts.Arch); err != nil {
		if errors.Is(err, errNoBinary) || errors.Is(err, helper.ErrDynamicBinary) {
			return noHelper(err)
		}
		d.log.Warn().Err(err).Msg("check helper")
		return noHelper(err)
	}
	c.mu.Lock()
	id, published, token := c.id, c.published, c.token
	c.mu.Unlock()
	readyErr := waitHello(ctx, published, token, 10*time.Second)
	own, err := c.ownAddress(ctx, id)
	if err != nil {
		return noHelper(err)
	}
	if c.cfg.Mode == CheckPathAuto && readyErr == nil {
		hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, derr := dialHello(hctx, own, token)
		cancel()
		if derr == nil {
			c.set(probe.PathDirect, "this process reaches the containers' own addresses (checked against the check helper at "+own+")", probe.Direct{})
			return true
		}
		d.log.Info().Str("helper_address", own).Str("cause", derr.Error()).Msg("this process cannot reach the containers' own addresses")
	}
	if readyErr != nil {
		c.set(probe.PathNone, "the check helper does not answer on its published port "+published+": "+readyErr.Error(), nil)
		return true
	}
	why := "this process cannot reach the containers' own addresses"
	if c.cfg.Mode == CheckPathHelper {
		why = "[tasks] check_path = \"helper\""
	}
	c.set(probe.PathHelper, why+"; checks run in the helper container "+c.h.Name()+" on the tasks' network, reached at "+published, c)
	return true
}

// lookAfter makes sure the helper runs; a new or restarted one gets a new
// published port, which the client dials next time.
func (c *checks) lookAfter(ctx context.Context) {
	c.mu.Lock()
	h := c.h
	c.mu.Unlock()
	if h == nil {
		return
	}
	st, err := h.Ensure(ctx)
	if err != nil {
		c.d.log.Warn().Err(err).Msg("check helper")
		return
	}
	if st.Created || st.Started {
		if err := c.readHelper(ctx, st.ID); err != nil {
			c.d.log.Warn().Err(err).Msg("check helper")
		}
	}
}

var errNoBinary = errors.New("no helper binary")

// ensure makes or adopts the helper and reads its addresses.
func (c *checks) ensure(ctx context.Context, arch string) error {
	if c.cfg.Binary == nil {
		return fmt.Errorf("%w: none configured", errNoBinary)
	}
	bin, err := c.cfg.Binary(arch)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoBinary, err)
	}
	tok := make([]byte, 16)
	_, _ = rand.Read(tok) // crypto/rand does not fail
	h, err := helper.New(c.d.raw, ChecksHelperSpec(c.d.agentID, bin, hex.EncodeToString(tok)), c.d.log)
	if err != nil {
		return err
	}
	st, err := h.Ensure(ctx)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.h = h
	c.mu.Unlock()
	return c.readHelper(ctx, st.ID)
}

// readHelper reads the helper's published port and token (an adopted
// helper keeps the token it was made with).
func (c *checks) readHelper(ctx context.Context, id string) error {
	ictx, cancel := context.WithTimeout(ctx, callTimeout)
	in, err := c.d.api.ContainerInspect(ictx, id)
	cancel()
	if err != nil {
		return classify(err, "inspect check helper")
	}
	token := ""
	if in.Config != nil {
		for _, e := range in.Config.Env {
			if v, ok := strings.CutPrefix(e, ChecksTokenEnv+"="); ok {
				token = v
			}
		}
	}
	published := ""
	if in.NetworkSettings != nil {
		for _, b := range in.NetworkSettings.Ports[nat.Port(strconv.Itoa(checksPort)+"/tcp")] {
			if b.HostPort != "" {
				published = net.JoinHostPort("127.0.0.1", b.HostPort)
				break
			}
		}
	}
	if token == "" || published == "" {
		return fmt.Errorf("check helper %s has no token or no published port", id)
	}
	c.mu.Lock()
	old := c.client
	c.id, c.published, c.token, c.networks = in.ID, published, token, map[string]bool{}
	c.client = &probe.Client{Dial: c.dial, Token: token, Broken: c.broken}
	c.mu.Unlock()
	if old != nil {
		_ = old.Close() // its helper is gone; checks in flight on it end as transport failures
	}
	return nil
}

// ownAddress is the helper's address on the default bridge.
func (c *checks) ownAddress(ctx context.Context, id string) (string, error) {
	ictx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	in, err := c.d.api.ContainerInspect(ictx, id)
	if err != nil {
		return "", classify(err, "inspect check helper")
	}
	if in.NetworkSettings != nil {
		if n := in.NetworkSettings.Networks["bridge"]; n != nil && n.IPAddress != "" {
			return net.JoinHostPort(n.IPAddress, strconv.Itoa(checksPort)), nil
		}
	}
	return "", errors.New("the check helper has no address on the bridge network")
}

func (c *checks) dial(ctx context.Context) (net.Conn, error) {
	c.mu.Lock()
	addr := c.published
	c.mu.Unlock()
	var dl net.Dialer
	return dl.DialContext(ctx, "tcp", addr)
}

// broken is told by the client when its connection broke: look after the
// helper now.
func (c *checks) broken(err error) {
	c.d.log.Warn().Err(err).Msg("connection to the check helper broken; looking after it")
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// Probe sends a check to the helper, connecting the helper to the task's
// network first when that is a user-defined one.
func (c *checks) Probe(ctx context.Context, req probe.Request) probe.Result {
	if n := req.Network; n != "" && n != "bridge" && n != probe.NetworkHost {
		if err := c.connect(ctx, n); err != nil {
			return probe.Result{Err: probe.ErrTransport.Error() + ": " + err.Error()}
		}
	}
	c.mu.Lock()
	cl := c.client
	c.mu.Unlock()
	return cl.Probe(ctx, req)
}

func (c *checks) connect(ctx context.Context, name string) error {
	c.mu.Lock()
	id, done := c.id, c.networks[name]
	c.mu.Unlock()
	if done {
		return nil
	}
	nctx, cancel := context.WithTimeout(ctx, callTimeout)
	err := c.d.raw.NetworkConnect(nctx, name, id, &network.EndpointSettings{})
	cancel()
	if err != nil && !strings.Contains(err.Error(), "already exists") {
		return classify(err, "connect the check helper to network "+name)
	}
	c.mu.Lock()
	if c.id == id {
		c.networks[name] = true
	}
	c.mu.Unlock()
	return nil
}

func (c *checks) set(path, reason string, via probe.Prober) {
	c.d.checks.Set(probe.Info{Path: path, Reason: reason}, via)
	ev := c.d.log.Info()
	if path == probe.PathNone {
		ev = c.d.log.Error()
	}
	ev.Str("check_path", path).Str("reason", reason).Msg("health checks: path chosen")
}

// dialHello opens a connection to addr and speaks the helper's hello.
func dialHello(ctx context.Context, addr, token string) (string, error) {
	var dl net.Dialer
	conn, err := dl.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return probe.Hello(ctx, conn, token)
}

// waitHello waits until the helper answers at addr (it may have just
// started), within d.
func waitHello(ctx context.Context, addr, token string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		hctx, cancel := context.WithTimeout(ctx, time.Second)
		_, err := dialHello(hctx, addr, token)
		cancel()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// RemoveChecksHelper removes the check helper of the agent with this id
// and its image: the explicit clean-up. A missing one is not an error.
func (d *Runtime) RemoveChecksHelper(ctx context.Context, agentID string) (string, error) {
	spec := ChecksHelperSpec(agentID, "", "")
	in, err := d.api.ContainerInspect(ctx, spec.Name)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", nil
		}
		return "", classify(err, "inspect check helper")
	}
	if in.Config == nil || in.Config.Labels[helper.LabelOwner] != spec.Owner || in.Config.Labels[helper.LabelHelper] != ChecksHelperKind {
		return "", fmt.Errorf("container %s is not this agent's check helper: left alone", spec.Name)
	}
	if err := d.api.ContainerRemove(ctx, in.ID, container.RemoveOptions{Force: true}); err != nil {
		return "", classify(err, "remove check helper")
	}
	// Its image goes too, unless another helper still runs it.
	if in.Image != "" && d.raw != nil {
		if _, err := d.raw.ImageRemove(ctx, in.Image, image.RemoveOptions{}); err != nil && !cerrdefs.IsConflict(err) && !cerrdefs.IsNotFound(err) {
			d.log.Warn().Err(err).Msg("remove the check helper's image")
		}
	}
	return spec.Name, nil
}

// Probe makes a TCP or HTTP check of a task's address along the path this
// host has to the containers.
func (d *Runtime) Probe(ctx context.Context, req probe.Request) probe.Result {
	return d.checks.Probe(ctx, req)
}

// ProbePath says which path checks take.
func (d *Runtime) ProbePath() probe.Info { return d.checks.Info() }
