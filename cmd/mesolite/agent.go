package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/rs/zerolog"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/api"
	"github.com/mesolite/mesolite/metrics"
	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/docker"
	"github.com/mesolite/mesolite/sandbox/fetch"
	"github.com/mesolite/mesolite/store"
)

const agentUsage = `usage: mesolite agent [--config agent.toml] [--listen ADDR] [--work-dir DIR]
                      [--log-level LEVEL] [--log-format auto|console|json]

Runs the master and the agent in one process: the Marathon API on --listen,
tasks as Docker containers, state and volumes under --work-dir. Stopping it
(Ctrl-C, SIGTERM) leaves the containers running; the next start adopts them.

Without --config it runs with the built-in defaults (those of the shipped
agent.toml) and keeps its work directory in the user's data directory:
$XDG_DATA_HOME/mesolite (~/.local/share/mesolite), or
~/Library/Application Support/mesolite on macOS. $MESOLITE_LISTEN sets the
API address when --listen is not given.
`

// runAgent is "mesolite agent".
func runAgent(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, agentUsage); fs.PrintDefaults() }
	configPath := fs.String("config", "", "configuration file (default: none, the built-in defaults)")
	listen := fs.String("listen", "", "API address (overrides listen)")
	workDir := fs.String("work-dir", "", "work directory (overrides work_dir)")
	logLevel := fs.String("log-level", "", "debug, info, warn or error (overrides log_level)")
	logFormat := fs.String("log-format", "", "auto, console or json (overrides log_format)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mesolite agent: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "mesolite agent: %v\n", err)
		return 2
	}
	if *configPath == "" && *workDir == "" {
		if cfg.WorkDir, err = defaultWorkDir(runtime.GOOS, os.Getenv); err != nil {
			fmt.Fprintf(stderr, "mesolite agent: %v\n", err)
			return 2
		}
	}
	if env := os.Getenv("MESOLITE_LISTEN"); env != "" && *listen == "" {
		cfg.Listen = env
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *workDir != "" {
		cfg.WorkDir = *workDir
	}
	if *logLevel != "" {
		cfg.LogLevel = *logLevel
	}
	if *logFormat != "" {
		cfg.LogFormat = *logFormat
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(stderr, "mesolite agent: %v\n", err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err := serveAgent(cfg, log); err != nil {
		log.Error().Err(err).Msg("agent failed")
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level, format string) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(level)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	zerolog.TimeFieldFormat = time.RFC3339Nano
	out := w
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = isatty.IsTerminal(f.Fd())
	}
	if format == "console" || (format == "auto" && tty) {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: "15:04:05.000", NoColor: !tty}
	}
	return zerolog.New(out).Level(lvl).With().Timestamp().Logger()
}

// taskInitBinary is this binary's path, with links resolved: a command
// task's container runs it as its first process (package taskinit).
func taskInitBinary() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find this binary (the init of command tasks): %w", err)
	}
	resolved, err := filepath.EvalSymlinks(exe)
	if err != nil {
		return "", fmt.Errorf("find this binary (the init of command tasks): %w", err)
	}
	return resolved, nil
}

