package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// realBenchmarks are the measurements against the real Docker daemon: one
// agent process (bin/mesolite) on a fresh work directory.
func (b *bench) realBenchmarks() error {
	p, err := b.newAgent("agent", 31000, 31999)
	if err != nil {
		return err
	}
	defer func() { _ = p.stop() }()
	if _, err := p.start(); err != nil {
		return err
	}
	if _, err := p.waitReady(b.ctx, 60*time.Second); err != nil {
		return err
	}
	b.step("agent %s up (pid %d, %s)", p.agentID, p.pid(), p.listen)
	b.idle(p)

	es, err := p.api.subscribe(b.ctx, "status_update_event", "app_terminated_event")
	if err != nil {
		return err
	}
	defer func() { es.Close() }()

	if b.want("real") {
		b.try("launch", func() error { return b.launch(p, es) })
		b.try("command app launch", func() error { return b.commandLaunch(p, es) })
		b.try("stop and start", func() error { return b.stopStart(p, es) })
		b.try("scaling, restart, health checks and memory", func() error { return b.scaleRestartHealth(p, &es) })
		b.try("VIPs", func() error { return b.vipBench(p) })
	}
	if b.want("groups") {
		b.try("a group of 20 apps", func() error { return b.groups(p) })
	}
	return nil
}

// idle measures the agent without apps: resident memory and CPU.
func (b *bench) idle(p *agentProc) {
	b.sleep(2 * time.Second)
	rss := b.sampleRSS(p.pid(), 5)
	b.rep.add(&Figure{Key: "memory.idle", Section: "memory", Name: "RSS idle (no apps)", Unit: "MiB",
		Value: rss.P50, Dist: rss, Target: &Target{"<=", 20}})
	cpu, err := cpuPercent(b.ctx, p.pid(), b.p.idleWindow)
	if err == nil {
		b.rep.add(&Figure{Key: "health.idle", Section: "health", Name: "agent CPU idle (no apps), for reference", Unit: "% of a core", Value: cpu})
	}
}

// sampleRSS reads a process's RSS n times, 200 ms apart.
func (b *bench) sampleRSS(pid, n int) *Dist {
	var v []float64
	for i := 0; i < n; i++ {
		if r, err := procRSS(pid); err == nil {
			v = append(v, r)
		}
		b.sleep(200 * time.Millisecond)
	}
	return dist(v, true)
}

// launch: POST /v2/apps until TASK_RUNNING against create+start of the
// same container with the Docker client.
func (b *bench) launch(p *agentProc, es *eventStream) error {
	var mes, dock, accept []float64
	for i := 0; i <= b.p.launchReps; i++ {
		warm := i == 0
		runMesolite := func() error {
			id := fmt.Sprintf("/bench-launch-%d", i)
			t0 := time.Now()
			if err := p.api.do(b.ctx, "POST", "/v2/apps", residentApp(id, 1), nil); err != nil {
				return err
			}
			acc := time.Since(t0)
			ev, err := es.waitFor(b.ctx, 60*time.Second, id+" running", statusIs(id, "TASK_RUNNING"))
			if err != nil {
				return err
			}
			if !warm {
				mes = append(mes, ms(ev.At.Sub(t0)))
				accept = append(accept, ms(acc))
			}
			return b.removeApp(p, es, id)
		}
		runDocker := func() error {
			port, err := publishPort()
			if err != nil {
				return err
			}
			t0 := time.Now()
			cid, err := b.base.runContainer(b.ctx, runSpec{name: fmt.Sprintf("launch-%d", i), hostPort: port})
			d := time.Since(t0)
			if cid != "" {
				defer func() { _ = b.base.remove(context.WithoutCancel(b.ctx), cid) }()
			}
			if err != nil {
				return err
			}
			if !warm {
				dock = append(dock, ms(d))
			}
			return nil
		}
		if err := alternate(i, runMesolite, runDocker); err != nil {
			return err
		}
	}
	b.ratioFigures("launch", "launch", mes, dock, 1.10,
		"mesolite: POST until TASK_RUNNING", "docker: create + start (`docker run -d`)")
	b.rep.add(&Figure{Key: "launch.accept", Section: "launch", Name: "mesolite: POST /v2/apps answered (201)", Unit: "ms",
		Value: dist(accept, false).P50, Dist: dist(accept, true)})
	return nil
}

