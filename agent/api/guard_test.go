package api

import (
	"crypto/tls"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestGuardHosts(t *testing.T) {
	loop := NewGuard("127.0.0.1:8080", "127.0.0.1", []string{"Mesolite.Test"}, nil)
	all := NewGuard("0.0.0.0:8080", "box.lan", nil, nil)
	named := NewGuard("myhost:8080", "127.0.0.1", nil, nil)
	for _, c := range []struct {
		g    *Guard
		host string
		ok   bool
	}{
		{loop, "127.0.0.1:8080", true},
		{loop, "127.0.0.1", true},
		{loop, "127.1.2.3:8080", true},
		{loop, "[::1]:8080", true},
		{loop, "[::1]", true},
		{loop, "localhost:8080", true},
		{loop, "LocalHost", true},
		{loop, "localhost.:8080", true},
		{loop, "ui.localhost:8080", true},
		{loop, "mesolite.test:8080", true},
		{loop, "", true},
		{loop, "evil.example:8080", false},
		{loop, "localhost.evil.example", false},
		{loop, "127.0.0.1.nip.io:8080", false},
		{loop, "mesolite.test.evil.example", false},
		{loop, "10.0.0.5:8080", false},
		{loop, "0x7f000001:8080", false},
		{all, "10.0.0.5:8080", true},
		{all, "[fe80::1]:8080", true},
		{all, "box.lan:8080", true},
		{all, "evil.example:8080", false},
		{named, "myhost:8080", true},
		{named, "MYHOST", true},
		{named, "otherhost:8080", false},
	} {
		if got := c.g.hostAllowed(c.host); got != c.ok {
			t.Errorf("listen %s: Host %q allowed = %v, want %v", c.g.listenHost, c.host, got, c.ok)
		}
	}
}

func TestGuardCheck(t *testing.T) {
	g := NewGuard("127.0.0.1:8080", "127.0.0.1", nil, []string{"http://localhost:3000/"})
	for _, c := range []struct {
		name    string
		method  string
		host    string
		headers map[string]string
		body    string
		tls     bool
		status  int // 0: passes
		acao    string
	}{
		{name: "GET", method: "GET", host: "127.0.0.1:8080"},
		{name: "JSON POST", method: "POST", host: "127.0.0.1:8080", headers: map[string]string{"Content-Type": "application/json"}, body: "{}"},
		{name: "JSON POST with charset", method: "POST", host: "127.0.0.1:8080", headers: map[string]string{"Content-Type": "Application/JSON; charset=UTF-8"}, body: "{}"},
		{name: "text POST", method: "POST", host: "127.0.0.1:8080", headers: map[string]string{"Content-Type": "text/plain;charset=UTF-8"}, body: "{}", status: 415},
		{name: "form PUT", method: "PUT", host: "127.0.0.1:8080", headers: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "a=b", status: 415},
		{name: "PATCH without type", method: "PATCH", host: "127.0.0.1:8080", body: "{}", status: 415},
		{name: "bad type", method: "POST", host: "127.0.0.1:8080", headers: map[string]string{"Content-Type": "application/json; ;"}, body: "{}", status: 415},
		{name: "bodiless POST", method: "POST", host: "127.0.0.1:8080"},
		{name: "bodiless POST typed text", method: "POST", host: "127.0.0.1:8080", headers: map[string]string{"Content-Type": "text/plain"}, status: 415},
		{name: "DELETE", method: "DELETE", host: "127.0.0.1:8080"},
		{name: "rebinding", method: "GET", host: "evil.example:8080", status: 403},
		{name: "same origin", method: "POST", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "http://127.0.0.1:8080", "Content-Type": "application/json"}, body: "{}"},
		{name: "same origin by name", method: "DELETE", host: "localhost:8080", headers: map[string]string{"Origin": "http://localhost:8080"}},
		{name: "same origin over TLS", method: "GET", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "https://127.0.0.1:8080"}, tls: true},
		{name: "scheme differs", method: "GET", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "https://127.0.0.1:8080"}, status: 403},
		{name: "port differs", method: "GET", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "http://127.0.0.1:9090"}, status: 403},
		{name: "other site", method: "POST", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "http://evil.example", "Content-Type": "text/plain"}, body: "{}", status: 403},
		{name: "null origin", method: "GET", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "null"}, status: 403},
		{name: "origin with path", method: "GET", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "http://127.0.0.1:8080/x"}, status: 403},
		{name: "cross-site without Origin", method: "POST", host: "127.0.0.1:8080", headers: map[string]string{"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}, body: "{}", status: 403},
		{name: "cross-site navigation", method: "GET", host: "127.0.0.1:8080", headers: map[string]string{"Sec-Fetch-Site": "cross-site"}},
		{name: "listed origin", method: "GET", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "http://LOCALHOST:3000"}, acao: "http://LOCALHOST:3000"},
		{name: "listed origin preflight", method: "OPTIONS", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "http://localhost:3000", "Access-Control-Request-Method": "PUT"}, status: 204, acao: "http://localhost:3000"},
		{name: "listed origin text", method: "POST", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "http://localhost:3000", "Content-Type": "text/plain"}, body: "{}", status: 415, acao: "http://localhost:3000"},
		{name: "unlisted preflight", method: "OPTIONS", host: "127.0.0.1:8080", headers: map[string]string{"Origin": "http://localhost:3001", "Access-Control-Request-Method": "PUT"}, status: 403},
	} {
		r := httptest.NewRequest(c.method, "http://x/v2/apps", strings.NewReader(c.body))
		if c.body == "" {
			r = httptest.NewRequest(c.method, "http://x/v2/apps", nil)
		}
		r.Host = c.host
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		for k, v := range c.headers {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		passed := g.Check(w, r)
		status := 0
		if !passed {
			status = w.Code
		}
		if status != c.status {
			t.Errorf("%s: status %d (passed %v), want %d; %s", c.name, status, passed, c.status, w.Body)
		}
		if got := w.Header().Get("Access-Control-Allow-Origin"); got != c.acao {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", c.name, got, c.acao)
		}
		if status == 415 && !strings.Contains(w.Body.String(), `"message":"Unsupported Media Type"`) {
			t.Errorf("%s: 415 body %s", c.name, w.Body)
		}
		if status == 403 && !strings.Contains(w.Body.String(), "[security] allowed_") {
			t.Errorf("%s: 403 body does not say what to allow: %s", c.name, w.Body)
		}
		if c.status == 204 && !strings.Contains(w.Header().Get("Access-Control-Allow-Methods"), "PUT") {
			t.Errorf("%s: preflight methods %q", c.name, w.Header().Get("Access-Control-Allow-Methods"))
		}
	}
}