// failpointKiller reads MESOLITE_FAILPOINT=<point|any>:<n> and returns a
// Failpoint that kills this process with SIGKILL at the n-th hit of the
// point (of any point with "any"). Only the fault-injection tests set it.
func failpointKiller(spec string, log zerolog.Logger) (func(string), error) {
	name, nstr, ok := strings.Cut(spec, ":")
	n, err := strconv.Atoi(nstr)
	if !ok || err != nil || n < 1 {
		return nil, fmt.Errorf("MESOLITE_FAILPOINT=%q: want <point|any>:<n>, n >= 1", spec)
	}
	var mu sync.Mutex
	hits := 0
	log.Warn().Str("failpoint", spec).Msg("failpoint armed: the agent will kill itself")
	return func(point string) {
		if name != "any" && name != point {
			return
		}
		mu.Lock()
		hits++
		hit, count := hits == n, hits
		mu.Unlock()
		log.Debug().Str("point", point).Int("hit", count).Msg("failpoint")
		if hit {
			fmt.Fprintf(os.Stderr, "failpoint %s hit at %s (#%d): SIGKILL\n", spec, point, n)
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}, nil
}

// containerRuntime is what the agent command needs of its container runtime: the
// agent's interface, its version for the start-up line, and Close.
type containerRuntime interface {
	agent.Runtime
	Version(ctx context.Context) (version, apiVersion string, err error)
	Endpoint() string
	Facts(ctx context.Context) (docker.Facts, error)
	StartChecks(ctx context.Context, cfg docker.ChecksConfig)
	Close() error
}

func serveAgent(cfg fileConfig, log zerolog.Logger) error {
	if !isLoopback(cfg.Listen) && cfg.Security.Token == "" {
		if !cfg.Security.Insecure {
			return fmt.Errorf("listen %s is not a loopback address and no [security] token is set: anyone who can reach it could run containers on this machine; set a token in agent.toml (or insecure = true to accept the risk)", cfg.Listen)
		}
		log.Warn().Str("listen", cfg.Listen).Msg("API open to the network without a token (insecure = true)")
	}
	ver, rev := buildVersion()
	st, err := store.Open(cfg.WorkDir)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error().Err(err).Msg("close the store")
		}
	}()

	cpus, mem, disk := machineResources(st.WorkDir())
	if cfg.Resources.Cpus > 0 {
		cpus = cfg.Resources.Cpus
	}
	if cfg.Resources.Mem > 0 {
		mem = cfg.Resources.Mem
	}
	if cfg.Resources.Disk > 0 {
		disk = cfg.Resources.Disk
	}
	portMin, portMax, _ := parsePortRange(cfg.Resources.Ports)
	roots := make([]string, len(cfg.HostPathRoots))
	for i, r := range cfg.HostPathRoots {
		roots[i] = filepath.Clean(r)
	}
	acfg := agent.Config{
		Hostname: cfg.Hostname, PublishAddress: cfg.PublishAddress, Role: cfg.Role,
		Cpus: cpus, MemMiB: mem, DiskMiB: disk, PortMin: portMin, PortMax: portMax,
		HostPathRoots: roots, AllowPrivileged: cfg.Tasks.AllowPrivileged, CPUQuota: cfg.Tasks.CPUQuota,
		KillGracePeriod: cfg.Tasks.KillGracePeriod.Duration, ReconcileInterval: cfg.Recovery.ReconcileInterval.Duration,
		OrphanGrace: cfg.Recovery.OrphanGrace.Duration, OrphanDryRun: cfg.Recovery.OrphanDryRun,
		BackoffResetAfter: cfg.Tasks.BackoffResetAfter.Duration,
		EnforceDiskQuota:  cfg.Tasks.EnforceDiskQuota,
		UsageInterval:     cfg.Tasks.VolumeUsageInterval.Duration,
		Version:           ver, Logger: log,
		Metrics: metrics.New(ver),
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	nc, plane := openNetwork(ctx, cfg, log)
	acfg.Network = nc
	if plane != nil {
		defer plane.Close() // the DNS server of kernel mode; the rules stay
		go plane.Watch(ctx)
	}
	if fp := os.Getenv("MESOLITE_FAILPOINT"); fp != "" {
		f, err := failpointKiller(fp, log)
		if err != nil {
			return err
		}
		acfg.Failpoint = f
	}
	initBinary, err := taskInitBinary()
	if err != nil {
		return err
	}
	var rt containerRuntime
	a, err := agent.New(acfg, st, func(l sandbox.Layout) (agent.Runtime, error) {
		f, err := fetch.New(fetch.Config{
			CacheDir: l.FetchCacheDir(), CacheSize: cfg.Fetcher.CacheSize.n, MaxSize: cfg.Fetcher.MaxSize.n,
			Timeout: cfg.Fetcher.Timeout.Duration, HostPathRoots: roots, Failpoint: acfg.Failpoint,
		})
		if err != nil {
			return nil, err
		}
		d, err := docker.New(docker.Config{
			Host: cfg.DockerHost, Layout: l, Logger: log, Failpoint: acfg.Failpoint,
			InitBinary: initBinary, Fetcher: f,
			LogMaxSize: cfg.Tasks.LogMaxSize.n, LogMaxFiles: cfg.Tasks.LogMaxFiles,
		})
		if err != nil {
			return nil, err
		}
		rt = d
		return timedRuntime{Runtime: d, m: acfg.Metrics}, nil
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := rt.Close(); err != nil {
			log.Warn().Err(err).Msg("close the runtime's connections")
		}
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another agent or Marathon running there? pass --listen to use another address)", cfg.Listen, err)
	}

	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	dv, apiv, verr := rt.Version(vctx)
	cancel()
	ev := log.Info().Str("listen", "http://"+cfg.Listen).Str("work_dir", st.WorkDir()).Str("agent_id", a.AgentID()).
		Float64("cpus", cpus).Float64("mem_mib", mem).Float64("disk_mib", disk).Str("ports", cfg.Resources.Ports)
	if verr != nil {
		log.Warn().Err(verr).Msg("docker does not answer yet; the agent keeps its state and retries")
	} else {
		ev = ev.Str("docker", dv).Str("docker_api", apiv)
	}
	ev.Str("version", ver).Str("commit", rev).Str("docker_host", rt.Endpoint()).Msg("mesolite agent starting")
	if verr == nil {
		logDockerFacts(ctx, rt, log)
	}
	rt.StartChecks(ctx, docker.ChecksConfig{Mode: cfg.Tasks.CheckPath, Binary: helperBinary, Recheck: cfg.Recovery.ReconcileInterval.Duration})

	// A client gets 10 s for its headers and 30 s for its whole request
	// (an event stream lifts the latter for itself), and at most MaxConns
	// connections are open: at the cap, the longest-waiting connection that
	// serves no request goes, so slow clients cannot use up the process's
	// file descriptors nor keep /ping from answering.
	conns := api.NewConnLimiter(api.MaxConns)
	srv := &http.Server{
		Handler: api.New(a, api.Config{
			Token: cfg.Security.Token, Version: ver, Leader: cfg.Listen, Hostname: cfg.Hostname, Logger: log,
			Metrics: acfg.Metrics, AllowedOrigins: cfg.Security.AllowedOrigins, AllowedHosts: cfg.Security.AllowedHosts,
			Conns: conns,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    api.MaxHeaderBytes,
		ConnState:         conns.ConnState,
		ConnContext:       conns.ConnContext,
		ErrorLog:          nil,
	}
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(ctx) }()
	// Serve once Run has started: a request that came first would be
	// refused as "the agent is not running".
	for i := 0; i < 2000 && !a.Running(); i++ {
		time.Sleep(time.Millisecond)
	}
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(conns.Listener(ln)) }()

	select {
	case <-ctx.Done():
	case err := <-srvErr:
		stop()
		<-runErr
		return fmt.Errorf("api server: %w", err)
	case err := <-runErr:
		stop()
		return err
	}
	log.Info().Msg("stopping: containers keep running and are adopted on the next start")
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-runErr; err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	log.Info().Msg("stopped")
	return nil
}

// logDockerFacts says what kind of daemon this is and, once and clearly,
// what it does not do (enforce limits).
func logDockerFacts(ctx context.Context, rt containerRuntime, log zerolog.Logger) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	f, err := rt.Facts(fctx)
	cancel()
	if err != nil {
		log.Warn().Err(err).Msg("docker info")
		return
	}
	log.Info().Bool("rootless", f.Rootless).Bool("docker_desktop", f.Desktop).Str("docker_os", f.OperatingSystem).
		Str("docker_arch", f.Arch).Str("cgroup_driver", f.CgroupDriver).Str("cgroup_version", f.CgroupVersion).Msg("docker daemon")
	if w := f.LimitsWarning(); w != "" {
		log.Warn().Msg(w)
	}
}
