package docker

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
)

// DefaultSocket is Docker Engine's socket on Linux.
const DefaultSocket = "unix:///var/run/docker.sock"

// ResolveHost finds the daemon the way the docker CLI does, so an agent
// started without docker_host talks to the daemon `docker ps` shows:
// $DOCKER_HOST; else the endpoint of the current docker context
// ($DOCKER_CONTEXT, or currentContext in $DOCKER_CONFIG/config.json, as
// `docker context use` sets for Docker Desktop and rootless Docker); else
// the default socket when it exists; else Docker Desktop's per-user socket
// (~/.docker/run/docker.sock) or rootless Docker's
// ($XDG_RUNTIME_DIR/docker.sock) when one exists. source says which it
// was, for the log. An empty host means the client's default.
func ResolveHost(getenv func(string) string) (host, source string) {
	if h := getenv("DOCKER_HOST"); h != "" {
		return h, "$DOCKER_HOST"
	}
	cfgDir := getenv("DOCKER_CONFIG")
	if cfgDir == "" && getenv("HOME") != "" {
		cfgDir = filepath.Join(getenv("HOME"), ".docker")
	}
	name, from := getenv("DOCKER_CONTEXT"), "$DOCKER_CONTEXT"
	if name == "" && cfgDir != "" {
		var cf struct {
			CurrentContext string `json:"currentContext"`
		}
		if b, err := os.ReadFile(filepath.Join(cfgDir, "config.json")); err == nil && json.Unmarshal(b, &cf) == nil {
			name, from = cf.CurrentContext, "docker context"
		}
	}
	if name != "" && name != "default" && cfgDir != "" {
		sum := sha256.Sum256([]byte(name))
		var meta struct {
			Endpoints map[string]struct {
				Host string `json:"Host"`
			} `json:"Endpoints"`
		}
		p := filepath.Join(cfgDir, "contexts", "meta", hex.EncodeToString(sum[:]), "meta.json")
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &meta) == nil && meta.Endpoints["docker"].Host != "" {
			return meta.Endpoints["docker"].Host, from + " " + name
		}
	}
	if _, err := os.Stat("/var/run/docker.sock"); err == nil {
		return DefaultSocket, "default socket"
	}
	candidates := []struct{ path, source string }{}
	if h := getenv("HOME"); h != "" {
		candidates = append(candidates, struct{ path, source string }{filepath.Join(h, ".docker", "run", "docker.sock"), "Docker Desktop's socket"})
	}
	if d := getenv("XDG_RUNTIME_DIR"); d != "" {
		candidates = append(candidates, struct{ path, source string }{filepath.Join(d, "docker.sock"), "rootless Docker's socket"})
	}
	for _, c := range candidates {
		if _, err := os.Stat(c.path); err == nil {
			return "unix://" + c.path, c.source
		}
	}
	return DefaultSocket, "default socket"
}