// alternate runs a then b on even rounds, b then a on odd ones, so that
// drift over the run weighs on both sides alike.
func alternate(round int, a, b func() error) error {
	if round%2 == 1 {
		a, b = b, a
	}
	if err := a(); err != nil {
		return err
	}
	return b()
}

// ratioFigures adds the mesolite and Docker figures of a comparison and
// their ratio: the ratio of the medians, with the spread of the paired
// (interleaved) runs' ratios.
func (b *bench) ratioFigures(section, key string, mes, dock []float64, target float64, mesName, dockName string) {
	dm, dd := dist(mes, true), dist(dock, true)
	b.rep.add(&Figure{Key: key + ".mesolite", Section: section, Name: mesName, Unit: "ms", Value: dm.P50, Dist: dm})
	b.rep.add(&Figure{Key: key + ".docker", Section: section, Name: dockName, Unit: "ms", Value: dd.P50, Dist: dd})
	f := &Figure{Key: key + ".ratio", Section: section, Name: key + " ratio mesolite / docker", Unit: "×",
		Value: dm.P50 / dd.P50, Dist: dist(ratios(mes, dock), true), Baseline: dd}
	if target > 0 { // 0: for information
		f.Target = &Target{"<=", target}
	}
	b.rep.add(f)
}

// removeApp deletes an app and waits until it is gone.
func (b *bench) removeApp(p *agentProc, es *eventStream, id string) error {
	if err := p.api.deleteApp(b.ctx, id); err != nil {
		return err
	}
	_, err := es.waitFor(b.ctx, 120*time.Second, id+" removed", func(ev event) bool {
		return ev.Type == "app_terminated_event" && ev.str("appId") == id
	})
	return err
}

func instanceOf(taskID string) string {
	i, _, _ := strings.Cut(taskID, "._app.")
	return i
}

// stopStart: scale to 0 until TASK_KILLED, then to 1 until TASK_RUNNING on
// the same instance, against docker stop + docker start.
func (b *bench) stopStart(p *agentProc, es *eventStream) error {
	id := "/bench-stopstart"
	if err := p.api.do(b.ctx, "POST", "/v2/apps", residentApp(id, 1), nil); err != nil {
		return err
	}
	ev, err := es.waitFor(b.ctx, 60*time.Second, id+" running", statusIs(id, "TASK_RUNNING"))
	if err != nil {
		return err
	}
	inst := instanceOf(ev.str("taskId"))
	port, err := publishPort()
	if err != nil {
		return err
	}
	cid, err := b.base.runContainer(b.ctx, runSpec{name: "stopstart", hostPort: port})
	if cid != "" {
		defer func() { _ = b.base.remove(context.WithoutCancel(b.ctx), cid) }()
	}
	if err != nil {
		return err
	}
	var mes, dock, mesStop, mesStart, dockStop, dockStart []float64
	for i := 0; i <= b.p.stopReps; i++ {
		warm := i == 0
		runMesolite := func() error {
			t0 := time.Now()
			if err := p.api.scale(b.ctx, id, 0); err != nil {
				return err
			}
			killed, err := es.waitFor(b.ctx, 60*time.Second, id+" killed", statusIs(id, "TASK_KILLED"))
			if err != nil {
				return err
			}
			t1 := time.Now()
			if err := p.api.scale(b.ctx, id, 1); err != nil {
				return err
			}
			run, err := es.waitFor(b.ctx, 60*time.Second, id+" running again", statusIs(id, "TASK_RUNNING"))
			if err != nil {
				return err
			}
			if got := instanceOf(run.str("taskId")); got != inst {
				return fmt.Errorf("app start ran instance %s, not the stopped %s: the reservation was not reused", got, inst)
			}
			if !warm {
				mesStop = append(mesStop, ms(killed.At.Sub(t0)))
				mesStart = append(mesStart, ms(run.At.Sub(t1)))
				mes = append(mes, ms(killed.At.Sub(t0)+run.At.Sub(t1)))
			}
			return nil
		}
		runDocker := func() error {
			t0 := time.Now()
			if err := b.base.stop(b.ctx, cid); err != nil {
				return err
			}
			t1 := time.Now()
			if err := b.base.start(b.ctx, cid); err != nil {
				return err
			}
			t2 := time.Now()
			if !warm {
				dockStop = append(dockStop, ms(t1.Sub(t0)))
				dockStart = append(dockStart, ms(t2.Sub(t1)))
				dock = append(dock, ms(t2.Sub(t0)))
			}
			return nil
		}
		if err := alternate(i, runMesolite, runDocker); err != nil {
			return err
		}
	}
	b.ratioFigures("stopstart", "stopstart", mes, dock, 1.30,
		"mesolite: app stop until TASK_KILLED + app start until TASK_RUNNING", "docker: stop + start")
	for _, x := range []struct {
		key, name string
		v         []float64
	}{
		{"stopstart.mesolite.stop", "mesolite: stop part", mesStop},
		{"stopstart.mesolite.start", "mesolite: start part", mesStart},
		{"stopstart.docker.stop", "docker: stop part", dockStop},
		{"stopstart.docker.start", "docker: start part", dockStart},
	} {
		d := dist(x.v, true)
		b.rep.add(&Figure{Key: x.key, Section: "stopstart", Name: x.name, Unit: "ms", Value: d.P50, Dist: d})
	}
	return b.removeApp(p, es, id)
}

