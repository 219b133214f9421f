// Package netplanetest holds what tests of the network data plane share:
// the traffic guard, real containers from the test image, the static
// helper binary, and running a test as an unprivileged user of the docker
// group. Only tests and the benchmark (the guard) import it.
package netplanetest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/miekg/dns"
)

// TestImage is the shared test image (make test-image). The network
// tests run ClientImage instead, which they build themselves from the same
// sources, so that they do not depend on which worktree built the shared
// image last.
const TestImage = "mesolite/testapp:latest"

// LabelTest marks what a test created, with the test's name.
const LabelTest = "mesolite.test"

// CIUser is the unprivileged user of the docker group the tests run as
// (.ci/run creates it).
const CIUser = "mesolite-ci"

// Missing ends a test that lacks something it needs: it fails under
// CI=true, where everything must be there, and skips elsewhere.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format+" (CI=true, so this fails instead of skipping)", args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot ends the test (Missing) unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "this test changes nftables and needs root (it runs the unprivileged parts as %s itself)", CIUser)
	}
}

// Docker returns a client of a daemon that answers, or ends the test.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = c.Ping(ctx)
		cancel()
	}
	if err != nil {
		Missing(t, "docker daemon does not answer: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() }) // the test is over
	return c
}

var (
	imageMu  sync.Mutex
	imageRef string
)

// ClientImage builds testdata/testapp statically and imports it as an
// image (the binary as /testapp and /bin/sh, as its Dockerfile does), once
// per test process, tagged mesolite/testapp:<tag>-<digest>-<pid>: the
// test binaries of two packages run at once, and one removing its image
// at its end must not take the other's away. It serves
// HTTP and has the client commands (get, dial, lookup, srv) the network
// tests run inside containers. RemoveClientImage removes it.
func ClientImage(t testing.TB, c *client.Client, tag string) string {
	t.Helper()
	imageMu.Lock()
	defer imageMu.Unlock()
	if imageRef != "" {
		return imageRef
	}
	bin := StaticBinary(t, "github.com/mesolite/mesolite/testdata/testapp")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	ref := fmt.Sprintf("mesolite/testapp:%s-%s-%d", tag, hex.EncodeToString(sum[:6]), os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.ImageInspect(ctx, ref); err == nil {
		imageRef = ref
		return ref
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range []string{"testapp", "bin/sh"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	rc, err := c.ImageImport(ctx, image.ImportSource{Source: &buf, SourceName: "-"}, ref, image.ImportOptions{
		Changes: []string{`ENTRYPOINT ["/testapp"]`, "LABEL " + LabelTest + "=netplane"},
	})
	if err != nil {
		t.Fatalf("import %s: %v", ref, err)
	}
	_, _ = io.Copy(io.Discard, rc)
	rc.Close()
	if _, err := c.ImageInspect(ctx, ref); err != nil {
		t.Fatalf("import %s: %v", ref, err)
	}
	imageRef = ref
	return ref
}

// RemoveClientImage removes the image ClientImage made (TestMain calls it
// when the package's tests are done).
func RemoveClientImage() {
	imageMu.Lock()
	defer imageMu.Unlock()
	if imageRef == "" {
		return
	}
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return
	}
	defer func() { _ = c.Close() }() // done with it
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.ImageRemove(ctx, imageRef, image.RemoveOptions{Force: true})
	imageRef = ""
}

// GuardTable is the name of the guard table of a test.
func GuardTable(name string) string { return "mesolite_guard_" + name }

// Guard installs the test's own nftables table that drops every packet to
// the prefixes that would leave through an interface other than loopback
// or a Docker bridge (docker0, br-*), in output and forward, after every
// other filter. A VIP whose rule is missing or broken then shows up as a
// refused or timed-out connection inside the machine, never as a packet
// on the network. It checks the table is in place and removes it when the
// test ends. Needs root.
func Guard(t testing.TB, name string, prefixes ...netip.Prefix) {
	t.Helper()
	remove, err := InstallGuard(name, prefixes...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := remove(); err != nil {
			t.Error(err)
		}
	})
}

// GuardDrops is how many packets the guard of name dropped: a test that
// expects every connection to stay inside asserts it is 0.
func GuardDrops(t testing.TB, name string) uint64 {
	t.Helper()
	n, err := ReadGuardDrops(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Container is a container a test runs.
type Container struct {
	ID   string
	Name string
	IP   netip.Addr // on the default bridge; invalid with host networking
}

// RunOptions are a test container's options.
type RunOptions struct {
	Env         []string
	HostNetwork bool
	NetworkMode string // e.g. "container:<id>" to share another container's network and resolver
	DNS         []string
	Cmd         []string
	Entrypoint  []string
	Image       string // default ClientImage
}

// Run starts a container of the test image, labelled for the test, and
// removes it when the test ends.
func Run(t testing.TB, c *client.Client, name string, o RunOptions) Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	img := o.Image
	if img == "" {
		img = ClientImage(t, c, "netplane")
	}
	cfg := &container.Config{Image: img, Env: o.Env, Cmd: o.Cmd, Entrypoint: o.Entrypoint, Labels: map[string]string{LabelTest: t.Name()}}
	hc := &container.HostConfig{DNS: o.DNS}
	if o.HostNetwork {
		hc.NetworkMode = "host"
	}
	if o.NetworkMode != "" {
		hc.NetworkMode = container.NetworkMode(o.NetworkMode)
	}
	full := fmt.Sprintf("mesolite-t-%s-%d", name, time.Now().UnixNano()%1e9)
	r, err := c.ContainerCreate(ctx, cfg, hc, nil, nil, full)
	if err != nil {
		t.Fatalf("create container %s: %v", full, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.ContainerRemove(ctx, r.ID, container.RemoveOptions{Force: true}); err != nil && !strings.Contains(err.Error(), "No such container") {
			t.Errorf("remove container %s: %v", full, err)
		}
	})
	if err := c.ContainerStart(ctx, r.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container %s: %v", full, err)
	}
	in, err := c.ContainerInspect(ctx, r.ID)
	if err != nil {
		t.Fatalf("inspect container %s: %v", full, err)
	}
	out := Container{ID: r.ID, Name: full}
	if n := in.NetworkSettings.Networks["bridge"]; n != nil {
		out.IP, _ = netip.ParseAddr(n.IPAddress)
	}
	return out
}

// Exec runs the test image's /bin/sh -c script in a container and returns
// its output and exit code.
func Exec(t testing.TB, c *client.Client, id, script string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := c.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: []string{"/bin/sh", "-c", script}, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("exec in %s: %v", id, err)
	}
	hj, err := c.ContainerExecAttach(ctx, r.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("attach exec in %s: %v", id, err)
	}
	defer hj.Close()
	var out strings.Builder
	buf := make([]byte, 8)
	for {
		// Docker's multiplexed stream: an 8-byte header, then the frame.
		if _, err := readFull(hj.Reader, buf); err != nil {
			break
		}
		n := int(buf[4])<<24 | int(buf[5])<<16 | int(buf[6])<<8 | int(buf[7])
		frame := make([]byte, n)
		if _, err := readFull(hj.Reader, frame); err != nil {
			break
		}
		out.Write(frame)
	}
	for i := 0; i < 500; i++ {
		in, err := c.ContainerExecInspect(ctx, r.ID)
		if err != nil {
			t.Fatalf("inspect exec: %v", err)
		}
		if !in.Running {
			return out.String(), in.ExitCode
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("exec in %s: still running", id)
	return "", -1
}

func readFull(r interface{ Read([]byte) (int, error) }, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// RemoveLabelled removes every container labelled for the test (a safety
// net for a test that died between create and cleanup registration).
func RemoveLabelled(t testing.TB, c *client.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := c.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", LabelTest+"="+t.Name()))})
	if err != nil {
		return
	}
	for _, s := range list {
		_ = c.ContainerRemove(ctx, s.ID, container.RemoveOptions{Force: true})
	}
}

var (
	staticOnce sync.Map // package path → *staticBuild
)

type staticBuild struct {
	once sync.Once
	path string
	err  error
}

// StaticBinary builds a Go main package (an import path) with
// CGO_ENABLED=0, once per test process, into a directory every user may
// read, and returns the binary's path.
func StaticBinary(t testing.TB, pkg string) string {
	t.Helper()
	v, _ := staticOnce.LoadOrStore(pkg, &staticBuild{})
	b := v.(*staticBuild)
	b.once.Do(func() {
		// The unprivileged child gets what its root parent built.
		for _, kv := range strings.Split(os.Getenv(staticEnv), ";") {
			if p, path, ok := strings.Cut(kv, "="); ok && p == pkg {
				b.path = path
				return
			}
		}
		dir, err := os.MkdirTemp("", "mesolite-static-")
		if err != nil {
			b.err = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.path, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+runtime.GOOS)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// staticEnv passes the static binaries a parent built to its child:
// "pkg=path;pkg=path".
const staticEnv = "MESOLITE_TEST_STATIC"

// ChildEnv marks a test process run as the unprivileged user.
const ChildEnv = "MESOLITE_NETPLANE_CHILD"

// IsChild reports whether this test process is the unprivileged child.
func IsChild() bool { return os.Getenv(ChildEnv) == "1" }

// RunAsUser runs the named test of this test binary again as CIUser (a
// member of the docker group, not root), with env added, and fails t with
// the child's output if it fails. The parent, root, keeps what needs root
// (the guard) and builds what the child needs (the static binaries of
// prebuild, the client image). Under CI=true a missing user is a failure.
func RunAsUser(t *testing.T, testName string, prebuild []string, env ...string) {
	t.Helper()
	var static []string
	for _, pkg := range prebuild {
		static = append(static, pkg+"="+StaticBinary(t, pkg))
	}
	ClientImage(t, Docker(t), "netplane")
	static = append(static, "github.com/mesolite/mesolite/testdata/testapp="+StaticBinary(t, "github.com/mesolite/mesolite/testdata/testapp"))
	u, err := user.Lookup(CIUser)
	if err != nil {
		Missing(t, "user %s is missing (.ci/run creates it: useradd -G docker %s): %v", CIUser, CIUser, err)
	}
	gids, err := u.GroupIds()
	if err != nil {
		t.Fatalf("groups of %s: %v", CIUser, err)
	}
	docker, err := user.LookupGroup("docker")
	if err != nil || !slices.Contains(gids, docker.Gid) {
		Missing(t, "user %s is not in the docker group (usermod -aG docker %s)", CIUser, CIUser)
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		Missing(t, "setpriv is missing (util-linux): %v", err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "child.test")
	data, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	if err := os.Mkdir(home, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, atoi(u.Uid), atoi(u.Gid)); err != nil {
		t.Fatal(err)
	}
	args := []string{"--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups", "--", bin, "-test.run", "^" + testName + "$", "-test.count=1", "-test.v"}
	cmd := exec.Command("setpriv", args...)
	cmd.Dir = home
	cmd.Env = append(os.Environ(), ChildEnv+"=1", "HOME="+home, "TMPDIR="+home, staticEnv+"="+strings.Join(static, ";"))
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	t.Logf("as %s (uid %s, groups %v):\n%s", CIUser, u.Uid, gids, out)
	if err != nil {
		t.Fatalf("the test as %s failed: %v", CIUser, err)
	}
	if !strings.Contains(string(out), "--- PASS: "+testName) {
		t.Fatalf("the test as %s did not pass (skipped?)", CIUser)
	}
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

// FakeUpstream is a resolver of the test's own at addr (port 0: any):
// every A question gets 192.0.2.99, so a forwarded name can be told apart
// and no question leaves the machine. It returns where it listens.
func FakeUpstream(t testing.TB, at netip.AddrPort) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", at.String())
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		if r.Question[0].Qtype == dns.TypeA {
			rr, _ := dns.NewRR(r.Question[0].Name + " 5 IN A 192.0.2.99")
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m) // a client that went away
	})}
	go func() { _ = srv.ActivateAndServe() }() // returns when Shutdown closes it
	t.Cleanup(func() { _ = srv.Shutdown() })
	return netip.MustParseAddrPort(pc.LocalAddr().String())
}
