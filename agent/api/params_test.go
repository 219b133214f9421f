package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/mesolite/mesolite/agent"
)

// paramApp is a web app with the given docker parameters.
func paramApp(id string, params ...[2]string) map[string]any {
	ps := make([]any, len(params))
	for i, p := range params {
		ps[i] = map[string]any{"key": p[0], "value": p[1]}
	}
	return with(webApp(id), "container", map[string]any{"type": "DOCKER", "docker": map[string]any{"image": "mesolite/testapp:latest", "parameters": ps}})
}

// TestDockerParametersAtPost: every accepted docker parameter with a good
// value is taken and reaches the runtime; a bad value of each, a reserved
// label and an unknown key are a 422 at POST naming the entry's value (or
// key), and nothing is created.
func TestDockerParametersAtPost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	good := [][2]string{
		{"label", "team=db"}, {"env", "EXTRA=1"}, {"user", "999:999"}, {"hostname", "db-1"}, {"workdir", "/srv"},
		{"init", "true"}, {"shm-size", "64m"}, {"memory-swap", "-1"}, {"ulimit", "nofile=1024:2048"},
		{"add-host", "db:10.0.0.1"}, {"entrypoint", "/bin/sh"}, {"stop-signal", "SIGINT"}, {"stop-timeout", "30"},
		{"tmpfs", "/run:size=1m"}, {"read-only", "false"},
	}
	expect(t, e.do("POST", "/v2/apps", paramApp("/good", good...)), http.StatusCreated, "POST with every parameter")
	task := e.settled("/good", 1)[0]
	spec := e.rt.Spec(task.ID)
	if spec == nil || len(spec.Parameters) != len(good) {
		t.Fatalf("the runtime got parameters %+v, want the %d given", spec, len(good))
	}
	for i, p := range good {
		if spec.Parameters[i].Key != p[0] || spec.Parameters[i].Value != p[1] {
			t.Errorf("parameter %d reached the runtime as %+v, want %v", i, spec.Parameters[i], p)
		}
	}

	bad := []struct {
		key, value, says string
	}{
		{"label", "mesolite.agent_id=evil", "reserved"},
		{"label", "mesolite.task_id=x", "reserved"},
		{"label", "MESOS_TASK_ID=x", "reserved"},
		{"label", "=x", "key=value"},
		{"env", "NOVALUE", "NAME=value"},
		{"user", "a b", "user name"},
		{"hostname", "-bad-", "host name"},
		{"workdir", "relative", "absolute"},
		{"init", "yes", "true or false"},
		{"shm-size", "lots", "not a size"},
		{"memory-swap", "lots", "not a size"},
		{"ulimit", "nofile=many", "ulimit"},
		{"ulimit", "bogus=1", "unknown resource"},
		{"add-host", "db", "host:ip"},
		{"entrypoint", "", "empty"},
		{"stop-signal", "sigterm", "signal"},
		{"stop-timeout", "soon", "seconds"},
		{"tmpfs", "run", "absolute"},
		{"read-only", "ro", "true or false"},
	}
	keys := map[string]bool{}
	for i, c := range bad {
		keys[c.key] = true
		id := fmt.Sprintf("/bad-%d", i)
		r := e.do("POST", "/v2/apps", paramApp(id, [2]string{"label", "ok=1"}, [2]string{c.key, c.value}))
		expectDetail(t, r, "/container/docker/parameters(1)/value", c.key, c.says)
		if e.a.Snapshot().App(id) != nil {
			t.Fatalf("%s=%q: the app was created", c.key, c.value)
		}
	}
	for _, p := range good {
		if !keys[p[0]] {
			t.Errorf("no bad value of %s is tried", p[0])
		}
	}
	expectDetail(t, e.do("POST", "/v2/apps", paramApp("/unknown", [2]string{"cap-add", "ALL"})), "/container/docker/parameters(0)/key", "cap-add", "not supported")
	// A change is checked as a creation is.
	r := e.do("PUT", "/v2/apps/good", map[string]any{"container": paramApp("/good", [2]string{"shm-size", "lots"})["container"]})
	expectDetail(t, r, "/container/docker/parameters(0)/value", "shm-size", "not a size")
	if got := e.a.Snapshot().App("/good").Spec.Container.Docker.Parameters; len(got) != len(good) {
		t.Fatalf("a refused change changed the app: %+v", got)
	}
}

// expectDetail checks a 422 with a detail at path whose message names
// the key and says what.
func expectDetail(t *testing.T, r *resp, path, key, says string) {
	t.Helper()
	if r.Status != http.StatusUnprocessableEntity {
		t.Fatalf("want 422 at %s, got %s", path, r)
	}
	for _, d := range r.obj(t)["details"].([]any) {
		if get(d, "path") != path {
			continue
		}
		for _, m := range get(d, "errors").([]any) {
			if s := m.(string); strings.Contains(s, key) && strings.Contains(s, says) {
				return
			}
		}
	}
	t.Fatalf("no detail at %s naming %q and saying %q: %s", path, key, says, r)
}

// TestWaitingReasonOnlyWhenAsked: an app that waits for resources says why
// in its JSON with ?embed=mesolite, and not to a Marathon client that did
// not ask (clients such as marathon-python refuse unknown fields).
func TestWaitingReasonOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAgent(func(c *agent.Config) { c.MemMiB = 64 }))
	expect(t, e.do("POST", "/v2/apps", with(webApp("/big"), "mem", 128)), http.StatusCreated, "POST /big")
	waitUntil(t, "/big to wait", func() bool { return e.a.Snapshot().App("/big").Waiting != "" })
	want := e.a.Snapshot().App("/big").Waiting
	for _, path := range []string{"/v2/apps/big?embed=mesolite", "/v2/apps?embed=apps.mesolite"} {
		r := e.do("GET", path, nil)
		expect(t, r, http.StatusOK, "GET "+path)
		if !strings.Contains(string(r.Body), `"waitingReason":"`+want+`"`) {
			t.Fatalf("GET %s does not say why the app waits (%q): %s", path, want, r)
		}
	}
	for _, path := range []string{"/v2/apps/big", "/v2/apps?embed=apps.tasks", "/v2/groups"} {
		r := e.do("GET", path, nil)
		expect(t, r, http.StatusOK, "GET "+path)
		if strings.Contains(string(r.Body), "waitingReason") {
			t.Fatalf("GET %s renders mesolite's fields unasked: %s", path, r)
		}
	}
}
