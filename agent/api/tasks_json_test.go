package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/mesolite/mesolite/agent/api"
	"github.com/mesolite/mesolite/agent/marathon"
)

// TestPlainTasksJSON: GET /v2/tasks, written from each task's cached JSON,
// is byte for byte what encoding the tasks would give, filtered or not,
// with a Content-Length that matches.
func TestPlainTasksJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	get := func(path string) string {
		t.Helper()
		r := e.do("GET", path, nil)
		expect(t, r, http.StatusOK, "GET "+path)
		if cl := r.Header.Get("Content-Length"); cl != "" && cl != fmt.Sprint(len(r.Body)) {
			t.Fatalf("GET %s: Content-Length %s, body of %d bytes", path, cl, len(r.Body))
		}
		return string(r.Body)
	}
	if got := get("/v2/tasks"); got != `{"tasks":[]}` {
		t.Fatalf("no tasks: %s", got)
	}
	for i := 0; i < 3; i++ {
		app := webApp(fmt.Sprintf("/t/app-%d", i))
		app["instances"] = 2
		e.createApp(app)
		e.settled(app["id"].(string), 2)
	}
	for _, path := range []string{"/v2/tasks", "/v2/tasks?status=running", "/v2/tasks?status=staging"} {
		body := get(path) // twice: the second answer comes from the cache
		if again := get(path); again != body {
			t.Fatalf("%s changed between two requests", path)
		}
		plain := []*marathon.Task{}
		for _, tv := range e.a.Snapshot().Tasks {
			if path != "/v2/tasks?status=staging" {
				plain = append(plain, api.RenderTask(tv))
			}
		}
		want, _ := json.Marshal(map[string]any{"tasks": plain})
		if body != string(want) {
			t.Fatalf("GET %s:\n got %s\nwant %s", path, body, want)
		}
	}
}
