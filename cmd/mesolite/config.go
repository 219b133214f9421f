package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/mesolite/mesolite/sandbox"
	"github.com/mesolite/mesolite/sandbox/fetch"
)

// fileConfig is agent.toml. Every key is documented in the shipped
// agent.toml; unknown keys are refused.
type fileConfig struct {
	Listen         string   `toml:"listen"`
	WorkDir        string   `toml:"work_dir"`
	Hostname       string   `toml:"hostname"`
	PublishAddress string   `toml:"publish_address"`
	Role           string   `toml:"role"`
	DockerHost     string   `toml:"docker_host"`
	HostPathRoots  []string `toml:"host_path_roots"`
	LogLevel       string   `toml:"log_level"`
	LogFormat      string   `toml:"log_format"`

	Resources resourcesConfig `toml:"resources"`
	Tasks     tasksConfig     `toml:"tasks"`
	Recovery  recoveryConfig  `toml:"recovery"`
	Security  securityConfig  `toml:"security"`
	Fetcher   fetcherConfig   `toml:"fetcher"`
	Network   networkConfig   `toml:"network"`
}

// fetcherConfig is [fetcher]: the cache and the limits of each URI.
type fetcherConfig struct {
	CacheSize byteSize `toml:"cache_size"`
	MaxSize   byteSize `toml:"max_size"`
	Timeout   duration `toml:"timeout"`
}

type resourcesConfig struct {
	Cpus  float64 `toml:"cpus"`
	Mem   float64 `toml:"mem"`
	Disk  float64 `toml:"disk"`
	Ports string  `toml:"ports"`
}

type tasksConfig struct {
	KillGracePeriod     duration `toml:"kill_grace_period"`
	AllowPrivileged     bool     `toml:"allow_privileged"`
	CPUQuota            bool     `toml:"cpu_quota"`
	BackoffResetAfter   duration `toml:"backoff_reset_after"`
	EnforceDiskQuota    bool     `toml:"enforce_disk_quota"`
	VolumeUsageInterval duration `toml:"volume_usage_interval"`
	CheckPath           string   `toml:"check_path"`
	LogMaxSize          byteSize `toml:"log_max_size"`
	LogMaxFiles         int      `toml:"log_max_files"`
}

// byteSize reads a size: "2GiB", "512MiB", "64KiB", "10MB" (Mesos's and
// Docker's MB are 2^20 bytes too), "1.5GiB", a number of bytes, quoted or
// not, or 0.
type byteSize struct{ n int64 }

// UnmarshalTOML reads a size given as a string or an integer.
func (b *byteSize) UnmarshalTOML(v any) error {
	switch x := v.(type) {
	case int64:
		if x < 0 {
			return fmt.Errorf("%d: a size may not be negative", x)
		}
		b.n = x
		return nil
	case string:
		return b.UnmarshalText([]byte(x))
	}
	return fmt.Errorf("%v is not a size (use e.g. \"2GiB\", \"512MiB\" or \"0\")", v)
}

func (b *byteSize) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	num := strings.TrimRightFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	unit := strings.ToLower(strings.TrimSpace(s[len(num):]))
	mult := map[string]int64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
		"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || mult == 0 || v < 0 || v*float64(mult) > float64(1<<62) {
		return fmt.Errorf("%q is not a size (use e.g. \"2GiB\", \"512MiB\" or \"0\")", s)
	}
	b.n = int64(v * float64(mult))
	return nil
}

type recoveryConfig struct {
	ReconcileInterval duration `toml:"reconcile_interval"`
	OrphanGrace       duration `toml:"orphan_grace"`
	OrphanDryRun      bool     `toml:"orphan_dry_run"`
}

type securityConfig struct {
	Token          string   `toml:"token"`
	Insecure       bool     `toml:"insecure"`
	AllowedOrigins []string `toml:"allowed_origins"`
	AllowedHosts   []string `toml:"allowed_hosts"`
}

// duration reads "30s", "5m" and the like.
type duration struct{ time.Duration }

func (d *duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration (use e.g. \"30s\" or \"5m\")", string(b))
	}
	if v < 0 {
		return fmt.Errorf("%q: a duration may not be negative", string(b))
	}
	d.Duration = v
	return nil
}

func defaultFileConfig() fileConfig {
	return fileConfig{
		Listen:         "127.0.0.1:8080",
		WorkDir:        "mesolite-work",
		Hostname:       "127.0.0.1",
		PublishAddress: "127.0.0.1",
		Role:           "marathon",
		LogLevel:       "info",
		LogFormat:      "auto",
		Resources:      resourcesConfig{Ports: "31000-32000"},
		Tasks: tasksConfig{
			KillGracePeriod:     duration{10 * time.Second},
			BackoffResetAfter:   duration{time.Minute},
			VolumeUsageInterval: duration{30 * time.Second},
			CheckPath:           "auto",
			LogMaxSize:          byteSize{sandbox.DefaultLogMaxSize},
			LogMaxFiles:         sandbox.DefaultLogMaxFiles,
		},
		Recovery: recoveryConfig{
			ReconcileInterval: duration{30 * time.Second},
			OrphanGrace:       duration{time.Minute},
		},
		Fetcher: fetcherConfig{
			CacheSize: byteSize{fetch.DefaultCacheSize},
			MaxSize:   byteSize{fetch.DefaultMaxSize},
			Timeout:   duration{fetch.DefaultTimeout},
		},
		Network: defaultNetworkConfig(),
	}
}

