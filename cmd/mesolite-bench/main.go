// Command mesolite-bench measures what mesolite adds on top of Docker and
// how it scales, and writes BENCHMARKS.md and bench.json. `make bench` runs
// it (after building bin/mesolite and the test image); BENCH_QUICK=1 runs
// fewer repetitions with smaller sizes.
//
// Real-Docker measurements drive bin/mesolite as a child process on a
// fresh work directory; API, memory-cycle and reconcile measurements use
// the agent over the in-memory fake runtime (in this process, or in a
// child process of it where its own memory and CPU are measured). Every
// container it makes carries its agent's id (or, for the Docker baselines,
// this run's mesolite.bench_run label) and is removed at the end, also on
// failure and on Ctrl-C, with the temporary directories.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/client"

	"github.com/mesolite/mesolite/sandbox/netplane"
)

// params are the sizes and repetitions of one run.
type params struct {
	launchReps      int
	stopReps        int
	restartReps     int
	maxTasks        int
	tcpHealth       bool // also measure health checks with TCP checks
	healthWindows   int
	healthWindow    time.Duration
	idleWindow      time.Duration
	cycles          int
	apiReqs         int
	apiPosts        int
	apiThroughput   time.Duration
	fanoutEvents    int
	fanoutBurst     int
	reconcileSizes  []int
	reconcileWindow time.Duration
	killReps        int
}

var fullParams = params{
	launchReps: 10, stopReps: 8, restartReps: 5, maxTasks: 50, tcpHealth: true,
	healthWindows: 6, healthWindow: 5 * time.Second, idleWindow: 5 * time.Second,
	cycles: 1000, apiReqs: 500, apiPosts: 200, apiThroughput: 3 * time.Second,
	fanoutEvents: 200, fanoutBurst: 500,
	reconcileSizes: []int{50, 200, 1000}, reconcileWindow: 5 * time.Second, killReps: 10,
}

var quickParams = params{
	launchReps: 3, stopReps: 3, restartReps: 2, maxTasks: 20,
	healthWindows: 2, healthWindow: 2 * time.Second, idleWindow: 2 * time.Second,
	cycles: 200, apiReqs: 100, apiPosts: 50, apiThroughput: time.Second,
	fanoutEvents: 50, fanoutBurst: 200,
	reconcileSizes: []int{50, 200}, reconcileWindow: 2 * time.Second, killReps: 5,
}

