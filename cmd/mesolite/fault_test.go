package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mesolite/mesolite/sandbox"
)

// TestFaultInjection runs the stateful lifecycle (add, write a key, stop,
// start, kill, kill --wipe, write a key, remove) on real Docker with the
// real binary, for two workloads: the test app in Docker, and the same
// binary as a command app (no image) that the fetcher downloads through
// its cache. It kills the agent with SIGKILL at one failpoint per run
// (MESOLITE_FAILPOINT): the k-th hit of any point, k drawn by a seeded
// generator over the hits a calibration run counts, plus each point by
// name. After the kill it restarts the agent without the failpoint, waits
// for it to settle and checks (faultRun.problems):
//   - never two running containers for one instance (after every step too);
//   - every instance whose goal is running has exactly one running
//     container, carrying its current task id; a stopped one has none;
//   - no container of the agent that no running task owns (after the
//     orphan grace period);
//   - every created volume of a reservation exists and holds the keys
//     acknowledged (204) before the kill, and its running task reads them
//     back; no volume directory or sandbox without its owner;
//   - no instance or app gone without a wipe or remove asked for, and once
//     the app record is gone nothing of it is left;
//   - no unreadable record;
//   - (command app) every entry of the fetcher's cache is the whole
//     served file, and no temporary download outlives a restart.
//
// Then it finishes the script (app remove) and checks that nothing at all
// is left. Runs share nothing and run four at a time.
//
// MESOLITE_FAULT_SEED repeats a run's draw; MESOLITE_SOAK=1 (make soak)
// makes many more runs.
func TestFaultInjection(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	mesoliteBinary(t)
	start := time.Now()

	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("MESOLITE_FAULT_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("MESOLITE_FAULT_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (MESOLITE_FAULT_SEED=%d draws the same kill points)", seed, seed)

	// The two workloads: the test app in Docker, and the same binary as a
	// command app (no image) that the fetcher downloads through its cache.
	docker := &faultWorkload{name: "docker", app: faultApp}
	command := newCommandWorkload(t)
	random, workers, minKilled, randomCmd := 48, 4, 50, 8
	if os.Getenv("MESOLITE_SOAK") == "1" {
		random, minKilled, randomCmd = 300, 280, 60
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	// Named points: every failpoint at least once, in the step named.
	named := []faultPlan{
		{docker, "store.put.version:1"},     // add: version written, app record not
		{docker, "store.put.app:1"},         // add: app record written, no deployment
		{docker, "store.put.deployment:1"},  // add: deployment written, no instance
		{docker, "store.put.instance:1"},    // add: instance written, nothing reserved
		{docker, "volume.create:1"},         // add: volume made, VolumesCreated not saved
		{docker, "sandbox.create:1"},        // add: task STAGING, sandbox made, no container
		{docker, "docker.run.before:1"},     // add: the same, mounts resolved
		{docker, "docker.create:1"},         // add: container created, not started
		{docker, "docker.run.after:1"},      // add: container running, RUNNING not saved
		{docker, "docker.stop:1"},           // stop: container stopped, KILLED not saved
		{docker, "docker.remove:1"},         // stop: container removed, KILLED not saved
		{docker, "docker.stop:3"},           // wipe: the old task's container stopped
		{docker, "volume.destroy:1"},        // wipe: volume deleted, not recorded
		{docker, "store.delete.instance:2"}, // remove: the instance record deleted
		{docker, "store.delete.app:1"},      // remove: the app record deleted
		// The command app: the fetcher's windows and the host-root container's.
		{command, "fetch.before:1"},       // add: sandbox made, nothing fetched
		{command, "fetch.cache.write:1"},  // add: download synced in the cache, not renamed
		{command, "fetch.cache.commit:1"}, // add: cache entry renamed, not used yet
		{command, "fetch.after:1"},        // add: the binary in the sandbox, no container
		{command, "fetch.before:2"},       // start: the next incarnation, before a cache hit
		{command, "docker.create:1"},      // add: host-root container created, not started
		{command, "docker.run.after:1"},   // add: command task running, RUNNING not saved
		{command, "docker.stop:1"},        // stop: the whole tree stopped, KILLED not saved
	}
	// Calibration: the whole script of each workload with a failpoint that
	// never fires, counting the hits the agent logs.
	for _, w := range []*faultWorkload{docker, command} {
		t.Run("calibrate-"+w.name, func(t *testing.T) {
			r := newFaultRun(t, 0, "any:1000000000", w)
			if err := r.script(); err != nil {
				t.Fatalf("the script failed without a kill: %v", err)
			}
			w.hits = r.loggedHits()
			r.check()
			r.finish()
		})
		if t.Failed() || len(w.hits) == 0 {
			t.Fatalf("calibration of %s failed (%d failpoint hits logged)", w.name, len(w.hits))
		}
		counts := map[string]int{}
		for _, p := range w.hits {
			counts[p]++
		}
		t.Logf("calibration of %s: %d failpoint hits in the script: %v", w.name, len(w.hits), counts)
	}
	plans := append([]faultPlan(nil), named...)
	for i := 0; i < random; i++ {
		plans = append(plans, faultPlan{docker, fmt.Sprintf("any:%d", 1+rng.IntN(len(docker.hits)))})
	}
	for i := 0; i < randomCmd; i++ {
		plans = append(plans, faultPlan{command, fmt.Sprintf("any:%d", 1+rng.IntN(len(command.hits)))})
	}

	results := make([]faultResult, len(plans))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				pl := plans[i]
				name := fmt.Sprintf("run%03d-%s-%s", i+1, pl.w.name, strings.ReplaceAll(pl.spec, ":", "#"))
				results[i].spec = pl.w.name + " " + pl.spec
				results[i].failed = !t.Run(name, func(t *testing.T) { runFault(t, i+1, pl.spec, pl.w, &results[i]) })
			}
		}()
	}
	for i := range plans {
		next <- i
	}
	close(next)
	wg.Wait()

	// The table.
	killed, pointsHit := 0, map[string]int{}
	var b strings.Builder
	fmt.Fprintf(&b, "%-5s %-34s %-22s %-8s %6s  %s\n", "RUN", "FAILPOINT", "KILLED AT", "STEP", "TOOK", "VIOLATIONS")
	var violations []string
	for i, r := range results {
		at := r.point
		if at == "" {
			at = "-"
		} else {
			killed++
			pointsHit[r.point]++
		}
		v := "none"
		if r.failed && len(r.violations) == 0 {
			v = "the run failed: see its log above"
		}
		if len(r.violations) > 0 {
			v = strings.Join(r.violations, "; ")
			for _, x := range r.violations {
				violations = append(violations, fmt.Sprintf("run %d (%s, killed at %s during %s): %s", i+1, r.spec, at, r.step, x))
			}
		}
		fmt.Fprintf(&b, "%-5d %-34s %-22s %-8s %5.1fs  %s\n", i+1, r.spec, at, r.step, r.took.Seconds(), v)
	}
	t.Logf("fault injection, seed %d:\n%s", seed, b.String())
	var pts []string
	for p, n := range pointsHit {
		pts = append(pts, fmt.Sprintf("%s×%d", p, n))
	}
	sort.Strings(pts)
	t.Logf("%d runs, %d killed the agent, %d distinct kill points: %s; %d violations; took %v",
		len(results), killed, len(pointsHit), strings.Join(pts, " "), len(violations), time.Since(start).Round(time.Second))
	for _, v := range violations {
		t.Errorf("violation: %s", v)
	}
	for i := range named {
		if want, _, _ := strings.Cut(named[i].spec, ":"); results[i].point != want {
			t.Errorf("run %d (%s %s) killed the agent at %q: the script no longer passes that point", i+1, named[i].w.name, named[i].spec, results[i].point)
		}
	}
	if killed < minKilled {
		t.Errorf("only %d runs killed the agent, want at least %d", killed, minKilled)
	}
}

