package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/api"
)

// sseEvent is one frame of the stream; a comment (keep-alive) has Type
// ":".
type sseEvent struct {
	Type string
	Data map[string]any
	Raw  string
}

// stream is a client of GET /v2/events.
type stream struct {
	t       testing.TB
	header  http.Header
	ch      chan sseEvent
	cancel  context.CancelFunc
	count   atomic.Int64
	mu      sync.Mutex
	seen    []sseEvent
	claimed map[int]bool
}

// subscribe opens GET /v2/events?query and reads it in the background.
func (e *env) subscribe(query string) *stream {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", e.srv.URL+"/v2/events"+query, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatalf("GET /v2/events: %v", err)
	}
	if res.StatusCode != http.StatusOK {
		cancel()
		e.t.Fatalf("GET /v2/events: HTTP %d", res.StatusCode)
	}
	s := &stream{t: e.t, header: res.Header, ch: make(chan sseEvent, 1<<16), cancel: cancel, claimed: map[int]bool{}}
	e.t.Cleanup(cancel)
	go func() {
		defer res.Body.Close()
		defer close(s.ch)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
		var typ, data string
		for sc.Scan() {
			line := strings.TrimSuffix(sc.Text(), "\r")
			switch {
			case strings.HasPrefix(line, ":"):
				s.ch <- sseEvent{Type: ":", Raw: line}
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && typ != "":
				ev := sseEvent{Type: typ, Raw: data}
				if err := json.Unmarshal([]byte(data), &ev.Data); err != nil {
					ev.Data = map[string]any{"unparsable": err.Error()}
				}
				s.count.Add(1)
				s.ch <- ev
				typ, data = "", ""
			}
		}
	}()
	return s
}

// next returns the next frame, failing after timeout; ok is false when
// the stream ended.
func (s *stream) next(timeout time.Duration) (sseEvent, bool) {
	s.t.Helper()
	select {
	case ev, ok := <-s.ch:
		if ok {
			s.mu.Lock()
			s.seen = append(s.seen, ev)
			s.mu.Unlock()
		}
		return ev, ok
	case <-time.After(timeout):
		s.t.Fatalf("no event within %v; seen: %v", timeout, s.types())
	}
	return sseEvent{}, false
}

// waitFor returns the first event of type typ that matches and that no
// earlier waitFor returned, reading more of the stream as needed. Events
// of different types may come in any order.
func (s *stream) waitFor(typ string, match func(map[string]any) bool) map[string]any {
	s.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		s.mu.Lock()
		n := len(s.seen)
		var ev sseEvent
		if i < n {
			ev = s.seen[i]
		}
		s.mu.Unlock()
		if i == n {
			left := time.Until(deadline)
			if left <= 0 {
				s.t.Fatalf("no %s event within the deadline; seen: %v", typ, s.types())
			}
			var ok bool
			if ev, ok = s.next(left); !ok {
				s.t.Fatalf("stream ended while waiting for %s; seen: %v", typ, s.types())
			}
		}
		if ev.Type == typ && !s.claimed[i] && (match == nil || match(ev.Data)) {
			s.claimed[i] = true
			return ev.Data
		}
	}
}

func (s *stream) types() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, ev := range s.seen {
		out = append(out, ev.Type)
	}
	return out
}

// checkFields fails unless the event has every key, a matching eventType
// and Marathon's timestamp.
func checkFields(t testing.TB, typ string, ev map[string]any, keys ...string) {
	t.Helper()
	for _, k := range append(keys, "eventType", "timestamp") {
		if _, ok := ev[k]; !ok {
			t.Fatalf("%s lacks %q: %v", typ, k, ev)
		}
	}
	if ev["eventType"] != typ || !isTimestamp(ev["timestamp"].(string)) {
		t.Fatalf("%s: eventType %v timestamp %v", typ, ev["eventType"], ev["timestamp"])
	}
}

