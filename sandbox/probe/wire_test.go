package probe

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// httpTarget serves 200 on /health and 503 elsewhere; it returns its
// address.
func httpTarget(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("fine"))
			return
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// startServer runs s on a loopback listener until the test ends (or stop
// is called) and returns its address.
func startServer(t *testing.T, s *Server, addr string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx, ln) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func dialer(addr string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// TestClientServer: checks through a server give the results Do gives
// directly, for answers, refusals and HTTP codes alike.
func TestClientServer(t *testing.T) {
	target, closed := httpTarget(t), closedAddr(t)
	addr, _ := startServer(t, &Server{Token: "s3cret"}, "127.0.0.1:0")
	c := &Client{Dial: dialer(addr), Token: "s3cret"}
	defer c.Close()
	ctx := context.Background()
	for _, req := range []Request{
		{Protocol: TCP, Addr: target, Timeout: time.Second},
		{Protocol: TCP, Addr: closed, Timeout: time.Second},
		{Protocol: HTTP, Addr: target, Path: "/health", Timeout: time.Second},
		{Protocol: HTTP, Addr: target, Path: "/other", Timeout: time.Second},
		{Protocol: HTTP, Addr: closed, Path: "/health", Timeout: time.Second},
		{Protocol: HTTP, Addr: target, Path: "/health", Timeout: time.Second, Body: 100},
		{Protocol: "UDP", Addr: target, Timeout: time.Second},
	} {
		direct, via := Do(ctx, req), c.Probe(ctx, req)
		if Transport(via) {
			t.Fatalf("%+v: transport failure %q", req, via.Err)
		}
		if (direct.Err == "") != (via.Err == "") || direct.Code != via.Code || direct.Status != via.Status || string(direct.Body) != string(via.Body) {
			t.Errorf("%+v: direct %+v, through the server %+v", req, direct, via)
		}
	}
	if res := c.Probe(ctx, Request{Protocol: HTTP, Addr: target, Path: "/health", Timeout: time.Second, Body: 100}); string(res.Body) != "fine" || res.ContentType != "text/plain" || res.Code != 200 {
		t.Errorf("body %+v", res)
	}
	if res := c.Probe(ctx, Request{Protocol: TCP, Addr: closed, Timeout: time.Second}); res.Err == "" || Transport(res) {
		t.Errorf("a closed port through the server: %+v, want a refusal that is not a transport failure", res)
	}
}

// TestServerToken: a client without the right token is refused, and its
// checks are transport failures.
func TestServerToken(t *testing.T) {
	addr, _ := startServer(t, &Server{Token: "right"}, "127.0.0.1:0")
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Hello(ctx, conn, "wrong"); err == nil || !strings.Contains(err.Error(), "wrong token") {
		t.Fatalf("hello with a wrong token: %v", err)
	}
	c := &Client{Dial: dialer(addr), Token: "wrong"}
	if res := c.Probe(ctx, Request{Protocol: TCP, Addr: addr, Timeout: time.Second}); !Transport(res) {
		t.Fatalf("check with a wrong token: %+v, want a transport failure", res)
	}
}

// TestHelloNotAServer: something that accepts but does not speak the
// protocol is not taken for a helper.
func TestHelloNotAServer(t *testing.T) {
	target := httpTarget(t)
	conn, err := net.Dial("tcp", target)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := Hello(ctx, conn, "x"); err == nil {
		t.Fatal("an HTTP server passed the hello")
	}
}

// TestClientReconnects: when the server goes, waiting checks and the next
// ones are transport failures (not check failures) and Broken is told;
// when it is back, the client dials again by itself.
func TestClientReconnects(t *testing.T) {
	release := make(chan struct{})
	slow := &Server{Token: "t", Do: func(ctx context.Context, req Request) Result {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return Result{}
	}}
	addr, stop := startServer(t, slow, "127.0.0.1:0")
	broken := make(chan error, 16)
	c := &Client{Dial: dialer(addr), Token: "t", Broken: func(err error) { broken <- err }}
	defer c.Close()
	got := make(chan Result, 1)
	go func() {
		got <- c.Probe(context.Background(), Request{Protocol: TCP, Addr: "x:1", Timeout: 10 * time.Second})
	}()
	// Wait until the check is in the server, then stop the server.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		cc := c.conn
		c.mu.Unlock()
		if cc != nil {
			cc.mu.Lock()
			n := len(cc.pending)
			cc.mu.Unlock()
			if n == 1 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("the check never reached the server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	close(release)
	select {
	case res := <-got:
		if !Transport(res) {
			t.Fatalf("check cut by the server's end: %+v, want a transport failure", res)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting check was not released when the server went")
	}
	select {
	case <-broken:
	case <-time.After(5 * time.Second):
		t.Fatal("Broken was not called")
	}
	if res := c.Probe(context.Background(), Request{Protocol: TCP, Addr: "x:1", Timeout: time.Second}); !Transport(res) {
		t.Fatalf("check with the server down: %+v", res)
	}
	startServer(t, &Server{Token: "t", Do: func(context.Context, Request) Result { return Result{Code: 7} }}, addr)
	if res := c.Probe(context.Background(), Request{Protocol: TCP, Addr: "x:1", Timeout: time.Second}); res.Code != 7 {
		t.Fatalf("check after the server came back: %+v", res)
	}
}

// TestServerConcurrent: many checks over one connection, a slow one does
// not hold up the others, and each answer goes to its own caller.
func TestServerConcurrent(t *testing.T) {
	slowStarted := make(chan struct{})
	release := make(chan struct{})
	s := &Server{Token: "t", Do: func(ctx context.Context, req Request) Result {
		if req.Path == "/slow" {
			close(slowStarted)
			<-release
		}
		return Result{Status: req.Path}
	}}
	addr, _ := startServer(t, s, "127.0.0.1:0")
	c := &Client{Dial: dialer(addr), Token: "t"}
	defer c.Close()
	slow := make(chan Result, 1)
	go func() {
		slow <- c.Probe(context.Background(), Request{Protocol: HTTP, Path: "/slow", Timeout: 10 * time.Second})
	}()
	<-slowStarted
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := fmt.Sprintf("/%d", i)
			if res := c.Probe(context.Background(), Request{Protocol: HTTP, Path: p, Timeout: 5 * time.Second}); res.Status != p {
				errs <- fmt.Sprintf("check %s got %+v", p, res)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	close(release)
	if res := <-slow; res.Status != "/slow" {
		t.Fatalf("slow check got %+v", res)
	}
}

// TestServerHostNetwork: a check of the host's network goes to the
// server's HostAddr, other checks to their own address.
func TestServerHostNetwork(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	s := &Server{Token: "t", HostAddr: "10.9.8.7", Do: func(_ context.Context, req Request) Result {
		mu.Lock()
		seen = append(seen, req.Addr)
		mu.Unlock()
		return Result{} // recorded, never dialed
	}}
	addr, _ := startServer(t, s, "127.0.0.1:0")
	c := &Client{Dial: dialer(addr), Token: "t"}
	defer c.Close()
	c.Probe(context.Background(), Request{Protocol: TCP, Addr: "127.0.0.1:31005", Network: NetworkHost, Timeout: time.Second})
	c.Probe(context.Background(), Request{Protocol: TCP, Addr: "172.17.0.9:8080", Network: "bridge", Timeout: time.Second})
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "10.9.8.7:31005,172.17.0.9:8080" {
		t.Fatalf("addresses checked: %v", seen)
	}
}

// TestRouter: checks wait for the path to be chosen (within their
// timeout), then take it; no path is a transport failure.
func TestRouter(t *testing.T) {
	target := httpTarget(t)
	r := NewRouter()
	if r.Info().Path != PathPending {
		t.Fatalf("new router: %+v", r.Info())
	}
	if res := r.Probe(context.Background(), Request{Protocol: TCP, Addr: target, Timeout: 50 * time.Millisecond}); !Transport(res) {
		t.Fatalf("check before the path is known: %+v", res)
	}
	done := make(chan Result, 1)
	go func() {
		done <- r.Probe(context.Background(), Request{Protocol: TCP, Addr: target, Timeout: 5 * time.Second})
	}()
	time.Sleep(20 * time.Millisecond) // let the check wait; its result is asserted either way
	r.Set(Info{Path: PathDirect}, Direct{})
	if res := <-done; res.Err != "" {
		t.Fatalf("check that waited for the direct path: %+v", res)
	}
	r.Set(Info{Path: PathNone, Reason: "nothing works"}, nil)
	if res := r.Probe(context.Background(), Request{Protocol: TCP, Addr: target, Timeout: time.Second}); !Transport(res) || !strings.Contains(res.Err, "nothing works") {
		t.Fatalf("check without a path: %+v", res)
	}
}
