package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The dashboard's browser tests drive a real headless Chromium (Debian's
// chromium package; .ci/run installs it) against a real agent on the real
// Docker daemon. Every test fails on a console error, an uncaught
// exception or a request that failed or answered an error status it did
// not expect, and saves a screenshot of each page in its artifact
// directory (go test -artifacts -outputdir DIR keeps them).

const uiTimeout = 90 * time.Second

// browser is one headless Chromium with one tab.
type browser struct {
	t    *testing.T
	ctx  context.Context
	shot int

	mu       sync.Mutex
	problems []string
	messages []string // every console message, for tests that expect one
	methods  map[network.RequestID]string
	allowed  []allowedStatus
}

// allowedStatus is an error answer a step expects (a 422 for bad JSON, a
// 401 before the token is given).
type allowedStatus struct {
	method, path string
	status       int64
}

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	missing(t, "no Chromium: apt-get install chromium (.ci/run does)")
	return ""
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		// Tests run as root in CI, where Chromium's sandbox cannot start;
		// the pages are the test's own, on loopback.
		chromedp.NoSandbox,
		chromedp.WindowSize(1400, 900),
		chromedp.Flag("hide-scrollbars", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	b := &browser{t: t, ctx: ctx, methods: map[network.RequestID]string{}}
	t.Cleanup(func() { cancelTab(); cancelAlloc() })

	console := chromedp.Console(ctx)
	if err := chromedp.Listen(ctx, b.onNetwork); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("enable network events: %v", err)
	}
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			b.onConsole(m)
		}
	}()
	return b
}

func (b *browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, fmt.Sprintf(format, args...))
}

func (b *browser) onConsole(m chromedp.ConsoleMessage) {
	b.mu.Lock()
	b.messages = append(b.messages, m.Text)
	b.mu.Unlock()
	switch {
	case m.IsException():
		b.problem("uncaught exception: %s", m.Text)
	case m.Type == chromedp.ConsoleError && m.Source == "network":
		// "Failed to load resource": onNetwork judges the answer itself.
	case m.Type == chromedp.ConsoleError:
		b.problem("console error (%s): %s", m.Source, m.Text)
	}
}

// onNetwork runs on the browser's reader goroutine: it only records.
func (b *browser) onNetwork(ev any) {
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		b.mu.Lock()
		b.methods[ev.RequestID] = ev.Request.Method
		b.mu.Unlock()
	case *network.EventResponseReceived:
		if ev.Response.Status < 400 {
			return
		}
		b.mu.Lock()
		method := b.methods[ev.RequestID]
		ok := false
		u, _ := url.Parse(ev.Response.URL)
		for _, a := range b.allowed {
			if u != nil && a.method == method && strings.HasPrefix(u.Path, a.path) && a.status == ev.Response.Status {
				ok = true
			}
		}
		b.mu.Unlock()
		if !ok {
			b.problem("request answered %d: %s %s", ev.Response.Status, method, ev.Response.URL)
		}
	case *network.EventLoadingFailed:
		// ERR_NETWORK_CHANGED: Chromium aborts what is in flight when an
		// interface comes or goes, which Docker does for every bridge
		// container the other tests start; the dashboard polls again.
		if !ev.Canceled && ev.ErrorText != "net::ERR_NETWORK_CHANGED" {
			b.problem("request failed: %s (%s)", ev.ErrorText, ev.Type)
		}
	}
}

// allow lets the next steps get an error answer; the returned func takes
// the allowance back.
func (b *browser) allow(method, path string, status int64) func() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.allowed = append(b.allowed, allowedStatus{method, path, status})
	n := len(b.allowed) - 1
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		b.allowed = append(b.allowed[:n:n], b.allowed[n+1:]...)
	}
}

// saw reports whether a console message contained s.
func (b *browser) saw(s string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, m := range b.messages {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

func (b *browser) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.messages...)
}

// clean fails the test with every problem the browser reported.
func (b *browser) clean() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.problems {
		b.t.Errorf("browser: %s", p)
	}
	b.problems = nil
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v\npage:\n%s", what, err, b.pageText())
	}
}

func (b *browser) navigate(u string) { b.t.Helper(); b.do("open "+u, chromedp.Navigate(u)) }

func (b *browser) click(sel string) {
	b.t.Helper()
	b.do("click "+sel, chromedp.WaitVisible(chromedp.CSS(sel)), chromedp.Click(chromedp.CSS(sel)))
}

