package main

// The fetcher end to end, against an HTTP server the test starts on
// 127.0.0.1 that counts its requests.

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileServer serves fixed bodies on 127.0.0.1 and counts requests.
type fileServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	count map[string]int
	// half, for a path, makes the server send half of the body and then
	// wait until the channel is closed.
	half map[string]chan struct{}
}

func newFileServer(t *testing.T) *fileServer {
	t.Helper()
	s := &fileServer{files: map[string][]byte{}, count: map[string]int{}, half: map[string]chan struct{}{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.count[r.URL.Path]++
		body, ok := s.files[r.URL.Path]
		gate := s.half[r.URL.Path]
		s.mu.Unlock()
		switch {
		case !ok:
			http.NotFound(w, r)
		case gate != nil:
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			select {
			case <-gate:
			case <-r.Context().Done():
				return
			}
			_, _ = w.Write(body[len(body)/2:])
		case strings.HasPrefix(r.URL.Path, "/truncated"):
			// Promise more than is sent: the body ends early.
			w.Header().Set("Content-Length", strconv.Itoa(len(body)+1000))
			_, _ = w.Write(body)
		default:
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *fileServer) put(path string, body []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = body
	return s.URL + path
}

func (s *fileServer) requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[path]
}

// tgz packs files (name → content; a name ending in .sh is executable).
func tgz(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		mode := int64(0o644)
		if strings.HasSuffix(n, ".sh") {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: mode, Size: int64(len(files[n])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(files[n])); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func slipZip(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, n := range []string{"fine.txt", "../../../../escaped-by-zip-slip.txt"} {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sandboxFiles lists a sandbox's entries, without the task's stdout and
// stderr and the agent's own files (.mesolite-*).
func sandboxFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name() != "stdout" && e.Name() != "stderr" && !strings.HasPrefix(e.Name(), ".mesolite-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// TestE2EFetch: a tarball fetched, extracted and run, with an executable
// renamed by destPath; a second app on the cached URI makes no request; a
// 404 and a truncated download fail the task (TASK_FAILED, URI and cause,
// nothing partial in the sandbox) and are retried with backoff; a
// zip-slip archive is refused naming the entry; a file:// path outside
// host_path_roots is refused at POST.
func TestE2EFetch(t *testing.T) {
	t.Parallel()
	requireDocker(t)
	srv := newFileServer(t)
	roots := t.TempDir()
	p := startAgentTop(t, "host_path_roots = [\""+roots+"\"]\n")
	appURI := srv.put("/app-1.0.tgz", tgz(t, map[string]string{
		"app/run.sh": "#!/bin/sh\necho \"app running on $PORT0\"\nexec sleep 1000\n",
		"app/conf":   "greeting=hello\n",
	}))
	toolURI := srv.put("/tool-linux-amd64", []byte("#!/bin/sh\necho tool says $1\n"))
	post := func(app map[string]any) {
		t.Helper()
		if code, b := p.do(http.MethodPost, "/v2/apps", app); code != http.StatusCreated {
			t.Fatalf("POST %v: %d %s", app["id"], code, b)
		}
	}

	t.Run("tarball extracted and run", func(t *testing.T) {
		post(map[string]any{
			"id": "/fetched", "cmd": "bin/tool hi && ./app/run.sh", "cpus": 0.1, "mem": 32,
			"fetch": []map[string]any{
				{"uri": appURI, "cache": true},
				{"uri": toolURI, "executable": true, "destPath": "bin/tool"},
			},
		})
		task := p.waitTask("/fetched", "a running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
		waitLog(t, p, task.ID, "tool says hi\napp running on "+strconv.Itoa(task.Ports[0])+"\n", 15*time.Second)
		dir := taskSandbox(t, p, task.ID)
		if got := sandboxFiles(t, dir); strings.Join(got, " ") != "app bin" {
			t.Errorf("sandbox holds %q, want app and bin (a cached archive leaves only its contents)", got)
		}
		st, err := os.Stat(filepath.Join(dir, "bin", "tool"))
		if err != nil || st.Mode().Perm() != 0o755 {
			t.Errorf("bin/tool: %v %v, want mode 0755", st, err)
		}
	})

	t.Run("progress while staging", func(t *testing.T) {
		gate := make(chan struct{})
		uri := srv.put("/big.bin", bytes.Repeat([]byte("b"), 4<<20))
		srv.mu.Lock()
		srv.half["/big.bin"] = gate
		srv.mu.Unlock()
		post(map[string]any{
			"id": "/slow", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32,
			"fetch": []map[string]any{{"uri": uri}},
		})
		staging := p.waitTask("/slow", "a staging task with progress", 30*time.Second, func(t e2eTask) bool {
			return t.State == "TASK_STAGING" && strings.Contains(t.Message, "(50%)")
		})
		want := "fetching 1 of 1, " + uri + ": downloading 2.0 MiB of 4.0 MiB (50%)"
		if staging.Message != want {
			t.Errorf("message %q, want %q", staging.Message, want)
		}
		if out := p.mustCLI("task", "show", staging.ID); !strings.Contains(out, want) {
			t.Errorf("task show lacks the progress:\n%s", out)
		}
		// Marathon's fields only, unless mesolite's are asked for.
		if _, b := p.do(http.MethodGet, "/v2/tasks", nil); strings.Contains(string(b), "downloading") {
			t.Errorf("GET /v2/tasks without embed=mesolite shows the message: %s", b)
		}
		close(gate)
		p.waitTask("/slow", "the running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" && t.Message == "" })
		p.mustCLI("app", "remove", "slow")
	})

	t.Run("docker app", func(t *testing.T) {
		// The test app reads its data directory over HTTP: pointed at the
		// sandbox, it serves what the fetcher put there.
		requireImage(t, requireDocker(t), testAppImage, "test-image")
		notes := srv.put("/notes.txt", []byte("fetched for a Docker task\n"))
		post(map[string]any{
			"id": "/docker-fetch", "cpus": 0.1, "mem": 32,
			"container": map[string]any{"type": "DOCKER", "docker": map[string]any{"image": testAppImage},
				"portMappings": []map[string]any{{"containerPort": 8080, "hostPort": 0}}},
			"networks": []map[string]any{{"mode": "container/bridge"}},
			"env":      map[string]any{"DATA_DIR": "/mnt/mesos/sandbox"},
			"fetch":    []map[string]any{{"uri": notes, "destPath": "notes.txt"}},
		})
		task := p.waitTask("/docker-fetch", "a running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" && len(t.Ports) == 1 })
		if code, body := httpGet(t, "http://127.0.0.1:"+strconv.Itoa(task.Ports[0])+"/kv/notes.txt", 15*time.Second); code != 200 || body != "fetched for a Docker task\n" {
			t.Fatalf("GET /kv/notes.txt: %d %q", code, body)
		}
		p.mustCLI("app", "remove", "docker-fetch")
	})

	t.Run("cache hit makes no request", func(t *testing.T) {
		post(map[string]any{
			"id": "/fetched-again", "cmd": "./app/run.sh", "cpus": 0.1, "mem": 32,
			"fetch": []map[string]any{{"uri": appURI, "cache": true}},
		})
		task := p.waitTask("/fetched-again", "a running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
		waitLog(t, p, task.ID, "app running on", 15*time.Second)
		if n := srv.requests("/app-1.0.tgz"); n != 1 {
			t.Fatalf("%d requests for the cached tarball, want 1", n)
		}
	})

	failing := []struct {
		name, path, says string
		body             []byte
	}{
		{"404", "/missing.tgz", "HTTP 404", nil},
		{"truncated", "/truncated.tgz", "closed after", tgz(t, map[string]string{"x": strings.Repeat("x", 4096)})},
	}
	for _, f := range failing {
		t.Run(f.name, func(t *testing.T) {
			uri := srv.URL + f.path
			if f.body != nil {
				srv.put(f.path, f.body)
			}
			id := "/fail-" + f.name
			post(map[string]any{
				"id": id, "cmd": "sleep 1000", "cpus": 0.1, "mem": 32, "backoffSeconds": 1, "backoffFactor": 1,
				"fetch": []map[string]any{{"uri": uri, "cache": true}},
			})
			// Retried with backoff: a second failed incarnation, each with
			// the URI and the cause.
			task := p.waitTask(id, "a second failed launch", 30*time.Second, func(t e2eTask) bool {
				return t.State == "TASK_FAILED" && t.Incarnation >= 2
			})
			if !strings.Contains(task.Message, uri) || !strings.Contains(task.Message, f.says) {
				t.Fatalf("message %q lacks the URI and %q", task.Message, f.says)
			}
			if n := srv.requests(f.path); n < 2 {
				t.Fatalf("%d requests: want the launch retried", n)
			}
			if got := sandboxFiles(t, taskSandbox(t, p, task.ID)); len(got) != 0 {
				t.Fatalf("the failed fetch left %q in the sandbox", got)
			}
			cache, _ := os.ReadDir(filepath.Join(p.workDir, "fetch-cache"))
			for _, e := range cache {
				if b, _ := os.ReadFile(filepath.Join(p.workDir, "fetch-cache", e.Name())); strings.Contains(string(b), uri) || strings.HasPrefix(e.Name(), ".fetch-tmp-") {
					t.Fatalf("the failed fetch left %s in the cache", e.Name())
				}
			}
			p.mustCLI("app", "remove", strings.TrimPrefix(id, "/"))
		})
	}

	t.Run("zip slip refused", func(t *testing.T) {
		uri := srv.put("/slip.zip", slipZip(t))
		post(map[string]any{
			"id": "/slip", "cmd": "sleep 1000", "cpus": 0.1, "mem": 32, "backoffSeconds": 600,
			"fetch": []map[string]any{{"uri": uri}},
		})
		task := p.waitTask("/slip", "a failed launch", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_FAILED" })
		if !strings.Contains(task.Message, "slip.zip") || !strings.Contains(task.Message, "../../../../escaped-by-zip-slip.txt") {
			t.Fatalf("message %q does not name the archive and the entry", task.Message)
		}
		dir := taskSandbox(t, p, task.ID)
		for d, n := dir, 0; n < 5; d, n = filepath.Dir(d), n+1 {
			if _, err := os.Stat(filepath.Join(d, "escaped-by-zip-slip.txt")); err == nil {
				t.Fatalf("the zip-slip entry was written to %s", d)
			}
		}
		if got := sandboxFiles(t, dir); strings.Join(got, " ") != "slip.zip" {
			t.Fatalf("sandbox holds %q, want only the archive", got)
		}
	})

	t.Run("file outside host_path_roots refused at POST", func(t *testing.T) {
		code, b := p.do(http.MethodPost, "/v2/apps", map[string]any{
			"id": "/local", "cmd": "true", "fetch": []map[string]any{{"uri": "file:///etc/passwd"}},
		})
		if code != http.StatusUnprocessableEntity || !strings.Contains(string(b), `"/fetch(0)/uri"`) || !strings.Contains(string(b), "host_path_roots") {
			t.Fatalf("POST: %d %s", code, b)
		}
		inside := filepath.Join(roots, "notes.txt")
		if err := os.WriteFile(inside, []byte("local notes\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		post(map[string]any{
			"id": "/local", "cmd": "cat notes.txt; sleep 1000", "cpus": 0.1, "mem": 32,
			"fetch": []map[string]any{{"uri": "file://" + inside}},
		})
		task := p.waitTask("/local", "a running task", 30*time.Second, func(t e2eTask) bool { return t.State == "TASK_RUNNING" })
		waitLog(t, p, task.ID, "local notes\n", 15*time.Second)
	})
}
