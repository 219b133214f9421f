package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/mesolite/mesolite/sandbox/netplane"
	"github.com/mesolite/mesolite/sandbox/netplane/netplanetest"
)

// The benchmark's network: its own table, VIPs in 198.18.250.0/24 and
// named VIPs in 198.19.250.0/24 (198.18.0.0/15 is never routed), guarded
// like the tests' so that no packet to them can leave the machine.
const (
	benchTable  = "mesolite_t_bench"
	benchVIPNet = "198.18.250.0/24"
	benchNamed  = "198.19.250.0/24"
	benchGuard  = "bench"
	benchDNS    = "198.18.250.53"
)

// agentNetwork is the [network] section of the agents the benchmark runs:
// networking on, as a user has it, on the benchmark's own table and
// addresses (so the restart and memory figures include it); off where
// this machine cannot have it.
var agentNetwork = "[network]\nmode = \"off\"\n"

// setAgentNetwork turns networking on for the agents when the benchmark
// runs as root and Docker's bridge gateway is known.
func (b *bench) setAgentNetwork() {
	if os.Geteuid() != 0 {
		b.step("not root: the agents run without networking, and the VIP benchmark is left out")
		return
	}
	facts, err := netplane.ReadHostFacts(b.ctx, b.dc)
	gw, ok := facts.DefaultBridge()
	if err != nil || !ok || !gw.Gateway.IsValid() {
		b.step("no Docker bridge gateway (%v): the agents run without networking", err)
		return
	}
	pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(gw.Gateway, 0).String())
	if err != nil {
		b.step("no free DNS port on %s: %v", gw.Gateway, err)
		return
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	_ = pc.Close() // only picked a free port
	agentNetwork = fmt.Sprintf("[network]\nmode = \"kernel\"\ntable = %q\nnamed_vip_range = %q\ndns_address = %q\ndns_listen = \"%s:%d\"\ndns_upstream = [\"127.0.0.1:1\"]\n",
		benchTable, benchNamed, benchDNS, gw.Gateway, port)
}

// vipApp is the test app with a VIP on its port and an HTTP check every
// second that never kills (an unhealthy instance stays, out of the VIP).
func vipApp(id string, instances int, vip string) map[string]any {
	m := checkedApp(id, instances, "HTTP")
	m["healthChecks"].([]any)[0].(map[string]any)["maxConsecutiveFailures"] = 0
	pm := m["container"].(map[string]any)["portMappings"].([]any)[0].(map[string]any)
	pm["labels"] = map[string]any{"VIP_0": vip}
	return m
}

type vipsJSON struct {
	VIPs []struct {
		AppID    string `json:"appId"`
		Address  string `json:"address"`
		Port     int    `json:"port"`
		Backends []struct {
			Address string `json:"address"`
			InRules bool   `json:"inRules"`
		} `json:"backends"`
	} `json:"vips"`
}

// inRules is the VIP's backends in the agent's view, confirmed in the
// kernel's rules.
func (b *bench) inRules(p *agentProc, vip netip.AddrPort) ([]string, error) {
	var r vipsJSON
	if err := p.api.do(b.ctx, "GET", "/mesolite/v1/vips", nil, &r); err != nil {
		return nil, err
	}
	var view []string
	for _, v := range r.VIPs {
		if v.Address == vip.Addr().String() && v.Port == int(vip.Port()) {
			for _, be := range v.Backends {
				if be.InRules {
					view = append(view, be.Address)
				}
			}
		}
	}
	s, err := netplane.NewKernel(benchTable).Read()
	if err != nil {
		return nil, err
	}
	for _, v := range s.VIPs {
		if v.Addr == vip.Addr() && v.Port == vip.Port() && len(v.Backends) == len(view) {
			return view, nil
		}
	}
	return nil, nil // the kernel does not agree yet
}