// loadConfig reads path over the defaults; an empty path is the defaults
// alone. A relative work_dir is taken relative to the file's directory.
func loadConfig(path string) (fileConfig, error) {
	cfg := defaultFileConfig()
	if path == "" {
		return cfg, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	md, err := toml.Decode(string(b), &cfg)
	if err != nil {
		return cfg, fmt.Errorf("config %s: %w", path, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		sort.Strings(keys)
		return cfg, fmt.Errorf("config %s: unknown key(s) %s; see the shipped agent.toml for the keys there are", path, strings.Join(keys, ", "))
	}
	if cfg.WorkDir != "" && !filepath.IsAbs(cfg.WorkDir) {
		dir, err := filepath.Abs(filepath.Dir(path))
		if err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
		cfg.WorkDir = filepath.Join(dir, cfg.WorkDir)
	}
	return cfg, nil
}

// defaultWorkDir is the work directory of an agent run without a
// configuration file: "mesolite" in the user's data directory, which is
// $XDG_DATA_HOME (when absolute, as the XDG spec requires) or
// ~/.local/share, and ~/Library/Application Support on macOS.
func defaultWorkDir(goos string, getenv func(string) string) (string, error) {
	home := getenv("HOME")
	if goos == "darwin" {
		if home == "" {
			return "", errors.New("$HOME is not set: pass --work-dir")
		}
		return filepath.Join(home, "Library", "Application Support", "mesolite"), nil
	}
	if d := getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "mesolite"), nil
	}
	if home == "" {
		return "", errors.New("neither $XDG_DATA_HOME nor $HOME is set: pass --work-dir")
	}
	return filepath.Join(home, ".local", "share", "mesolite"), nil
}

// validate checks the values and fills what the machine decides.
func (c *fileConfig) validate() error {
	var errs []string
	add := func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		add("listen %q: want host:port, e.g. 127.0.0.1:8080", c.Listen)
	}
	if c.WorkDir == "" {
		add("work_dir is empty: set a directory for mesolite's state and volumes")
	}
	if net.ParseIP(c.PublishAddress) == nil {
		add("publish_address %q: want an IP address, e.g. 127.0.0.1 or 0.0.0.0", c.PublishAddress)
	}
	if c.Hostname == "" {
		add("hostname is empty")
	}
	if c.Role == "" || c.Role == "." || c.Role == ".." || strings.ContainsAny(c.Role, "/\\ \x00") {
		add("role %q: want a plain name such as marathon", c.Role)
	}
	for _, r := range c.HostPathRoots {
		if !filepath.IsAbs(r) || filepath.Clean(r) == "/" {
			add("host_path_roots: %q must be an absolute directory other than /", r)
		}
	}
	if c.Resources.Cpus < 0 || c.Resources.Mem < 0 || c.Resources.Disk < 0 {
		add("resources: cpus, mem and disk may not be negative (0 means what the machine has)")
	}
	if _, _, err := parsePortRange(c.Resources.Ports); err != nil {
		add("resources.ports: %v", err)
	}
	if c.Tasks.LogMaxSize.n < sandbox.MinLogMaxSize {
		add("tasks.log_max_size %d bytes: want %d (4KiB) or more", c.Tasks.LogMaxSize.n, sandbox.MinLogMaxSize)
	}
	if c.Tasks.LogMaxFiles < 1 {
		add("tasks.log_max_files %d: want 1 or more (the file being written counts)", c.Tasks.LogMaxFiles)
	}
	for _, o := range c.Security.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.TrimSuffix(u.Path, "/") != "" || u.RawQuery != "" || u.User != nil {
			add("security.allowed_origins: %q is not an origin; want scheme://host[:port], e.g. http://localhost:3000", o)
		}
	}
	for _, h := range c.Security.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/ ") {
			add("security.allowed_hosts: %q is not a host name; want a name without port, e.g. mesolite.lan", h)
		}
	}
	if c.Tasks.VolumeUsageInterval.Duration < time.Second {
		add("tasks.volume_usage_interval %s: want 1s or more (each measurement walks every volume)", c.Tasks.VolumeUsageInterval.Duration)
	}
	switch c.Tasks.CheckPath {
	case "auto", "direct", "helper":
	default:
		add("tasks.check_path %q: want auto, direct or helper", c.Tasks.CheckPath)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		add("log_level %q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "auto", "console", "json":
	default:
		add("log_format %q: want auto, console or json", c.LogFormat)
	}
	errs = append(errs, c.Network.validate()...)
	if len(errs) > 0 {
		return errors.New("invalid configuration:\n  " + strings.Join(errs, "\n  "))
	}
	return nil
}

// parsePortRange reads "31000-32000".
func parsePortRange(s string) (int, int, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return 0, 0, fmt.Errorf("%q: want a range such as 31000-32000 within 1-65535", s)
	}
	return a, b, nil
}

// machineResources is what the machine has: CPUs, memory in MiB, and the
// free space under dir in MiB. What cannot be read is 0 (and the agent
// offers nothing of it until the configuration says how much).
func machineResources(dir string) (cpus, memMiB, diskMiB float64) {
	cpus = float64(runtime.NumCPU())
	if b, err := totalMemory(); err == nil {
		memMiB = float64(b) / (1 << 20)
	}
	if b, err := sandbox.FreeBytes(dir); err == nil {
		diskMiB = float64(b) / (1 << 20)
	}
	return cpus, float64(int64(memMiB)), float64(int64(diskMiB))
}

// isLoopback reports whether a listen address only accepts local clients.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