// scaleRestartHealth scales one health-checked app 1 → 10 → N, restarts
// the agent at 10 and at N tasks, and measures health-check CPU and memory
// at N tasks: with an HTTP check on every task, then (full mode) with a
// TCP check instead.
func (b *bench) scaleRestartHealth(p *agentProc, es **eventStream) error {
	id := "/bench-scale"
	seen := map[string]bool{}
	waitNew := func(t0 time.Time, n int, what string) (time.Duration, error) {
		var last time.Time
		for got := 0; got < n; {
			ev, err := (*es).waitFor(b.ctx, 300*time.Second, what, statusIs(id, "TASK_RUNNING"))
			if err != nil {
				return 0, err
			}
			if !seen[ev.str("taskId")] {
				seen[ev.str("taskId")] = true
				got++
				last = ev.At
			}
		}
		return last.Sub(t0), nil
	}
	t0 := time.Now()
	if err := p.api.do(b.ctx, "POST", "/v2/apps", checkedApp(id, 1, "HTTP"), nil); err != nil {
		return err
	}
	d1, err := waitNew(t0, 1, id+" running")
	if err != nil {
		return err
	}
	b.rep.add(&Figure{Key: "scale.1", Section: "scale", Name: "scale 0 → 1: time to TASK_RUNNING", Unit: "ms", Value: ms(d1)})
	scaleTo := func(from, to int) error {
		t0 := time.Now()
		if err := p.api.scale(b.ctx, id, to); err != nil {
			return err
		}
		d, err := waitNew(t0, to-from, fmt.Sprintf("%s scaled to %d", id, to))
		if err != nil {
			return err
		}
		per := ms(d) / float64(to-from)
		b.rep.add(&Figure{Key: fmt.Sprintf("scale.to%d", to), Section: "scale",
			Name: fmt.Sprintf("scale %d → %d: time per new instance (all %d running after %.1f s)", from, to, to-from, d.Seconds()),
			Unit: "ms", Value: per})
		b.step("scaled %d → %d in %s", from, to, d.Round(time.Millisecond))
		return b.waitHealthy(p, id, to)
	}
	if err := scaleTo(1, 10); err != nil {
		return err
	}
	if err := b.restarts(p, es, id, 10); err != nil {
		return err
	}
	n := b.p.maxTasks
	if err := scaleTo(10, n); err != nil {
		return err
	}
	if err := b.healthCPU(p, "health.cpu", fmt.Sprintf("agent CPU, %d tasks, an HTTP check each every second", n)); err != nil {
		return err
	}
	if err := b.checkFloor(p.agentID, "HTTP", "health.cpu"); err != nil {
		return err
	}
	rss := b.sampleRSS(p.pid(), 5)
	b.rep.add(&Figure{Key: "memory.tasks", Section: "memory", Name: fmt.Sprintf("RSS with %d health-checked tasks", n), Unit: "MiB",
		Value: rss.P50, Dist: rss, Target: &Target{"<=", 40}})
	b.try("health checks through the helper", func() error { return b.helperHealth(p, id, n) })
	if err := b.restarts(p, es, id, n); err != nil {
		return err
	}
	if b.p.tcpHealth {
		// The same tasks with a TCP check instead: a configuration change,
		// so every task is replaced (on its own reservation).
		t0 := time.Now()
		if err := p.api.do(b.ctx, "PUT", "/v2/apps"+id+"?force=true", map[string]any{"id": id, "healthChecks": []any{healthCheck("TCP")}}, nil); err != nil {
			return err
		}
		d, err := waitNew(t0, n, id+" restarted with a TCP check")
		if err != nil {
			return err
		}
		b.step("replaced %d tasks (TCP check) in %s", n, d.Round(time.Millisecond))
		if err := b.waitHealthy(p, id, n); err != nil {
			return err
		}
		if err := b.healthCPU(p, "health.tcp.cpu", fmt.Sprintf("agent CPU, %d tasks, a TCP check each every second", n)); err != nil {
			return err
		}
		if err := b.checkFloor(p.agentID, "TCP", "health.tcp.cpu"); err != nil {
			return err
		}
	}
	return b.removeApp(p, *es, id)
}

