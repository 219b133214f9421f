package ui

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestJSHelpers runs the dashboard's JSON helpers in a real headless
// Chromium (Debian's chromium), from the embedded files: the parser that
// places a 422's paths on their lines, and the version diff. The whole
// dashboard is tested against a real agent in cmd/mesolite
// (TestUIBrowser).
func TestJSHelpers(t *testing.T) {
	var bin string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no Chromium: apt-get install chromium (.ci/run does) (CI=true, so this fails instead of skipping)")
		}
		t.Skip("no Chromium: apt-get install chromium")
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/blank.html" {
			// A page of the dashboard's origin that loads nothing itself.
			_, _ = w.Write([]byte("<!doctype html><title>blank</title>"))
			return
		}
		Serve(w, r, r.URL.Path)
	}))
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 60*time.Second)
	defer cancelT()
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/blank.html")); err != nil {
		t.Fatal(err)
	}
	run := func(expr string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](`(async () => { const j = await import('/ui/js/json.js'); `+expr+` })()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}

	text := "{\n  \"id\": \"/a\",\n  \"container\": {\n    \"volumes\": [\n      {\"containerPath\": \"d\"},\n      {\n        \"persistent\": {\"size\": 0}\n      }\n    ]\n  }\n}\n"
	for path, line := range map[string]float64{
		"/id":                                   2,
		"/container":                            3,
		"/container/volumes(0)/containerPath":   5,
		"/container/volumes(1)":                 6,
		"/container/volumes(1)/persistent/size": 7,
		// A field that is not there is shown on the object that lacks it.
		"/container/volumes(0)/mode":     5,
		"/container/docker/image":        3,
		"/cpus":                          1,
		"/":                              1,
		"/container/volumes(9)/whatever": 4,
	} {
		got := run(`const t = ` + jsString(text) + `; return j.lineOf(t, j.spotOf(j.locate(t), ` + jsString(path) + `).pos);`)
		if got != line {
			t.Errorf("path %s is on line %v, want %v", path, got, line)
		}
	}
	if got := run(`try { j.locate('{\n  "a": 1\n  "b": 2\n}'); return 'parsed'; } catch (e) { return e instanceof j.JSONSyntaxError ? j.lineOf('{\n  "a": 1\n  "b": 2\n}', e.pos) : String(e); }`); got != 3.0 {
		t.Errorf("a missing comma is reported on line %v, want 3", got)
	}
	if got := run(`try { j.locate('{"a": [1, 2,]}'); return 'parsed'; } catch (e) { return e.message; }`); got == "parsed" {
		t.Error("a trailing comma parsed")
	}
	if got := run(`return j.diffLines(['a','b','c','d'], ['a','c','x','d']).map(([o, l]) => o + l).join(' ');`); got != " a -b  c +x  d" {
		t.Errorf("diff: %q", got)
	}
	// The highlighter marks exactly the leaves the predicate says were set.
	if got := run(`const ls = j.render({id: '/a', cpus: 1, env: {A: 'x'}}, (p) => p !== '/cpus'); return ls.filter(l => l.classList.contains('set')).map(l => l.dataset.path).join(' ');`); got != "/id /env/A" {
		t.Errorf("highlighted: %q", got)
	}
}

func jsString(s string) string {
	b := []byte{'"'}
	for _, r := range s {
		switch r {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		default:
			b = append(b, string(r)...)
		}
	}
	return string(append(b, '"'))
}