// TestEventsLifecycle: an app's whole life on the stream, with Marathon's
// field names.
func TestEventsLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.subscribe("")
	if ct := s.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("Content-Type %q", ct)
	}
	first, _ := s.next(5 * time.Second)
	if first.Type != "event_stream_attached" {
		t.Fatalf("first event %q, want event_stream_attached", first.Type)
	}
	checkFields(t, "event_stream_attached", first.Data, "remoteAddress")

	r := e.do("POST", "/v2/apps", webApp("/web"))
	expect(t, r, http.StatusCreated, "POST")
	dep := r.Header.Get("Marathon-Deployment-Id")

	post := s.waitFor("api_post_event", nil)
	checkFields(t, "api_post_event", post, "clientIp", "uri", "appDefinition")
	if post["uri"] != "/v2/apps" || get(post, "appDefinition", "id") != "/web" || post["clientIp"] != "127.0.0.1" {
		t.Fatalf("api_post_event: %v", post)
	}
	info := s.waitFor("deployment_info", func(m map[string]any) bool { return get(m, "plan", "id") == dep })
	checkFields(t, "deployment_info", info, "plan", "currentStep")
	if got := actionsOf(get(info, "plan", "steps")); len(got) != 2 || got[0][0] != "StartApplication /web" || got[1][0] != "ScaleApplication /web" {
		t.Fatalf("deployment_info steps: %v", got)
	}
	staging := s.waitFor("status_update_event", func(m map[string]any) bool { return m["taskStatus"] == "TASK_STAGING" })
	running := s.waitFor("status_update_event", func(m map[string]any) bool { return m["taskStatus"] == "TASK_RUNNING" })
	for _, ev := range []map[string]any{staging, running} {
		checkFields(t, "status_update_event", ev, "slaveId", "taskId", "taskStatus", "message", "appId", "host", "ipAddresses", "ports", "version")
		if ev["appId"] != "/web" || ev["slaveId"] != e.a.AgentID() || ev["version"] != e.app("/web")["version"] {
			t.Fatalf("status_update_event: %v", ev)
		}
	}
	task := e.settled("/web", 1)[0]
	if running["taskId"] != task.ID || get(running, "ipAddresses", 0, "ipAddress") != "127.0.0.1" || len(running["ports"].([]any)) != 1 {
		t.Fatalf("TASK_RUNNING event: %v (task %+v)", running, task)
	}
	changed := s.waitFor("instance_changed_event", func(m map[string]any) bool { return m["condition"] == "Running" })
	checkFields(t, "instance_changed_event", changed, "instanceId", "condition", "runSpecId", "agentId", "host", "runSpecVersion")
	if changed["instanceId"] != task.InstanceID || changed["runSpecId"] != "/web" {
		t.Fatalf("instance_changed_event: %v", changed)
	}
	ok := s.waitFor("deployment_success", func(m map[string]any) bool { return m["id"] == dep })
	checkFields(t, "deployment_success", ok, "id", "plan")

	// PUT and PATCH publish api_post_event with the new definition.
	expect(t, e.do("PUT", "/v2/apps/web", `{"cmd":"sleep 5"}`), http.StatusOK, "PUT")
	post = s.waitFor("api_post_event", nil)
	if post["uri"] != "/v2/apps/web" || get(post, "appDefinition", "cmd") != "sleep 5" {
		t.Fatalf("api_post_event of PUT: %v", post)
	}
	e.settled("/web", 1)
	expect(t, e.do("PATCH", "/v2/apps/web", `{"labels":{"a":"b"}}`), http.StatusOK, "PATCH")
	post = s.waitFor("api_post_event", nil)
	if get(post, "appDefinition", "labels", "a") != "b" {
		t.Fatalf("api_post_event of PATCH: %v", post)
	}
	e.settled("/web", 1)
	// A rollback (PUT of a version) is a PUT too.
	v1 := e.do("GET", "/v2/apps/web/versions", nil).obj(t)["versions"].([]any)
	expect(t, e.do("PUT", "/v2/apps/web", map[string]any{"version": v1[len(v1)-1]}), http.StatusOK, "PUT version")
	post = s.waitFor("api_post_event", nil)
	if post["uri"] != "/v2/apps/web" || get(post, "appDefinition", "cmd") != "sleep 1000" {
		t.Fatalf("api_post_event of a rollback: %v", post)
	}
	e.settled("/web", 1)

	// DELETE: StopApplication, the task killed, app_terminated_event.
	r = e.do("DELETE", "/v2/apps/web", nil)
	expect(t, r, http.StatusOK, "DELETE")
	del := r.Header.Get("Marathon-Deployment-Id")
	info = s.waitFor("deployment_info", func(m map[string]any) bool { return get(m, "plan", "id") == del })
	if got := actionsOf(get(info, "plan", "steps")); len(got) != 1 || got[0][0] != "StopApplication /web" {
		t.Fatalf("remove steps: %v", got)
	}
	s.waitFor("status_update_event", func(m map[string]any) bool { return m["taskStatus"] == "TASK_KILLED" && m["appId"] == "/web" })
	term := s.waitFor("app_terminated_event", nil)
	checkFields(t, "app_terminated_event", term, "appId")
	if term["appId"] != "/web" {
		t.Fatalf("app_terminated_event: %v", term)
	}
	s.waitFor("deployment_success", func(m map[string]any) bool { return m["id"] == del })
}

