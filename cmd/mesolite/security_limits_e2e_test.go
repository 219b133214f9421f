package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Limits that hold (issue 10, item 5).

// TestSecurityLimitsAtPost: what can never be placed is refused at POST,
// with a 422 naming the agent's port range.
func TestSecurityLimitsAtPost(t *testing.T) {
	p := startAgentTOML(t, baseTOML(23330, 10, ""))
	const rangeText = "23330-23339"
	for _, c := range []struct{ name, app, path string }{
		{"bridge hostPort outside the range", `{"id":"/hp1","cmd":"exit 0","mem":32,"cpus":0.1,"networks":[{"mode":"container/bridge"}],
			"container":{"docker":{"image":"mesolite/testapp:latest"},"portMappings":[{"containerPort":8080,"hostPort":23340}]}}`,
			"/container/portMappings(0)/hostPort"},
		{"privileged hostPort", `{"id":"/hp2","cmd":"exit 0","mem":32,"cpus":0.1,"networks":[{"mode":"container/bridge"}],
			"container":{"docker":{"image":"mesolite/testapp:latest"},"portMappings":[{"containerPort":8080,"hostPort":0},{"containerPort":80,"hostPort":80}]}}`,
			"/container/portMappings(1)/hostPort"},
		{"requirePorts outside the range", `{"id":"/hp3","cmd":"exit 0","mem":32,"cpus":0.1,"requirePorts":true,
			"portDefinitions":[{"port":8080}],"container":{"docker":{"image":"mesolite/testapp:latest"}}}`,
			"/portDefinitions(0)/port"},
		{"more dynamic ports than the range", `{"id":"/hp4","cmd":"exit 0","mem":32,"cpus":0.1,
			"portDefinitions":[{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0},{"port":0}],
			"container":{"docker":{"image":"mesolite/testapp:latest"}}}`,
			""},
		{"more ports than the range across instances", `{"id":"/hp5","cmd":"exit 0","mem":32,"cpus":0.1,"instances":4,
			"portDefinitions":[{"port":0},{"port":0},{"port":0}],
			"container":{"docker":{"image":"mesolite/testapp:latest"}}}`,
			""},
	} {
		r := p.postJSON("POST", "/v2/apps", c.app)
		if r.status != 422 || !strings.Contains(r.body, rangeText) || !strings.Contains(r.body, c.path) {
			t.Errorf("%s: %d %s, want 422 naming %s at %q", c.name, r.status, r.body, rangeText, c.path)
		}
		// The same through PUT, and through a scale that needs too many.
		id := c.app[strings.Index(c.app, `"/`)+1 : strings.Index(c.app, `",`)]
		if r := p.postJSON("PUT", "/v2/apps"+id, c.app); r.status != 422 {
			t.Errorf("%s by PUT: %d %s, want 422", c.name, r.status, r.body)
		}
	}
	ok := `{"id":"/fits","cmd":"exit 0","mem":32,"cpus":0.1,"instances":0,"networks":[{"mode":"container/bridge"}],
		"container":{"docker":{"image":"mesolite/testapp:latest"},"portMappings":[{"containerPort":8080,"hostPort":23339},{"containerPort":81,"hostPort":0}]}}`
	if r := p.postJSON("POST", "/v2/apps", ok); r.status != 201 {
		t.Fatalf("ports inside the range: %d %s", r.status, r.body)
	}
	if r := p.postJSON("PUT", "/v2/apps/fits", `{"instances":6}`); r.status != 422 || !strings.Contains(r.body, rangeText) {
		t.Errorf("scaling to more ports than the range: %d %s, want 422", r.status, r.body)
	}
}

// TestSecurityZeroResourcesAreAccounted: mem 0 and cpus 0 reserve what the
// container is given (Mesos's minimum 32 MiB and 0.01 cpus), so they
// cannot escape the agent's offer.
func TestSecurityZeroResourcesAreAccounted(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	p := startAgentTOML(t, strings.Replace(baseTOML(23340, 10, ""), "[resources]\n", "[resources]\nmem = 100\ncpus = 0.025\n", 1))
	if r := p.postJSON("POST", "/v2/apps", `{"id":"/zero","mem":0,"cpus":0,"instances":4,
		"networks":[{"mode":"host"}],"portDefinitions":[],"env":{"NO_LISTEN":"1"},
		"container":{"type":"DOCKER","docker":{"image":"mesolite/testapp:latest"}}}`); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	// 100 MiB hold three containers of 32 MiB; 0.025 cpus two of 0.01.
	eventually(t, 30*time.Second, "two tasks running and the others waiting", func() (bool, string) {
		running := 0
		for _, tk := range p.tasks("/zero") {
			if tk.State == "TASK_RUNNING" {
				running++
			}
		}
		var q struct {
			Queue []struct {
				WaitingReason string `json:"waitingReason"`
			} `json:"queue"`
		}
		_ = p.getJSON("/v2/queue?embed=mesolite", &q)
		reason := ""
		if len(q.Queue) > 0 {
			reason = q.Queue[0].WaitingReason
		}
		return running == 2 && strings.Contains(reason, "insufficient cpus"), fmt.Sprintf("%d running, waiting %q", running, reason)
	})
	time.Sleep(2 * time.Second)
	if n := len(runningContainers(t, p.agentID)); n != 2 {
		t.Fatalf("%d containers running against an offer of 0.025 cpus, want 2", n)
	}
	var st struct {
		Resources map[string]any `json:"resources"`
	}
	_ = p.getJSON("/mesolite/v1/status", &st)
	t.Logf("status resources: %v", st.Resources)
}

