package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/sandbox"
)

// The crash-window tests kill the agent at one failpoint, as a process
// death would, and check what recovery makes of what was left.
//
// A crash is imitated in-process: at the chosen hit of a failpoint the fake
// Docker is frozen (every call fails, containers stay as they are) and the
// goroutine that reached the point ends with runtime.Goexit, so the step it
// was taking goes no further. Every later failpoint of that agent ends its
// goroutine too. Then the agent is cancelled, its store closed, and a new
// agent starts on the same work directory and the same fake Docker.

// crashAt chooses the crash: the first hit of point at which when (if
// set) holds for the records on disk. Failpoints are reached right after
// their side effect, so "store.put.instance when a task is KILLING" is the
// moment the KILLING record was written.
type crashAt struct {
	point string
	when  func(d disk) bool
}

// crasher is an agent.Config.Failpoint that crashes once, when armed.
type crasher struct {
	h *harness

	mu    sync.Mutex
	armed *crashAt
	point string
	after []string // failpoints other goroutines reached after the crash

	dead     atomic.Bool
	crashed  chan struct{}
	loopDied chan struct{}
	loopOnce sync.Once
}

func newCrasher() *crasher {
	return &crasher{crashed: make(chan struct{}), loopDied: make(chan struct{})}
}

func (c *crasher) arm(at crashAt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = &at
}

func (c *crasher) failpoint(point string) {
	if c.dead.Load() {
		c.mu.Lock()
		c.after = append(c.after, point)
		c.mu.Unlock()
		c.die()
	}
	c.mu.Lock()
	at := c.armed
	if at == nil || at.point != point || (at.when != nil && !at.when(readDisk(c.h.dir))) {
		c.mu.Unlock()
		return
	}
	c.armed = nil
	c.point = point
	c.h.rt.SetDown(true) // Docker keeps what it has; the dead agent changes nothing more
	c.dead.Store(true)
	c.mu.Unlock()
	close(c.crashed)
	c.die()
}

// die ends the calling goroutine. When it is the agent's loop, Run never
// returns; loopDied tells the test so.
func (c *crasher) die() {
	buf := make([]byte, 64<<10)
	if bytes.Contains(buf[:runtime.Stack(buf, false)], []byte("agent.(*Agent).loop(")) {
		c.loopOnce.Do(func() { close(c.loopDied) })
	}
	runtime.Goexit()
}

// crashHarness starts an agent whose failpoints go to a crasher.
func crashHarness(t *testing.T) (*harness, *crasher) {
	t.Helper()
	c := newCrasher()
	cfg := testConfig()
	cfg.Failpoint = c.failpoint
	h := newHarness(t, cfg)
	c.h = h
	h.rt.SetFailpoint(c.failpoint) // the window inside Docker's Run
	return h, c
}

// crashState is what the test saw at the crash.
type crashState struct {
	point      string
	after      []string // failpoints other goroutines reached after it
	disk       disk
	containers []sandbox.Container
	runs       int // calls of the fake Docker's Run so far
}

// waitCrash waits for the crash, then stops the dead agent as a process
// death leaves it: nothing more is written. act's error, if the crash never
// came, is part of the failure message.
func (c *crasher) waitCrash(t *testing.T, actErr <-chan error) crashState {
	t.Helper()
	h := c.h
	select {
	case <-c.crashed:
	case <-time.After(10 * time.Second):
		var err error
		select {
		case err = <-actErr:
		default:
		}
		t.Fatalf("the failpoint never crashed the agent (act: %v); state:\n%s", err, dump(h.a.Snapshot()))
	}
	h.ta.Cancel()
	select {
	case <-h.ta.Done():
	case <-c.loopDied:
	}
	h.ta = nil
	if err := h.st.Close(); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	after := append([]string(nil), c.after...)
	c.mu.Unlock()
	if len(after) > 0 {
		// Another goroutine went on until right after its next side effect:
		// the process died there, with the earlier step done. That is a
		// moment a real crash can hit too, so the case still holds.
		t.Logf("crashed at %s; other goroutines then reached %v", c.point, after)
	}
	return crashState{point: c.point, after: after, disk: readDisk(h.dir), containers: h.rt.Containers(), runs: h.rt.Runs()}
}

// recover starts a new agent, without failpoints, on the dead one's work
// directory and Docker.
func (h *harness) recover() {
	h.t.Helper()
	h.cfg.Failpoint = nil
	h.rt.SetFailpoint(nil)
	h.rt.SetDown(false)
	h.start()
}

// disk is the records an agent left in its work directory.
type disk struct {
	instances   []diskInstance
	apps        []diskApp
	versions    []string
	deployments []string
	volumes     []string // persistence ids of the volume directories
}

type diskInstance struct {
	ID          string `json:"id"`
	AppID       string `json:"appId"`
	Goal        string `json:"goal"`
	Incarnation int    `json:"incarnation"`
	Reservation *struct {
		HostPorts []int `json:"hostPorts"`
		Volumes   []struct {
			PersistenceID string `json:"persistenceId"`
		} `json:"volumes"`
		VolumesCreated bool `json:"volumesCreated"`
	} `json:"reservation"`
	Task *struct {
		ID       string `json:"id"`
		State    string `json:"state"`
		DockerID string `json:"dockerId"`
	} `json:"task"`
	VolumesDestroyed bool `json:"volumesDestroyed"`
}