// waitInRules polls until the VIP has n backends in the rules.
func (b *bench) waitInRules(p *agentProc, vip netip.AddrPort, n int, d time.Duration) ([]string, error) {
	deadline := time.Now().Add(d)
	for {
		got, err := b.inRules(p, vip)
		if err == nil && got != nil && len(got) == n {
			return got, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("VIP %s: %d backends in the rules after %v, want %d (%v)", vip, len(got), d, n, err)
		}
		if b.ctx.Err() != nil {
			return nil, b.ctx.Err()
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// vipBench measures a VIP against the container's own address from the
// host: TCP connection set-up, request latency on an established
// connection, bulk transfer; and how long an instance that turns
// unhealthy stays in the VIP.
func (b *bench) vipBench(p *agentProc) error {
	if !strings.Contains(agentNetwork, benchTable) {
		return errors.New("networking is off for the agents (see above)")
	}
	remove, err := netplanetest.InstallGuard(benchGuard, netip.MustParsePrefix(benchVIPNet), netip.MustParsePrefix(benchNamed))
	if err != nil {
		return err
	}
	defer func() {
		if n := guardDrops(); n != 0 {
			b.rep.Errors = append(b.rep.Errors, fmt.Sprintf("VIPs: the guard dropped %d packets", n))
		}
		if err := remove(); err != nil {
			b.rep.Errors = append(b.rep.Errors, err.Error())
		}
	}()
	es, err := p.api.subscribe(b.ctx, "status_update_event", "app_terminated_event")
	if err != nil {
		return err
	}
	defer es.Close()

	vip := netip.MustParseAddrPort("198.18.250.1:8080")
	id := "/bench-vip"
	if err := p.api.do(b.ctx, "POST", "/v2/apps", vipApp(id, 1, vip.String()), nil); err != nil {
		return err
	}
	be, err := b.waitInRules(p, vip, 1, 90*time.Second)
	if err != nil {
		return err
	}
	direct := be[0]
	b.step("VIP %s → %s", vip, direct)
	if err := b.vipConnect(vip.String(), direct); err != nil {
		return err
	}
	if err := b.vipLatency(vip.String(), direct); err != nil {
		return err
	}
	if err := b.vipThroughput(vip.String(), direct); err != nil {
		return err
	}
	if err := b.vipFromContainer(vip.String(), direct); err != nil {
		return err
	}
	if err := b.removeApp(p, es, id); err != nil {
		return err
	}
	return b.vipUnhealthy(p, es)
}

func guardDrops() uint64 {
	n, err := netplanetest.ReadGuardDrops(benchGuard)
	if err != nil {
		return 0 // the guard is gone: nothing counted
	}
	return n
}

// vipConnect: TCP connection set-up, VIP and direct alternately.
func (b *bench) vipConnect(vip, direct string) error {
	n := 1000
	if b.quick {
		n = 300
	}
	var v, d []float64
	dial := func(addr string) (float64, error) {
		t0 := time.Now()
		c, err := net.DialTimeout("tcp4", addr, 2*time.Second)
		el := time.Since(t0)
		if err != nil {
			return 0, err
		}
		_ = c.Close() // set-up is what is measured
		return float64(el.Microseconds()), nil
	}
	for i := 0; i < n; i++ {
		err := alternate(i, func() error {
			x, err := dial(vip)
			v = append(v, x)
			return err
		}, func() error {
			x, err := dial(direct)
			d = append(d, x)
			return err
		})
		if err != nil {
			return err
		}
	}
	b.vipFigures("connect", "from the host: TCP connection set-up", "µs", v, d)
	return nil
}

// vipLatency: a GET on an established (keep-alive) connection.
func (b *bench) vipLatency(vip, direct string) error {
	n := 2000
	if b.quick {
		n = 500
	}
	client := func() *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	}
	cv, cd := client(), client()
	defer cv.CloseIdleConnections()
	defer cd.CloseIdleConnections()
	get := func(c *http.Client, addr string) (float64, error) {
		t0 := time.Now()
		resp, err := c.Get("http://" + addr + "/hostname")
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return float64(time.Since(t0).Microseconds()), err
	}
	var v, d []float64
	for i := -20; i < n; i++ { // 20 warm-up rounds
		err := alternate(i+20, func() error {
			x, err := get(cv, vip)
			if i >= 0 {
				v = append(v, x)
			}
			return err
		}, func() error {
			x, err := get(cd, direct)
			if i >= 0 {
				d = append(d, x)
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	b.vipFigures("latency", "from the host: request latency (GET on an established connection)", "µs", v, d)
	return nil
}

// vipThroughput: a bulk GET of 256 MiB.
func (b *bench) vipThroughput(vip, direct string) error {
	reps, size := 16, int64(256<<20) // a run takes 0.1-0.2 s: many, against the machine's noise
	if b.quick {
		reps = 3
	}
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}
	pull := func(addr string) (float64, error) {
		t0 := time.Now()
		resp, err := c.Get(fmt.Sprintf("http://%s/bytes?n=%d", addr, size))
		if err != nil {
			return 0, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && n != size {
			err = fmt.Errorf("%d of %d bytes", n, size)
		}
		return float64(size) / (1 << 20) / time.Since(t0).Seconds(), err
	}
	var v, d []float64
	for i := 0; i < reps; i++ {
		err := alternate(i, func() error {
			x, err := pull(vip)
			v = append(v, x)
			return err
		}, func() error {
			x, err := pull(direct)
			d = append(d, x)
			return err
		})
		if err != nil {
			return err
		}
	}
	b.throughputFigures("vip.throughput", "from the host: ", v, d)
	return nil
}

func (b *bench) throughputFigures(key, who string, v, d []float64) {
	vd, dd := dist(v, true), dist(d, true)
	b.rep.add(&Figure{Key: key + ".vip", Section: "vip", Name: who + "bulk transfer (256 MiB GET), through the VIP", Unit: "MiB/s", Value: vd.P50, Dist: vd})
	b.rep.add(&Figure{Key: key + ".direct", Section: "vip", Name: who + "bulk transfer (256 MiB GET), straight to the container", Unit: "MiB/s", Value: dd.P50, Dist: dd})
	b.rep.add(&Figure{Key: key + ".ratio", Section: "vip", Name: who + "bulk transfer through the VIP / direct", Unit: "×", Value: vd.P50 / dd.P50, Target: &Target{">=", 0.95}})
}

// vipFromContainer measures the same from another container on the
// bridge, as a task reaches a VIP: the test image's timedial, timeget and
// pull, run with docker exec, VIP and direct alternately.
func (b *bench) vipFromContainer(vip, direct string) error {
	id, err := b.base.runContainer(b.ctx, runSpec{name: "vip-client"})
	if err != nil {
		return err
	}
	defer func() { _ = b.base.remove(context.WithoutCancel(b.ctx), id) }() // cleanup removes it otherwise
	rounds, per := 20, 100
	if b.quick {
		rounds, per = 4, 75
	}
	samples := func(script string) ([]float64, error) {
		out, err := execOut(b.ctx, b.dc, id, script)
		if err != nil {
			return nil, err
		}
		var xs []float64
		for _, l := range strings.Fields(out) {
			x, err := strconv.ParseFloat(l, 64)
			if err != nil {
				return nil, fmt.Errorf("%s: %q", script, out)
			}
			xs = append(xs, x)
		}
		return xs, nil
	}
	collect := func(cmd, a, c string) ([]float64, []float64, error) {
		var v, d []float64
		for i := 0; i < rounds; i++ {
			err := alternate(i, func() error {
				xs, err := samples(fmt.Sprintf(cmd, a))
				v = append(v, xs...)
				return err
			}, func() error {
				xs, err := samples(fmt.Sprintf(cmd, c))
				d = append(d, xs...)
				return err
			})
			if err != nil {
				return nil, nil, err
			}
		}
		return v, d, nil
	}
	// Set-up and latency: the two targets in turns, request by request,
	// in one client (the test image's "A,B" form).
	pairs := func(script string) ([]float64, []float64, error) {
		var v, d []float64
		for i := 0; i < rounds; i++ {
			out, err := execOut(b.ctx, b.dc, id, script)
			if err != nil {
				return nil, nil, err
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			// The first pair opens the kept-alive connections: a warm-up.
			for _, l := range lines[1:] {
				f := strings.Fields(l)
				if len(f) != 2 {
					return nil, nil, fmt.Errorf("%s: %q", script, l)
				}
				x, err1 := strconv.ParseFloat(f[0], 64)
				y, err2 := strconv.ParseFloat(f[1], 64)
				if err1 != nil || err2 != nil {
					return nil, nil, fmt.Errorf("%s: %q", script, l)
				}
				v, d = append(v, x), append(d, y)
			}
		}
		return v, d, nil
	}
	v, d, err := pairs(fmt.Sprintf("timedial %s,%s %d", vip, direct, per+1))
	if err != nil {
		return err
	}
	b.vipFigures("c.connect", "from a container: TCP connection set-up", "µs", v, d)
	v, d, err = pairs(fmt.Sprintf("timeget http://%s/hostname,http://%s/hostname %d", vip, direct, 2*per+1))
	if err != nil {
		return err
	}
	b.vipFigures("c.latency", "from a container: request latency (GET on an established connection)", "µs", v, d)
	rounds = 16
	if b.quick {
		rounds = 3
	}
	v, d, err = collect("pull http://%s/bytes?n=268435456", vip, direct)
	if err != nil {
		return err
	}
	b.throughputFigures("vip.c.throughput", "from a container: ", v, d)
	return nil
}

// execOut runs the test image's /bin/sh -c script in a container and
// returns its stdout; a non-zero exit is an error with the output.
func execOut(ctx context.Context, dc *client.Client, id, script string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	r, err := dc.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"/bin/sh", "-c", script}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", err
	}
	hj, err := dc.ContainerExecAttach(ctx, r.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", err
	}
	defer hj.Close()
	var out, errOut strings.Builder
	if _, err := stdcopy.StdCopy(&out, &errOut, hj.Reader); err != nil {
		return "", err
	}
	for i := 0; i < 1000; i++ {
		in, err := dc.ContainerExecInspect(ctx, r.ID)
		if err != nil {
			return "", err
		}
		if !in.Running {
			if in.ExitCode != 0 {
				return "", fmt.Errorf("%s: exit %d: %s%s", script, in.ExitCode, out.String(), errOut.String())
			}
			return out.String(), nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	return "", fmt.Errorf("%s: still running", script)
}

// vipFigures reports p50 and p99 of both sides and their ratios, each
// with the target "at most 5% more through the VIP".
func (b *bench) vipFigures(key, name, unit string, vip, direct []float64) {
	vd, dd := dist(vip, false), dist(direct, false)
	b.rep.add(&Figure{Key: "vip." + key + ".vip", Section: "vip", Name: name + ", through the VIP", Unit: unit, Value: vd.P50, Dist: vd})
	b.rep.add(&Figure{Key: "vip." + key + ".direct", Section: "vip", Name: name + ", straight to the container", Unit: unit, Value: dd.P50, Dist: dd})
	b.rep.add(&Figure{Key: "vip." + key + ".p50", Section: "vip", Name: name + ": VIP / direct, p50", Unit: "×", Value: vd.P50 / dd.P50, Target: &Target{"<=", 1.05}})
	b.rep.add(&Figure{Key: "vip." + key + ".p99", Section: "vip", Name: name + ": VIP / direct, p99", Unit: "×", Value: vd.P99 / dd.P99, Target: &Target{"<=", 1.05}})
}

// vipUnhealthy: three instances behind a VIP, checks every second; one is
// made unhealthy (its /health answers 503) and the time until it is out
// of the kernel's rules is taken; then it is made healthy again.
func (b *bench) vipUnhealthy(p *agentProc, es *eventStream) error {
	reps := 8
	if b.quick {
		reps = 3
	}
	vip := netip.MustParseAddrPort("198.18.250.2:8080")
	id := "/bench-vip-health"
	if err := p.api.do(b.ctx, "POST", "/v2/apps", vipApp(id, 3, vip.String()), nil); err != nil {
		return err
	}
	defer func() { _ = b.removeApp(p, es, id) }() // a failure is reported by the caller's error
	be, err := b.waitInRules(p, vip, 3, 90*time.Second)
	if err != nil {
		return err
	}
	post := func(addr, path string) error {
		resp, err := http.Post("http://"+addr+path, "text/plain", nil)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST %s%s: %s", addr, path, resp.Status)
		}
		return nil
	}
	var took []float64
	for i := 0; i < reps; i++ {
		victim := be[i%len(be)]
		// Spread over the check's phase: turn unhealthy at a random point
		// of the interval.
		b.sleep(time.Duration(137*i%1000) * time.Millisecond)
		if err := post(victim, "/unhealthy"); err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := b.waitInRules(p, vip, 2, 10*time.Second); err != nil {
			return err
		}
		took = append(took, ms(time.Since(t0)))
		if err := post(victim, "/healthy"); err != nil {
			return err
		}
		if _, err := b.waitInRules(p, vip, 3, 10*time.Second); err != nil {
			return err
		}
	}
	d := dist(took, true)
	b.rep.add(&Figure{Key: "vip.unhealthy", Section: "vip", Name: "an instance turning unhealthy → out of the VIP's rules (checks every 1 s)", Unit: "ms",
		Value: d.Max, Dist: d, Target: &Target{"<=", 1100}, Note: "the worst of the runs; a check sees the change at most one interval (1 s) after it, and the rules follow within milliseconds: the target is one interval and 100 ms"})
	return nil
}