type bench struct {
	ctx   context.Context
	p     params
	quick bool
	root  string
	bin   string
	dc    *client.Client
	base  *baseline
	rep   *Report
	start time.Time

	// want reports whether a part of the benchmark (-only) runs.
	want func(name string) bool

	mu     sync.Mutex
	agents []*agentProc
	stops  []func()
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "__fake-agent" {
		os.Exit(fakeAgentMain(os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "__docker-agent" {
		os.Exit(dockerAgentMain(os.Args[2:]))
	}
	os.Exit(run())
}

func run() int {
	fs := flag.NewFlagSet("mesolite-bench", flag.ContinueOnError)
	out := fs.String("out", "BENCHMARKS.md", "the report")
	jsonOut := fs.String("json", "bench.json", "the machine-readable report")
	bin := fs.String("bin", "bin/mesolite", "the mesolite binary (make build)")
	only := fs.String("only", "", "comma-separated subset: real,groups,cycles,api,reconcile,fetch,command (default all; command is part of real)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	quick := os.Getenv("BENCH_QUICK") == "1"
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	absBin, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(absBin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "mesolite-bench: %s: %v (run make build)\n", *bin, err)
		return 1
	}
	dc, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		fmt.Fprintf(os.Stderr, "mesolite-bench: docker client: %v\n", err)
		return 1
	}
	defer func() { _ = dc.Close() }() // idle connections only; the program ends
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	v, err := dc.ServerVersion(vctx)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "mesolite-bench: docker does not answer: %v\n", err)
		return 1
	}
	if _, err := dc.ImageInspect(ctx, testImage); err != nil {
		fmt.Fprintf(os.Stderr, "mesolite-bench: image %s is missing: run make test-image\n", testImage)
		return 1
	}
	root, err := os.MkdirTemp("", "mesolite-bench-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "mesolite-bench: %v\n", err)
		return 1
	}
	runID := filepath.Base(root)
	b := &bench{
		ctx: ctx, quick: quick, root: root, bin: absBin, dc: dc, start: time.Now(),
		base: &baseline{dc: dc, run: runID, dir: filepath.Join(root, "docker")},
		rep:  &Report{Schema: 1, Date: now(), Quick: quick, Machine: machineInfo(v.Version, v.APIVersion)},
	}
	b.p = fullParams
	if quick {
		b.p = quickParams
	}
	b.rep.MaxTasks = b.p.maxTasks
	defer b.cleanup()
	b.setAgentNetwork()
	b.settings()

	want := func(name string) bool {
		if *only == "" {
			return true
		}
		for _, s := range strings.Split(*only, ",") {
			if strings.TrimSpace(s) == name {
				return true
			}
		}
		return false
	}
	b.want = want
	b.step("mesolite-bench (quick=%v) in %s", quick, root)
	if want("api") {
		b.try("API", b.apiBench)
	}
	if want("reconcile") {
		b.try("reconcile work", b.reconcileWork)
	}
	if want("cycles") {
		b.try("memory cycles", b.cycles)
	}
	if want("fetch") {
		b.try("fetcher", b.fetchBench)
	}
	if *only != "" && want("command") {
		// Part of "real"; alone, with an agent of its own.
		b.try("command apps", b.commandBenchmarks)
	}
	if want("real") || want("groups") {
		b.try("real docker", b.realBenchmarks)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "mesolite-bench: interrupted; cleaning up, no report written")
		return 130
	}
	b.rep.WallSeconds = time.Since(b.start).Seconds()
	addNotes(b.rep)
	if err := os.WriteFile(*out, markdown(b.rep), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "mesolite-bench: %v\n", err)
		return 1
	}
	if err := writeJSONFile(*jsonOut, b.rep); err != nil {
		fmt.Fprintf(os.Stderr, "mesolite-bench: %v\n", err)
		return 1
	}
	b.step("wrote %s and %s", *out, *jsonOut)
	fmt.Println(summaryLines(b.rep))
	for _, f := range b.rep.Figures {
		if f.Target != nil {
			fmt.Printf("  %-4s %-70s %s %s (target %s)\n", f.Status, f.Name, fmtNum(f.Value), f.Unit, f.Target.String(f.Unit))
		}
	}
	if len(b.rep.Errors) > 0 {
		return 1
	}
	return 0
}

func (b *bench) settings() {
	p := b.p
	mode := "full"
	if b.quick {
		mode = "quick (BENCH_QUICK=1)"
	}
	b.rep.Settings = []string{
		"mode: " + mode,
		fmt.Sprintf("launch: %d measured runs each side after one warm-up run each; stop+start: %d; agent restart: %d per N", p.launchReps, p.stopReps, p.restartReps),
		fmt.Sprintf("scaling, health checks, restart: N = 10 and %d tasks of one app (cpus 0.1, mem 64, 16 MiB persistent volume, one port, an HTTP check every 1 s)", p.maxTasks),
		fmt.Sprintf("health CPU: %d windows of %s after every task is healthy; TCP checks too: %v", p.healthWindows, p.healthWindow, p.tcpHealth),
		fmt.Sprintf("memory: %d add/remove cycles on the fake runtime (child process)", p.cycles),
		fmt.Sprintf("API: %d sequential requests per GET endpoint, %d POSTs, %s of 4-client throughput each; events: %d paced events, a burst of %d", p.apiReqs, p.apiPosts, p.apiThroughput, p.fanoutEvents, p.fanoutBurst),
		fmt.Sprintf("reconcile work: %v tasks, CPU over %s", p.reconcileSizes, p.reconcileWindow),
		"agent under test: bin/mesolite with log_level info, log_format json (to a file), reconcile_interval 30s (the defaults), resources cpus 64 / mem 64 GiB",
		"command apps: a shell loop with no image, against the same container (empty image, read-only system directories, the init, the sandbox, host network) made with the Docker client",
		fmt.Sprintf("fetcher: a 50 MiB .tar.gz (half incompressible, half text) from an HTTP server in this process on 127.0.0.1, %d measured runs each side, against `curl -sf URL | tar xz`; cache hits: %d", p.launchReps, p.launchReps),
		"Docker baselines: the Docker Go client (github.com/docker/docker/client), as mesolite uses; not the docker CLI, whose own process start-up (≈100–200 ms more per run here) would flatter mesolite",
	}
	if b.quick {
		b.rep.Settings = append(b.rep.Settings, "quick mode has fewer repetitions, N = 20 instead of 50 real tasks (and no TCP-check variant), 200 instead of 1,000 memory cycles and 200 instead of 1,000 tasks for the largest reconcile size; its figures are noisier and not the published ones")
	}
}