// js evaluates an expression and decodes its value into T.
func js[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, uiTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript predicate until it holds, for at most d.
func (b *browser) waitFor(what, expr string, d time.Duration) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("Boolean("+expr+")",
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(d)))
	if err != nil {
		b.screenshot("failed-" + strings.ReplaceAll(what, " ", "-"))
		b.t.Fatalf("waiting %v for %s: %v\npage:\n%s", d, what, err, b.pageText())
	}
}

func (b *browser) pageText() string {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "(unreadable: " + err.Error() + ")"
	}
	return s
}

// screenshot saves the whole page as NN-name.png in the test's artifact
// directory.
func (b *browser) screenshot(name string) string {
	b.t.Helper()
	return b.capture(name, chromedp.FullScreenshot(100))
}

// viewShot saves what the window shows (a dialog over the page).
func (b *browser) viewShot(name string) string {
	b.t.Helper()
	return b.capture(name, chromedp.CaptureScreenshot())
}

func (b *browser) capture(name string, shot chromedp.Action[[]byte]) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		b.t.Errorf("screenshot %s: %v", name, err)
		return ""
	}
	b.shot++
	p := filepath.Join(b.t.ArtifactDir(), fmt.Sprintf("%02d-%s.png", b.shot, name))
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Errorf("save screenshot: %v", err)
	}
	return p
}

// setEditor puts text in the JSON editor as a paste would.
func (b *browser) setEditor(text string) {
	b.t.Helper()
	arg, _ := json.Marshal(text)
	js[bool](b, `(() => { const ta = document.querySelector('#json-editor'); ta.value = `+string(arg)+`;
		ta.dispatchEvent(new Event('input', {bubbles: true})); return true; })()`)
}

// q quotes a string for JavaScript.
func q(s string) string { b, _ := json.Marshal(s); return string(b) }

// lineOfKey is the 1-based line where "key" first appears after the
// line that contains after (or from the start).
func lineOfKey(text, key, after string) int {
	lines := strings.Split(text, "\n")
	start := 0
	if after != "" {
		for i, l := range lines {
			if strings.Contains(l, after) {
				start = i
				break
			}
		}
	}
	for i := start; i < len(lines); i++ {
		if strings.Contains(lines[i], `"`+key+`"`) {
			return i + 1
		}
	}
	return 0
}

// The row of the app's only task, as the tasks table shows it.
const taskRow = `document.querySelector('#tasks-table tbody tr')`

