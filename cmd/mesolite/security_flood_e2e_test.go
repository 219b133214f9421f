package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Task output is bounded, rotated and complete (issue 10, item 4): a task
// prints numbered lines as fast as it can, alternately to stdout and
// stderr, then exits 3. Every line ends up in the sandbox exactly once,
// in order, the last ones included; with rotation the files stay within
// their size and count, and task log and /files/read read across them.

// floodApp prints n numbered lines (odd ones to stdout, even ones to
// stderr) and exits 3; it is not relaunched within the test.
func floodApp(id string, n int) string {
	return fmt.Sprintf(`{"id":%q,"cpus":0.5,"mem":64,"instances":1,"cmd":"flood %d both; exit 3",
 "networks":[{"mode":"host"}],"portDefinitions":[],
 "container":{"type":"DOCKER","docker":{"image":"mesolite/testapp:latest"}},
 "backoffSeconds":3600,"maxLaunchDelaySeconds":3600}`, id, n)
}

// floodDone waits until the flood's task failed (exit 3) and its container
// is gone, which the agent does only once the output is in the sandbox;
// it returns the task id and its sandbox.
func floodDone(t *testing.T, p *agentProc, app string) (string, string) {
	t.Helper()
	var task struct {
		ID      string `json:"id"`
		State   string `json:"state"`
		Sandbox string `json:"sandboxDirectory"`
	}
	eventually(t, 120*time.Second, app+" to end and its container to go", func() (bool, string) {
		var r struct {
			Tasks []json.RawMessage `json:"tasks"`
		}
		if err := p.getJSON("/v2/apps"+app+"/tasks?embed=mesolite", &r); err != nil || len(r.Tasks) != 1 {
			return false, fmt.Sprint(err, r.Tasks)
		}
		_ = json.Unmarshal(r.Tasks[0], &task)
		n := len(agentContainers(t, p.agentID))
		return task.State == "TASK_FAILED" && n == 0, fmt.Sprintf("%s, %d containers", task.State, n)
	})
	return task.ID, task.Sandbox
}

// streamFiles returns the files of one stream, oldest first: name.N …
// name.1, name.
func streamFiles(t *testing.T, dir, name string) []string {
	t.Helper()
	rotated, _ := filepath.Glob(filepath.Join(dir, name+".*"))
	type numbered struct {
		n    int
		path string
	}
	var list []numbered
	for _, f := range rotated {
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(f), name+"."))
		if err != nil {
			continue // not a rotated file (e.g. a position file)
		}
		list = append(list, numbered{n, f})
	}
	sort.Slice(list, func(i, j int) bool { return list[i].n > list[j].n })
	var out []string
	for _, x := range list {
		out = append(out, x.path)
	}
	return append(out, filepath.Join(dir, name))
}

// countLines checks that text holds "line k" for k = first, first+2, …,
// last, each once and in order, and says what is wrong otherwise.
func countLines(text string, first, last int) (lost, repeated, disordered int, kept []int) {
	seen := map[int]int{}
	prev := 0
	for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		n, err := strconv.Atoi(strings.TrimPrefix(l, "line "))
		if err != nil || !strings.HasPrefix(l, "line ") {
			disordered++
			continue
		}
		seen[n]++
		if seen[n] > 1 {
			repeated++
		}
		if n < prev {
			disordered++
		}
		prev = n
		kept = append(kept, n)
	}
	for k := first; k <= last; k += 2 {
		if seen[k] == 0 {
			lost++
		}
	}
	return lost, repeated, disordered, kept
}

func readAll(t *testing.T, files []string) string {
	t.Helper()
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("read %s: %v", f, err)
		}
		b.Write(data)
	}
	return b.String()
}

func TestSecurityFloodKeepsEveryLine(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	p := startAgentTOML(t, baseTOML(23310, 10, ""))
	const n = 300000
	if r := p.postJSON("POST", "/v2/apps", floodApp("/flood", n)); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	task, dir := floodDone(t, p, "/flood")
	for _, s := range []struct {
		name        string
		first, last int
	}{{"stdout", 1, n - 1}, {"stderr", 2, n}} {
		files := streamFiles(t, dir, s.name)
		lost, repeated, disordered, kept := countLines(readAll(t, files), s.first, s.last)
		t.Logf("%s: %d files, %d of %d lines kept, %d lost, %d repeated, %d out of order", s.name, len(files), len(kept), n/2, lost, repeated, disordered)
		if lost+repeated+disordered > 0 {
			t.Errorf("%s: %d lines lost, %d repeated, %d out of order", s.name, lost, repeated, disordered)
		}
		if len(kept) == 0 || kept[len(kept)-1] != s.last {
			t.Errorf("%s: the last line before the crash (line %d) is missing", s.name, s.last)
		}
	}
	// task log prints the last lines of each stream.
	out := p.mustCLI("task", "log", "--lines", "3", task)
	if want := fmt.Sprintf("line %d\nline %d\nline %d\n", n-5, n-3, n-1); out != want {
		t.Errorf("task log --lines 3: %q, want %q", out, want)
	}
	out = p.mustCLI("task", "log", "--stderr", "--lines", "2", task)
	if want := fmt.Sprintf("line %d\nline %d\n", n-2, n); out != want {
		t.Errorf("task log --stderr --lines 2: %q, want %q", out, want)
	}
}