// healthCPU measures the agent's CPU in a few windows once every check has
// settled into its interval.
func (b *bench) healthCPU(p *agentProc, key, name string) error {
	b.sleep(3 * time.Second)
	var cpu []float64
	for i := 0; i < b.p.healthWindows; i++ {
		c, err := cpuPercent(b.ctx, p.pid(), b.p.healthWindow)
		if err != nil {
			return err
		}
		cpu = append(cpu, c)
	}
	dc := dist(cpu, true)
	b.rep.add(&Figure{Key: key, Section: "health", Name: name, Unit: "% of a core", Value: dc.P50, Dist: dc, Target: &Target{"<=", 2}})
	return nil
}

// waitHealthy polls until n tasks of the app run with every check alive.
func (b *bench) waitHealthy(p *agentProc, id string, n int) error {
	deadline := time.Now().Add(120 * time.Second)
	for {
		ts, err := p.api.tasks(b.ctx)
		if err == nil {
			ok := 0
			for _, t := range ts {
				if t.AppID != id || t.State != "TASK_RUNNING" || len(t.Health) == 0 {
					continue
				}
				alive := true
				for _, h := range t.Health {
					alive = alive && h.Alive
				}
				if alive {
					ok++
				}
			}
			if ok == n {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d tasks of %s not all healthy after 120 s (last error %v)", n, id, err)
		}
		b.sleep(100 * time.Millisecond)
	}
}

// restarts stops and starts the agent process with n tasks running, and
// measures the time until the API reports all of them running and adopted,
// and whether any container was restarted.
func (b *bench) restarts(p *agentProc, es **eventStream, appID string, n int) error {
	var secs, took []float64
	restarted, relaunched := 0, 0
	for r := 0; r < b.p.restartReps; r++ {
		before, err := agentContainers(b.ctx, b.dc, p.agentID)
		if err != nil {
			return err
		}
		(*es).Close()
		if err := p.stop(); err != nil {
			return err
		}
		t0, err := p.start()
		if err != nil {
			return err
		}
		var st statusJSON
		for {
			st, err = p.api.status(b.ctx)
			if err == nil && st.Recovery.Done && st.Recovery.Adopted+st.Recovery.Relaunched >= n {
				ts, terr := p.api.tasks(b.ctx)
				running := 0
				for _, t := range ts {
					if t.AppID == appID && t.State == "TASK_RUNNING" {
						running++
					}
				}
				if terr == nil && running == n {
					break
				}
			}
			if time.Since(t0) > 60*time.Second {
				return fmt.Errorf("agent restart with %d tasks: not all running and adopted after 60 s (status %+v, err %v)", n, st, err)
			}
			if b.ctx.Err() != nil {
				return b.ctx.Err()
			}
			time.Sleep(2 * time.Millisecond)
		}
		d := time.Since(t0)
		secs = append(secs, d.Seconds())
		took = append(took, st.Recovery.TookSeconds*1000)
		relaunched += st.Recovery.Relaunched
		after, err := agentContainers(b.ctx, b.dc, p.agentID)
		if err != nil {
			return err
		}
		for cid, c := range before {
			if !c.Running {
				continue
			}
			if a, ok := after[cid]; !ok || !a.Running || a.StartedAt != c.StartedAt {
				restarted++
			}
		}
		for cid := range after {
			if _, ok := before[cid]; !ok {
				restarted++ // a new container: something was relaunched
			}
		}
		if *es, err = p.api.subscribe(b.ctx, "status_update_event", "app_terminated_event"); err != nil {
			return err
		}
		b.step("agent restart with %d tasks: %s (adopted %d, relaunched %d)", n, d.Round(time.Millisecond), st.Recovery.Adopted, st.Recovery.Relaunched)
	}
	ds := dist(secs, true)
	key := "restart.n10"
	if n == b.p.maxTasks {
		key = "restart.nmax"
	}
	f := &Figure{Key: key + ".seconds", Section: "restart",
		Name: fmt.Sprintf("N=%d: process start → all %d running and adopted", n, n), Unit: "s", Value: ds.P50, Dist: ds}
	if n == b.p.maxTasks {
		f.Target = &Target{"<=", 1}
	}
	b.rep.add(f)
	dt := dist(took, true)
	b.rep.add(&Figure{Key: key + ".sync", Section: "restart",
		Name: fmt.Sprintf("N=%d: of which the first Docker sync (recovery.tookSeconds)", n), Unit: "ms", Value: dt.P50, Dist: dt})
	b.rep.add(&Figure{Key: key + ".restarts", Section: "restart",
		Name: fmt.Sprintf("N=%d: containers restarted or relaunched over %d restarts", n, b.p.restartReps), Unit: "",
		Value: float64(restarted + relaunched), Target: &Target{"==", 0}})
	return nil
}

// checkFloor makes the agent's checks from this process instead, against
// the same containers: one new connection per task per second, all at the
// same instant, a GET reading the status line (HTTP) or a connect and
// close (TCP), and nothing else. Its CPU is what such checks cost here
// without any agent around them: the floor for the agent's figure.
func (b *bench) checkFloor(agentID, protocol, key string) error {
	cs, err := agentContainers(b.ctx, b.dc, agentID)
	if err != nil {
		return err
	}
	var addrs []string
	for id, c := range cs {
		if !c.Running {
			continue
		}
		in, err := b.dc.ContainerInspect(b.ctx, id)
		if err != nil {
			return err
		}
		if in.NetworkSettings == nil {
			continue
		}
		if n := in.NetworkSettings.Networks["bridge"]; n != nil && n.IPAddress != "" {
			addrs = append(addrs, net.JoinHostPort(n.IPAddress, "8080"))
		}
	}
	if len(addrs) == 0 {
		return errors.New("check floor: no container addresses")
	}
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	var failed atomic.Int64
	var wg sync.WaitGroup
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				// Half a second off the agent's grid, so the kernel work of the
				// two sets of checks is not accounted to each other.
				wait := time.Second - time.Duration((time.Now().UnixNano()+int64(time.Second/2))%int64(time.Second))
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
				if floorCheck(ctx, protocol, addr) != nil {
					failed.Add(1)
				}
			}
		}()
	}
	b.sleep(2 * time.Second)
	var cpu []float64
	for i := 0; i < b.p.healthWindows; i++ {
		c, err := cpuPercent(b.ctx, os.Getpid(), b.p.healthWindow)
		if err != nil {
			return err
		}
		cpu = append(cpu, c)
	}
	cancel()
	wg.Wait()
	d := dist(cpu, true)
	f := b.rep.add(&Figure{Key: key + ".floor", Section: "health",
		Name: fmt.Sprintf("for reference: the same %d %s checks a second from a minimal Go loop, no agent", len(addrs), protocol), Unit: "% of a core", Value: d.P50, Dist: d})
	if n := failed.Load(); n > 0 {
		f.Note = fmt.Sprintf("%d of the reference checks failed", n)
	}
	return nil
}

func floorCheck(ctx context.Context, protocol, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	d := net.Dialer{KeepAlive: -1}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if protocol != "HTTP" {
		return nil
	}
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := io.WriteString(c, "GET /health HTTP/1.1\r\nHost: "+addr+"\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	_, err = bufio.NewReaderSize(c, 1024).ReadSlice('\n')
	return err
}
