package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/agenttest"
	"github.com/mesolite/mesolite/agent/api"
	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/store"
)

// fakeAgent is the real agent and API over the in-memory fake runtime,
// served on a loopback port. pprof and a memory report are mounted under
// /debug/ (only here, never in the production binary).
type fakeAgent struct {
	*agenttest.Agent
	a   *agent.Agent
	srv *http.Server
	url string
}

func startFakeAgent(ctx context.Context, dir, listen string) (*fakeAgent, error) {
	ta, err := agenttest.Start(dir, agent.Config{
		Cpus: 1000, MemMiB: 1e6, DiskMiB: 1e7, PortMin: 20000, PortMax: 40000,
		Version: "bench", Logger: zerolog.Nop(),
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("fake agent: %w", err)
	}
	f := &fakeAgent{Agent: ta, a: ta.Agent}
	context.AfterFunc(ctx, ta.Cancel) // the agent ends with ctx, as before close
	mux := debugMux(api.New(ta.Agent, api.Config{Version: "bench", Logger: zerolog.Nop(), KeepAlive: time.Hour}))
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		f.close()
		return nil, err
	}
	f.url = "http://" + ln.Addr().String()
	f.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = f.srv.Serve(ln) }()
	return f, nil
}

// debugMux serves the agent's API with pprof under /debug/pprof/ and the
// Go memory figures under /debug/bench/memstats.
func debugMux(apiHandler http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/bench/memstats", memstatsHandler)
	mux.Handle("/", apiHandler)
	return mux
}

func (f *fakeAgent) close() {
	if f.srv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = f.srv.Shutdown(sctx)
		cancel()
		_ = f.srv.Close()
	}
	_ = f.Stop() // Run's result: the agent was cancelled
}

// memStats is what /debug/bench/memstats reports, after a forced GC.
type memStats struct {
	HeapAllocMiB float64 `json:"heapAllocMiB"`
	HeapSysMiB   float64 `json:"heapSysMiB"`
	SysMiB       float64 `json:"sysMiB"`
	Goroutines   int     `json:"goroutines"`
}

func memstatsHandler(w http.ResponseWriter, _ *http.Request) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	_ = json.NewEncoder(w).Encode(memStats{
		HeapAllocMiB: float64(m.HeapAlloc) / (1 << 20), HeapSysMiB: float64(m.HeapSys) / (1 << 20),
		SysMiB: float64(m.Sys) / (1 << 20), Goroutines: runtime.NumGoroutine(),
	})
}

// fakeAgentMain is the child process mode: the fake agent on a work
// directory and an address, until SIGTERM.
func fakeAgentMain(args []string) int {
	fs := flag.NewFlagSet("fake-agent", flag.ContinueOnError)
	dir := fs.String("work-dir", "", "work directory")
	listen := fs.String("listen", "127.0.0.1:0", "address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	f, err := startFakeAgent(ctx, *dir, *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake agent:", err)
		return 1
	}
	<-ctx.Done()
	f.close()
	return 0
}

// fakeChild is a fake agent in a child process of the benchmark, so its
// memory and CPU are its own.
type fakeChild struct {
	cmd  *exec.Cmd
	api  *apiClient
	done chan error
	once sync.Once
}

func startFakeChild(ctx context.Context, dir string) (*fakeChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(self, "__fake-agent", "-work-dir", dir, "-listen", addr)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &fakeChild{cmd: cmd, api: newAPIClient("http://" + addr), done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := c.api.do(ctx, "GET", "/ping", nil, nil); err == nil {
			return c, nil
		}
		select {
		case err := <-c.done:
			return nil, fmt.Errorf("fake agent exited: %v", err)
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, errors.New("fake agent did not answer")
		}
	}
}

func (c *fakeChild) pid() int { return c.cmd.Process.Pid }

func (c *fakeChild) memstats(ctx context.Context) (memStats, error) {
	var m memStats
	err := c.api.do(ctx, "GET", "/debug/bench/memstats", nil, &m)
	return m, err
}

// stop ends the child; calling it again is a no-op.
func (c *fakeChild) stop() {
	c.once.Do(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.done
		}
	})
}

// dockerAgentMain is a profiling aid: the real agent over real Docker in
// this process, with pprof under /debug/pprof/ (the production binary has
// no pprof). mesolite-bench __docker-agent -work-dir D -listen A
func dockerAgentMain(args []string) int {
	fs := flag.NewFlagSet("docker-agent", flag.ContinueOnError)
	dir := fs.String("work-dir", "", "work directory")
	listen := fs.String("listen", "127.0.0.1:0", "address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := store.Open(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := st.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "close store:", err)
		}
	}()
	log := zerolog.New(os.Stderr).Level(zerolog.InfoLevel).With().Timestamp().Logger()
	a, err := agent.New(agent.Config{Cpus: 64, MemMiB: 65536, DiskMiB: 1e6, Version: "bench", Logger: log}, st,
		func(l sandbox.Layout) (agent.Runtime, error) {
			return docker.New(docker.Config{Layout: l, Logger: log})
		})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	mux := debugMux(api.New(a, api.Config{Version: "bench", Logger: log}))
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.ListenAndServe() }()
	err = a.Run(ctx)
	_ = srv.Close()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