// TestSecuritySlowBodies: 2,000 connections that send a request body a
// byte at a time neither exhaust the agent's file descriptors nor stop it
// from answering /ping. The agent runs with the 1,024 descriptors many
// laptops give a process.
func TestSecuritySlowBodies(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		missing(t, "sh is needed to lower the agent's descriptor limit: %v", err)
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2200 {
		missing(t, "this test opens 2,000 connections and needs more than %d descriptors", lim.Cur)
	}
	dir := t.TempDir()
	p := &agentProc{t: t, bin: mesoliteBinary(t), workDir: t.TempDir()}
	p.config = filepath.Join(dir, "agent.toml")
	if err := os.WriteFile(p.config, []byte(baseTOML(23350, 10, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	p.logPath = filepath.Join(dir, "agent.log")
	p.addr = freeAddr(t)
	// Start it through a shell that lowers the limit (soft and hard, so Go
	// cannot raise it).
	realBin := p.bin
	wrapper := filepath.Join(dir, "mesolite-1024")
	if err := os.WriteFile(wrapper, []byte("#!/bin/sh\nulimit -n 1024 || exit 97\nexec "+realBin+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.bin = wrapper
	p.start()
	t.Cleanup(func() { p.stop(syscall.SIGTERM) })

	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < 2000; i++ {
		c, err := net.DialTimeout("tcp", p.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		fmt.Fprintf(c, "POST /v2/apps HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", p.addr)
		conns = append(conns, c)
	}
	client := &http.Client{Timeout: 2 * time.Second}
	for i := 0; i < 10; i++ {
		start := time.Now()
		resp, err := client.Get(p.url() + "/ping")
		if err != nil {
			t.Fatalf("ping %d with 2,000 slow bodies open: %v", i, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("ping %d: %d", i, resp.StatusCode)
		}
		t.Logf("ping %d: %v", i, time.Since(start))
		// The slow clients trickle on.
		for _, c := range conns[:100] {
			_, _ = c.Write([]byte(" "))
		}
		time.Sleep(200 * time.Millisecond)
	}
	b, _ := os.ReadFile(p.logPath)
	if strings.Contains(string(b), "too many open files") {
		t.Errorf("the agent ran out of file descriptors")
	}
}

// TestSecurityVolumesFromLastMeasurement: GET /mesolite/v1/volumes
// answers from the last measurement instead of walking every volume on
// every request; the answer says when it was measured.
func TestSecurityVolumesFromLastMeasurement(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	p := startAgentTOML(t, baseTOML(23360, 10, ""))
	if r := p.postJSON("POST", "/v2/apps", recordApp("/vol", false)); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	tk := p.waitTask("/vol", "running", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	dir := filepath.Join(p.workDir, "volumes", "roles", "marathon", tk.LocalVolumes[0].PersistenceID)
	type vol struct {
		PersistenceID string `json:"persistenceId"`
		UsedBytes     int64  `json:"usedBytes"`
		MeasuredAt    string `json:"measuredAt"`
	}
	get := func() vol {
		var r struct {
			Volumes []vol `json:"volumes"`
		}
		if err := p.getJSON("/mesolite/v1/volumes", &r); err != nil {
			t.Fatal(err)
		}
		for _, v := range r.Volumes {
			if v.PersistenceID == tk.LocalVolumes[0].PersistenceID {
				return v
			}
		}
		t.Fatalf("volume %s not listed: %+v", tk.LocalVolumes[0].PersistenceID, r.Volumes)
		return vol{}
	}
	var first vol
	eventually(t, 30*time.Second, "a first measurement", func() (bool, string) {
		first = get()
		return first.MeasuredAt != "", fmt.Sprintf("%+v", first)
	})
	// 8 MiB more in the volume: the answer stays the last measurement
	// until the agent measures again.
	if err := os.WriteFile(filepath.Join(dir, "big"), make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if v := get(); v.UsedBytes != first.UsedBytes || v.MeasuredAt != first.MeasuredAt {
			if v.MeasuredAt == first.MeasuredAt {
				t.Fatalf("the answer changed without a new measurement: %+v, then %+v", first, v)
			}
			break // a scheduled measurement came in between
		}
	}
}
