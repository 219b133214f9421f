package main

import (
	"fmt"
	"net"
	"testing"
	"time"
)

// A stale exit never ends the next healthy task (issue 10, item 3): on
// real Docker, the host port of a stopped resident instance is taken, the
// next launch fails at start, the port is freed, and the launch after it
// runs and keeps running. Docker reports the failed container's die and
// destroy close to the failed launch's outcome; before the fix their
// order decided whether the new task was reported TASK_FINISHED
// milliseconds after it started. The agent-level test
// TestStaleExitOfFailedLaunchSparesTheNextTask forces that order; this one
// shows the real daemon's.
func TestSecurityStaleExitAfterFailedLaunch(t *testing.T) {
	dc := requireDocker(t)
	requireImage(t, dc, testAppImage, "test-image")
	p := startAgentTOML(t, baseTOML(23300, 10, ""))
	app := `{"id":"/stale","cpus":0.1,"mem":32,"instances":1,
 "networks":[{"mode":"container/bridge"}],
 "container":{"type":"DOCKER","docker":{"image":"mesolite/testapp:latest"},
  "volumes":[{"containerPath":"data","mode":"RW","persistent":{"size":4}}],
  "portMappings":[{"containerPort":8080,"hostPort":0}]},
 "backoffSeconds":1,"backoffFactor":1,"maxLaunchDelaySeconds":1,
 "upgradeStrategy":{"minimumHealthCapacity":0,"maximumOverCapacity":0}}`
	if r := p.postJSON("POST", "/v2/apps", app); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	first := p.waitTask("/stale", "running", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
	port := first.Ports[0]
	for cycle := 0; cycle < 4; cycle++ {
		if r := p.postJSON("PUT", "/v2/apps/stale", `{"instances":0}`); r.status != 200 {
			t.Fatalf("stop: %d %s", r.status, r.body)
		}
		p.waitTask("/stale", "stopped", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_KILLED" })
		p.waitDeployments(30 * time.Second)
		var l net.Listener
		eventually(t, 10*time.Second, "the freed host port", func() (bool, string) {
			var err error
			l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			return err == nil, fmt.Sprint(err)
		})
		before := p.tasks("/stale")[0].ID
		if r := p.postJSON("PUT", "/v2/apps/stale", `{"instances":1}`); r.status != 200 {
			t.Fatalf("start: %d %s", r.status, r.body)
		}
		failed := p.waitTask("/stale", "the launch on a taken port to fail", 30*time.Second, func(t e2eTask) bool {
			return t.ID != before && (t.State == "TASK_FAILED" || t.State == "TASK_RUNNING")
		})
		l.Close()
		if failed.State == "TASK_RUNNING" {
			missing(t, "docker started a container on a host port this test holds (userland-proxy off?): the failed launch this test needs cannot happen")
		}
		next := p.waitTask("/stale", "the next launch running", 30*time.Second, func(t e2eTask) bool {
			return t.ID != failed.ID && t.State == "TASK_RUNNING"
		})
		// It keeps running: no stale exit ends it.
		deadline := time.Now().Add(3 * time.Second)
		for time.Now().Before(deadline) {
			ts := p.tasks("/stale")
			if len(ts) != 1 || ts[0].ID != next.ID || ts[0].State != "TASK_RUNNING" {
				t.Fatalf("cycle %d: task %s did not keep running after the failed launch %s: %+v", cycle, next.ID, failed.ID, ts)
			}
			time.Sleep(100 * time.Millisecond)
		}
		if n := len(runningContainers(t, p.agentID)); n != 1 {
			t.Fatalf("cycle %d: %d containers running, want 1", cycle, n)
		}
	}
}
