package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mesolite/mesolite/agent/api"
)

// TestToken: with a token configured, every endpoint but /ping wants it,
// as DC/OS clients send it ("token=…") or as a Bearer token.
func TestToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withAPI(func(c *api.Config) { c.Token = "s3cret" }))
	paths := []string{"/v2/apps", "/v2/info", "/v2/tasks", "/v2/deployments", "/v2/queue", "/service/marathon/v2/apps", "/mesolite/v1/status"}

	for _, p := range paths {
		r := e.do("GET", p, nil)
		m := expectMessageContains(t, r, http.StatusUnauthorized, "Authorization: token=")
		if !strings.Contains(m, "MESOLITE_TOKEN") {
			t.Fatalf("401 message %q does not say how the CLI sends it", m)
		}
		if r.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("401 without WWW-Authenticate")
		}
	}
	for _, auth := range []string{"token=s3cret", "Bearer s3cret"} {
		for _, p := range paths {
			expect(t, e.do("GET", p, nil, "Authorization", auth), http.StatusOK, p+" with "+auth)
		}
	}
	for _, auth := range []string{"token=wrong", "Bearer wrong", "token=s3cret2", "token=S3CRET", "Bearer  s3cret", "Basic czNjcmV0", "s3cret", "token=", "Bearer", "bearer s3cret "} {
		r := e.do("GET", "/v2/apps", nil, "Authorization", auth)
		expectMessageContains(t, r, http.StatusUnauthorized, "Authorization")
	}
	// A write without the token changes nothing.
	expect(t, e.do("POST", "/v2/apps", webApp("/x")), http.StatusUnauthorized, "POST without the token")
	expect(t, e.do("POST", "/v2/apps", webApp("/x"), "Authorization", "token=bad"), http.StatusUnauthorized, "POST with a bad token")
	e.nothingCreated("requests without the token")
	expect(t, e.do("POST", "/v2/apps", webApp("/x"), "Authorization", "token=s3cret"), http.StatusCreated, "POST with the token")

	// The event stream too.
	expect(t, e.do("GET", "/v2/events", nil, "Accept", "text/event-stream"), http.StatusUnauthorized, "events without the token")

	// /ping stays open (load balancers and health checks use it).
	for _, p := range []string{"/ping", "/service/marathon/ping"} {
		r := e.do("GET", p, nil)
		if expect(t, r, http.StatusOK, p); string(r.Body) != "pong\n" {
			t.Fatalf("%s: %q", p, r.Body)
		}
	}
}

// TestNoToken: without a token configured, no Authorization is needed
// and any sent is ignored.
func TestNoToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	expect(t, e.do("GET", "/v2/apps", nil), http.StatusOK, "no token")
	expect(t, e.do("GET", "/v2/apps", nil, "Authorization", "token=whatever"), http.StatusOK, "a token nobody asked for")
}

func expectMessageContains(t testing.TB, r *resp, status int, part string) string {
	t.Helper()
	expect(t, r, status, part)
	m, _ := r.obj(t)["message"].(string)
	if !strings.Contains(m, part) {
		t.Fatalf("message %q does not contain %q", m, part)
	}
	return m
}
