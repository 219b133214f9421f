package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzAPIRequest sends arbitrary requests (method, path, query, body) to
// the API over a real agent. The handler turns a panic into a 500, so a
// 500 (or any 5xx but a 503 for a request that ran out of time) is a
// failure, and so is a JSON answer that is not valid JSON.
//
// Run it longer with: go test -run '^$' -fuzz FuzzAPIRequest -fuzztime 60s ./agent/api
func FuzzAPIRequest(f *testing.F) {
	postgres, err := os.ReadFile(filepath.Join("..", "..", "testdata", "postgres.marathon.json"))
	if err != nil {
		f.Fatal(err)
	}
	js := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	task := "pg.instance-00000000-0000-4000-8000-000000000000._app.1"
	seeds := []struct{ method, path, query, body string }{
		{"GET", "/ping", "", ""},
		{"GET", "/v2/info", "", ""},
		{"GET", "/v2/leader", "", ""},
		{"GET", "/v2/apps", "", ""},
		{"GET", "/v2/apps", "embed=apps.tasks&embed=apps.lastTaskFailure&id=pg&label=a==b,c in (d, e)", ""},
		{"GET", "/v2/apps", "label=a notin (b", ""},
		{"GET", "/v2/apps/postgres", "", ""},
		{"POST", "/v2/apps", "", string(postgres)},
		{"POST", "/v2/apps", "", js(webApp("/web"))},
		{"POST", "/v2/apps", "force=true", js(residentApp("/pg"))},
		{"POST", "/v2/apps", "", js(checkedApp("/hc", 9, 300, 3))},
		{"POST", "/v2/apps", "", js(hostVolumeApp("/hv", "/data", "../x"))},
		{"POST", "/v2/apps", "", js(persistentApp("/pv", "../../etc"))},
		{"POST", "/v2/apps", "", `{"id":"/a","id":"/b"}`},
		{"POST", "/v2/apps", "", `{"id":"/x","cpus":1e999,"container":{"docker":{"image":"x"}}}`},
		{"PUT", "/v2/apps/postgres", "", `{"id":"/postgres","instances":0,"ports":null,"dependencies":null}`},
		{"PUT", "/v2/apps/postgres", "force=true", `{"id":"postgres","instances":1}`},
		{"PUT", "/v2/apps/web", "partialUpdate=false", js(webApp("/web"))},
		{"PUT", "/v2/apps/web", "", `{"version":"2026-01-01T00:00:00.000Z"}`},
		{"PUT", "/v2/apps/pg", "", `{"cpus":2}`},
		{"PATCH", "/v2/apps/web", "", `{"env":{"A":"1"},"labels":{"x":"y"}}`},
		{"DELETE", "/v2/apps/web", "force=true", ""},
		{"POST", "/v2/apps/postgres/restart", "", `{}`},
		{"GET", "/v2/apps/postgres/versions", "", ""},
		{"GET", "/v2/apps/postgres/versions/2026-01-01T00:00:00.000Z", "", ""},
		{"GET", "/v2/apps/postgres/tasks", "", ""},
		{"DELETE", "/v2/apps/postgres/tasks", "host=*&scale=true", ""},
		{"DELETE", "/v2/apps/postgres/tasks/" + task, "wipe=true", ""},
		{"GET", "/v2/tasks", "status=running&status[]=staging", ""},
		{"GET", "/v2/groups", "embed=group.apps.tasks", ""},
		{"GET", "/v2/groups/shop/../db", "", ""},
		{"DELETE", "/v2/groups/shop", "force=true", ""},
		{"POST", "/v2/tasks/delete", "scale=True", `{"ids":["` + task + `"]}`},
		{"POST", "/v2/tasks/delete", "wipe=True&scale=True", `{"ids":["nope"]}`},
		{"GET", "/v2/deployments", "", ""},
		{"DELETE", "/v2/deployments/97c136bf-5a28-4821-9d94-480d9fbb01c8", "force=true", ""},
		{"GET", "/v2/queue", "embed=lastUnusedOffers", ""},
		{"DELETE", "/v2/queue/postgres/delay", "", ""},
		{"GET", "/v2/events", "event_type=status_update_event", ""},
		{"GET", "/files/read", "task=" + task + "&path=stdout&offset=-1", ""},
		{"GET", "/mesolite/v1/volumes", "usage=false", ""},
		{"DELETE", "/mesolite/v1/volumes/pg%23data%23x", "", ""},
		{"GET", "/mesolite/v1/status", "", ""},
		{"GET", "/service/marathon/v2/apps/x/../../etc", "", ""},
		{"PUT", "/v2/apps/a%00b", "", `{}`},
		{"BREW", "/v2/apps", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.body)
	}
	e := newEnv(f)
	f.Fuzz(func(t *testing.T, method, path, query, body string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		// A loopback Host and a JSON body, as the API's clients send: the
		// guard's refusals are tested on their own.
		u := "http://127.0.0.1:8080" + path
		if query != "" {
			u += "?" + query
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		clean := strings.TrimSuffix(strings.TrimPrefix(path, "/service/marathon"), "/")
		if clean == "/v2/events" {
			// A stream ends only when its client leaves: leave at once.
			cancel()
		}
		req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(body))
		if err != nil {
			return // not a request an HTTP server would parse
		}
		req.RemoteAddr = "127.0.0.1:40000"
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		e.api.ServeHTTP(rec, req)
		res := rec.Result()
		if res.StatusCode >= 500 && !(res.StatusCode == http.StatusServiceUnavailable && ctx.Err() != nil) {
			t.Fatalf("%s %q ?%q %q: HTTP %d %s", method, path, query, truncate(body, 300), res.StatusCode, truncate(rec.Body.String(), 500))
		}
		if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %q: HTTP %d with invalid JSON %q", method, path, res.StatusCode, truncate(rec.Body.String(), 500))
		}
	})
}