// step prints progress with the elapsed time.
func (b *bench) step(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

// try runs one benchmark; a failure is reported and the others go on.
func (b *bench) try(name string, fn func() error) {
	b.step("%s …", name)
	t0 := time.Now()
	if err := fn(); err != nil {
		if errors.Is(err, context.Canceled) && b.ctx.Err() != nil {
			return
		}
		b.step("%s FAILED: %v", name, err)
		b.rep.Errors = append(b.rep.Errors, name+": "+err.Error())
		return
	}
	b.step("%s done in %s", name, time.Since(t0).Round(time.Millisecond))
}

// sleep waits d or until the run is interrupted.
func (b *bench) sleep(d time.Duration) {
	select {
	case <-b.ctx.Done():
	case <-time.After(d):
	}
}

func (b *bench) newAgent(name string, portMin, portMax int) (*agentProc, error) {
	p, err := newAgentProc(b.root, b.bin, name, portMin, portMax)
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	b.agents = append(b.agents, p)
	b.mu.Unlock()
	return p, nil
}

func (b *bench) addStop(fn func()) {
	b.mu.Lock()
	b.stops = append(b.stops, fn)
	b.mu.Unlock()
}

// cleanup stops every agent, removes every container of this run (by its
// agents' ids and the baseline label) and the temporary directory.
func (b *bench) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b.mu.Lock()
	agents, stops := b.agents, b.stops
	b.mu.Unlock()
	for _, p := range agents {
		_ = p.stop()
	}
	for _, s := range stops {
		s()
	}
	removed := 0
	for _, p := range agents {
		id := agentIDOf(p.workDir)
		if id == "" {
			continue
		}
		n, err := removeLabelled(ctx, b.dc, "mesolite.agent_id", id)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mesolite-bench: remove containers of agent %s: %v\n", id, err)
		}
		removed += n
		// Its helper containers carry their owner, not the task labels.
		n, err = removeLabelled(ctx, b.dc, "mesolite.helper.owner", "agent:"+id)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mesolite-bench: remove helpers of agent %s: %v\n", id, err)
		}
		removed += n
	}
	if strings.Contains(agentNetwork, benchTable) {
		if err := netplane.NewKernel(benchTable).Remove(); err != nil {
			fmt.Fprintf(os.Stderr, "mesolite-bench: remove the network table %s: %v\n", benchTable, err)
		}
	}
	n, err := removeLabelled(ctx, b.dc, benchLabel, b.base.run)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mesolite-bench: remove baseline containers: %v\n", err)
	}
	removed += n
	if err := os.RemoveAll(b.root); err != nil {
		fmt.Fprintf(os.Stderr, "mesolite-bench: remove %s: %v\n", b.root, err)
	}
	b.step("cleaned up: %d containers removed, %s deleted", removed, b.root)
}
