package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestShippedConfig: the agent.toml at the repository root loads, and
// says what the defaults are.
func TestShippedConfig(t *testing.T) {
	cfg, err := loadConfig(filepath.Join("..", "..", "agent.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	def := defaultFileConfig()
	if cfg.Listen != def.Listen || cfg.PublishAddress != "127.0.0.1" || cfg.Hostname != "127.0.0.1" ||
		cfg.Resources.Ports != "31000-32000" || cfg.Security.Token != "" || cfg.Tasks.AllowPrivileged ||
		cfg.Tasks.LogMaxSize != def.Tasks.LogMaxSize || cfg.Tasks.LogMaxFiles != def.Tasks.LogMaxFiles ||
		len(cfg.Security.AllowedOrigins) != 0 || len(cfg.Security.AllowedHosts) != 0 {
		t.Fatalf("shipped agent.toml differs from the defaults: %+v", cfg)
	}
	if !filepath.IsAbs(cfg.WorkDir) || filepath.Base(cfg.WorkDir) != "mesolite-work" {
		t.Fatalf("work_dir %q: want mesolite-work next to agent.toml", cfg.WorkDir)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, body, want string }{
		{"unknown key", "listen = \"127.0.0.1:1\"\nlisen = 1\n", "unknown key(s) lisen"},
		{"unknown nested key", "[resources]\ncpu = 2\n", "unknown key(s) resources.cpu"},
		{"bad duration", "[tasks]\nkill_grace_period = \"ten\"\n", "not a duration"},
		{"bad port range", "[resources]\nports = \"32000-31000\"\n", "resources.ports"},
		{"bad publish address", "publish_address = \"localhost\"\n", "publish_address"},
		{"relative host path root", "host_path_roots = [\"srv\"]\n", "host_path_roots"},
		{"root as host path root", "host_path_roots = [\"/\"]\n", "host_path_roots"},
		{"bad role", "role = \"a/b\"\n", "role"},
		{"negative mem", "[resources]\nmem = -1\n", "may not be negative"},
		{"syntax", "listen = \n", "config"},
		{"origin with a path", "[security]\nallowed_origins = [\"http://localhost:3000/app\"]\n", "allowed_origins"},
		{"origin without scheme", "[security]\nallowed_origins = [\"localhost:3000\"]\n", "allowed_origins"},
		{"wildcard origin", "[security]\nallowed_origins = [\"*\"]\n", "allowed_origins"},
		{"host with port", "[security]\nallowed_hosts = [\"mesolite.lan:8080\"]\n", "allowed_hosts"},
		{"bad size", "[tasks]\nlog_max_size = \"ten megs\"\n", "not a size"},
		{"small size", "[tasks]\nlog_max_size = \"1KiB\"\n", "log_max_size"},
		{"no files", "[tasks]\nlog_max_files = 0\n", "log_max_files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := loadConfig(writeConfig(t, tc.body))
			if err == nil {
				err = cfg.validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := loadConfig(filepath.Join(t.TempDir(), "missing.toml")); err == nil {
		t.Fatal("a missing --config file was accepted")
	}
	if cfg, err := loadConfig(""); err != nil || !reflect.DeepEqual(cfg, defaultFileConfig()) {
		t.Fatalf("no config file: %+v, %v; want the defaults", cfg, err)
	}
}

// TestDefaultWorkDir: without a config file the work directory is in the
// user's data directory, per platform.
func TestDefaultWorkDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		goos string
		env  map[string]string
		want string
	}{
		{"linux", map[string]string{"HOME": "/home/u", "XDG_DATA_HOME": "/data"}, "/data/mesolite"},
		{"linux", map[string]string{"HOME": "/home/u"}, "/home/u/.local/share/mesolite"},
		{"linux", map[string]string{"HOME": "/home/u", "XDG_DATA_HOME": "relative"}, "/home/u/.local/share/mesolite"},
		{"darwin", map[string]string{"HOME": "/Users/u", "XDG_DATA_HOME": "/data"}, "/Users/u/Library/Application Support/mesolite"},
		{"linux", map[string]string{}, ""},
		{"darwin", map[string]string{}, ""},
	} {
		got, err := defaultWorkDir(tc.goos, env(tc.env))
		if got != tc.want || (tc.want == "") != (err != nil) {
			t.Errorf("%s %v: %q, %v; want %q", tc.goos, tc.env, got, err, tc.want)
		}
	}
}

// TestConfigSizes: log_max_size reads Mesos's and Docker's units, all of
// them powers of 1024.
func TestConfigSizes(t *testing.T) {
	for in, want := range map[string]byteSize{"10MiB": {10 << 20}, "10MB": {10 << 20}, "10m": {10 << 20}, "512KiB": {512 << 10}, "65536": {65536}, "1 GiB": {1 << 30}, "1.5GiB": {3 << 29}} {
		cfg, err := loadConfig(writeConfig(t, "[tasks]\nlog_max_size = \""+in+"\"\n"))
		if err != nil || cfg.Tasks.LogMaxSize != want {
			t.Errorf("log_max_size %q: %d %v, want %d", in, cfg.Tasks.LogMaxSize, err, want)
		}
	}
	cfg, err := loadConfig(writeConfig(t, "[tasks]\nlog_max_size = 8192\n"))
	if err != nil || cfg.Tasks.LogMaxSize.n != 8192 {
		t.Errorf("log_max_size 8192 (an integer): %d %v", cfg.Tasks.LogMaxSize, err)
	}
}

// TestAgentRefusesUnsafeStart: the agent refuses a non-loopback listen
// address without a token, and a second agent on a work directory exits
// at once naming it.
func TestAgentRefusesUnsafeStart(t *testing.T) {
	bin := mesoliteBinary(t)
	work := t.TempDir()
	cfg := writeConfig(t, "log_format = \"json\"\n"+e2eNetworkOff)

	out, err := exec.Command(bin, "agent", "--config", cfg, "--work-dir", work, "--listen", "0.0.0.0:0").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "no [security] token") {
		t.Fatalf("non-loopback listen without a token: err %v, output %s", err, out)
	}

	// Hold the lock with a first agent (which may or may not reach Docker).
	first := exec.Command(bin, "agent", "--config", cfg, "--work-dir", work, "--listen", freeAddr(t))
	var firstOut bytes.Buffer
	first.Stdout, first.Stderr = &firstOut, &firstOut
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Process.Kill(); _ = first.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(firstOut.String(), "mesolite agent starting") {
		if time.Now().After(deadline) {
			t.Fatalf("first agent did not start: %s", firstOut.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	out, err = exec.Command(bin, "agent", "--config", cfg, "--work-dir", work, "--listen", freeAddr(t)).CombinedOutput()
	if err == nil || !strings.Contains(string(out), work) || !strings.Contains(string(out), "in use by another mesolite agent") {
		t.Fatalf("second agent on the same work directory: err %v, output %s", err, out)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second agent took %v to give up", d)
	}
}
