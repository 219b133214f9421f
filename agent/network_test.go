package agent_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/marathon"
	"github.com/mesolite/mesolite/sandbox/netplane"
)

// fakePlane records what the agent applies.
type fakePlane struct {
	mu      sync.Mutex
	applied []netplane.State
	reads   int
	failing atomic.Bool
}

func (f *fakePlane) Apply(_ context.Context, s netplane.State) error {
	if f.failing.Load() {
		return errors.New("apply refused")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.applied = append(f.applied, s)
	return nil
}

func (f *fakePlane) Read(context.Context) (netplane.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	if len(f.applied) == 0 {
		return netplane.State{}, netplane.ErrNoTable
	}
	return f.applied[len(f.applied)-1], nil
}

func (f *fakePlane) Check(ctx context.Context, want netplane.State) error {
	got, err := f.Read(ctx)
	if err != nil {
		return err
	}
	if !netplane.Equal(got, want) {
		return errors.New("differs")
	}
	return nil
}

func (f *fakePlane) last() (netplane.State, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.applied) == 0 {
		return netplane.State{}, 0
	}
	return f.applied[len(f.applied)-1], len(f.applied)
}

// waitApplied polls until the last state applied satisfies cond.
func (f *fakePlane) waitApplied(t *testing.T, what string, cond func(s netplane.State) bool) netplane.State {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, n := f.last()
		if n > 0 && cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last applied (%d): %+v", what, n, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func networkConfig(p agent.Network) agent.Config {
	cfg := testConfig()
	cfg.Network = agent.NetworkConfig{
		Plane: p, Mode: "kernel", Table: "test", AgentAddr: netip.MustParseAddr("172.17.0.1"),
		NamedRange: netip.MustParsePrefix("198.19.240.0/20"),
		DNS:        &netplane.DNSConfig{Listen: netip.MustParseAddrPort("172.17.0.1:53")},
		TaskDNS:    []string{"172.17.0.1"},
	}
	return cfg
}

func vipBackends(s netplane.State, addr string) ([]netplane.Backend, bool) {
	for _, v := range s.VIPs {
		if v.Addr.String() == addr {
			return v.Backends, true
		}
	}
	return nil, false
}