type diskApp struct {
	ID       string `json:"id"`
	Deleting bool   `json:"deleting"`
}

func readDisk(dir string) disk {
	var d disk
	records := func(kind string, fn func(key string, data json.RawMessage)) {
		files, _ := filepath.Glob(filepath.Join(dir, "meta", kind, "*.json"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				continue // deleted meanwhile
			}
			var env struct {
				Data json.RawMessage `json:"data"`
			}
			if json.Unmarshal(b, &env) == nil {
				fn(strings.TrimSuffix(filepath.Base(f), ".json"), env.Data)
			}
		}
	}
	records("instances", func(_ string, data json.RawMessage) {
		var r diskInstance
		if json.Unmarshal(data, &r) == nil {
			d.instances = append(d.instances, r)
		}
	})
	records("apps", func(_ string, data json.RawMessage) {
		var r diskApp
		if json.Unmarshal(data, &r) == nil {
			d.apps = append(d.apps, r)
		}
	})
	records("versions", func(key string, _ json.RawMessage) { d.versions = append(d.versions, key) })
	records("deployments", func(key string, _ json.RawMessage) { d.deployments = append(d.deployments, key) })
	vols, _ := filepath.Glob(filepath.Join(dir, "volumes", "roles", "*", "*"))
	for _, v := range vols {
		d.volumes = append(d.volumes, filepath.Base(v))
	}
	return d
}

// anyInstance reports whether some instance record satisfies fn.
func (d disk) anyInstance(fn func(r diskInstance) bool) bool {
	for _, r := range d.instances {
		if fn(r) {
			return true
		}
	}
	return false
}

func (d disk) instance(id string) *diskInstance {
	for i := range d.instances {
		if d.instances[i].ID == id {
			return &d.instances[i]
		}
	}
	return nil
}

func (d disk) String() string {
	var b strings.Builder
	for _, r := range d.instances {
		fmt.Fprintf(&b, "instance %s goal=%s incarnation=%d", r.ID, r.Goal, r.Incarnation)
		if r.Task != nil {
			fmt.Fprintf(&b, " task=%s %s docker=%.12s", r.Task.ID, r.Task.State, r.Task.DockerID)
		}
		if r.Reservation != nil {
			fmt.Fprintf(&b, " ports=%v volumesCreated=%v", r.Reservation.HostPorts, r.Reservation.VolumesCreated)
		}
		fmt.Fprintf(&b, " volumesDestroyed=%v\n", r.VolumesDestroyed)
	}
	fmt.Fprintf(&b, "apps %+v versions %v deployments %v volumes %v\n", d.apps, d.versions, d.deployments, d.volumes)
	return b.String()
}

// Predicates on the records, for crashAt.when.
func taskIn(state string) func(d disk) bool {
	return func(d disk) bool {
		return d.anyInstance(func(r diskInstance) bool { return r.Task != nil && r.Task.State == state })
	}
}

func goalIs(goal string) func(d disk) bool {
	return func(d disk) bool {
		return d.anyInstance(func(r diskInstance) bool { return r.Goal == goal })
	}
}

// stagedAt: a task of incarnation n is recorded STAGING without a container.
func stagedAt(n int) func(d disk) bool {
	return func(d disk) bool {
		return d.anyInstance(func(r diskInstance) bool {
			return r.Incarnation == n && r.Task != nil && r.Task.State == agent.TaskStaging && r.Task.DockerID == ""
		})
	}
}

func and(fs ...func(d disk) bool) func(d disk) bool {
	return func(d disk) bool {
		for _, f := range fs {
			if !f(d) {
				return false
			}
		}
		return true
	}
}

// prepared is the state a case starts from.
type prepared struct {
	task   *agent.TaskView // the running (or stopped) task, if any
	ports  []int           // its reserved host ports
	volume string          // its volume directory, holding the file "marker"
}

const marker = "written before the crash"

func prepareRunning(t *testing.T, h *harness) prepared {
	t.Helper()
	h.create(appJSON(t, residentApp("/db"), nil))
	task := h.running("/db", 1)[0]
	vols := h.volumeDirs()
	if len(vols) != 1 {
		t.Fatalf("volumes %v, want one", vols)
	}
	if err := os.WriteFile(filepath.Join(vols[0], "marker"), []byte(marker), 0o644); err != nil {
		t.Fatal(err)
	}
	return prepared{task: task, ports: task.Ports, volume: vols[0]}
}

func prepareStopped(t *testing.T, h *harness) prepared {
	t.Helper()
	p := prepareRunning(t, h)
	h.scale("/db", 0)
	s := h.waitFor("the task stopped", func(s *agent.Snapshot) bool {
		a := s.App("/db")
		return a != nil && len(a.Tasks) == 1 && a.Tasks[0].State == agent.TaskKilled && len(a.Deployments) == 0
	})
	p.task = s.App("/db").Tasks[0]
	return p
}

// Acts: what the test asks the agent to do when it crashes. They may hang
// until the dead agent is cancelled, so they run on their own goroutine.
func actAdd(h *harness, _ prepared) error {
	_, _, err := h.a.CreateApp(context.Background(), appJSON(h.t, residentApp("/db"), nil))
	return err
}

func actKill(h *harness, p prepared) error {
	_, _, err := h.a.KillTasks(context.Background(), []string{p.task.ID}, false, false, false)
	return err
}

func actWipe(h *harness, p prepared) error {
	_, _, err := h.a.KillTasks(context.Background(), []string{p.task.ID}, false, true, false)
	return err
}

func actScale(n int) func(h *harness, p prepared) error {
	return func(h *harness, _ prepared) error {
		_, _, err := h.a.UpdateApp(context.Background(), "/db", []byte(fmt.Sprintf(`{"instances":%d}`, n)), agent.UpdateOptions{Partial: true, Force: true})
		return err
	}
}

func actRemove(h *harness, _ prepared) error {
	_, err := h.a.DeleteApp(context.Background(), "/db", true)
	return err
}

func actExit(h *harness, p prepared) error { return h.rt.Crash(p.task.ID, 1) }

func actChangeEnv(h *harness, _ prepared) error {
	_, _, err := h.a.UpdateApp(context.Background(), "/db", []byte(`{"env":{"MODE":"new"}}`), agent.UpdateOptions{Partial: true, Force: true})
	return err
}

// Expectations after recovery.

// expectLaunched: the first launch completes as task ._app.1 with exactly
// one container. A task staged before the crash keeps its id; with adopt,
// the container that was running at the crash is adopted, not recreated.
func expectLaunched(adopt bool) func(t *testing.T, h *harness, _ prepared, cs crashState) {
	return func(t *testing.T, h *harness, _ prepared, cs crashState) {
		t.Helper()
		task := h.running("/db", 1)[0]
		if !strings.HasSuffix(task.ID, "._app.1") {
			t.Fatalf("task %s after recovery, want incarnation 1", task.ID)
		}
		for _, r := range cs.disk.instances {
			if r.Task != nil && r.Task.ID != task.ID {
				t.Fatalf("task %s was staged before the crash, %s runs after it", r.Task.ID, task.ID)
			}
			if r.Reservation != nil && (len(task.Ports) != 1 || task.Ports[0] != r.Reservation.HostPorts[0]) {
				t.Fatalf("reserved port %v before the crash, task has %v after", r.Reservation.HostPorts, task.Ports)
			}
		}
		cs.expectOneContainer(t, h, task.ID)
		if adopt {
			if len(cs.containers) != 1 || h.rt.Containers()[0].ID != cs.containers[0].ID {
				t.Fatalf("container at the crash %+v was not adopted: now %+v", cs.containers, h.rt.Containers())
			}
			if n := h.rt.Runs() - cs.runs; n != 0 {
				t.Fatalf("Docker Run called %d times after recovery, want 0 (adopt)", n)
			}
			if r := h.a.Snapshot().Recovery; r.Adopted != 1 || r.Relaunched != 0 {
				t.Fatalf("recovery report %+v, want 1 adopted", r)
			}
		} else if len(cs.containers) != 0 {
			t.Fatalf("containers at the crash: %+v, want none", cs.containers)
		}
		if f := h.a.Snapshot().App("/db").LastTaskFailure; f != nil {
			t.Fatalf("a crash of the agent recorded a task failure: %+v", f)
		}
	}
}

// expectCreatedStarted: the container the crash left created, not started,
// is started by recovery (Run adopts it by name): the same container runs
// the same task, and no task failure is recorded.
func expectCreatedStarted(t *testing.T, h *harness, p prepared, cs crashState) {
	t.Helper()
	task := h.running("/db", 1)[0]
	if !strings.HasSuffix(task.ID, "._app.1") {
		t.Fatalf("task %s after recovery, want incarnation 1", task.ID)
	}
	cs.expectOneContainer(t, h, task.ID)
	now := h.rt.Containers()
	if now[0].ID != cs.containers[0].ID {
		t.Fatalf("container %s was created at the crash, %s runs after recovery", cs.containers[0].ID, now[0].ID)
	}
	if f := h.a.Snapshot().App("/db").LastTaskFailure; f != nil {
		t.Fatalf("a crash of the agent recorded a task failure: %+v", f)
	}
}