// faultApp is the test app with short health checks, kill grace and
// backoff, so that a run takes seconds.
const faultApp = `{
  "id": "/testapp", "cpus": 0.1, "mem": 32, "instances": 1,
  "networks": [{"mode": "container/bridge"}],
  "container": {"type": "DOCKER", "docker": {"image": "mesolite/testapp:latest"},
    "volumes": [{"containerPath": "data", "mode": "RW", "persistent": {"size": 4}}],
    "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}]},
  "env": {"DATA_DIR": "/mnt/mesos/sandbox/data"},
  "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 5,
    "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}],
  "taskKillGracePeriodSeconds": 1,
  "backoffSeconds": 1, "backoffFactor": 1, "maxLaunchDelaySeconds": 1,
  "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}
}`

// faultWorkload is an app the script runs: its definition and the
// failpoint hits its calibration counted.
type faultWorkload struct {
	name string
	app  string
	hits []string
	// served is the file the fetcher downloads (command workload), to
	// check that no cache entry is ever half-written.
	served []byte
}

// faultPlan is one run: a workload and a failpoint.
type faultPlan struct {
	w    *faultWorkload
	spec string
}

// newCommandWorkload serves the test app's binary on 127.0.0.1 and makes
// a command app of it: fetched through the cache, run on $PORT0 with its
// data in the persistent volume, checked over HTTP on port index 0.
func newCommandWorkload(t *testing.T) *faultWorkload {
	t.Helper()
	bin := testAppBinary(t)
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	app := `{
  "id": "/testapp", "cpus": 0.1, "mem": 64, "instances": 1,
  "cmd": "LISTEN=127.0.0.1:$PORT0 DATA_DIR=$MESOS_SANDBOX/data exec ./testapp",
  "fetch": [{"uri": "` + srv.URL + `/testapp", "executable": true, "cache": true}],
  "container": {"type": "MESOS",
    "volumes": [{"containerPath": "data", "mode": "RW", "persistent": {"size": 4}}]},
  "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 5,
    "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}],
  "taskKillGracePeriodSeconds": 1,
  "backoffSeconds": 1, "backoffFactor": 1, "maxLaunchDelaySeconds": 1,
  "upgradeStrategy": {"minimumHealthCapacity": 0, "maximumOverCapacity": 0}
}`
	return &faultWorkload{name: "command", app: app, served: body}
}

