package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// groupSize is the number of apps of the group benchmark.
const groupSize = 20

const groupID = "/bench-group"

// groupBody is a group of groupSize resident apps, each of residentApp's
// shape (the test image, a volume and a port).
func groupBody() map[string]any {
	apps := make([]any, groupSize)
	for i := range apps {
		apps[i] = residentApp(fmt.Sprintf("app-%02d", i), 1)
	}
	return map[string]any{"id": groupID, "apps": apps}
}

// waitApps reads events until every app of the group has one matching,
// and returns when the last came.
func waitApps(b *bench, es *eventStream, what string, match func(event) bool) (time.Time, error) {
	seen := map[string]bool{}
	var last time.Time
	for len(seen) < groupSize {
		ev, err := es.waitFor(b.ctx, 300*time.Second, fmt.Sprintf("%s (%d of %d so far)", what, len(seen), groupSize), func(ev event) bool {
			return strings.HasPrefix(ev.str("appId"), groupID+"/") && match(ev)
		})
		if err != nil {
			return last, err
		}
		if !seen[ev.str("appId")] {
			seen[ev.str("appId")] = true
			last = ev.At
		}
	}
	return last, nil
}

func isStatus(state string) func(event) bool {
	return func(ev event) bool { return ev.Type == "status_update_event" && ev.str("taskStatus") == state }
}

