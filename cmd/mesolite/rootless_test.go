package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/mesolite/mesolite/sandbox/netplane/netplanetest"
)

// rootlessUser is the unprivileged user TestRootless runs rootless Docker
// and the agent as; .ci/run makes it (with subordinate ids).
const rootlessUser = "mesolite-rootless"

// The rootless test's VIP, in a block of 198.18.0.0/15 its guard covers,
// and its named-VIP block.
const (
	rootlessVIPBlock = "198.18.77.0/24"
	rootlessVIP      = "198.18.77.10:8080"
	rootlessNamed    = "198.19.77.0/24"
)

// dockerdRootless is Debian's script that starts dockerd in rootlesskit.
const dockerdRootless = "/usr/share/docker.io/contrib/dockerd-rootless.sh"

// TestRootless runs a rootless Docker daemon of its own (Debian's
// rootlesskit and slirp4netns, as an unprivileged user, beside the
// system's daemon, which it does not touch) and the agent as that user
// against it: the agent says the daemon does not enforce memory and CPU
// limits (cgroup v1 here), finds that it cannot reach the containers'
// addresses (they are in rootlesskit's network namespace) and takes the
// helper path; the tutorial's test app runs with its persistent volume
// bind-mounted from the work directory and its port published in the
// agent's range, and becomes healthy through the helper; networking runs
// in rootlesskit's namespace through the network helper, and another
// container of the rootless daemon reaches the app through its VIP.
func TestRootless(t *testing.T) {
	sys := requireDocker(t)
	requireImage(t, sys, "mesolite/testapp:latest", "test-image")
	if os.Geteuid() != 0 {
		missing(t, "starting rootless Docker as %s needs root", rootlessUser)
	}
	u, err := user.Lookup(rootlessUser)
	if err != nil {
		missing(t, "user %s does not exist (.ci/run makes it): %v", rootlessUser, err)
	}
	for _, tool := range []string{"rootlesskit", "slirp4netns", "newuidmap", dockerdRootless} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "%s is not installed (apt-get install rootlesskit slirp4netns uidmap docker.io): %v", tool, err)
		}
	}
	if fi, err := os.Stat("/dev/net/tun"); err != nil || fi.Mode().Perm()&0o006 != 0o006 {
		missing(t, "/dev/net/tun is not open to users (mode %v, %v): slirp4netns cannot make its tap device; chmod 0666 /dev/net/tun, Debian's mode (.ci/run does)", fi.Mode(), err)
	}
	// Before any connection: packets to the test's VIP blocks that would
	// leave this machine are dropped.
	netplanetest.Guard(t, "ltrl", netip.MustParsePrefix(rootlessVIPBlock), netip.MustParsePrefix(rootlessNamed))
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}

	// Everything of this run in one directory the user owns.
	base, err := os.MkdirTemp("", "mesolite-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	for _, d := range []string{"", "home", "run", "work"} {
		p := filepath.Join(base, d)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(base, 0o711); err != nil { // root's temp directory, traversable by the user
		t.Fatal(err)
	}
	sock := filepath.Join(base, "run", "docker.sock")
	host := "unix://" + sock
	env := []string{"HOME=" + filepath.Join(base, "home"), "XDG_RUNTIME_DIR=" + filepath.Join(base, "run"),
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "DOCKER_HOST=" + host}

	// The daemon: its own data, exec root and socket, as the user.
	dlog := filepath.Join(base, "dockerd.log")
	logf, err := os.Create(dlog)
	if err != nil {
		t.Fatal(err)
	}
	dockerd := exec.Command(dockerdRootless, "--data-root", filepath.Join(base, "home", "docker"), "--exec-root", filepath.Join(base, "run", "exec"),
		"--pidfile", filepath.Join(base, "run", "docker.pid"), "-H", host)
	dockerd.Env, dockerd.Stdout, dockerd.Stderr, dockerd.Dir = env, logf, logf, base
	dockerd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := dockerd.Start(); err != nil {
		t.Fatal(err)
	}
	ddone := make(chan struct{})
	go func() { _ = dockerd.Wait(); logf.Close(); close(ddone) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-dockerd.Process.Pid, syscall.SIGTERM) // rootlesskit, dockerd and containerd: the group this test started
		select {
		case <-ddone:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-dockerd.Process.Pid, syscall.SIGKILL)
			<-ddone
		}
		if t.Failed() {
			b, _ := os.ReadFile(dlog)
			t.Logf("rootless dockerd log (end):\n%s", tail(string(b), 40))
		}
	})
	rl, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	waitUntil(t, 60*time.Second, "rootless dockerd answers", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := rl.Ping(ctx)
		return err == nil
	})
	info, err := rl.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rootless Docker %s: storage %s, cgroup driver %q (v%s), security %v", info.ServerVersion, info.Driver, info.CgroupDriver, info.CgroupVersion, info.SecurityOptions)

	// The test image, from the system's daemon (no registry).
	saved, err := sys.ImageSave(context.Background(), []string{"mesolite/testapp:latest"})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := rl.ImageLoad(context.Background(), saved, client.ImageLoadWithQuiet(true))
	saved.Close()
	if err != nil {
		t.Fatalf("load the test image into rootless Docker: %v", err)
	}
	_, _ = io.Copy(io.Discard, loaded.Body)
	loaded.Body.Close()
	if _, err := rl.ImageInspect(context.Background(), "mesolite/testapp:latest"); err != nil {
		t.Fatalf("test image not in rootless Docker: %v", err)
	}
	t.Cleanup(func() {
		_, _ = rl.ImageRemove(context.Background(), "mesolite/testapp:latest", image.RemoveOptions{Force: true})
	})

	// The agent, as the user, against the rootless daemon.
	lo := 33700 + int(time.Now().UnixNano()%10)*10
	p := &agentProc{t: t, bin: mesoliteBinary(t), workDir: filepath.Join(base, "work"), config: filepath.Join(base, "agent.toml"),
		logPath: filepath.Join(base, "agent.log"), addr: freeAddr(t), cred: cred, env: env}
	cfgText := strings.Replace(fmt.Sprintf(e2eConfig, lo, lo+9), `check_path = "direct"`, `check_path = "auto"`, 1)
	// Networking on: the VIP rules go where the tasks' network is, in
	// rootlesskit's namespace, through the network helper.
	cfgText = fmt.Sprintf("docker_host = %q\n", host) + cfgText + fmt.Sprintf("[network]\nmode = \"auto\"\ntable = \"mesolite_lt_rl\"\nnamed_vip_range = %q\ndns = false\n", rootlessNamed)
	if err := os.WriteFile(p.config, []byte(cfgText), 0o644); err != nil {
		t.Fatal(err)
	}
	// The binary in the test's temporary directory must be readable by the user.
	if err := os.Chmod(filepath.Dir(p.bin), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			t.Logf("agent log (end):\n%s", tail(string(b), 80))
		}
	})
	p.start()
	st := waitCheckPath(t, p, "helper")
	t.Logf("check path: %s", st.Reason)
	logText, _ := os.ReadFile(p.logPath)
	if !strings.Contains(string(logText), "memory and CPU limits are not enforced") || !strings.Contains(string(logText), `"rootless":true`) {
		t.Fatalf("the agent's log does not say that rootless Docker enforces no limits:\n%s", tail(string(logText), 30))
	}

	var netst struct {
		Network struct {
			Mode string `json:"mode"`
			Off  string `json:"off"`
		} `json:"network"`
	}
	if err := p.getJSON("/mesolite/v1/status", &netst); err != nil || netst.Network.Mode != "helper" {
		t.Fatalf("network mode %q (%s, %v), want helper: rootless Docker's rules are served by the helper in its namespace", netst.Network.Mode, netst.Network.Off, err)
	}

	// The tutorial's app, with its VIP in the test's guarded block.
	def, err := os.ReadFile(filepath.Join("..", "..", "testdata", "testapp.marathon.json"))
	if err != nil {
		t.Fatal(err)
	}
	def = []byte(strings.Replace(string(def), `"5.4.3.2:8080"`, `"`+rootlessVIP+`"`, 1))
	if !strings.Contains(string(def), rootlessVIP) {
		t.Fatal("the test app's definition has no VIP_0 to replace")
	}
	if code, body := p.do("POST", "/v2/apps", rawJSON(string(def))); code != 201 {
		t.Fatalf("POST testapp: %d %s", code, body)
	}
	task := p.waitTask("/testapp", "healthy through the helper", 90*time.Second, func(tk e2eTask) bool {
		return tk.State == "TASK_RUNNING" && len(tk.HealthCheckResults) == 1 && tk.HealthCheckResults[0].Alive
	})
	if len(task.Ports) != 1 || task.Ports[0] < lo || task.Ports[0] > lo+9 {
		t.Fatalf("task ports %v, want one in %d-%d", task.Ports, lo, lo+9)
	}
	// The published port reaches the task, and a key written through it
	// lands in the volume under the work directory, owned by the user.
	url := fmt.Sprintf("http://127.0.0.1:%d/kv/greeting", task.Ports[0])
	if code := httpPut(t, url, "hello rootless", 20*time.Second); code != http.StatusNoContent {
		t.Fatalf("PUT %s: %d", url, code)
	}
	if len(task.LocalVolumes) != 1 {
		t.Fatalf("task volumes %+v", task.LocalVolumes)
	}
	var found string
	_ = filepath.WalkDir(filepath.Join(p.workDir, "volumes"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "greeting" {
			found = path
		}
		return nil
	})
	if found == "" {
		t.Fatal("the key written through the published port is not in the volume under the work directory")
	}
	if b, err := os.ReadFile(found); err != nil || string(b) != "hello rootless" {
		t.Fatalf("volume file %s: %q %v", found, b, err)
	}
	if fi, err := os.Stat(found); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != uid {
			t.Fatalf("volume file owned by uid %d, want the user's %d (root in the container is the user)", st.Uid, uid)
		}
	}

	// Another container of the rootless daemon reaches the app through its
	// VIP: the rules are in rootlesskit's namespace, applied by the helper.
	// The guard (installed before) drops any packet to the test's blocks
	// that would leave this machine, slirp4netns's included.
	waitUntil(t, 30*time.Second, "the VIP's backend in the rules", func() bool {
		var vips struct {
			VIPs []struct {
				Backends []struct {
					InRules bool `json:"inRules"`
				} `json:"backends"`
			} `json:"vips"`
		}
		return p.getJSON("/mesolite/v1/vips", &vips) == nil && len(vips.VIPs) == 1 && len(vips.VIPs[0].Backends) == 1 && vips.VIPs[0].Backends[0].InRules
	})
	out, err := exec.Command("docker", "-H", host, "run", "--rm", "--entrypoint", "/bin/sh", "mesolite/testapp:latest", "-c", "get http://"+rootlessVIP+"/health 3").CombinedOutput()
	if err != nil || strings.Count(string(out), "ok") != 3 {
		t.Fatalf("3 GETs through the VIP %s from a container of the rootless daemon: %v\n%s", rootlessVIP, err, out)
	}
	t.Logf("through the VIP %s from a rootless container: %q", rootlessVIP, strings.TrimSpace(string(out)))
	if n := netplanetest.GuardDrops(t, "ltrl"); n != 0 {
		t.Fatalf("the guard dropped %d packets to the test's VIP blocks", n)
	}

	// Clean up as a user would: remove the app, stop, clean up the helper.
	if code, body := p.do("DELETE", "/v2/apps/testapp", nil); code != 200 {
		t.Fatalf("DELETE testapp: %d %s", code, body)
	}
	p.waitDeployments(60 * time.Second)
	p.stop(syscall.SIGTERM)
	cleanup := exec.Command(p.bin, "cleanup", "--config", p.config, "--work-dir", p.workDir)
	cleanup.Env, cleanup.SysProcAttr = env, &syscall.SysProcAttr{Credential: cred}
	if out, err := cleanup.CombinedOutput(); err != nil || !strings.Contains(string(out), "removed check helper container") {
		t.Fatalf("mesolite cleanup: %v\n%s", err, out)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
