package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Figure is one measured number: its headline value (a median unless said
// otherwise), its spread, and the target it is held to.
type Figure struct {
	Key      string  `json:"key"` // stable, e.g. "launch.ratio"
	Section  string  `json:"section"`
	Name     string  `json:"name"`
	Unit     string  `json:"unit"`
	Value    float64 `json:"value"`
	Dist     *Dist   `json:"dist,omitempty"`
	Baseline *Dist   `json:"baseline,omitempty"` // Docker's own figure, for ratios
	Target   *Target `json:"target,omitempty"`
	// Status is PASS or MISS against the target, or INFO without one.
	Status string `json:"status"`
	Note   string `json:"note,omitempty"`
}

// Target is a bound a figure must stay within.
type Target struct {
	Op    string  `json:"op"` // "<=" or "=="
	Value float64 `json:"value"`
}

func (t *Target) String(unit string) string {
	if t == nil {
		return "—"
	}
	return t.Op + " " + fmtNum(t.Value) + " " + unit
}

func (t *Target) met(v float64) bool {
	switch t.Op {
	case "<=":
		return v <= t.Value
	case ">=":
		return v >= t.Value
	case "==":
		return v == t.Value
	}
	return false
}

// Machine describes where the figures were taken.
type Machine struct {
	CPUModel      string `json:"cpuModel"`
	Cores         int    `json:"cores"`
	MemTotalMiB   int    `json:"memTotalMiB"`
	Kernel        string `json:"kernel"`
	OS            string `json:"os"`
	GoVersion     string `json:"goVersion"`
	DockerVersion string `json:"dockerVersion"`
	DockerAPI     string `json:"dockerApiVersion"`
	Mesolite      string `json:"mesoliteVersion"`
}

// Report is bench.json.
type Report struct {
	Schema      int       `json:"schema"`
	Date        string    `json:"date"`
	Quick       bool      `json:"quick"`
	Machine     Machine   `json:"machine"`
	WallSeconds float64   `json:"wallSeconds"`
	MaxTasks    int       `json:"maxTasks"` // N of the real-Docker measurements
	Settings    []string  `json:"settings"`
	Figures     []*Figure `json:"figures"`
	Errors      []string  `json:"errors,omitempty"`
	Notes       []string  `json:"notes,omitempty"`
}

func (r *Report) add(f *Figure) *Figure {
	switch {
	case f.Target == nil:
		f.Status = "INFO"
	case f.Target.met(f.Value):
		f.Status = "PASS"
	default:
		f.Status = "MISS"
	}
	r.Figures = append(r.Figures, f)
	return f
}

func (r *Report) fig(key string) *Figure {
	for _, f := range r.Figures {
		if f.Key == key {
			return f
		}
	}
	return nil
}

// machineInfo reads the machine's description from /proc and the tools.
func machineInfo(dockerVersion, dockerAPI string) Machine {
	m := Machine{Cores: runtime.NumCPU(), GoVersion: runtime.Version(), DockerVersion: dockerVersion, DockerAPI: dockerAPI}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
				m.MemTotalMiB = kb / 1024
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	if out, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output(); err == nil {
		m.Mesolite = strings.TrimSpace(string(out))
	}
	return m
}

func writeJSONFile(path string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func fmtNum(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100 || v == float64(int64(v)):
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

func spread(d *Dist) string {
	if d == nil || d.N < 2 {
		return "—"
	}
	s := fmtNum(d.Min) + " / " + fmtNum(d.P90) + " / " + fmtNum(d.Max)
	if d.P99 > 0 {
		s = fmtNum(d.Min) + " / " + fmtNum(d.P90) + " / p99 " + fmtNum(d.P99) + " / " + fmtNum(d.Max)
	}
	return s
}

func nOf(d *Dist) string {
	if d == nil {
		return "1"
	}
	return strconv.Itoa(d.N)
}

// sections are the report's sections, in order.
var sections = []struct{ key, title, intro string }{
	{"launch", "1. Launch",
		"`POST /v2/apps` (1 instance, a 16 MiB persistent volume, a bridge port mapping 8080 → a host port of the agent's range, no health check) until the agent's event stream reports `TASK_RUNNING`, against creating and starting the same image with the Docker Go client (what `docker run -d` does: create, then start, returning once the container runs) with the same two bind mounts (sandbox and volume, both directories made first), the same published port, memory limit, CPU shares and log options. Runs alternate mesolite/Docker so drift hits both."},
	{"stopstart", "2. Stop and start again",
		"`PUT /v2/apps/{id}?force=true {\"instances\":0}` until `TASK_KILLED`, then `{\"instances\":1}` until `TASK_RUNNING` on the same instance (same reservation, volume and host port; checked), against `docker stop` + `docker start` of one container of the same image and mounts (Docker Go client). mesolite's stop also removes the container (its logs are kept in the sandbox) and its start creates a new one: Marathon's semantics, one incarnation per task id."},
	{"restart", "3. Agent restart",
		"With N tasks running, the agent process is stopped (SIGTERM) and started again (`bin/mesolite agent`); the time runs from starting the process until `/mesolite/v1/status` reports recovery done with all N adopted and `GET /v2/tasks` lists N tasks `TASK_RUNNING` (polled every 2 ms). Container ids and `State.StartedAt` are compared before and after: any difference is a restart."},
	{"health", "4. Health checks",
		"CPU time of the agent process (the run time of all its threads, `/proc/<pid>/task/*/schedstat`) per second of wall time, as % of one core, with N tasks each checked every second, all healthy: first with an HTTP check each (`GET /health` of the test app, on the container's own address), then (full mode) the same tasks replaced with a TCP check each. Several windows, after the checks have run for a few seconds. The same N HTTP checks through the check helper (the path taken where the host cannot reach containers: Docker Desktop, rootless Docker): the agent restarted with `[tasks] check_path = \"helper\"`, its tasks adopted, and in the same windows the CPU of the agent, of the helper's process and of the Docker proxy of the helper's published port (the way in on this machine), summed and divided by the checks made, against the direct path's agent CPU per check; the helper's memory (its process, and the containerd shim that holds it)."},
	{"memory", "5. Memory",
		"Resident memory (`VmRSS` of `/proc/<pid>/status`) of the real agent idle (no apps) and with the N health-checked tasks. The add/remove cycles run against the agent over the in-memory fake runtime in a child process of the benchmark (real containers would take too long: about 1 s per cycle), each cycle `POST /v2/apps` (1 instance, persistent volume, port) until `TASK_RUNNING`, then `DELETE` until the app is gone (volume destroyed, reservation released). Growth is judged on the live heap after a forced GC and the goroutine count, warm (after the first 10% of cycles) against the end; RSS is shown too."},
	{"api", "6. API",
		"In-process agent over the fake runtime with 1,000 tasks (100 apps × 10 instances, resident, each with a volume and a port), served by the real API handler on a loopback HTTP server. Latency: sequential requests. Throughput: 4 concurrent clients. `POST /v2/apps` creates new 1-instance apps (so the task count grows past 1,000 as it runs) and includes the durable writes of the app, version, deployment and instance records. Events: 100 `/v2/events` subscribers over HTTP; latency from `Publish` until a subscriber has read the event."},
	{"scale", "7. Scaling",
		"One app (persistent volume, port, an HTTP health check every second) scaled 1 → 10 → N with `PUT instances`; time from the request until every new task is `TASK_RUNNING`, per new instance. Reconcile work: in-process agent over the fake runtime, N tasks each with a TCP health check every second against a local listener; the agent's CPU per health result, at three sizes. The agent's CPU without tasks is measured first and taken off. Work per result that stays flat as N grows means the loop's work follows the changes, not the number of tasks; so does the time of one change (a task killed and relaunched) among N tasks."},
	{"vip", "8. VIPs",
		"A VIP of one instance of the test app (its rule in the kernel, in the benchmark's own table, checked first; the benchmark's addresses are guarded like the tests') against the container's own address, from the host and from another container on the bridge (as a task reaches a VIP; the test image's own client, timing inside the container); set-up and requests take turns one by one (VIP first, then direct first), so both sides see the same moments of the machine's noise, and bulk transfers alternate run by run: TCP connection set-up (connect until established), a GET on an established keep-alive connection, a 256 MiB GET. The translation happens once per connection (nftables DNAT, then conntrack), so only set-up can cost anything. Then three instances behind a VIP with an HTTP check every second: one is made unhealthy (its /health answers 503) at a varying point of the check interval, and the time until it is out of the VIP's rules is taken (polling the agent's view and the kernel's rules every 5 ms)."},
	{"command apps", "8a. Command apps",
		"`POST /v2/apps` of a command app (a shell loop, no image, 0.1 cpus, 32 MiB) until the agent's event stream reports `TASK_RUNNING`, against the container mesolite makes for it (the empty host-root image, the system directories read-only, mesolite's init as PID 1, the sandbox bound at its own path, host networking, the same limits) created and started with the Docker Go client. Runs alternate mesolite/Docker."},
	{"fetcher", "8b. Fetcher",
		"The fetcher (the package the agent uses for an app's `fetch` and `uris`) downloading and unpacking a .tar.gz from an HTTP server of this program on 127.0.0.1 into a new sandbox, against `curl -sf URL | tar xz` into a new directory; then cache hits of the same URI, which make no request."},
	{"groups", "9. A group of 20 apps",
		"One `POST /v2/groups` of 20 resident apps (each the launch's shape: the test image, a 16 MiB persistent volume, a bridge port) until every app's task is `TASK_RUNNING`, against 20 parallel create + start of the same containers with the Docker Go client and, where Compose is installed, `up -d` of the same 20 services (same image, bind mounts, published port, limits). Then `scaleBy 0` until all 20 are killed (the reservations stay) against 20 parallel `docker stop`; the group `PUT` back until all 20 run again on their reservations against 20 parallel `docker start`; `DELETE /v2/groups/{id}` until every app is gone (containers removed, volumes destroyed) against 20 parallel stop + remove. Runs alternate mesolite/Docker."},
}

// markdown renders BENCHMARKS.md.
func markdown(r *Report) []byte {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# Benchmarks\n\n")
	p("%s\n\n", summaryLines(r))
	p("Generated by `make bench` (`go run ./cmd/mesolite-bench`) on %s", r.Date)
	if r.Quick {
		p(" in **quick mode** (`BENCH_QUICK=1`: fewer repetitions and smaller N, see Settings)")
	}
	p("; the whole run took %.0f s. Machine-readable: [bench.json](bench.json).\n\n", r.WallSeconds)
	m := r.Machine
	p("| machine | |\n|---|---|\n")
	p("| CPU | %s, %d cores (shared, noisy) |\n| RAM | %d MiB |\n| kernel | %s |\n| OS | %s |\n| Go | %s |\n| Docker Engine | %s (API %s) |\n| mesolite | %s |\n\n",
		m.CPUModel, m.Cores, m.MemTotalMiB, m.Kernel, m.OS, m.GoVersion, m.DockerVersion, m.DockerAPI, m.Mesolite)

	p("## Summary\n\n")
	p("| figure | median | target | status |\n|---|---|---|---|\n")
	for _, f := range r.Figures {
		if f.Target == nil {
			continue
		}
		p("| %s | %s %s | %s | **%s** |\n", cell(f.Name), fmtNum(f.Value), f.Unit, f.Target.String(f.Unit), f.Status)
	}
	p("\n")

	for _, s := range sections {
		var fs []*Figure
		for _, f := range r.Figures {
			if f.Section == s.key {
				fs = append(fs, f)
			}
		}
		if len(fs) == 0 {
			continue
		}
		p("## %s\n\n%s\n\n", s.title, s.intro)
		p("| measurement | median | min / p90 / max | n | target | status |\n|---|---|---|---|---|---|\n")
		for _, f := range fs {
			p("| %s | %s %s | %s | %s | %s | %s |\n", cell(f.Name), fmtNum(f.Value), f.Unit, spread(f.Dist), nOf(f.Dist), f.Target.String(f.Unit), f.Status)
		}
		p("\n")
		for _, f := range fs {
			if f.Note != "" {
				p("- **%s**: %s\n", f.Name, f.Note)
			}
		}
		if notes := sectionNotes[s.key]; notes != "" {
			p("\n%s\n", notes)
		}
		p("\n")
	}
	// A figure of a section missing from the list above is still shown.
	known := map[string]bool{}
	for _, s := range sections {
		known[s.key] = true
	}
	var other []*Figure
	for _, f := range r.Figures {
		if !known[f.Section] {
			other = append(other, f)
		}
	}
	if len(other) > 0 {
		p("## Other figures\n\n| measurement | median | min / p90 / max | n | target | status |\n|---|---|---|---|---|---|\n")
		for _, f := range other {
			p("| %s | %s %s | %s | %s | %s | %s |\n", cell(f.Name), fmtNum(f.Value), f.Unit, spread(f.Dist), nOf(f.Dist), f.Target.String(f.Unit), f.Status)
		}
		p("\n")
	}
	if len(r.Errors) > 0 {
		p("## Errors\n\nThese measurements failed in this run:\n\n")
		for _, e := range r.Errors {
			p("- %s\n", e)
		}
		p("\n")
	}
	p("## Settings\n\n")
	for _, s := range r.Settings {
		p("- %s\n", s)
	}
	p("\n")
	if len(r.Notes) > 0 {
		p("## Notes\n\n")
		for _, n := range r.Notes {
			p("%s\n\n", n)
		}
	}
	return b.Bytes()
}

// cell makes a figure's name safe in a Markdown table: a '|' of its own
// (as in "curl | tar") would end the cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// sectionNotes hold what the figures alone do not say: the reasons behind
// misses and what was changed. They are filled in by notes.go.
var sectionNotes = map[string]string{}

// summaryLines is the three-line summary the README's "Benchmarks"
// section repeats.
func summaryLines(r *Report) string {
	met, total := 0, 0
	var missed []string
	for _, f := range r.Figures {
		if f.Target == nil {
			continue
		}
		total++
		if f.Status == "PASS" {
			met++
		} else {
			missed = append(missed, f.Name)
		}
	}
	get := func(key string) string {
		if f := r.fig(key); f != nil {
			return fmtNum(f.Value)
		}
		return "?"
	}
	l1 := fmt.Sprintf("> mesolite launches a task with a volume and a port in %s× the time of `docker run -d`, stops and starts it in %s× `docker stop`+`docker start`, and restarts with %d running tasks in %s s without restarting a container.",
		get("launch.ratio"), get("stopstart.ratio"), r.MaxTasks, get("restart.nmax.seconds"))
	l2 := fmt.Sprintf("> It uses %s MiB idle and %s MiB with %d tasks, %s%% of a core to health-check them every second, and answers `GET /v2/tasks` at 1,000 tasks in %s ms (p99).",
		get("memory.idle"), get("memory.tasks"), r.MaxTasks, get("health.cpu"), get("api.tasks.p99"))
	l3 := fmt.Sprintf("> %d of %d targets met", met, total)
	if len(missed) > 0 {
		l3 += "; missed: " + strings.Join(missed, ", ") + " (see below why and what would close the gap)"
	}
	l3 += fmt.Sprintf(". Measured %s on %d shared cores.", r.Date[:10], r.Machine.Cores)
	return l1 + "\n" + l2 + "\n" + l3
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }
