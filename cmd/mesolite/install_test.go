package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestInstallWithoutCheckout: `go install ./cmd/mesolite` into an empty
// GOBIN and GOPATH (the module cache reused, so nothing is downloaded)
// gives a binary that prints its version and commit, and whose agent,
// started with no config file and no flags in a fresh home directory, runs
// the tutorial's test app until it is healthy, keeps its state in the
// user's data directory (~/.local/share/mesolite), and stops cleanly.
//
// One thing is set besides HOME: MESOLITE_LISTEN, the API address,
// because the default 127.0.0.1:8080 may be taken on a shared machine
// (by a developer's own agent, or another test).
func TestInstallWithoutCheckout(t *testing.T) {
	c := requireDocker(t)
	requireImage(t, c, "mesolite/testapp:latest", "test-image")
	goBin, err := exec.LookPath("go")
	if err != nil {
		missing(t, "go is not on PATH: %v", err)
	}
	modCache, err := exec.Command(goBin, "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	gobin, gopath, home := t.TempDir(), t.TempDir(), t.TempDir()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	install := exec.Command(goBin, "install", "./cmd/mesolite")
	install.Dir = root
	install.Env = append(withoutEnv(os.Environ(), "GOBIN", "GOPATH", "GOMODCACHE", "GOFLAGS"),
		"GOBIN="+gobin, "GOPATH="+gopath, "GOMODCACHE="+strings.TrimSpace(string(modCache)),
		"GOFLAGS=-mod=mod", "GOPROXY=off") // offline: everything must come from the module cache
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("go install ./cmd/mesolite: %v\n%s", err, out)
	}
	bin := filepath.Join(gobin, "mesolite")
	if entries, _ := os.ReadDir(gobin); len(entries) != 1 {
		t.Fatalf("GOBIN holds %d files, want the binary alone", len(entries))
	}

	env := append(withoutEnv(os.Environ(), "HOME", "XDG_DATA_HOME", "MESOLITE_LISTEN", "MESOLITE_URL", "DOCKER_CONTEXT", "DOCKER_CONFIG"), "HOME="+home)
	ver := exec.Command(bin, "version")
	ver.Env = env
	out, err := ver.CombinedOutput()
	if err != nil {
		t.Fatalf("mesolite version: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`(?m)^docker: .*API 1\.\d+ \(negotiated`).Match(out) {
		t.Fatalf("mesolite version printed no negotiated Docker API:\n%s", out)
	}
	// The commit comes from the build's VCS stamp, which Go writes in a
	// clone (as CI has) but not in a linked worktree (.git is a file).
	if fi, err := os.Stat(filepath.Join(root, ".git")); err == nil && fi.IsDir() {
		head, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
		if err != nil {
			t.Fatalf("git rev-parse HEAD: %v", err)
		}
		if !regexp.MustCompile(`(?m)^commit: +` + strings.TrimSpace(string(head)) + `(\+dirty)?$`).Match(out) {
			t.Fatalf("mesolite version does not print the commit %s:\n%s", head, out)
		}
	} else if !strings.Contains(string(out), "commit:   unknown") {
		t.Fatalf("mesolite version in a worktree without VCS stamp:\n%s", out)
	}

	addr := freeAddr(t)
	logBuf := &lockedBuffer{}
	agent := exec.Command(bin, "agent")
	agent.Dir = t.TempDir() // no agent.toml here, nor anywhere the agent looks
	agent.Env = append(env, "MESOLITE_LISTEN="+addr)
	agent.Stdout, agent.Stderr = logBuf, logBuf
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- agent.Wait() }()
	var agentID string
	t.Cleanup(func() {
		if agent.ProcessState == nil {
			_ = agent.Process.Kill() // the test failed before stopping it
			<-done
		}
		if agentID != "" {
			removeAgentContainers(t, agentID)
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", logBuf.String())
		}
	})
	base := "http://" + addr
	var status struct {
		AgentID      string `json:"agentId"`
		WorkDir      string `json:"workDir"`
		HealthChecks struct {
			Path string `json:"path"`
		} `json:"healthChecks"`
	}
	waitUntil(t, 20*time.Second, "the agent answers", func() bool { return getJSON(base+"/mesolite/v1/status", &status) == nil })
	agentID = status.AgentID
	wantDir := filepath.Join(home, ".local", "share", "mesolite")
	if status.WorkDir != wantDir {
		t.Fatalf("work directory %q, want %q", status.WorkDir, wantDir)
	}

	def, err := os.ReadFile(filepath.Join(root, "testdata", "testapp.marathon.json"))
	if err != nil {
		t.Fatal(err)
	}
	add := exec.Command(bin, "app", "add", "-")
	add.Env = append(env, "MESOLITE_URL="+base)
	add.Stdin = bytes.NewReader(def)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("mesolite app add: %v\n%s", err, out)
	}
	waitUntil(t, 60*time.Second, "the test app is running and healthy", func() bool {
		var r struct {
			Tasks []struct {
				State  string `json:"state"`
				Health []struct {
					Alive bool `json:"alive"`
				} `json:"healthCheckResults"`
			} `json:"tasks"`
		}
		return getJSON(base+"/v2/apps/testapp/tasks", &r) == nil && len(r.Tasks) == 1 && r.Tasks[0].State == "TASK_RUNNING" &&
			len(r.Tasks[0].Health) == 1 && r.Tasks[0].Health[0].Alive
	})
	for _, p := range []string{"LOCK", "meta/FORMAT", "meta/apps", "volumes/roles/marathon", "slaves"} {
		if _, err := os.Stat(filepath.Join(wantDir, p)); err != nil {
			t.Errorf("state in the data directory: %v", err)
		}
	}
	if err := agent.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the agent did not stop cleanly: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the agent did not stop within 30s of SIGTERM")
	}
	if !strings.Contains(logBuf.String(), `"stopped"`) && !strings.Contains(logBuf.String(), " stopped") {
		t.Fatalf("the agent's log does not say it stopped")
	}
	// The defaults have networking on: its rules stay after a stop, as the
	// containers do, until an explicit clean-up.
	cleanup := exec.Command(bin, "network", "cleanup")
	cleanup.Env = env
	if out, err := cleanup.CombinedOutput(); err != nil {
		t.Errorf("mesolite network cleanup: %v\n%s", err, out)
	}
}