var (
	testAppOnce sync.Once
	testAppPath string
	testAppErr  error
)

// testAppBinary builds testdata/testapp for the host (a static binary, as
// the image has it).
func testAppBinary(t *testing.T) string {
	t.Helper()
	testAppOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mesolite-testapp-")
		if err != nil {
			testAppErr = err
			return
		}
		testAppPath = filepath.Join(dir, "testapp")
		cmd := exec.Command("go", "build", "-o", testAppPath, "../../testdata/testapp")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			testAppErr = fmt.Errorf("build the test app: %v\n%s", err, out)
		}
	})
	if testAppErr != nil {
		t.Fatal(testAppErr)
	}
	return testAppPath
}

// faultResult is what one run found, for the table.
type faultResult struct {
	spec       string
	point      string // where the agent killed itself; "" if it was not killed
	step       string // the script step in flight then
	violations []string
	took       time.Duration
	failed     bool
}

// settleTimeout bounds every wait for the agent: a step of the script, the
// recovery after a kill, the removal at the end. Runs take seconds; the
// margin is for a machine busy with other tests.
const settleTimeout = 60 * time.Second

// errAgentDied: a call failed because the agent killed itself.
var errAgentDied = errors.New("the agent died")

// faultRun is one run: an agent with its own work directory, port range and
// failpoint, the script's progress as a client saw it, and what was found.
type faultRun struct {
	t        *testing.T
	p        *agentProc
	appFile  string
	http     *http.Client
	workload *faultWorkload

	died  bool
	point string
	step  string
	cur   e2eTask // the task the script works with

	// What the client was told.
	added       bool                         // the add was answered
	removeAsked bool                         // app remove was sent
	gone        map[string]bool              // instances a wipe or remove was sent for
	acked       map[string]map[string]string // instance -> key -> value answered 204
	seen        map[string]bool              // every instance seen

	violations []string
}

var failpointHit = regexp.MustCompile(`failpoint \S+ hit at (\S+) \(#\d+\)`)

// newFaultRun starts an agent armed with MESOLITE_FAILPOINT=spec, with ten
// host ports of its own: below the kernel's ephemeral ports (32768 up),
// which a busy machine's connections could hold, and the other tests'.
func newFaultRun(t *testing.T, idx int, spec string, w *faultWorkload) *faultRun {
	t.Helper()
	r := &faultRun{
		t: t, appFile: filepath.Join(t.TempDir(), "testapp.json"),
		http: &http.Client{Timeout: 10 * time.Second, Transport: hostChecked{}},
		gone: map[string]bool{}, acked: map[string]map[string]string{}, seen: map[string]bool{},
		workload: w,
	}
	if err := os.WriteFile(r.appFile, []byte(w.app), 0o644); err != nil {
		t.Fatal(err)
	}
	r.p = startAgentWith(t, 22000+(idx%790)*10, 10, "", []string{"MESOLITE_FAILPOINT=" + spec})
	return r
}