// TestUIBrowser walks the stateful tutorial in the dashboard alone: create
// the test app from the JSON editor (after a 422 shown at its paths), see
// it healthy without reloading, write a key, stop and start it on the same
// volume, follow its log across a relaunch, kill and wipe it, and remove
// it, each destructive step confirmed with the host path it deletes.
func TestUIBrowser(t *testing.T) {
	docker := requireDocker(t)
	requireImage(t, docker, "mesolite/testapp:latest", "test-image")
	p := startAgent(t)
	b := newBrowser(t)

	// A browser at / lands on the dashboard; an API client keeps its 404.
	b.navigate(p.url() + "/")
	if got := js[string](b, `location.pathname`); got != "/ui/" {
		t.Fatalf("a browser at / is at %s, want /ui/", got)
	}
	if code, body := p.do(http.MethodGet, "/", nil); code != http.StatusNotFound {
		t.Errorf("GET / from an API client: %d %s, want Marathon's 404", code, body)
	}
	b.waitFor("the empty apps page, live", `document.querySelector('.empty') && document.querySelector('#conn.live')`, 20*time.Second)
	b.screenshot("apps-empty")
	b.accessible("apps page")
	// Nothing below reloads the page: this mark would be gone.
	js[bool](b, `window.noReload = true`)

	// Create from the JSON editor: first with two errors, shown at their
	// paths, on their lines.
	b.click(`a[href="#/create"]`)
	b.waitFor("the editor", `document.querySelector('#json-editor')`, 10*time.Second)
	raw, err := os.ReadFile("../../testdata/testapp.marathon.json")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(raw), `"cpus": 0.1`, `"cpus": -1`, 1)
	bad = strings.Replace(bad, `"size": 16`, `"size": 0`, 1)
	b.setEditor(bad)
	disallow := b.allow("POST", "/v2/apps", 422)
	b.click("#editor-submit")
	for _, c := range []struct{ path, key, after, msg string }{
		{"/cpus", "cpus", "", "expected 0.0 or more"},
		{"/container/volumes(0)/persistent/size", "size", "persistent", "expected more than 0"},
	} {
		line := lineOfKey(bad, c.key, c.after)
		b.waitFor("the 422 at "+c.path, `document.querySelector('#editor-errors li[data-path=`+q(c.path)+`]')`, 10*time.Second)
		if got := js[string](b, `document.querySelector('#editor-errors li[data-path=`+q(c.path)+`]').dataset.line`); got != fmt.Sprint(line) {
			t.Errorf("the error at %s is listed on line %s, want %d (the line of %q)", c.path, got, line, c.key)
		}
		mark := js[string](b, `(document.querySelector('.editor .msg[data-line="`+fmt.Sprint(line)+`"]') || {}).textContent || ''`)
		if !strings.Contains(mark, c.path) || !strings.Contains(mark, c.msg) {
			t.Errorf("line %d of the editor is marked %q, want %s: …%s", line, mark, c.path, c.msg)
		}
	}
	b.screenshot("create-422")
	b.accessible("create page")
	disallow()

	// The empty apps page offers the test app; create it.
	b.click(`a[data-nav="apps"]`)
	b.click(`#try-testapp`)
	b.waitFor("testdata/testapp.marathon.json in the editor", `document.querySelector('#json-editor')?.value === `+q(string(raw))+` && !document.querySelector('#editor-errors li')`, 10*time.Second)
	b.click("#editor-submit")
	b.waitFor("the app page", `location.hash === '#/app/testapp' && document.querySelector('#app-title')`, 10*time.Second)
	b.waitFor("a healthy task", taskRow+`?.querySelector('.health .badge.healthy') && document.querySelector('#app-status')?.dataset.status === 'running'`, uiTimeout)
	if !js[bool](b, `window.noReload === true`) {
		t.Fatal("the page reloaded")
	}
	b.waitFor("the deployment done", `document.querySelector('.deploy[data-result="success"]')`, 20*time.Second)
	b.screenshot("app-healthy")
	b.accessible("app page")

	task1 := js[string](b, taskRow+`.dataset.task`)
	inst := js[string](b, taskRow+`.dataset.instance`)
	port := js[string](b, taskRow+`.querySelector('td.ports a').textContent`)
	if !strings.HasSuffix(task1, "._app.1") || inst == "" || port == "" {
		t.Fatalf("task row: id %q instance %q port %q", task1, inst, port)
	}
	kv := "http://127.0.0.1:" + port + "/kv/greeting"
	if code := httpPut(t, kv, "hello", 10*time.Second); code != http.StatusNoContent {
		t.Fatalf("PUT %s: %d", kv, code)
	}
	// The port's link is the test app's page, which shows the key.
	if href := js[string](b, taskRow+`.querySelector('td.ports a').href`); href != "http://127.0.0.1:"+port+"/" {
		t.Errorf("the port links to %s", href)
	} else if code, body := httpGet(t, href, 10*time.Second); code != http.StatusOK || !strings.Contains(body, "greeting") {
		t.Errorf("GET %s: %d, the key not listed:\n%s", href, code, body)
	}
	// MESOLITE_UI_SCREENSHOT=docs/dashboard.png remakes the README's picture.
	if out := os.Getenv("MESOLITE_UI_SCREENSHOT"); out != "" {
		// A volume filling, measured (every 30 s), and no toast.
		for i := range 3 {
			httpPut(t, fmt.Sprintf("http://127.0.0.1:%s/kv/blob%d", port, i), strings.Repeat("x", 1<<20), 10*time.Second)
		}
		b.waitFor("the volume measured", `document.querySelector('#volumes .bar-label')?.textContent.includes('MiB of')`, 45*time.Second)
		js[bool](b, `(document.querySelector('#toasts').replaceChildren(), true)`)
		b.do("move the pointer away", chromedp.MouseEvent(chromedp.MouseMoved, 1, 1))
		png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
		if err == nil {
			err = os.WriteFile(out, png, 0o644)
		}
		if err != nil {
			t.Errorf("README screenshot: %v", err)
		}
	}

	// Stop: the task stays listed, stopped, without a start time.
	b.click(`button[data-action="stop"]`)
	b.waitFor("the stopped task", taskRow+`?.dataset.state === 'TASK_KILLED' && `+taskRow+`.querySelector('.started').textContent === 'not running' && document.querySelector('#app-status')?.dataset.status === 'suspended'`, uiTimeout)
	if n := js[int](b, `document.querySelectorAll('#tasks-table tbody tr').length`); n != 1 {
		t.Errorf("%d tasks listed after stop, want 1", n)
	}
	if got := js[string](b, taskRow+`.dataset.task`); got != task1 {
		t.Errorf("after stop the task is %s, want %s", got, task1)
	}
	b.waitFor("the stop's deployment with its steps", `document.querySelector('#deployments .deploy')?.dataset.result === 'success' && document.querySelector('#deployments .deploy [data-action="ScaleApplication"]')`, 20*time.Second)
	b.screenshot("app-stopped")

	// Start: the same instance, its next incarnation, the key still there.
	b.click(`button[data-action="start"]`)
	task2 := inst + "._app.2"
	b.waitFor("the second incarnation healthy", taskRow+`?.dataset.task === `+q(task2)+` && `+taskRow+`.querySelector('.health .badge.healthy')`, uiTimeout)
	if got := js[string](b, taskRow+`.dataset.incarnation`); got != "2" {
		t.Errorf("incarnation %s, want 2", got)
	}
	if code, body := httpGet(t, kv, 10*time.Second); code != http.StatusOK || body != "hello" {
		t.Fatalf("GET %s after start: %d %q, want hello", kv, code, body)
	}

	// The log of the running task; the task crashes and the next
	// incarnation's first line arrives in the same view.
	b.click(`#tasks-table tbody tr a[data-action="log"]`)
	b.waitFor("the log's first line", `document.querySelector('#log')?.textContent.includes('task='+`+q(task2)+`)`, 20*time.Second)
	resp, err := http.Post(kv[:strings.Index(kv, "/kv/")]+"/exit?code=3", "text/plain", nil)
	if err != nil {
		t.Fatalf("crash the task: %v", err)
	}
	resp.Body.Close()
	task3 := inst + "._app.3"
	b.waitFor("the next incarnation's line in the log", `document.querySelector('#log')?.textContent.includes('relaunched as '+`+q(task3)+`) && document.querySelector('#log')?.textContent.includes('task='+`+q(task3)+`)`, uiTimeout)
	b.screenshot("log-followed")
	b.accessible("log page")
	b.click("#tab-stderr")
	b.waitFor("stderr", `location.hash.endsWith('?file=stderr') && document.querySelector('#log')?.textContent.includes('testapp stderr: pid')`, 20*time.Second)

	// Back on the app page: the failure is shown, and versions compare.
	b.click(`.crumbs a[href="#/app/testapp"]`)
	b.waitFor("the last failure", `document.querySelector('#alert-failure')?.textContent.includes('FAILED')`, 20*time.Second)
	b.waitFor("healthy again", taskRow+`?.dataset.task === `+q(task3)+` && `+taskRow+`.querySelector('.health .badge.healthy')`, uiTimeout)
	b.waitFor("a diff of instances between versions", `[...document.querySelectorAll('#diff .line.add, #diff .line.del')].some(l => l.textContent.includes('"instances"'))`, 20*time.Second)
	b.screenshot("app-failure-versions")

	// Kill and wipe: the confirmation names the host path it deletes.
	var vols struct {
		Volumes []struct {
			Path  string `json:"path"`
			AppID string `json:"appId"`
		} `json:"volumes"`
	}
	if err := p.getJSON("/mesolite/v1/volumes?usage=false", &vols); err != nil || len(vols.Volumes) != 1 {
		t.Fatalf("volumes: %v %+v", err, vols)
	}
	oldVolume := vols.Volumes[0].Path
	b.click(`#tasks-table tbody tr button[data-action="wipe"]`)
	b.waitFor("the wipe confirmation naming the volume", `document.querySelector('#confirm-dialog').open && document.querySelector('#confirm-body').textContent.includes(`+q(oldVolume)+`)`, 10*time.Second)
	// Escape, as any dialog, cancels: nothing is wiped.
	b.do("press Escape", chromedp.KeyEvent("\x1b"))
	b.waitFor("the dialog closed", `!document.querySelector('#confirm-dialog').open`, 5*time.Second)
	if _, err := os.Stat(oldVolume); err != nil {
		t.Fatalf("Escape on the confirmation: the volume is gone: %v", err)
	}
	b.click(`#tasks-table tbody tr button[data-action="wipe"]`)
	b.waitFor("the wipe confirmation again", `document.querySelector('#confirm-dialog').open`, 10*time.Second)
	b.viewShot("confirm-wipe")
	b.accessible("wipe confirmation")
	b.click("#confirm-ok")
	b.waitFor("a new instance, healthy", taskRow+`?.dataset.instance && `+taskRow+`.dataset.instance !== `+q(inst)+` && `+taskRow+`.dataset.incarnation === '1' && `+taskRow+`.querySelector('.health .badge.healthy')`, uiTimeout)
	if _, err := os.Stat(oldVolume); !os.IsNotExist(err) {
		t.Errorf("the wiped volume %s is still there: %v", oldVolume, err)
	}
	port = js[string](b, taskRow+`.querySelector('td.ports a').textContent`)
	if code, _ := httpGet(t, "http://127.0.0.1:"+port+"/kv/greeting", 10*time.Second); code != http.StatusNotFound {
		t.Errorf("the key after a wipe: %d, want 404 (a new, empty volume)", code)
	}

	// Restart: the task is killed and relaunched on its reservation, the
	// same instance's next incarnation.
	inst2 := js[string](b, taskRow+`.dataset.instance`)
	b.click(`button[data-action="restart"]`)
	b.waitFor("the restarted task healthy", taskRow+`?.dataset.instance === `+q(inst2)+` && `+taskRow+`.dataset.incarnation === '2' && `+taskRow+`.querySelector('.health .badge.healthy')`, uiTimeout)
	b.waitFor("the restart's deployment done", `[...document.querySelectorAll('#deployments .deploy')].some(d => d.dataset.result === 'success' && d.querySelector('[data-action="RestartApplication"]'))`, 20*time.Second)

	// Kill: relaunched in place, the data kept.
	b.click(`#tasks-table tbody tr button[data-action="kill"]`)
	b.waitFor("the killed task relaunched", taskRow+`?.dataset.instance === `+q(inst2)+` && `+taskRow+`.dataset.incarnation === '3' && `+taskRow+`.querySelector('.health .badge.healthy')`, uiTimeout)

	// Scale to 2, then back to 1: the second instance stops and keeps its
	// reservation (a resident app), listed without a start time.
	scaleTo := func(n string) {
		b.click(`button[data-action="scale"]`)
		b.waitFor("the scale dialog", `document.querySelector('#scale-dialog').open`, 10*time.Second)
		b.do("instances "+n, chromedp.SetValue(chromedp.CSS("#scale-input"), n))
		b.click(`#scale-form button[value="ok"]`)
	}
	scaleTo("2")
	b.waitFor("two healthy tasks", `document.querySelectorAll('#tasks-table tbody tr .health .badge.healthy').length === 2`, uiTimeout)
	b.screenshot("app-scaled")
	scaleTo("1")
	b.waitFor("one running task, one stopped reservation", `(() => { const rows = [...document.querySelectorAll('#tasks-table tbody tr')]; return rows.length === 2 && rows.filter(r => r.dataset.state === 'TASK_RUNNING').length === 1 && rows.filter(r => r.dataset.state === 'TASK_KILLED').length === 1 })()`, uiTimeout)

	// The agent page: resources, recovery and the event stream.
	b.click(`a[data-nav="agent"]`)
	b.waitFor("the agent page", `document.querySelector('#recovery-facts') && document.querySelector('#resources .resource') && document.querySelector('#event-list li')`, 20*time.Second)
	b.waitFor("the events listed", `document.querySelector('#event-list li[data-type="status_update_event"]')`, 20*time.Second)
	b.screenshot("agent")
	b.accessible("agent page")

	// Remove: the confirmation names both volumes (the running task's and
	// the stopped reservation's); the app and its volumes go.
	if err := p.getJSON("/mesolite/v1/volumes?usage=false", &vols); err != nil || len(vols.Volumes) != 2 {
		t.Fatalf("volumes: %v %+v, want the two instances'", err, vols)
	}
	newVolume, otherVolume := vols.Volumes[0].Path, vols.Volumes[1].Path
	b.click(`a[data-nav="apps"]`)
	b.click(`#apps-table a[href="#/app/testapp"]`)
	b.waitFor("the app page", `document.querySelector('button[data-action="remove"]')`, 10*time.Second)
	b.click(`button[data-action="remove"]`)
	b.waitFor("the remove confirmation naming the volumes", `document.querySelector('#confirm-dialog').open && document.querySelector('#confirm-body').textContent.includes(`+q(newVolume)+`) && document.querySelector('#confirm-body').textContent.includes(`+q(otherVolume)+`)`, 10*time.Second)
	b.click("#confirm-ok")
	b.waitFor("no app left", `location.hash === '#/apps' && document.querySelector('.empty')`, uiTimeout)
	deadline := time.Now().Add(30 * time.Second)
	for _, v := range []string{newVolume, otherVolume} {
		for {
			if _, err := os.Stat(v); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the removed app's volume %s is still there", v)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !js[bool](b, `window.noReload === true`) {
		t.Fatal("the page reloaded")
	}
	b.screenshot("apps-removed")
	b.clean()
}