// TestNetworkFollowsHealth: the agent applies a VIP whose backend is the
// task once its check passes, takes it out at the first failed check
// (before the task is killed for it) and puts it back when it passes
// again; the rules in place are read before anything is applied.
func TestNetworkFollowsHealth(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if healthy.Load() {
			w.WriteHeader(http.StatusOK)
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	cport, _ := strconv.Atoi(port)

	fp := &fakePlane{}
	h := newHarness(t, networkConfig(fp))
	app := residentApp("/web")
	app["container"].(map[string]any)["portMappings"] = []any{map[string]any{"containerPort": cport, "hostPort": 0,
		"labels": map[string]any{"VIP_0": "198.18.0.1:80", "VIP_1": "/web:80"}}}
	h.create(appJSON(t, app, map[string]any{"healthChecks": []any{map[string]any{
		"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 0,
		"intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 5,
	}}}))
	want := netplane.Backend{Addr: netip.MustParseAddr("127.0.0.1"), Port: uint16(cport)}
	s := fp.waitApplied(t, "the healthy task as the backend", func(s netplane.State) bool {
		b, _ := vipBackends(s, "198.18.0.1")
		return len(b) == 1 && b[0] == want
	})
	if fp.reads == 0 {
		t.Error("nothing read the rules in place before applying")
	}
	if s.DNS == nil || len(s.DNS.Records) == 0 {
		t.Errorf("no DNS records applied: %+v", s.DNS)
	}
	if spec := h.rt.Spec(h.a.Snapshot().App("/web").Tasks[0].ID); spec == nil || len(spec.DNS) != 1 || spec.DNS[0] != "172.17.0.1" {
		t.Errorf("the task was not given the DNS server: %+v", spec)
	}

	healthy.Store(false)
	start := time.Now()
	fp.waitApplied(t, "the unhealthy task out", func(s netplane.State) bool {
		b, ok := vipBackends(s, "198.18.0.1")
		return ok && len(b) == 0
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the unhealthy task left after %v, more than one interval (1 s) and a little", d)
	}
	var out agent.VIPView
	for _, v := range h.a.VIPs() {
		if strings.HasSuffix(v.Path, "VIP_0") {
			out = v
		}
	}
	if !out.Served || len(out.Backends) != 1 || out.Backends[0].State != "unhealthy" || out.Backends[0].InRules {
		t.Errorf("VIPs view %+v", out)
	}
	healthy.Store(true)
	fp.waitApplied(t, "the task back", func(s netplane.State) bool {
		b, _ := vipBackends(s, "198.18.0.1")
		return len(b) == 1
	})

	// An apply that fails is reported in the network view.
	fp.failing.Store(true)
	h.scale("/web", 0)
	deadline := time.Now().Add(10 * time.Second)
	for h.a.Network().Error == "" {
		if time.Now().After(deadline) {
			t.Fatal("the failed apply is not in the network view")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestVIPLabelsValidated: labels are checked at create and update, with
// 422 details at the label's path, against the other apps too.
func TestVIPLabelsValidated(t *testing.T) {
	h := newHarness(t, networkConfig(&fakePlane{}))
	withVIP := func(id, label string) []byte {
		app := residentApp(id)
		app["container"].(map[string]any)["portMappings"] = []any{map[string]any{"containerPort": 80, "hostPort": 0,
			"labels": map[string]any{"VIP_0": label}}}
		return appJSON(t, app, nil)
	}
	h.create(withVIP("/a", "198.18.0.5:80"))
	for _, tc := range []struct{ label, want string }{
		{"198.18.0.5:80", "already taken by app /a"},
		{"127.0.0.1:80", "loopback"},
		{"nonsense", "is not a VIP"},
	} {
		_, _, err := h.a.CreateApp(context.Background(), withVIP("/b", tc.label))
		var ve *marathon.ValidationError
		if !errors.As(err, &ve) || len(ve.Details) != 1 || ve.Details[0].Path != "/container/portMappings(0)/labels/VIP_0" ||
			!strings.Contains(ve.Details[0].Errors[0], tc.want) {
			t.Errorf("create with %s: %v, want 422 at the label saying %q", tc.label, err, tc.want)
		}
		_, _, err = h.a.UpdateApp(context.Background(), "/a", withVIP("/a", tc.label), agent.UpdateOptions{Force: true})
		if tc.want != "already taken by app /a" && !errors.As(err, &ve) {
			t.Errorf("update with %s: %v, want 422", tc.label, err)
		}
	}
	// The app's own VIP on update is no clash.
	if _, _, err := h.a.UpdateApp(context.Background(), "/a", withVIP("/a", "198.18.0.5:80"), agent.UpdateOptions{Force: true}); err != nil {
		t.Errorf("update keeping the app's own VIP: %v", err)
	}
}

// TestNetworkOffSaysWhy: with networking off, every VIP is listed as not
// served, with the reason.
func TestNetworkOffSaysWhy(t *testing.T) {
	cfg := testConfig()
	cfg.Network = agent.NetworkConfig{Mode: "off", Off: "mesolite is not allowed to change nftables"}
	h := newHarness(t, cfg)
	app := residentApp("/db")
	app["container"].(map[string]any)["portMappings"] = []any{map[string]any{"containerPort": 5432, "hostPort": 0,
		"labels": map[string]any{"VIP_0": "5.4.3.2:5432"}}}
	h.create(appJSON(t, app, nil))
	deadline := time.Now().Add(10 * time.Second)
	for {
		vips := h.a.VIPs()
		if len(vips) == 1 && !vips[0].Served && strings.Contains(vips[0].Reason, "not allowed to change nftables") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("VIPs %+v, want one not served saying why", vips)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := h.a.Network(); n.Mode != "off" || n.Off == "" {
		t.Errorf("network view %+v", n)
	}
	h.waitFor("the task running", func(s *agent.Snapshot) bool { return s.App("/db").TasksRunning == 1 })
	if spec := h.rt.Spec(h.a.Snapshot().App("/db").Tasks[0].ID); spec == nil || spec.DNS != nil {
		t.Errorf("with networking off a task got a DNS server: %+v", spec)
	}
}