// startAgentWith starts an agent as startAgent does, on host ports
// [lo, lo+n), with extra top-level agent.toml lines and extra environment
// (for its first start only).
func startAgentWith(t *testing.T, lo, n int, extra string, env []string) *agentProc {
	t.Helper()
	dir := t.TempDir()
	p := &agentProc{t: t, bin: mesoliteBinary(t), workDir: t.TempDir(), env: env}
	p.config = filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(p.config, []byte(extra+fmt.Sprintf(e2eConfig, lo, lo+n-1)+e2eNetworkOff), 0o644); err != nil {
		t.Fatal(err)
	}
	p.logPath = filepath.Join(dir, "agent.log")
	p.addr = freeAddr(t)
	checkTraffic(t, p.addr)
	p.start()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		removeAgentContainers(t, p.agentID)
		if t.Failed() {
			// The agent's log without the API requests and failpoint hits.
			b, _ := os.ReadFile(p.logPath)
			var lines []string
			for _, l := range strings.Split(string(b), "\n") {
				if !strings.Contains(l, `"message":"api request"`) && !strings.Contains(l, `"message":"failpoint"`) {
					lines = append(lines, l)
				}
			}
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			t.Logf("agent log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	return p
}

// runFault is one fault-injection run. It fills res as it goes, so that a
// run that fails the test half-way still shows in the table.
func runFault(t *testing.T, idx int, spec string, w *faultWorkload, res *faultResult) {
	start := time.Now()
	r := newFaultRun(t, idx, spec, w)
	defer func() {
		res.point, res.step, res.violations, res.took = r.point, r.step, r.violations, time.Since(start)
	}()
	err := r.script()
	if err != nil && !errors.Is(err, errAgentDied) {
		t.Fatal(err)
	}
	if !r.died && r.exited(0) {
		r.died = true
	}
	if r.died {
		r.point = r.killPoint()
		if r.point == "" {
			r.violate("the agent died without saying it hit the failpoint")
		}
		t.Logf("killed at %s during %q; restarting without the failpoint", r.point, r.step)
	} else {
		// The script hit fewer points than k: restart anyway, gracefully.
		r.p.stop(syscall.SIGTERM)
	}
	r.p.env = nil
	r.p.start()
	r.check()
	r.finish()
}

func (r *faultRun) violate(format string, args ...any) {
	r.t.Helper()
	msg := fmt.Sprintf(format, args...)
	r.violations = append(r.violations, msg)
	r.t.Errorf("violation: %s", msg)
}

// exited reports whether the agent process has ended, waiting up to d.
func (r *faultRun) exited(d time.Duration) bool {
	if r.p.cmd == nil {
		return true
	}
	var timeout <-chan time.Time
	if d > 0 {
		timeout = time.After(d)
	} else {
		c := make(chan time.Time)
		close(c)
		timeout = c
	}
	select {
	case <-r.p.done:
		r.p.cmd = nil
		return true
	case <-timeout:
		select {
		case <-r.p.done:
			r.p.cmd = nil
			return true
		default:
			return false
		}
	}
}

// failed turns an error of a call to the agent into errAgentDied when the
// agent killed itself (it exits at once), and fails the test otherwise.
func (r *faultRun) failed(what string, err error) error {
	r.t.Helper()
	if !r.died && r.exited(5*time.Second) {
		r.died = true
	}
	if r.died {
		return errAgentDied
	}
	r.t.Fatalf("%s: %v (the agent is alive)", what, err)
	return nil
}

// killPoint is the failpoint the agent's stderr says it died at.
func (r *faultRun) killPoint() string {
	b, _ := os.ReadFile(r.p.logPath)
	if m := failpointHit.FindSubmatch(b); m != nil {
		return string(m[1])
	}
	return ""
}

// loggedHits lists the failpoint hits the agent logged at debug level.
func (r *faultRun) loggedHits() []string {
	b, _ := os.ReadFile(r.p.logPath)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		var l struct {
			Message string `json:"message"`
			Point   string `json:"point"`
		}
		if json.Unmarshal([]byte(line), &l) == nil && l.Message == "failpoint" {
			out = append(out, l.Point)
		}
	}
	return out
}

// cli runs a client command; a failure is the agent's death or fatal.
func (r *faultRun) cli(args ...string) error {
	r.t.Helper()
	out, errOut, code := r.p.cli(args...)
	if code != 0 {
		return r.failed(fmt.Sprintf("mesolite %s: exit %d: %s%s", strings.Join(args, " "), code, out, errOut), nil)
	}
	return nil
}

// get reads an agent endpoint as JSON; status is the HTTP status.
func (r *faultRun) get(path string, v any) (int, error) {
	resp, err := r.http.Get(r.p.url() + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode == http.StatusOK && v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return resp.StatusCode, fmt.Errorf("GET %s: %w: %s", path, err, b)
		}
	}
	return resp.StatusCode, nil
}