// withoutEnv drops the named variables from env.
func withoutEnv(env []string, names ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, n := range names {
			drop = drop || k == n
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

// getJSON GETs url into v.
func getJSON(url string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return &httpStatusError{resp.StatusCode}
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

type httpStatusError struct{ code int }

func (e *httpStatusError) Error() string { return http.StatusText(e.code) }

// waitUntil polls cond every 200ms until it holds, failing after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lockedBuffer is a bytes.Buffer a child process and the test share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestModuleInstallable: the committed tree, served as a module version
// from a local GOPROXY directory, is a valid module zip, which is what
// `go install github.com/mesolite/mesolite/cmd/mesolite@<version>` needs
// (Go refuses, for one, a file name with a ':').
func TestModuleInstallable(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		missing(t, "go is not on PATH: %v", err)
	}
	gitBin, err := exec.LookPath("git")
	if err != nil {
		missing(t, "git is not on PATH: %v", err)
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	const mod, ver = "github.com/mesolite/mesolite", "v0.0.0-20261130000000-000000000000"
	proxy := t.TempDir()
	dir := filepath.Join(proxy, mod, "@v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	archive := exec.Command(gitBin, "-C", root, "archive", "--prefix="+mod+"@"+ver+"/", "--format=zip", "-o", filepath.Join(dir, ver+".zip"), "HEAD")
	if out, err := archive.CombinedOutput(); err != nil {
		t.Fatalf("git archive: %v\n%s", err, out)
	}
	gomod, err := exec.Command(gitBin, "-C", root, "show", "HEAD:go.mod").Output()
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{ver + ".mod": string(gomod), ver + ".info": `{"Version":"` + ver + `","Time":"2026-11-30T00:00:00Z"}`, "list": ver + "\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := t.TempDir()
	dl := exec.Command(goBin, "mod", "download", "-json", mod+"@"+ver)
	dl.Dir = t.TempDir()
	dl.Env = append(withoutEnv(os.Environ(), "GOPROXY", "GOMODCACHE", "GOFLAGS", "GONOSUMDB", "GOSUMDB"),
		"GOPROXY=file://"+filepath.ToSlash(proxy), "GOMODCACHE="+cache, "GOSUMDB=off", "GOFLAGS=-modcacherw")
	out, err := dl.CombinedOutput()
	if err != nil || strings.Contains(string(out), `"Error"`) {
		t.Fatalf("go mod download of the committed tree as a module: %v\n%s", err, out)
	}
}
