package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mesolite/mesolite/agent"
	"github.com/mesolite/mesolite/agent/api"
	"github.com/mesolite/mesolite/metrics"
)

// TestMetricsRoute: /metrics answers Prometheus's text format behind the
// same token as the API, and counts requests by route pattern.
func TestMetricsRoute(t *testing.T) {
	t.Parallel()
	m := metrics.New("test")
	e := newEnv(t,
		withAPI(func(c *api.Config) { c.Token = "s3cret"; c.Metrics = m }),
		withAgent(func(c *agent.Config) { c.Metrics = m }))
	expect(t, e.do("GET", "/metrics", nil), http.StatusUnauthorized, "/metrics without the token")
	expect(t, e.do("GET", "/v2/apps/nope", nil, "Authorization", "Bearer s3cret"), http.StatusNotFound, "an app that is not there")
	r := e.do("GET", "/metrics", nil, "Authorization", "Bearer s3cret")
	expect(t, r, http.StatusOK, "/metrics with the token")
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q", ct)
	}
	for _, want := range []string{
		`mesolite_api_requests_total{code="404",method="GET",route="/v2/apps/{id}"} 1`,
		`mesolite_api_requests_total{code="401",method="GET",route="/metrics"} 1`,
		`mesolite_apps 0`,
		`mesolite_resources_offered{resource="cpus"} 4`,
		`mesolite_build_info{version="test"} 1`,
	} {
		if !strings.Contains(string(r.Body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// Without metrics, /metrics is not there.
	plain := newEnv(t)
	expect(t, plain.do("GET", "/metrics", nil), http.StatusNotFound, "/metrics without metrics")
}

func TestRoutePattern(t *testing.T) {
	t.Parallel()
	for p, want := range map[string]string{
		"/v2/apps":                               "/v2/apps",
		"/v2/apps/":                              "/v2/apps",
		"/v2/apps/shop/db":                       "/v2/apps/{id}",
		"/v2/apps/shop/db/restart":               "/v2/apps/{id}/restart",
		"/v2/apps/db/tasks":                      "/v2/apps/{id}/tasks",
		"/v2/apps/db/tasks/db.instance-x._app.1": "/v2/apps/{id}/tasks/{taskId}",
		"/v2/apps/db/versions":                   "/v2/apps/{id}/versions",
		"/v2/apps/db/versions/2026-01-01":        "/v2/apps/{id}/versions/{version}",
		"/v2/deployments/abc":                    "/v2/deployments/{id}",
		"/v2/queue/db/delay":                     "/v2/queue/{id}/delay",
		"/v2/groups/shop":                        "/v2/groups/{id}",
		"/mesolite/v1/volumes/db%23data%23x":     "/mesolite/v1/volumes/{id}",
		"/ui/js/main.js":                         "/ui/",
		"/v2/whatever/123":                       "other",
		"/files/read":                            "/files/read",
	} {
		if got := api.RoutePattern(p); got != want {
			t.Errorf("RoutePattern(%q) = %q, want %q", p, got, want)
		}
	}
}