func (r *faultRun) tasks() ([]e2eTask, error) {
	var ts struct {
		Tasks []e2eTask `json:"tasks"`
	}
	_, err := r.get("/v2/tasks?embed=mesolite", &ts)
	return ts.Tasks, err
}

// waitTask polls the app's tasks until cond holds for its only task and no
// deployment is in progress.
func (r *faultRun) waitTask(what string, cond func(t e2eTask) bool) error {
	r.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	var last []e2eTask
	for {
		ts, err := r.tasks()
		if err != nil {
			return r.failed("GET /v2/tasks", err)
		}
		var ds []any
		if _, err := r.get("/v2/deployments", &ds); err != nil {
			return r.failed("GET /v2/deployments", err)
		}
		if len(ts) == 1 && len(ds) == 0 && cond(ts[0]) {
			r.cur = ts[0]
			r.seen[ts[0].InstanceID] = true
			return nil
		}
		last = ts
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; tasks %+v", what, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func healthyRunning(t e2eTask) bool {
	return t.State == "TASK_RUNNING" && len(t.HealthCheckResults) == 1 && t.HealthCheckResults[0].Alive
}

// kv reads or writes a key through the task's host port, with retries
// while the port is not yet answering.
func (r *faultRun) kv(method string, task e2eTask, key, value string) (int, string) {
	r.t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/kv/%s", task.Ports[0], key)
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest(method, url, strings.NewReader(value))
		resp, err := r.http.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		if time.Now().After(deadline) {
			return 0, err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// script runs the lifecycle until it ends or the agent dies.
func (r *faultRun) script() error {
	steps := []struct {
		name string
		run  func() error
	}{
		{"add", r.add},
		{"put1", func() error { return r.put("k1") }},
		{"stop", r.stop},
		{"start", r.start},
		{"kill", r.kill},
		{"wipe", r.wipe},
		{"put2", func() error { return r.put("k2") }},
		{"remove", r.remove},
	}
	for _, s := range steps {
		r.step = s.name
		if err := s.run(); err != nil {
			return err
		}
		if r.exited(0) {
			r.died = true
			return errAgentDied
		}
		r.oneContainerPerInstance()
	}
	r.step = "done"
	return nil
}

func (r *faultRun) add() error {
	if err := r.cli("marathon", "app", "add", r.appFile); err != nil {
		return err
	}
	r.added = true
	return r.waitTask("a healthy task", healthyRunning)
}

func (r *faultRun) put(key string) error {
	value := fmt.Sprintf("%s-%d", key, time.Now().UnixNano())
	task := r.cur
	if code, body := r.kv(http.MethodPut, task, key, value); code != http.StatusNoContent {
		r.t.Fatalf("PUT %s through port %d of %s: %d %s", key, task.Ports[0], task.ID, code, body)
	}
	if r.acked[task.InstanceID] == nil {
		r.acked[task.InstanceID] = map[string]string{}
	}
	r.acked[task.InstanceID][key] = value
	return nil
}

func (r *faultRun) stop() error {
	prev := r.cur
	if err := r.cli("app", "stop", "testapp", "--force"); err != nil {
		return err
	}
	return r.waitTask("the stopped task", func(t e2eTask) bool { return t.State == "TASK_KILLED" && t.ID == prev.ID })
}

// start, kill: the same instance comes back, next incarnation, its data
// kept.
func (r *faultRun) start() error {
	prev := r.cur
	if err := r.cli("app", "start", "testapp", "--force"); err != nil {
		return err
	}
	return r.sameInstance(prev)
}

func (r *faultRun) kill() error {
	prev := r.cur
	if err := r.cli("task", "kill", prev.ID); err != nil {
		return err
	}
	return r.sameInstance(prev)
}

func (r *faultRun) sameInstance(prev e2eTask) error {
	if err := r.waitTask("the next incarnation", func(t e2eTask) bool { return healthyRunning(t) && t.ID != prev.ID }); err != nil {
		return err
	}
	// A launch that fails (a slow Docker) is retried as the incarnation
	// after: later, but still the same instance.
	if r.cur.InstanceID != prev.InstanceID || r.cur.Incarnation <= prev.Incarnation {
		r.violate("%s came back as %s, want a later incarnation of the same instance", prev.ID, r.cur.ID)
	}
	r.expectKeys(r.cur)
	return nil
}

func (r *faultRun) wipe() error {
	prev := r.cur
	r.gone[prev.InstanceID] = true
	if err := r.cli("task", "kill", "--wipe", prev.ID); err != nil {
		return err
	}
	if err := r.waitTask("a new instance", func(t e2eTask) bool { return healthyRunning(t) && t.InstanceID != prev.InstanceID }); err != nil {
		return err
	}
	if code, _ := r.kv(http.MethodGet, r.cur, "k1", ""); code != http.StatusNotFound {
		r.violate("the new instance %s after a wipe reads k1: %d, want an empty volume", r.cur.InstanceID, code)
	}
	return nil
}

func (r *faultRun) remove() error {
	r.removeAsked = true
	for inst := range r.seen {
		r.gone[inst] = true
	}
	if err := r.cli("app", "remove", "testapp", "--force"); err != nil {
		return err
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		ts, err := r.tasks()
		if err != nil {
			return r.failed("GET /v2/tasks", err)
		}
		code, err := r.get("/v2/apps/testapp", nil)
		if err != nil {
			return r.failed("GET /v2/apps/testapp", err)
		}
		if code == http.StatusNotFound && len(ts) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("app not removed after %v: %d, tasks %+v", settleTimeout, code, ts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// oneContainerPerInstance: never two running containers for one instance
// (two tasks on one volume), checked after every step of the script.
func (r *faultRun) oneContainerPerInstance() {
	r.t.Helper()
	running := map[string][]string{}
	for _, c := range agentContainers(r.t, r.p.agentID) {
		if c.Running {
			running[c.Labels[sandbox.LabelInstanceID]] = append(running[c.Labels[sandbox.LabelInstanceID]], c.TaskID())
		}
	}
	for inst, ids := range running {
		if len(ids) > 1 {
			r.violate("after %s: instance %s runs %d containers at once: %v", r.step, inst, len(ids), ids)
		}
	}
}

// expectKeys reads back, through the task's port, every key acknowledged
// for its instance.
func (r *faultRun) expectKeys(task e2eTask) {
	for k, v := range r.acked[task.InstanceID] {
		if code, body := r.kv(http.MethodGet, task, k, ""); code != http.StatusOK || body != v {
			r.violate("task %s reads %s = %d %q, want %q (acknowledged before)", task.ID, k, code, body, v)
		}
	}
}

// faultWorld is what the agent's work directory and Docker hold.
type faultWorld struct {
	instances   []faultInstance
	apps        []string
	versions    []string
	deployments []string
	volumes     map[string]bool // persistence ids of the directories on disk
	sandboxes   []string
	containers  []sandbox.Container
	unreadable  []string
	tasks       []e2eTask
}

type faultInstance struct {
	ID          string `json:"id"`
	AppID       string `json:"appId"`
	Goal        string `json:"goal"`
	Reservation *struct {
		Volumes []struct {
			PersistenceID string `json:"persistenceId"`
		} `json:"volumes"`
		VolumesCreated bool `json:"volumesCreated"`
	} `json:"reservation"`
	Task *struct {
		ID    string `json:"id"`
		State string `json:"state"`
	} `json:"task"`
}

// observe reads the world, in an order that keeps the checks free of
// races with an agent at work: app records first (once an app record is
// gone, everything of the app is gone before it), then the volume
// directories, then the instance records (a directory is made after its
// reservation is recorded and deleted before it is released).
func (r *faultRun) observe() (faultWorld, error) {
	w := faultWorld{volumes: map[string]bool{}}
	records := func(kind string, fn func(key string, data json.RawMessage)) {
		files, _ := filepath.Glob(filepath.Join(r.p.workDir, "meta", kind, "*.json"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			var env struct {
				Data json.RawMessage `json:"data"`
			}
			if json.Unmarshal(b, &env) == nil {
				fn(strings.TrimSuffix(filepath.Base(f), ".json"), env.Data)
			}
		}
	}
	records("apps", func(key string, _ json.RawMessage) { w.apps = append(w.apps, key) })
	records("versions", func(key string, _ json.RawMessage) { w.versions = append(w.versions, key) })
	records("deployments", func(key string, _ json.RawMessage) { w.deployments = append(w.deployments, key) })
	dirs, _ := filepath.Glob(filepath.Join(r.p.workDir, "volumes", "roles", "*", "*"))
	for _, d := range dirs {
		w.volumes[filepath.Base(d)] = true
	}
	records("instances", func(_ string, data json.RawMessage) {
		var i faultInstance
		if json.Unmarshal(data, &i) == nil {
			w.instances = append(w.instances, i)
		}
	})
	w.sandboxes, _ = filepath.Glob(filepath.Join(r.p.workDir, "slaves", "*", "frameworks", "*", "executors", "*"))
	w.containers = agentContainers(r.t, r.p.agentID)
	var status struct {
		Unreadable []string `json:"unreadableRecords"`
	}
	if _, err := r.get("/mesolite/v1/status", &status); err != nil {
		return w, err
	}
	w.unreadable = status.Unreadable
	var err error
	w.tasks, err = r.tasks()
	return w, err
}

// problems lists the invariants the world breaks. urgent ones must hold
// at every moment; the others once the agent has settled.
func (r *faultRun) problems(w faultWorld) (urgent, pending []string) {
	running := map[string][]string{} // instance -> running containers' task ids
	for _, c := range w.containers {
		if c.Running {
			inst := c.Labels[sandbox.LabelInstanceID]
			running[inst] = append(running[inst], c.TaskID())
		}
	}
	for inst, ids := range running {
		if len(ids) > 1 {
			urgent = append(urgent, fmt.Sprintf("instance %s runs %d containers at once: %v", inst, len(ids), ids))
		}
	}
	if len(w.unreadable) > 0 {
		urgent = append(urgent, fmt.Sprintf("unreadable records: %v", w.unreadable))
	}
	records := map[string]faultInstance{}
	owned := map[string]bool{}
	current := map[string]bool{}
	for _, i := range w.instances {
		records[i.ID] = i
		if i.Reservation != nil {
			for _, v := range i.Reservation.Volumes {
				owned[v.PersistenceID] = true
			}
		}
		cs := running[i.ID]
		switch i.Goal {
		case "running":
			if i.Task == nil || i.Task.State != "TASK_RUNNING" || len(cs) != 1 || cs[0] != i.Task.ID {
				pending = append(pending, fmt.Sprintf("instance %s (goal running, task %+v) has running containers %v", i.ID, i.Task, cs))
			}
			if i.Task != nil {
				current[i.Task.ID] = true
			}
		case "stopped":
			if len(cs) != 0 {
				pending = append(pending, fmt.Sprintf("stopped instance %s has running containers %v", i.ID, cs))
			}
		default:
			pending = append(pending, fmt.Sprintf("instance %s is still %s", i.ID, i.Goal))
		}
		if i.Goal != "decommissioned" && i.Reservation != nil && i.Reservation.VolumesCreated {
			for _, v := range i.Reservation.Volumes {
				if !w.volumes[v.PersistenceID] {
					urgent = append(urgent, fmt.Sprintf("instance %s lost its volume %s", i.ID, v.PersistenceID))
				}
			}
		}
	}
	for _, c := range w.containers {
		if !c.Running || !current[c.TaskID()] {
			pending = append(pending, fmt.Sprintf("container %s of task %s (%s) belongs to no running task", c.Name, c.TaskID(), c.State))
		}
	}
	for _, sb := range w.sandboxes {
		if inst, _, _ := strings.Cut(filepath.Base(sb), "._app."); records[inst].ID == "" {
			pending = append(pending, "sandbox "+filepath.Base(sb)+" of a forgotten instance is left")
		}
	}
	for v := range w.volumes {
		if !owned[v] {
			pending = append(pending, "volume directory "+v+" belongs to no reservation")
		}
	}
	// The data: every key acknowledged for an instance that was neither
	// wiped nor removed is in its volume directory and reads back through
	// its task.
	for inst, keys := range r.acked {
		rec, ok := records[inst]
		if !ok {
			if !r.gone[inst] {
				urgent = append(urgent, fmt.Sprintf("instance %s with acknowledged data disappeared without a wipe or remove", inst))
			}
			continue
		}
		if rec.Goal == "decommissioned" || rec.Reservation == nil || len(rec.Reservation.Volumes) == 0 {
			continue
		}
		dir := filepath.Join(r.p.workDir, "volumes", "roles", "marathon", rec.Reservation.Volumes[0].PersistenceID)
		for k, v := range keys {
			if b, err := os.ReadFile(filepath.Join(dir, k)); err != nil || string(b) != v {
				urgent = append(urgent, fmt.Sprintf("instance %s lost key %s: %q %v, want %q", inst, k, b, err, v))
			}
		}
		if rec.Goal == "running" {
			for _, t := range w.tasks {
				if t.InstanceID == inst && healthyRunning(t) && len(t.Ports) > 0 {
					for k, v := range keys {
						if code, body := r.kv(http.MethodGet, t, k, ""); code != http.StatusOK || body != v {
							pending = append(pending, fmt.Sprintf("task %s reads %s = %d %q, want %q", t.ID, k, code, body, v))
						}
					}
				}
			}
		}
	}
	// The fetcher's cache: an entry is the whole file or is not there; a
	// temporary download is swept when the agent starts.
	if served := r.workload.served; served != nil {
		cacheDir := filepath.Join(r.p.workDir, "fetch-cache")
		entries, _ := os.ReadDir(cacheDir)
		for _, e := range entries {
			name := e.Name()
			switch {
			case strings.HasPrefix(name, ".fetch-tmp-"):
				pending = append(pending, "a temporary download is left in the fetcher cache: "+name)
			case len(name) == 64:
				if b, err := os.ReadFile(filepath.Join(cacheDir, name)); err != nil || !bytes.Equal(b, served) {
					urgent = append(urgent, fmt.Sprintf("fetcher cache entry %s holds %d bytes (%v), not the %d served", name, len(b), err, len(served)))
				}
			}
		}
	}
	// The app: present while it was not removed; once its record is gone,
	// nothing of it is left.
	switch {
	case len(w.apps) == 0 && r.added && !r.removeAsked:
		urgent = append(urgent, "the app disappeared without a remove")
	case len(w.apps) == 0:
		// Its records, volumes and sandboxes went before its app record;
		// its containers may take the orphan grace period.
		if n := len(w.instances) + len(w.versions) + len(w.deployments) + len(w.volumes) + len(w.sandboxes); n > 0 {
			urgent = append(urgent, fmt.Sprintf("the app record is gone but %d instance records, versions %v, deployments %v, volumes %v, sandboxes %v are left",
				len(w.instances), w.versions, w.deployments, w.volumes, w.sandboxes))
		}
		if len(w.containers) > 0 {
			pending = append(pending, fmt.Sprintf("the app is gone but %d containers are left", len(w.containers)))
		}
	}
	return urgent, pending
}

// check waits for the restarted agent to settle and reports what breaks
// the invariants: at once for those that must always hold, after a
// deadline for the others.
func (r *faultRun) check() {
	r.t.Helper()
	deadline := time.Now().Add(settleTimeout)
	for {
		w, err := r.observe()
		if err != nil {
			r.t.Fatalf("observe the restarted agent: %v", err)
		}
		urgent, pending := r.problems(w)
		for _, p := range urgent {
			r.violate("%s", p)
		}
		if len(urgent) > 0 {
			return
		}
		if len(pending) == 0 {
			return
		}
		if time.Now().After(deadline) {
			for _, p := range pending {
				r.violate("after %v: %s", settleTimeout, p)
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// finish ends the script whatever step it stopped at: the app is removed
// (again, if it was), and then nothing may be left: no app, task, record,
// container, volume or sandbox.
func (r *faultRun) finish() {
	r.t.Helper()
	out, errOut, code := r.p.cli("app", "remove", "testapp", "--force")
	if code != 0 && !strings.Contains(errOut, "does not exist") {
		r.t.Fatalf("app remove: exit %d: %s%s", code, out, errOut)
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		w, err := r.observe()
		if err != nil {
			r.t.Fatalf("observe after remove: %v", err)
		}
		left := []string{}
		if len(w.apps)+len(w.instances)+len(w.versions)+len(w.deployments) > 0 {
			left = append(left, fmt.Sprintf("records apps %v instances %d versions %v deployments %v", w.apps, len(w.instances), w.versions, w.deployments))
		}
		if len(w.tasks) > 0 {
			left = append(left, fmt.Sprintf("tasks %d", len(w.tasks)))
		}
		if len(w.containers) > 0 {
			left = append(left, fmt.Sprintf("containers %d", len(w.containers)))
		}
		if len(w.volumes) > 0 {
			left = append(left, fmt.Sprintf("volumes %v", w.volumes))
		}
		if len(w.sandboxes) > 0 {
			left = append(left, fmt.Sprintf("sandboxes %v", w.sandboxes))
		}
		if len(w.unreadable) > 0 {
			left = append(left, fmt.Sprintf("unreadable records %v", w.unreadable))
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			r.violate("after the app was removed, left: %s", strings.Join(left, "; "))
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
