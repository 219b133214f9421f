package ui

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func serve(t *testing.T, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	Serve(w, r, strings.TrimPrefix(path, "/service/marathon"))
	return w
}

func TestServe(t *testing.T) {
	for _, c := range []struct {
		path, ctype string
	}{
		{"/ui/", "text/html; charset=utf-8"},
		{"/ui/index.html", "text/html; charset=utf-8"},
		{"/ui/app.css", "text/css; charset=utf-8"},
		{"/ui/js/main.js", "text/javascript; charset=utf-8"},
		{"/ui/favicon.svg", "image/svg+xml"},
		{"/ui/defaults.json", "application/json"},
		{"/service/marathon/ui/", "text/html; charset=utf-8"},
	} {
		w := serve(t, http.MethodGet, c.path, nil)
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != c.ctype {
			t.Errorf("GET %s: %d %q, want 200 %q", c.path, w.Code, w.Header().Get("Content-Type"), c.ctype)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "connect-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", c.path, csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", c.path)
		}
	}

	// A browser revalidates instead of downloading again.
	w := serve(t, http.MethodGet, "/ui/app.css", nil)
	etag := w.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if w := serve(t, http.MethodGet, "/ui/app.css", map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
		t.Errorf("GET with If-None-Match: %d, want 304", w.Code)
	}

	if w := serve(t, http.MethodGet, "/ui", nil); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/ui/" {
		t.Errorf("GET /ui: %d %q, want a redirect to /ui/", w.Code, w.Header().Get("Location"))
	}
	if w := serve(t, http.MethodGet, "/service/marathon/ui", nil); w.Header().Get("Location") != "/service/marathon/ui/" {
		t.Errorf("GET /service/marathon/ui: redirect to %q", w.Header().Get("Location"))
	}
	for _, p := range []string{"/ui/nope.js", "/ui/../ui.go", "/ui/js/../../ui.go", "/ui/static/index.html"} {
		if w := serve(t, http.MethodGet, p, nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		if w := serve(t, m, "/ui/", nil); w.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s /ui/: %d, want 405", m, w.Code)
		}
	}
}

func TestServes(t *testing.T) {
	for p, want := range map[string]bool{"/ui": true, "/ui/": true, "/ui/js/main.js": true, "/uix": false, "/v2/apps": false, "/": false} {
		if Serves(p) != want {
			t.Errorf("Serves(%q) = %v", p, !want)
		}
	}
	for accept, want := range map[string]bool{
		"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8": true,
		"application/json": false, "*/*": false, "": false,
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header.Set("Accept", accept)
		if WantsHTML(r) != want {
			t.Errorf("WantsHTML(Accept: %q) = %v", accept, !want)
		}
	}
}

// TestOffline: nothing in the dashboard loads from another host, and
// every file index.html and the modules name is embedded.
func TestOffline(t *testing.T) {
	remote := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//|from\s+["'](https?:)?//|import\(\s*["'](https?:)?//`)
	local := regexp.MustCompile(`(?:src|href)="([^"#:]+)"|from '(\.[^']+)'`)
	files := load()
	for name, f := range files {
		if !strings.HasSuffix(name, ".html") && !strings.HasSuffix(name, ".css") && !strings.HasSuffix(name, ".js") {
			continue
		}
		if m := remote.FindString(string(f.data)); m != "" {
			t.Errorf("%s loads from elsewhere: %q", name, m)
		}
		dir := ""
		if i := strings.LastIndex(name, "/"); i >= 0 {
			dir = name[:i+1]
		}
		for _, m := range local.FindAllStringSubmatch(string(f.data), -1) {
			ref := m[1] + m[2]
			target := cleanJoin(dir, ref)
			if _, ok := files[target]; !ok {
				t.Errorf("%s refers to %s (%s), which is not embedded", name, ref, target)
			}
		}
	}
}

func cleanJoin(dir, ref string) string {
	parts := strings.Split(dir+ref, "/")
	var out []string
	for _, p := range parts {
		switch p {
		case "", ".":
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		default:
			out = append(out, p)
		}
	}
	return strings.Join(out, "/")
}

// TestExamples: the definitions the editor offers are the tutorial's.
func TestExamples(t *testing.T) {
	for ex, src := range map[string]string{
		"static/examples/testapp.json":          "../../../testdata/testapp.marathon.json",
		"static/examples/postgres-offline.json": "../../../testdata/postgres-offline.marathon.json",
	} {
		got, err := fs.ReadFile(static, ex)
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from %s: copy it again", ex, src)
		}
	}
}

// TestDefaults: the defaults the dashboard compares a definition with are
// Marathon's, without the fields a user must give.
func TestDefaults(t *testing.T) {
	var d map[string]map[string]any
	if err := json.Unmarshal(defaultsJSON(), &d); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"host", "resident"} {
		doc := d[kind]
		if doc == nil {
			t.Fatalf("no %s defaults: %s", kind, defaultsJSON())
		}
		if doc["cpus"] != 1.0 || doc["mem"] != 128.0 || doc["instances"] != 1.0 || doc["backoffFactor"] != 1.15 {
			t.Errorf("%s defaults: cpus %v mem %v instances %v backoffFactor %v", kind, doc["cpus"], doc["mem"], doc["instances"], doc["backoffFactor"])
		}
		if _, ok := doc["id"]; ok {
			t.Errorf("%s defaults keep the id", kind)
		}
		docker := doc["container"].(map[string]any)["docker"].(map[string]any)
		if _, ok := docker["image"]; ok || docker["forcePullImage"] != false {
			t.Errorf("%s defaults: container.docker %v", kind, docker)
		}
		hc := doc["healthChecks"].([]any)[0].(map[string]any)
		if _, ok := hc["protocol"]; ok || hc["gracePeriodSeconds"] != 300.0 {
			t.Errorf("%s defaults: healthChecks(0) %v", kind, hc)
		}
	}
	us := func(kind string) map[string]any { return d[kind]["upgradeStrategy"].(map[string]any) }
	if us("host")["minimumHealthCapacity"] != 1.0 || us("resident")["minimumHealthCapacity"] != 0.5 {
		t.Errorf("upgradeStrategy defaults: host %v resident %v", us("host"), us("resident"))
	}
}