func TestSecurityLogRotation(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	const maxSize, maxFiles = 64 << 10, 4
	p := startAgentTOML(t, baseTOML(23320, 10, fmt.Sprintf(`[tasks]
log_max_size = "64KiB"
log_max_files = %d
`, maxFiles)))
	const n = 100000
	if r := p.postJSON("POST", "/v2/apps", floodApp("/rotate", n)); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	task, dir := floodDone(t, p, "/rotate")
	for _, s := range []struct {
		name string
		last int
	}{{"stdout", n - 1}, {"stderr", n}} {
		files := streamFiles(t, dir, s.name)
		if len(files) != maxFiles {
			t.Errorf("%s: %d files %v, want %d (%s, %s.1 … %s.%d)", s.name, len(files), files, maxFiles, s.name, s.name, s.name, maxFiles-1)
		}
		total := int64(0)
		for _, f := range files {
			st, err := os.Stat(f)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() > maxSize {
				t.Errorf("%s is %d bytes, more than log_max_size %d", f, st.Size(), maxSize)
			}
			total += st.Size()
		}
		// The rotated files are full (a line short at most): what is kept
		// is the newest output, without a hole.
		if total < (maxFiles-1)*maxSize-64 {
			t.Errorf("%s: %d bytes kept in %d files of %d", s.name, total, len(files), maxSize)
		}
		text := readAll(t, files)
		_, repeated, disordered, kept := countLines(text, 0, -1)
		if repeated+disordered > 0 || len(kept) == 0 || kept[len(kept)-1] != s.last {
			t.Fatalf("%s: %d repeated, %d out of order, last %v", s.name, repeated, disordered, kept[len(kept)-1:])
		}
		for i := 1; i < len(kept); i++ {
			if kept[i] != kept[i-1]+2 {
				t.Fatalf("%s: a hole between line %d and line %d", s.name, kept[i-1], kept[i])
			}
		}
		t.Logf("%s: %d files, %d bytes, lines %d…%d kept", s.name, len(files), total, kept[0], s.last)

		// /files/read reads the stream across the rotated files, with
		// offsets that count from the task's first byte.
		var end struct {
			Offset int64 `json:"offset"`
		}
		q := url.Values{"task": {task}, "path": {s.name}, "offset": {"-1"}}
		if err := p.getJSON("/files/read?"+q.Encode(), &end); err != nil {
			t.Fatal(err)
		}
		if end.Offset <= total {
			t.Errorf("%s: end offset %d, want the bytes ever written (more than the %d kept)", s.name, end.Offset, total)
		}
		var got strings.Builder
		for off := int64(0); off < end.Offset; {
			var chunk struct {
				Data   string `json:"data"`
				Offset int64  `json:"offset"`
			}
			q := url.Values{"task": {task}, "path": {s.name}, "offset": {strconv.FormatInt(off, 10)}, "length": {"100000"}}
			if err := p.getJSON("/files/read?"+q.Encode(), &chunk); err != nil {
				t.Fatal(err)
			}
			if chunk.Offset < off {
				t.Fatalf("read at %d answered offset %d", off, chunk.Offset)
			}
			got.WriteString(chunk.Data)
			if chunk.Offset+int64(len(chunk.Data)) <= off {
				off += 100000 // before the first kept byte: nothing
				continue
			}
			off = chunk.Offset + int64(len(chunk.Data))
		}
		if got.String() != text {
			t.Errorf("%s: /files/read gave %d bytes, the files hold %d", s.name, got.Len(), len(text))
		}
	}
	out := p.mustCLI("task", "log", "--lines", "2", task)
	if want := fmt.Sprintf("line %d\nline %d\n", n-3, n-1); out != want {
		t.Errorf("task log --lines 2: %q, want %q", out, want)
	}
}