// expectOneContainer: Docker holds exactly one container, running task id.
func (cs crashState) expectOneContainer(t *testing.T, h *harness, taskID string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs := h.rt.Containers()
		if len(cs) == 1 && cs[0].Running && cs[0].TaskID() == taskID {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("containers %s, want one running for %s", containerList(cs), taskID)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func containerList(cs []sandbox.Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s(%s %s)", c.Name, c.TaskID(), c.State))
	}
	return "[" + strings.Join(out, " ") + "]"
}

// expectRelaunched: the same instance runs its next incarnation on the
// same reservation and volume, in one container. killed: the old task
// ended by a kill, which is no failure.
func expectRelaunched(killed bool, env string) func(t *testing.T, h *harness, p prepared, cs crashState) {
	return func(t *testing.T, h *harness, p prepared, cs crashState) {
		t.Helper()
		s := h.waitFor("the relaunch in place", func(s *agent.Snapshot) bool {
			a := s.App("/db")
			return a != nil && len(a.Tasks) == 1 && a.Tasks[0].ID != p.task.ID && a.Tasks[0].State == agent.TaskRunning && len(a.Deployments) == 0
		})
		a := s.App("/db")
		got := a.Tasks[0]
		want := strings.TrimSuffix(p.task.ID, fmt.Sprintf("._app.%d", p.task.Incarnation)) + fmt.Sprintf("._app.%d", p.task.Incarnation+1)
		if got.InstanceID != p.task.InstanceID || got.ID != want {
			t.Fatalf("relaunched as %s, want %s (same instance, next incarnation)", got.ID, want)
		}
		if len(got.Ports) != 1 || got.Ports[0] != p.ports[0] {
			t.Fatalf("relaunched on port %v, the reservation has %v", got.Ports, p.ports)
		}
		cs.expectOneContainer(t, h, got.ID)
		expectMarker(t, h, p)
		if killed && a.LastTaskFailure != nil {
			t.Fatalf("a kill was recorded as a failure: %+v", a.LastTaskFailure)
		}
		if !killed && (a.LastTaskFailure == nil || a.LastTaskFailure.TaskID != p.task.ID) {
			t.Fatalf("lastTaskFailure %+v, want the failure of %s", a.LastTaskFailure, p.task.ID)
		}
		if env != "" {
			if spec := h.rt.Spec(got.ID); spec == nil || !contains(spec.Env, env) {
				t.Fatalf("task %s does not run with %s", got.ID, env)
			}
		}
	}
}

// expectMarker: the only volume is the prepared one, with its data.
func expectMarker(t *testing.T, h *harness, p prepared) {
	t.Helper()
	if v := h.volumeDirs(); len(v) != 1 || v[0] != p.volume {
		t.Fatalf("volumes %v, want only %s", v, p.volume)
	}
	if b, err := os.ReadFile(filepath.Join(p.volume, "marker")); err != nil || string(b) != marker {
		t.Fatalf("volume data after recovery: %q, %v", b, err)
	}
}

// expectAdopted: the change never took; the running task is adopted as
// it was.
func expectAdopted(t *testing.T, h *harness, p prepared, cs crashState) {
	t.Helper()
	got := h.running("/db", 1)[0]
	if got.ID != p.task.ID || !got.StartedAt.Equal(p.task.StartedAt) {
		t.Fatalf("task %s started %s after recovery, was %s started %s", got.ID, got.StartedAt, p.task.ID, p.task.StartedAt)
	}
	cs.expectOneContainer(t, h, got.ID)
	if n := h.rt.Runs() - cs.runs; n != 0 {
		t.Fatalf("Docker Run called %d times after recovery, want 0", n)
	}
	expectMarker(t, h, p)
}

// expectStopped: the task is listed TASK_KILLED with its id, no container
// runs, the reservation and volume are kept.
func expectStopped(t *testing.T, h *harness, p prepared, _ crashState) {
	t.Helper()
	h.waitFor("the stopped task", func(s *agent.Snapshot) bool {
		a := s.App("/db")
		return a != nil && len(a.Tasks) == 1 && a.Tasks[0].ID == p.task.ID && a.Tasks[0].State == agent.TaskKilled && len(a.Deployments) == 0
	})
	waitNoContainers(t, h)
	expectMarker(t, h, p)
	if r := readDisk(h.dir).instance(p.task.InstanceID); r == nil || r.Goal != string(agent.GoalStopped) {
		t.Fatalf("instance record after stop: %+v", r)
	}
}

func waitNoContainers(t *testing.T, h *harness) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(h.rt.Containers()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("containers left: %s", containerList(h.rt.Containers()))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectWiped: the old instance is forgotten with its volume; a new
// instance runs incarnation 1 on a new, empty volume.
func expectWiped(t *testing.T, h *harness, p prepared, cs crashState) {
	t.Helper()
	s := h.waitFor("a new instance after the wipe", func(s *agent.Snapshot) bool {
		a := s.App("/db")
		return a != nil && len(a.Tasks) == 1 && a.Tasks[0].InstanceID != p.task.InstanceID && a.Tasks[0].State == agent.TaskRunning && len(a.Deployments) == 0
	})
	got := s.App("/db").Tasks[0]
	if !strings.HasSuffix(got.ID, "._app.1") {
		t.Fatalf("new instance's task %s, want incarnation 1", got.ID)
	}
	cs.expectOneContainer(t, h, got.ID)
	if _, err := os.Stat(p.volume); !os.IsNotExist(err) {
		t.Fatalf("the wiped volume %s is still there (%v)", p.volume, err)
	}
	vols := h.volumeDirs()
	if len(vols) != 1 || !strings.Contains(vols[0], got.Volumes[0].PersistenceID) {
		t.Fatalf("volumes %v, want only the new instance's %s", vols, got.Volumes[0].PersistenceID)
	}
	if _, err := os.Stat(filepath.Join(vols[0], "marker")); !os.IsNotExist(err) {
		t.Fatalf("the new volume is not empty (%v)", err)
	}
	if r := readDisk(h.dir).instance(p.task.InstanceID); r != nil {
		t.Fatalf("the wiped instance's record is still there: %+v", r)
	}
	expectNoSandboxes(t, h, p.task.InstanceID)
}

// expectRemoved: nothing of the app is left.
func expectRemoved(t *testing.T, h *harness, p prepared, _ crashState) {
	t.Helper()
	h.waitFor("the app to be gone", func(s *agent.Snapshot) bool { return s.App("/db") == nil && len(s.Tasks) == 0 })
	waitNoContainers(t, h)
	expectNothingOnDisk(t, h)
	if p.task != nil {
		expectNoSandboxes(t, h, p.task.InstanceID)
	}
}

func expectNothingOnDisk(t *testing.T, h *harness) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := readDisk(h.dir)
		if len(d.instances)+len(d.apps)+len(d.deployments)+len(d.volumes) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("left on disk:\n%s", d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// expectNoSandboxes: a forgotten instance leaves no sandbox behind.
func expectNoSandboxes(t *testing.T, h *harness, instanceID string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join(h.dir, "slaves", "*", "frameworks", "*", "executors", instanceID+"._app.*"))
	if len(left) > 0 {
		t.Errorf("sandboxes of the forgotten instance %s are left: %v", instanceID, left)
	}
}

// expectNoApp: an add that crashed before its app record was written
// never happened (the API never answered it).
func expectNoApp(t *testing.T, h *harness, _ prepared, _ crashState) {
	t.Helper()
	if s := h.a.Snapshot(); len(s.Apps) != 0 || len(s.Tasks) != 0 {
		t.Fatalf("an add that was never answered left: %s", dump(s))
	}
	if len(h.rt.Containers()) != 0 {
		t.Fatalf("containers: %s", containerList(h.rt.Containers()))
	}
	if d := readDisk(h.dir); len(d.instances)+len(d.apps)+len(d.volumes) != 0 {
		t.Fatalf("left on disk:\n%s", d)
	}
}

// checkInvariants: whatever happened, once recovery settles every
// instance that should run has exactly one running container carrying its
// current task id, no other container exists, every volume directory
// belongs to a reservation and every created one exists, and no record is
// unreadable.
func checkInvariants(t *testing.T, h *harness) {
	t.Helper()
	var problems []string
	deadline := time.Now().Add(5 * time.Second)
	for {
		problems = problems[:0]
		d := readDisk(h.dir)
		running := map[string][]sandbox.Container{}
		owned := map[string]bool{}
		for _, c := range h.rt.Containers() {
			if c.Running {
				running[c.Labels[sandbox.LabelInstanceID]] = append(running[c.Labels[sandbox.LabelInstanceID]], c)
			}
		}
		for _, r := range d.instances {
			cs := running[r.ID]
			switch agent.Goal(r.Goal) {
			case agent.GoalRunning:
				if len(cs) != 1 || r.Task == nil || cs[0].TaskID() != r.Task.ID {
					problems = append(problems, fmt.Sprintf("instance %s (goal running, task %+v) has running containers %s", r.ID, r.Task, containerList(cs)))
				}
				if r.Task != nil {
					owned[r.Task.ID] = true
				}
			case agent.GoalStopped:
				if len(cs) != 0 {
					problems = append(problems, fmt.Sprintf("stopped instance %s has running containers %s", r.ID, containerList(cs)))
				}
			default:
				problems = append(problems, fmt.Sprintf("instance %s is still %s", r.ID, r.Goal))
			}
			if r.Reservation != nil && r.Reservation.VolumesCreated {
				for _, v := range r.Reservation.Volumes {
					owned["volume:"+v.PersistenceID] = true
					if _, err := os.Stat(filepath.Join(h.dir, "volumes", "roles", "marathon", v.PersistenceID)); err != nil {
						problems = append(problems, fmt.Sprintf("instance %s lost its volume: %v", r.ID, err))
					}
				}
			}
		}
		for _, c := range h.rt.Containers() {
			if !owned[c.TaskID()] || !c.Running {
				problems = append(problems, fmt.Sprintf("container %s of task %s (%s) belongs to no running task", c.Name, c.TaskID(), c.State))
			}
		}
		for _, v := range d.volumes {
			if !owned["volume:"+v] {
				problems = append(problems, "volume directory "+v+" belongs to no reservation")
			}
		}
		if u := h.a.Snapshot().Unreadable; len(u) > 0 {
			problems = append(problems, fmt.Sprintf("unreadable records %v", u))
		}
		if len(problems) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("invariants broken after recovery:\n  %s\nrecords:\n%s", strings.Join(problems, "\n  "), d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type crashCase struct {
	name    string
	prepare func(t *testing.T, h *harness) prepared
	act     func(h *harness, p prepared) error
	at      crashAt
	expect  func(t *testing.T, h *harness, p prepared, cs crashState)
}

// atCrash checks, for the cases whose window is about Docker or volume
// directories, that the crash left what the window says.
var atCrash = map[string]func(cs crashState) bool{
	"launch/2-before-docker-run":      func(cs crashState) bool { return len(cs.containers) == 0 },
	"launch/3-container-created":      func(cs crashState) bool { return len(cs.containers) == 1 && cs.containers[0].State == "created" },
	"launch/3-container-started":      func(cs crashState) bool { return len(cs.containers) == 1 && cs.containers[0].Running },
	"kill/2-container-stopped":        func(cs crashState) bool { return len(cs.containers) == 1 && !cs.containers[0].Running },
	"kill/2-container-removed":        func(cs crashState) bool { return len(cs.containers) == 0 },
	"kill/relaunch-container-started": func(cs crashState) bool { return len(cs.containers) == 1 && cs.containers[0].Running },
	"exit/failed-saved":               func(cs crashState) bool { return len(cs.containers) == 1 && !cs.containers[0].Running },
	"exit/container-removed":          func(cs crashState) bool { return len(cs.containers) == 0 },
	"stop/container-stopped":          func(cs crashState) bool { return len(cs.containers) == 1 && !cs.containers[0].Running },
	"start/container-started":         func(cs crashState) bool { return len(cs.containers) == 1 && cs.containers[0].Running },
	"restart/container-stopped":       func(cs crashState) bool { return len(cs.containers) == 1 && !cs.containers[0].Running },
	"wipe/1-container-stopped":        decommissionedContainerStopped,
	"wipe/2-volume-destroyed":         volumeGoneNotRecorded,
	"remove/container-stopped":        func(cs crashState) bool { return len(cs.containers) == 1 && !cs.containers[0].Running },
	"remove/volume-destroyed":         volumeGoneNotRecorded,
	"remove/instance-record-deleted":  func(cs crashState) bool { return len(cs.disk.instances) == 0 && len(cs.disk.apps) == 1 },
	// The app record goes last, after its deployment (which ended when
	// the app's last instance went): nothing of the app is left.
	"remove/app-record-deleted": func(cs crashState) bool {
		return len(cs.disk.apps) == 0 && len(cs.disk.deployments) == 0 && len(cs.disk.versions) == 0 && len(cs.disk.instances) == 0
	},
	"place/2-volume-created":           func(cs crashState) bool { return len(cs.disk.volumes) == 1 },
	"place/1-reservation-saved":        func(cs crashState) bool { return len(cs.disk.volumes) == 0 },
	"wipe/3-volumes-destroyed-saved":   volumeGoneRecorded,
	"remove/goal-decommissioned-saved": func(cs crashState) bool { return len(cs.containers) == 1 && cs.containers[0].Running },
}

// decommissionedContainerStopped: the wiped instance's container is
// stopped, not removed (its successor may run already).
func decommissionedContainerStopped(cs crashState) bool {
	for _, r := range cs.disk.instances {
		if r.Goal == string(agent.GoalDecommissioned) {
			for _, c := range cs.containers {
				if c.Labels[sandbox.LabelInstanceID] == r.ID {
					return !c.Running
				}
			}
		}
	}
	return false
}

// volumeGoneNotRecorded: a decommissioned instance's volume directory is
// gone and its record does not say so yet.
func volumeGoneNotRecorded(cs crashState) bool {
	return decommissionedVolume(cs, false)
}

func volumeGoneRecorded(cs crashState) bool { return decommissionedVolume(cs, true) }

func decommissionedVolume(cs crashState, recorded bool) bool {
	on := map[string]bool{}
	for _, v := range cs.disk.volumes {
		on[v] = true
	}
	for _, r := range cs.disk.instances {
		if r.Goal == string(agent.GoalDecommissioned) && r.Reservation != nil {
			return !on[r.Reservation.Volumes[0].PersistenceID] && r.VolumesDestroyed == recorded
		}
	}
	return false
}

// whileDown runs between the crash and the restart, for cases that need
// to touch the work directory as it was left.
var whileDown = map[string]func(t *testing.T, h *harness, cs crashState){
	"place/2-volume-created": func(t *testing.T, h *harness, cs crashState) {
		if len(cs.disk.volumes) != 1 {
			t.Fatalf("volumes at the crash %v, want the one just made", cs.disk.volumes)
		}
		dir := filepath.Join(h.dir, "volumes", "roles", "marathon", cs.disk.volumes[0])
		if err := os.WriteFile(filepath.Join(dir, "marker"), []byte(marker), 0o644); err != nil {
			t.Fatal(err)
		}
	},
}

// crashCases has one case per crash window listed in agent/tasks.go
// (launch, kill), agent/reconcile.go (placeAndLaunch, decommission,
// forgetApp) and DESIGN.md ("Persist, then act"), reached through each
// lifecycle step that passes through it. The window a case names is the
// step whose side effect was the last one made.
func crashCases() []crashCase {
	none := func(*testing.T, *harness) prepared { return prepared{} }
	return []crashCase{
		// App add: records, then placeAndLaunch, then launch.
		{"add/version-saved", none, actAdd, crashAt{point: "store.put.version"}, expectNoApp},
		{"add/app-saved", none, actAdd, crashAt{point: "store.put.app"}, expectLaunched(false)},
		{"add/deployment-saved", none, actAdd, crashAt{point: "store.put.deployment"}, expectLaunched(false)},
		{"add/instance-saved", none, actAdd, crashAt{point: "store.put.instance", when: func(d disk) bool {
			return d.anyInstance(func(r diskInstance) bool { return r.Reservation == nil })
		}}, expectLaunched(false)},
		{"place/1-reservation-saved", none, actAdd, crashAt{point: "store.put.instance", when: func(d disk) bool {
			return d.anyInstance(func(r diskInstance) bool { return r.Reservation != nil && !r.Reservation.VolumesCreated })
		}}, expectLaunched(false)},
		{"place/2-volume-created", none, actAdd, crashAt{point: "volume.create"}, expectVolumeReused},
		{"place/3-volumes-created-saved", none, actAdd, crashAt{point: "store.put.instance", when: func(d disk) bool {
			return d.anyInstance(func(r diskInstance) bool {
				return r.Reservation != nil && r.Reservation.VolumesCreated && r.Task == nil
			})
		}}, expectLaunched(false)},
		{"launch/1-task-staged", none, actAdd, crashAt{point: "store.put.instance", when: stagedAt(1)}, expectLaunched(false)},
		{"launch/2-sandbox-created", none, actAdd, crashAt{point: "sandbox.create"}, expectLaunched(false)},
		{"launch/2-before-docker-run", none, actAdd, crashAt{point: "docker.run.before"}, expectLaunched(false)},
		{"launch/3-container-created", none, actAdd, crashAt{point: "docker.create"}, expectCreatedStarted},
		{"launch/3-container-started", none, actAdd, crashAt{point: "docker.run.after"}, expectLaunched(true)},
		{"launch/4-running-saved", none, actAdd, crashAt{point: "store.put.instance", when: taskIn(agent.TaskRunning)}, expectLaunched(true)},

		// Task kill: kill, then launch of the next incarnation.
		{"kill/1-killing-saved", prepareRunning, actKill, crashAt{point: "store.put.instance", when: taskIn(agent.TaskKilling)}, expectRelaunched(true, "")},
		{"kill/2-container-stopped", prepareRunning, actKill, crashAt{point: "docker.stop"}, expectRelaunched(true, "")},
		{"kill/2-container-removed", prepareRunning, actKill, crashAt{point: "docker.remove"}, expectRelaunched(true, "")},
		{"kill/3-killed-saved", prepareRunning, actKill, crashAt{point: "store.put.instance", when: taskIn(agent.TaskKilled)}, expectRelaunched(true, "")},
		{"kill/relaunch-staged", prepareRunning, actKill, crashAt{point: "store.put.instance", when: stagedAt(2)}, expectRelaunched(true, "")},
		{"kill/relaunch-container-started", prepareRunning, actKill, crashAt{point: "docker.run.after"}, expectRelaunched(true, "")},

		// Task exit: recorded, container removed, relaunched after backoff.
		{"exit/failed-saved", prepareRunning, actExit, crashAt{point: "store.put.instance", when: taskIn(agent.TaskFailed)}, expectRelaunched(false, "")},
		{"exit/container-removed", prepareRunning, actExit, crashAt{point: "docker.remove"}, expectRelaunched(false, "")},

		// App stop (scale to 0): goal, then kill.
		{"stop/version-saved", prepareRunning, actScale(0), crashAt{point: "store.put.version"}, expectAdopted},
		{"stop/app-saved", prepareRunning, actScale(0), crashAt{point: "store.put.app"}, expectStopped},
		{"stop/goal-stopped-saved", prepareRunning, actScale(0), crashAt{point: "store.put.instance", when: goalIs(string(agent.GoalStopped))}, expectStopped},
		{"stop/killing-saved", prepareRunning, actScale(0), crashAt{point: "store.put.instance", when: taskIn(agent.TaskKilling)}, expectStopped},
		{"stop/container-stopped", prepareRunning, actScale(0), crashAt{point: "docker.stop"}, expectStopped},
		{"stop/killed-saved", prepareRunning, actScale(0), crashAt{point: "store.put.instance", when: taskIn(agent.TaskKilled)}, expectStopped},

		// App start: the stopped instance's goal, then its launch.
		{"start/goal-running-saved", prepareStopped, actScale(1), crashAt{point: "store.put.instance", when: and(goalIs(string(agent.GoalRunning)), taskIn(agent.TaskKilled))}, expectRelaunched(true, "")},
		{"start/task-staged", prepareStopped, actScale(1), crashAt{point: "store.put.instance", when: stagedAt(2)}, expectRelaunched(true, "")},
		{"start/container-started", prepareStopped, actScale(1), crashAt{point: "docker.run.after"}, expectRelaunched(true, "")},

		// Configuration change: the old task is killed, then relaunched in place.
		{"restart/killing-saved", prepareRunning, actChangeEnv, crashAt{point: "store.put.instance", when: taskIn(agent.TaskKilling)}, expectRelaunched(true, "MODE=new")},
		{"restart/container-stopped", prepareRunning, actChangeEnv, crashAt{point: "docker.stop"}, expectRelaunched(true, "MODE=new")},

		// Task kill --wipe: decommission, then a new instance.
		{"wipe/1-goal-decommissioned-saved", prepareRunning, actWipe, crashAt{point: "store.put.instance", when: goalIs(string(agent.GoalDecommissioned))}, expectWiped},
		{"wipe/1-container-stopped", prepareRunning, actWipe, crashAt{point: "docker.stop"}, expectWiped},
		{"wipe/1-killed-saved", prepareRunning, actWipe, crashAt{point: "store.put.instance", when: and(goalIs(string(agent.GoalDecommissioned)), taskIn(agent.TaskKilled))}, expectWiped},
		{"wipe/2-volume-destroyed", prepareRunning, actWipe, crashAt{point: "volume.destroy"}, expectWiped},
		{"wipe/3-volumes-destroyed-saved", prepareRunning, actWipe, crashAt{point: "store.put.instance", when: func(d disk) bool {
			return d.anyInstance(func(r diskInstance) bool { return r.VolumesDestroyed })
		}}, expectWiped},
		{"wipe/4-record-deleted", prepareRunning, actWipe, crashAt{point: "store.delete.instance"}, expectWiped},

		// App remove: Deleting saved, every instance decommissioned, then
		// the app's records deleted.
		{"remove/app-deleting-saved", prepareRunning, actRemove, crashAt{point: "store.put.app"}, expectRemoved},
		{"remove/deployment-saved", prepareRunning, actRemove, crashAt{point: "store.put.deployment"}, expectRemoved},
		{"remove/goal-decommissioned-saved", prepareRunning, actRemove, crashAt{point: "store.put.instance", when: goalIs(string(agent.GoalDecommissioned))}, expectRemoved},
		{"remove/container-stopped", prepareRunning, actRemove, crashAt{point: "docker.stop"}, expectRemoved},
		{"remove/volume-destroyed", prepareRunning, actRemove, crashAt{point: "volume.destroy"}, expectRemoved},
		{"remove/instance-record-deleted", prepareRunning, actRemove, crashAt{point: "store.delete.instance"}, expectRemoved},
		{"remove/app-record-deleted", prepareRunning, actRemove, crashAt{point: "store.delete.app"}, expectRemoved},
	}
}

// expectVolumeReused: a crash right after the volume directory was made,
// before VolumesCreated was saved, reuses that directory: not a second
// one, and what it holds stays (the test writes a file into it while the
// agent is down).
func expectVolumeReused(t *testing.T, h *harness, p prepared, cs crashState) {
	t.Helper()
	expectLaunched(false)(t, h, p, cs)
	p.volume = filepath.Join(h.dir, "volumes", "roles", "marathon", cs.disk.volumes[0])
	expectMarker(t, h, p)
}

// TestCrashWindows crashes the agent in every crash window and checks that
// recovery finishes or undoes the step it interrupted.
func TestCrashWindows(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range crashCases() {
		names[tc.name] = true
	}
	for name := range atCrash {
		if !names[name] {
			t.Errorf("atCrash names no case: %s", name)
		}
	}
	for name := range whileDown {
		if !names[name] {
			t.Errorf("whileDown names no case: %s", name)
		}
	}
	for _, tc := range crashCases() {
		t.Run(tc.name, func(t *testing.T) {
			h, c := crashHarness(t)
			p := tc.prepare(t, h)
			c.arm(tc.at)
			actErr := make(chan error, 1)
			go func() { actErr <- tc.act(h, p) }()
			cs := c.waitCrash(t, actErr)
			if ok := atCrash[tc.name]; ok != nil && !ok(cs) {
				t.Fatalf("the crash at %s did not leave what the window says; records:\n%scontainers %s", cs.point, cs.disk, containerList(cs.containers))
			}
			if fn := whileDown[tc.name]; fn != nil {
				fn(t, h, cs)
			}
			h.recover()
			tc.expect(t, h, p, cs)
			checkInvariants(t, h)
			if t.Failed() {
				t.Logf("crashed at %s with records:\n%scontainers %s", cs.point, cs.disk, containerList(cs.containers))
			}
		})
	}
}

// TestCrashDuringRecovery: a second crash while recovery finishes the
// first one's launch still ends with one container for the same task.
func TestCrashDuringRecovery(t *testing.T) {
	h, c := crashHarness(t)
	c.arm(crashAt{point: "store.put.instance", when: stagedAt(1)})
	actErr := make(chan error, 1)
	go func() { actErr <- actAdd(h, prepared{}) }()
	first := c.waitCrash(t, actErr)

	c2 := newCrasher()
	c2.h = h
	c2.arm(crashAt{point: "docker.run.after"})
	h.cfg.Failpoint = c2.failpoint
	h.rt.SetFailpoint(c2.failpoint)
	h.rt.SetDown(false)
	h.start()
	second := c2.waitCrash(t, nil)
	if len(second.containers) != 1 {
		t.Fatalf("containers at the second crash: %s", containerList(second.containers))
	}
	h.recover()
	expectLaunched(true)(t, h, prepared{}, second)
	if got := h.a.Snapshot().App("/db").Tasks[0].ID; got != first.disk.instances[0].Task.ID {
		t.Fatalf("task %s after two crashes, %s was staged before the first", got, first.disk.instances[0].Task.ID)
	}
	checkInvariants(t, h)
}

// TestCrashLeavesNoStrayVersion: a change that crashed after its version
// record was written and before its app record was never happened (the
// API never answered it). Its version must not stay behind, where
// GET /v2/apps/{id}/versions would list (and a rollback could pick) a
// version the app never had: for an add, the version of an app that does
// not exist, listed again once an app of that id is created; for an
// update, a version newer than the app's.
func TestCrashLeavesNoStrayVersion(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, h *harness) prepared
		act     func(h *harness, p prepared) error
	}{
		{"add", func(*testing.T, *harness) prepared { return prepared{} }, actAdd},
		{"update", prepareRunning, actScale(0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, c := crashHarness(t)
			p := tc.prepare(t, h)
			c.arm(crashAt{point: "store.put.version"})
			actErr := make(chan error, 1)
			go func() { actErr <- tc.act(h, p) }()
			c.waitCrash(t, actErr)
			h.recover()
			if tc.name == "add" {
				h.create(appJSON(t, residentApp("/db"), nil))
			}
			h.running("/db", 1)
			versions, err := h.a.AppVersions("/db")
			if err != nil {
				t.Fatal(err)
			}
			if len(versions) != 1 {
				t.Fatalf("the app has versions %v, want only the one it was created with", versions)
			}
			if s := h.a.Snapshot().App("/db"); s.Spec.Instances != 1 {
				t.Fatalf("the update that never happened changed the app: instances %d", s.Spec.Instances)
			}
		})
	}
}