// startConfiguredAgent starts an agent like startAgent, with more keys in its
// [tasks] table (tasks, e.g. `volume_usage_interval = "1s"`) and, when
// token is set, a [security] token; it waits on the status with the token.
func startConfiguredAgent(t *testing.T, tasks, token string) *agentProc {
	t.Helper()
	p := &agentProc{t: t, bin: mesoliteBinary(t), workDir: t.TempDir()}
	dir := t.TempDir()
	lo := 32000 + int(time.Now().UnixNano()%200)*100
	p.config = filepath.Join(dir, "agent.toml")
	cfg := strings.Replace(fmt.Sprintf(e2eConfig, lo, lo+99), "[tasks]\n", "[tasks]\n"+tasks+"\n", 1)
	cfg += e2eNetworkOff
	if token != "" {
		cfg += fmt.Sprintf("[security]\ntoken = %q\n", token)
	}
	if err := os.WriteFile(p.config, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p.logPath = filepath.Join(dir, "agent.log")
	p.addr = freeAddr(t)
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(p.bin, "agent", "--config", p.config, "--work-dir", p.workDir, "--listen", p.addr)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan error, 1)
	go func() { p.done <- p.cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		p.stop(syscall.SIGTERM)
		removeAgentContainers(t, p.agentID)
		if t.Failed() {
			b, _ := os.ReadFile(p.logPath)
			lines := strings.Split(string(b), "\n")
			if len(lines) > 80 {
				lines = lines[len(lines)-80:]
			}
			t.Logf("agent log (last lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, p.url()+"/mesolite/v1/status", nil)
		if token != "" {
			req.Header.Set("Authorization", "token="+token)
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			var st struct {
				AgentID string `json:"agentId"`
			}
			err = json.NewDecoder(resp.Body).Decode(&st)
			resp.Body.Close()
			if err == nil && resp.StatusCode == http.StatusOK {
				p.agentID = st.AgentID
				return p
			}
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(p.logPath)
			t.Fatalf("agent did not answer within 15s\n%s", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUIBrowserToken: with a token on the API the dashboard asks for it
// once, keeps it for the tab, and sends it with every call (the event
// stream and the JSON it posts included).
func TestUIBrowserToken(t *testing.T) {
	requireDocker(t)
	const token = "ui-test-token-7f3a"
	p := startConfiguredAgent(t, "", token)
	b := newBrowser(t)

	// Before the token, the API's 401s are expected, and only those.
	disallow := b.allow("GET", "/", http.StatusUnauthorized)
	b.navigate(p.url() + "/ui/")
	b.waitFor("the token dialog", `document.querySelector('#token-dialog').open`, 20*time.Second)
	b.viewShot("token-dialog")
	b.accessible("token dialog")
	b.do("type the token", chromedp.SendKeys(chromedp.CSS("#token-input"), token), chromedp.Click(chromedp.CSS(`#token-form button[type="submit"]`)))
	b.waitFor("the apps page, live", `!document.querySelector('#token-dialog').open && document.querySelector('.empty') && document.querySelector('#conn.live')`, 20*time.Second)
	disallow()
	if got := js[string](b, `sessionStorage.getItem('mesolite.token')`); got != token {
		t.Errorf("token kept for the tab: %q", got)
	}

	// The token goes with a POST too: the API judges the JSON (422), not
	// the caller (401).
	b.click(`a[href="#/create"]`)
	b.waitFor("the editor", `document.querySelector('#json-editor')`, 10*time.Second)
	b.setEditor(`{"id": "/tok", "cpus": -1, "container": {"type": "DOCKER", "docker": {"image": "mesolite/testapp:latest"}}}`)
	disallow = b.allow("POST", "/v2/apps", http.StatusUnprocessableEntity)
	b.click("#editor-submit")
	b.waitFor("the 422 at /cpus", `document.querySelector('#editor-errors li[data-path="/cpus"]')`, 10*time.Second)
	disallow()

	// Apps in a group show as a tree; one that does not fit waits, and
	// says why.
	for _, body := range []string{
		`{"id": "/shop/db", "instances": 0, "container": {"type": "DOCKER", "docker": {"image": "mesolite/testapp:latest"}}}`,
		`{"id": "/shop/big", "mem": 100000000, "cpus": 0.01, "container": {"type": "DOCKER", "docker": {"image": "mesolite/testapp:latest"}}}`,
	} {
		req, _ := http.NewRequest(http.MethodPost, p.url()+"/v2/apps", strings.NewReader(body))
		req.Header.Set("Authorization", "token="+token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /v2/apps %s: %d", body, resp.StatusCode)
		}
	}
	b.click(`a[data-nav="apps"]`)
	b.waitFor("the group and its apps", `document.querySelector('tr[data-group="/shop"] [aria-expanded="true"]') && document.querySelector('tr[data-app="/shop/db"]')?.dataset.status === 'suspended' && document.querySelector('tr[data-app="/shop/big"]')?.dataset.status === 'waiting'`, 20*time.Second)
	b.screenshot("apps-group")
	b.accessible("apps page with groups")
	b.click(`tr[data-group="/shop"] button`)
	b.waitFor("the group folded", `document.querySelector('tr[data-group="/shop"] [aria-expanded="false"]') && !document.querySelector('tr[data-app="/shop/db"]')`, 10*time.Second)
	b.click(`tr[data-group="/shop"] button`)
	b.click(`#apps-table a[href="#/app/shop/big"]`)
	b.waitFor("why it waits", `document.querySelector('#alert-waiting')?.textContent.includes('insufficient mem')`, 20*time.Second)
	b.screenshot("app-waiting")
	b.accessible("waiting app page")

	// Edit JSON: a PUT with the token; the versions show the change.
	b.navigate(p.url() + "/ui/#/app/shop/db")
	b.click(`a[data-key="edit"]`)
	b.waitFor("the definition in the editor", `document.querySelector('#json-editor')?.value.includes('"/shop/db"')`, 10*time.Second)
	js[bool](b, `(() => { const ta = document.querySelector('#json-editor'); const d = JSON.parse(ta.value); d.mem = 96;
		ta.value = JSON.stringify(d, null, 2); ta.dispatchEvent(new Event('input')); return true; })()`)
	b.click("#editor-submit")
	b.waitFor("the diff of mem", `location.hash === '#/app/shop/db' && [...document.querySelectorAll('#diff .line.add')].some(l => l.textContent.includes('"mem": 96'))`, 20*time.Second)
	b.waitFor("mem highlighted as set", `[...document.querySelectorAll('#definition-json .line.set')].some(l => l.dataset.path === '/mem')`, 10*time.Second)

	// The agent page reads the status and volumes with the token; a
	// reload keeps it (sessionStorage) and asks nothing.
	b.navigate(p.url() + "/ui/#/agent")
	b.waitFor("the agent page without a dialog", `document.querySelector('#recovery-facts') && !document.querySelector('#token-dialog').open && document.querySelector('#event-list li[data-type="event_stream_attached"]')`, 20*time.Second)
	b.screenshot("agent-with-token")

	// Under /service/marathon, as DC/OS serves Marathon, it reads the API
	// there.
	b.navigate(p.url() + "/service/marathon/ui/")
	b.waitFor("the apps under /service/marathon", `document.querySelector('tr[data-app="/shop/db"]') && performance.getEntriesByType('resource').some(e => new URL(e.name).pathname === '/service/marathon/v2/apps')`, 20*time.Second)
	b.clean()
}

// crossSitePage tries, from another origin, what the dashboard does from
// its own: post JSON (which needs a CORS preflight), delete an app (so
// does a DELETE), read the apps, and show the dashboard (in a frame). A
// "simple" request (a no-cors POST of text/plain, sent without a
// preflight) is for the API to refuse; issue 10's tests cover it.
const crossSitePage = `<!doctype html><title>another site</title>
<iframe id="f" src="%[1]s/ui/"></iframe>
<script>
const api = %[1]q;
window.done = 0;
const app = (id) => JSON.stringify({id, instances: 0, container: {type: 'DOCKER', docker: {image: 'mesolite/testapp:latest'}}});
fetch(api + '/v2/apps', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: app('/from-another-site')}).catch(() => {}).finally(() => window.done++);
fetch(api + '/v2/apps/victim', {method: 'DELETE'}).catch(() => {}).finally(() => window.done++);
fetch(api + '/v2/apps').then(r => r.json()).then(() => { window.read = 'read'; }, () => { window.read = 'blocked'; }).finally(() => window.done++);
</script>`

// TestUIBrowserCrossOrigin: a page from another origin can neither make
// the requests the dashboard makes, nor read the API, nor show the
// dashboard in a frame.
func TestUIBrowserCrossOrigin(t *testing.T) {
	requireDocker(t)
	p := startAgent(t)
	victim := `{"id": "/victim", "instances": 0, "container": {"type": "DOCKER", "docker": {"image": "mesolite/testapp:latest"}}}`
	if code, body := p.do(http.MethodPost, "/v2/apps", rawJSON(victim)); code != http.StatusCreated {
		t.Fatalf("POST /v2/apps: %d %s", code, body)
	}
	site := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, crossSitePage, p.url())
	}))
	t.Cleanup(site.Close)
	b := newBrowser(t)
	b.navigate(site.URL)
	b.waitFor("the page's three requests settled", `window.done === 3`, 20*time.Second)
	var apps struct {
		Apps []struct {
			ID string `json:"id"`
		} `json:"apps"`
	}
	if err := p.getJSON("/v2/apps", &apps); err != nil {
		t.Fatal(err)
	}
	if len(apps.Apps) != 1 || apps.Apps[0].ID != "/victim" {
		t.Errorf("after the other origin's page, the apps are %+v, want /victim alone", apps.Apps)
	}
	if got := js[string](b, `window.read`); got != "blocked" {
		t.Errorf("a page from another origin read /v2/apps: %q", got)
	}
	// Chromium says so on the console when it refuses the frame.
	deadline := time.Now().Add(10 * time.Second)
	for !b.saw("frame-ancestors") {
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard was not refused in another origin's frame; console: %q", b.seen())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// a11yCheck finds, on the page as it is, form fields without a label,
// buttons and links without a name, and text whose contrast with its
// background is under WCAG AA (4.5:1, 3:1 for large text).
const a11yCheck = `(() => {
  const out = [];
  const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const rgb = (c) => { const m = c.match(/[\d.]+/g) || []; return m.map(Number); };
  const lum = ([r, g, b]) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  const bgOf = (el) => { for (let e = el; e; e = e.parentElement) { const c = rgb(getComputedStyle(e).backgroundColor); if (c.length === 3 || c[3] > 0.5) return c.slice(0, 3); } return [255, 255, 255]; };
  for (const el of document.querySelectorAll('main input, main select, main textarea, dialog[open] input')) {
    if (!visible(el) || el.type === 'hidden') continue;
    const named = el.getAttribute('aria-label') || el.labels.length || el.getAttribute('aria-labelledby');
    if (!named) out.push('field without a label: ' + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll('button, a[href]')) {
    if (!visible(el)) continue;
    if (!(el.textContent.trim() || el.getAttribute('aria-label') || el.querySelector('img[alt]:not([alt=""])'))) out.push('unnamed control: ' + el.outerHTML.slice(0, 80));
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const seen = new Set();
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || seen.has(el) || !n.textContent.trim() || !visible(el)) continue;
    seen.add(el);
    const st = getComputedStyle(el);
    const fg = rgb(st.color);
    if (fg.length === 4 && fg[3] < 0.5) continue; // transparent text (the editor's backdrop)
    if (el.closest('.toasts, [aria-hidden="true"], :disabled, .button:disabled')) continue;
    const bg = bgOf(el);
    const [a, b] = [lum(fg.slice(0, 3)), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const size = parseFloat(st.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) out.push('contrast ' + ratio.toFixed(2) + ' of "' + n.textContent.trim().slice(0, 40) + '" (' + st.color + ' on rgb(' + bg + '))');
  }
  return out;
})()`

// accessible fails the test for what a11yCheck finds on the page.
func (b *browser) accessible(page string) {
	b.t.Helper()
	for _, p := range js[[]string](b, a11yCheck) {
		b.t.Errorf("%s: %s", page, p)
	}
}