// TestEventsAttachDetach: every stream hears of another client attaching
// (event_stream_attached) and leaving (event_stream_detached), with its
// address as Marathon gives it (no port).
func TestEventsAttachDetach(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	watcher := e.subscribe("?event_type=event_stream_attached&event_type=event_stream_detached")
	own := watcher.waitFor("event_stream_attached", nil)
	if own["remoteAddress"] != "127.0.0.1" {
		t.Fatalf("event_stream_attached: remoteAddress %v, want 127.0.0.1", own["remoteAddress"])
	}
	other := e.subscribe("?event_type=deployment_success")
	ev := watcher.waitFor("event_stream_attached", nil)
	checkFields(t, "event_stream_attached", ev, "remoteAddress")
	other.cancel()
	ev = watcher.waitFor("event_stream_detached", nil)
	checkFields(t, "event_stream_detached", ev, "remoteAddress")
	if ev["remoteAddress"] != "127.0.0.1" {
		t.Fatalf("event_stream_detached: %v", ev)
	}
	var evs []string
	for _, typ := range watcher.types() {
		if typ != ":" { // keep-alive comments
			evs = append(evs, typ)
		}
	}
	if len(evs) != 3 {
		t.Fatalf("watcher saw %v, want its own attach, the other's attach and its detach", evs)
	}
}

// TestEventsFilter: ?event_type= (repeatable) passes only those types,
// event_stream_attached included only when asked for.
func TestEventsFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want := map[string]bool{"deployment_success": true, "app_terminated_event": true}
	s := e.subscribe("?event_type=deployment_success&event_type=app_terminated_event")
	attached := e.subscribe("?event_type=event_stream_attached")
	if ev, _ := attached.next(5 * time.Second); ev.Type != "event_stream_attached" {
		t.Fatalf("filtered on event_stream_attached, got %q", ev.Type)
	}

	e.createApp(webApp("/web"))
	e.settled("/web", 1)
	expect(t, e.do("DELETE", "/v2/apps/web", nil), http.StatusOK, "DELETE")
	s.waitFor("app_terminated_event", nil)
	for _, typ := range s.types() {
		if !want[typ] {
			t.Fatalf("filtered stream delivered %q (all: %v)", typ, s.types())
		}
	}
	if !strings.Contains(strings.Join(s.types(), ","), "deployment_success") {
		t.Fatalf("no deployment_success: %v", s.types())
	}
	select {
	case ev := <-attached.ch:
		if ev.Type != ":" {
			t.Fatalf("stream filtered on event_stream_attached got %q", ev.Type)
		}
	default:
	}
}

// TestEventsDeploymentFailed: a deployment replaced by a forced change
// ends with deployment_failed; the new one is announced by
// deployment_info.
func TestEventsDeploymentFailed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	failing := newTarget(t, http.StatusServiceUnavailable)
	s := e.subscribe("?event_type=deployment_info&event_type=deployment_failed&event_type=deployment_success")
	first := e.createApp(checkedApp("/b", failing.port, 300, 3))
	s.waitFor("deployment_info", func(m map[string]any) bool { return get(m, "plan", "id") == first })
	r := e.do("PUT", "/v2/apps/b?force=true", `{"instances":2}`)
	second, _ := deploymentResult(t, r, http.StatusOK, "forced scale")
	failed := s.waitFor("deployment_failed", nil)
	checkFields(t, "deployment_failed", failed, "id", "plan")
	if failed["id"] != first || get(failed, "plan", "id") != first {
		t.Fatalf("deployment_failed: %v, want the replaced deployment %s", failed, first)
	}
	s.waitFor("deployment_info", func(m map[string]any) bool { return get(m, "plan", "id") == second })
	for _, typ := range s.types() {
		if typ == "deployment_success" {
			t.Fatalf("a replaced deployment was reported a success: %v", s.types())
		}
	}
}