// parallel runs fn for 0..n-1 at once and returns the first error.
func parallel(n int, fn func(i int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = fn(i) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// groupFigures are the samples of one side of the group benchmark.
type groupFigures struct{ up, down, back, remove []float64 }

// groups: one POST /v2/groups of groupSize resident apps until all run,
// scaleBy 0 until all are killed, back (PUT of the same group) until all
// run again, DELETE until every app is gone; against groupSize parallel
// `docker run -d` (create + start), stop, start, stop + remove with the
// same mounts and ports, and `docker compose up -d` of the same services
// where Compose is installed. One app's removal is measured too: removing
// the group should take about that plus Docker's own parallel stop and
// remove.
func (b *bench) groups(p *agentProc) error {
	es, err := p.api.subscribe(b.ctx, "status_update_event", "app_terminated_event")
	if err != nil {
		return err
	}
	defer es.Close()
	reps := 3
	if b.quick {
		reps = 1
	}
	var mes, dock groupFigures
	var single, compose []float64
	for i := 0; i <= reps; i++ {
		warm := i == 0
		runMesolite := func() error {
			f, err := b.groupMesolite(p, es)
			if err == nil && !warm {
				mes.up, mes.down, mes.back, mes.remove = append(mes.up, f[0]), append(mes.down, f[1]), append(mes.back, f[2]), append(mes.remove, f[3])
			}
			return err
		}
		runDocker := func() error {
			f, err := b.groupDocker(i)
			if err == nil && !warm {
				dock.up, dock.down, dock.back, dock.remove = append(dock.up, f[0]), append(dock.down, f[1]), append(dock.back, f[2]), append(dock.remove, f[3])
			}
			return err
		}
		if err := alternate(i, runMesolite, runDocker); err != nil {
			return err
		}
		d, err := b.singleRemove(p, es, i)
		if err != nil {
			return err
		}
		if !warm {
			single = append(single, d)
		}
		if c, ok, err := b.composeUp(i); err != nil {
			return err
		} else if ok && !warm {
			compose = append(compose, c)
		}
	}
	n := groupSize
	b.ratioFigures("groups", "groups.up", mes.up, dock.up, 1.15,
		fmt.Sprintf("mesolite: POST /v2/groups of %d resident apps until all %d run", n, n),
		fmt.Sprintf("docker: %d parallel create + start (`docker run -d`)", n))
	b.ratioFigures("groups", "groups.down", mes.down, dock.down, 0,
		fmt.Sprintf("mesolite: scaleBy 0 until all %d are killed (reservations kept)", n), fmt.Sprintf("docker: %d parallel stop", n))
	b.ratioFigures("groups", "groups.back", mes.back, dock.back, 0,
		fmt.Sprintf("mesolite: back to 1 instance each (PUT of the group) until all %d run on their reservations", n), fmt.Sprintf("docker: %d parallel start", n))
	b.ratioFigures("groups", "groups.remove", mes.remove, dock.remove, 0,
		fmt.Sprintf("mesolite: DELETE /v2/groups until all %d apps are gone (volumes destroyed)", n), fmt.Sprintf("docker: %d parallel stop + remove", n))
	ds := dist(single, true)
	b.rep.add(&Figure{Key: "groups.remove.one", Section: "groups", Name: "mesolite: DELETE of one such app until it is gone", Unit: "ms", Value: ds.P50, Dist: ds})
	var expect []float64
	for j := range min(len(single), len(dock.remove)) {
		expect = append(expect, single[j]+dock.remove[j])
	}
	de := dist(expect, true)
	b.rep.add(&Figure{Key: "groups.remove.vs", Section: "groups",
		Name: fmt.Sprintf("group removal / (one app's removal + Docker's %d parallel stop + remove)", n), Unit: "×",
		Value: dist(mes.remove, false).P50 / de.P50, Dist: dist(ratios(mes.remove, expect), true), Baseline: de, Target: &Target{"<=", 1.25}})
	if len(compose) > 0 {
		dc := dist(compose, true)
		b.rep.add(&Figure{Key: "groups.compose", Section: "groups", Name: fmt.Sprintf("%s up -d of the same %d services", composeName, n), Unit: "ms", Value: dc.P50, Dist: dc})
		b.rep.add(&Figure{Key: "groups.compose.ratio", Section: "groups", Name: "group launch ratio mesolite / Compose", Unit: "×",
			Value: dist(mes.up, false).P50 / dc.P50, Dist: dist(ratios(mes.up, compose), true), Baseline: dc, Target: &Target{"<=", 1}})
	}
	return nil
}

// groupMesolite runs one round on the agent: up, down, back, remove (ms).
func (b *bench) groupMesolite(p *agentProc, es *eventStream) ([4]float64, error) {
	var f [4]float64
	t0 := time.Now()
	if err := p.api.do(b.ctx, "POST", "/v2/groups", groupBody(), nil); err != nil {
		return f, err
	}
	last, err := waitApps(b, es, "the group's apps running", isStatus("TASK_RUNNING"))
	if err != nil {
		return f, err
	}
	f[0] = ms(last.Sub(t0))
	if err := b.noDeployments(p); err != nil {
		return f, err
	}
	t0 = time.Now()
	if err := p.api.do(b.ctx, "PUT", "/v2/groups"+groupID, map[string]any{"scaleBy": 0}, nil); err != nil {
		return f, err
	}
	if last, err = waitApps(b, es, "the group's tasks killed", isStatus("TASK_KILLED")); err != nil {
		return f, err
	}
	f[1] = ms(last.Sub(t0))
	if err := b.noDeployments(p); err != nil {
		return f, err
	}
	t0 = time.Now()
	if err := p.api.do(b.ctx, "PUT", "/v2/groups"+groupID, groupBody(), nil); err != nil {
		return f, err
	}
	if last, err = waitApps(b, es, "the group's apps running again", isStatus("TASK_RUNNING")); err != nil {
		return f, err
	}
	f[2] = ms(last.Sub(t0))
	if err := b.noDeployments(p); err != nil {
		return f, err
	}
	t0 = time.Now()
	if err := p.api.do(b.ctx, "DELETE", "/v2/groups"+groupID, nil, nil); err != nil {
		return f, err
	}
	if last, err = waitApps(b, es, "the group's apps removed", func(ev event) bool { return ev.Type == "app_terminated_event" }); err != nil {
		return f, err
	}
	f[3] = ms(last.Sub(t0))
	return f, b.noDeployments(p)
}

// noDeployments waits until GET /v2/deployments is empty.
func (b *bench) noDeployments(p *agentProc) error {
	deadline := time.Now().Add(120 * time.Second)
	for {
		var ds []map[string]any
		if err := p.api.do(b.ctx, "GET", "/v2/deployments", nil, &ds); err != nil {
			return err
		}
		if len(ds) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			var queue any
			_ = p.api.do(b.ctx, "GET", "/v2/queue?embed=mesolite", nil, &queue)
			return fmt.Errorf("%d deployments still in progress after 120 s: current actions %v; queue %v", len(ds), ds[0]["currentActions"], queue)
		}
		b.sleep(20 * time.Millisecond)
	}
}

// groupDocker runs one round of the Docker baseline: groupSize parallel
// runs, stops, starts, stops + removes (ms).
func (b *bench) groupDocker(round int) ([4]float64, error) {
	var f [4]float64
	ids := make([]string, groupSize)
	defer func() {
		for _, id := range ids {
			if id != "" {
				_ = b.base.remove(context.WithoutCancel(b.ctx), id)
			}
		}
	}()
	ports := make([]int, groupSize)
	for i := range ports {
		p, err := publishPort()
		if err != nil {
			return f, err
		}
		ports[i] = p
	}
	t0 := time.Now()
	err := parallel(groupSize, func(i int) error {
		id, err := b.base.runContainer(b.ctx, runSpec{name: fmt.Sprintf("group-%d-%02d", round, i), hostPort: ports[i]})
		ids[i] = id
		return err
	})
	if err != nil {
		return f, err
	}
	f[0] = ms(time.Since(t0))
	t0 = time.Now()
	if err := parallel(groupSize, func(i int) error { return b.base.stop(b.ctx, ids[i]) }); err != nil {
		return f, err
	}
	f[1] = ms(time.Since(t0))
	t0 = time.Now()
	if err := parallel(groupSize, func(i int) error { return b.base.start(b.ctx, ids[i]) }); err != nil {
		return f, err
	}
	f[2] = ms(time.Since(t0))
	t0 = time.Now()
	err = parallel(groupSize, func(i int) error {
		if err := b.base.stop(b.ctx, ids[i]); err != nil {
			return err
		}
		err := b.base.remove(b.ctx, ids[i])
		if err == nil {
			ids[i] = ""
		}
		return err
	})
	f[3] = ms(time.Since(t0))
	return f, err
}

// singleRemove creates one app of the group's shape and measures its
// DELETE until it is gone (ms).
func (b *bench) singleRemove(p *agentProc, es *eventStream, round int) (float64, error) {
	id := fmt.Sprintf("/bench-one-%d", round)
	if err := p.api.do(b.ctx, "POST", "/v2/apps", residentApp(id, 1), nil); err != nil {
		return 0, err
	}
	if _, err := es.waitFor(b.ctx, 60*time.Second, id+" running", statusIs(id, "TASK_RUNNING")); err != nil {
		return 0, err
	}
	if err := b.noDeployments(p); err != nil {
		return 0, err
	}
	t0 := time.Now()
	if err := p.api.deleteApp(b.ctx, id); err != nil {
		return 0, err
	}
	ev, err := es.waitFor(b.ctx, 120*time.Second, id+" removed", func(ev event) bool {
		return ev.Type == "app_terminated_event" && ev.str("appId") == id
	})
	return ms(ev.At.Sub(t0)), err
}

// composeName is the Compose found ("docker compose" or "docker-compose"),
// "" when none is installed.
var composeName = func() string {
	if exec.Command("docker", "compose", "version").Run() == nil {
		return "docker compose"
	}
	if _, err := exec.LookPath("docker-compose"); err == nil {
		return "docker-compose"
	}
	return ""
}()

// composeUp measures `docker compose up -d` of the group's services (the
// same image, bind mounts, published port, memory and CPU limits), then
// takes them down. ok is false where Compose is not installed.
func (b *bench) composeUp(round int) (float64, bool, error) {
	if composeName == "" {
		return 0, false, nil
	}
	dir := filepath.Join(b.base.dir, fmt.Sprintf("compose-%d", round))
	var y strings.Builder
	y.WriteString("services:\n")
	for i := 0; i < groupSize; i++ {
		s := fmt.Sprintf("app-%02d", i)
		for _, d := range []string{filepath.Join(dir, s, "sandbox", "data"), filepath.Join(dir, s, "volume")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return 0, false, err
			}
		}
		fmt.Fprintf(&y, "  %s:\n    image: %s\n    environment: [MESOS_SANDBOX=/mnt/mesos/sandbox, DATA_DIR=/mnt/mesos/sandbox/data]\n", s, testImage)
		fmt.Fprintf(&y, "    volumes: [\"./%s/sandbox:/mnt/mesos/sandbox\", \"./%s/volume:/mnt/mesos/sandbox/data\"]\n", s, s)
		fmt.Fprintf(&y, "    ports: [\"127.0.0.1::8080\"]\n    mem_limit: 64m\n    cpu_shares: 102\n    labels: {%s: %q}\n", benchLabel, b.base.run)
	}
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte(y.String()), 0o644); err != nil {
		return 0, false, err
	}
	project := strings.ToLower(fmt.Sprintf("mesolite-bench-%d", round))
	compose := func(args ...string) error {
		name, pre := "docker-compose", []string{}
		if composeName == "docker compose" {
			name, pre = "docker", []string{"compose"}
		}
		cmd := exec.CommandContext(b.ctx, name, append(append(pre, "-p", project, "-f", file), args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", composeName, strings.Join(args, " "), err, out)
		}
		return nil
	}
	t0 := time.Now()
	err := compose("up", "-d")
	d := time.Since(t0)
	if derr := compose("down", "-t", "10"); err == nil {
		err = derr
	}
	return ms(d), err == nil, err
}