// TestEventsKeepAlive: an idle stream gets comments, which SSE clients
// ignore.
func TestEventsKeepAlive(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAPI(func(c *api.Config) { c.KeepAlive = 50 * time.Millisecond }))
	s := e.subscribe("?event_type=deployment_success")
	for i := 0; i < 3; i++ {
		ev, ok := s.next(5 * time.Second)
		if !ok || ev.Type != ":" {
			t.Fatalf("frame %d of an idle stream: %+v", i, ev)
		}
	}
}

// TestEventsHealth: health_status_changed_event and
// instance_health_changed_event when a task becomes healthy and again when
// it stops being so, failed_health_check_event for
// each counted failure, unhealthy_instance_kill_event before the kill.
func TestEventsHealth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tg := newTarget(t, http.StatusOK)
	s := e.subscribe("?event_type=health_status_changed_event&event_type=failed_health_check_event&event_type=unhealthy_instance_kill_event&event_type=status_update_event&event_type=instance_health_changed_event")
	e.createApp(checkedApp("/hc", tg.port, 0, 2))
	task := e.settled("/hc", 1)[0]

	up := s.waitFor("health_status_changed_event", nil)
	checkFields(t, "health_status_changed_event", up, "appId", "instanceId", "version", "alive")
	if up["alive"] != true || up["appId"] != "/hc" || up["instanceId"] != task.InstanceID || up["version"] != ts(task.Version) {
		t.Fatalf("health_status_changed_event (up): %v", up)
	}

	ih := s.waitFor("instance_health_changed_event", nil)
	checkFields(t, "instance_health_changed_event", ih, "instanceId", "runSpecId", "runSpecVersion", "healthy")
	if ih["healthy"] != true || ih["runSpecId"] != "/hc" || ih["instanceId"] != task.InstanceID || ih["runSpecVersion"] != ts(task.Version) {
		t.Fatalf("instance_health_changed_event (healthy): %v", ih)
	}

	tg.status.Store(http.StatusInternalServerError)
	failed := s.waitFor("failed_health_check_event", nil)
	checkFields(t, "failed_health_check_event", failed, "appId", "taskId", "healthCheck")
	if failed["appId"] != "/hc" || get(failed, "healthCheck", "protocol") != "HTTP" || get(failed, "healthCheck", "path") != "/health" {
		t.Fatalf("failed_health_check_event: %v", failed)
	}
	down := s.waitFor("health_status_changed_event", nil)
	if down["alive"] != false || down["instanceId"] != task.InstanceID {
		t.Fatalf("health_status_changed_event (down): %v", down)
	}
	if ih := s.waitFor("instance_health_changed_event", nil); ih["healthy"] != false || ih["instanceId"] != task.InstanceID {
		t.Fatalf("instance_health_changed_event (unhealthy): %v", ih)
	}
	kill := s.waitFor("unhealthy_instance_kill_event", nil)
	checkFields(t, "unhealthy_instance_kill_event", kill, "appId", "taskId", "instanceId", "version", "reason", "host", "slaveId")
	if kill["taskId"] != task.ID || kill["instanceId"] != task.InstanceID || kill["reason"] != "500 Internal Server Error" || kill["slaveId"] != e.a.AgentID() {
		t.Fatalf("unhealthy_instance_kill_event: %v", kill)
	}
	s.waitFor("status_update_event", func(m map[string]any) bool { return m["taskId"] == task.ID && m["taskStatus"] == "TASK_KILLED" })

	// The replacement becomes healthy again once the target is.
	tg.status.Store(http.StatusOK)
	s.waitFor("status_update_event", func(m map[string]any) bool { return m["taskId"] != task.ID && m["taskStatus"] == "TASK_RUNNING" })
	s.waitFor("health_status_changed_event", func(m map[string]any) bool { return m["alive"] == true })
	waitUntil(t, "tasksHealthy 1 after recovery", func() bool { return num(e.app("/hc")["tasksHealthy"]) == 1 })
}

// TestEventsSlowClient: a client that never reads cannot stall the agent
// or the other clients; the bus drops it once its buffer is full and its
// connection is closed.
func TestEventsSlowClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u, _ := url.Parse(e.srv.URL)

	// The slow client: asks for the stream and never reads a byte.
	slow, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /v2/events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", u.Host)
	waitUntil(t, "the slow client to subscribe", func() bool { return e.a.Bus().Subscribers() == 1 })

	// The flood is of a type Marathon has (the stream's answers are checked
	// against its schema): event_stream_attached, numbered in remoteAddress.
	fast := e.subscribe("?event_type=event_stream_attached&event_type=deployment_success")
	waitUntil(t, "the fast client to subscribe", func() bool { return e.a.Bus().Subscribers() == 2 })

	// Thousands of events, in bursts that the fast client keeps up with,
	// until the slow client's buffer has overflowed; each burst must reach
	// the fast client promptly, and the API must answer meanwhile.
	const burst, most = 200, 50000
	pad := strings.Repeat("x", 2<<10)
	start := time.Now()
	sent := 0
	for bursts := 0; sent < 2*agent.SubscriberBuffer || e.a.Bus().Subscribers() > 1 || bursts < 2; {
		if e.a.Bus().Subscribers() == 1 {
			bursts++ // bursts after the drop
		}
		if sent >= most {
			t.Fatalf("the slow client was not dropped after %d events", sent)
		}
		for i := 0; i < burst; i++ {
			e.a.Bus().Publish("event_stream_attached", map[string]any{"remoteAddress": fmt.Sprintf("flood-%d-%s", sent, pad)})
			sent++
		}
		deadline := time.Now().Add(5 * time.Second)
		for fast.count.Load() < int64(sent) {
			if time.Now().After(deadline) {
				t.Fatalf("the fast client got %d of %d events within 5 s of the burst", fast.count.Load(), sent)
			}
			time.Sleep(time.Millisecond)
		}
		if sent%1000 == 0 {
			t0 := time.Now()
			expect(t, e.do("GET", "/v2/apps", nil), http.StatusOK, "GET /v2/apps during the flood")
			if d := time.Since(t0); d > 2*time.Second {
				t.Fatalf("GET /v2/apps took %v during the flood", d)
			}
		}
	}
	total := sent
	t.Logf("%d events of %d KiB delivered to the fast client in %v", total, len(pad)>>10, time.Since(start))
	// Every event arrived, in order.
	n := 0
	for n < total {
		ev, ok := fast.next(5 * time.Second)
		if !ok {
			t.Fatal("the fast stream ended")
		}
		addr, _ := ev.Data["remoteAddress"].(string)
		if ev.Type != "event_stream_attached" || !strings.HasPrefix(addr, "flood-") {
			continue
		}
		if got := strings.SplitN(addr, "-", 3)[1]; got != strconv.Itoa(n) {
			t.Fatalf("event %d arrived as number %s", n, got)
		}
		n++
	}

	// The slow client was dropped (above) and its connection closed.
	_ = slow.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.Copy(io.Discard, slow)
	if err != nil {
		t.Fatalf("the slow client's connection was not closed: %v after %d bytes", err, got)
	}
	if got >= int64(total*len(pad)) {
		t.Fatalf("the slow client got all %d bytes; the test did not make it fall behind", got)
	}

	// The agent still works and the fast client still gets its events.
	e.createApp(webApp("/after"))
	e.settled("/after", 1)
	fast.waitFor("deployment_success", nil)
}

// TestEventsSubscriberGone: a client that leaves is unsubscribed.
func TestEventsSubscriberGone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := e.subscribe("")
	s.next(5 * time.Second)
	waitUntil(t, "one subscriber", func() bool { return e.a.Bus().Subscribers() == 1 })
	s.cancel()
	waitUntil(t, "the subscriber to be gone after the client left", func() bool { return e.a.Bus().Subscribers() == 0 })
}
