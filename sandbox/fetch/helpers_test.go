package fetch

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
)

// server is a local HTTP server on 127.0.0.1 that serves files from a map
// and counts the requests of each path.
type server struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	count map[string]int
	// gate, when set for a path, holds its answer until it is closed.
	gate map[string]chan struct{}
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{files: map[string][]byte{}, count: map[string]int{}, gate: map[string]chan struct{}{}}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.count[r.URL.Path]++
	body, ok := s.files[r.URL.Path]
	gate := s.gate[r.URL.Path]
	s.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	switch r.URL.Path {
	case "/truncated.tar.gz":
		// Promise more than is sent: the client sees the body end early.
		w.Header().Set("Content-Length", strconv.Itoa(len(body)+100))
		w.Write(body)
		return
	case "/chunked":
		// No Content-Length: the size is known only at the end.
		w.Header().Set("Content-Type", "application/octet-stream")
		for i := 0; i < len(body); i += 512 {
			w.Write(body[i:min(i+512, len(body))])
			w.(http.Flusher).Flush()
		}
		return
	case "/hang":
		<-r.Context().Done()
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

func (s *server) put(path string, body []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[path] = body
	return s.URL + path
}

func (s *server) requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.count[path]
}

// member is one member of a test archive.
type member struct {
	name   string
	body   string
	mode   int64
	dir    bool
	link   string // symlink target
	hard   string // hard link target
	device bool
}

// helloEntries is the content of testdata/hello.tar.bz2 too.
var helloEntries = []member{
	{name: "hello.txt", body: "hello\n", mode: 0o644},
	{name: "bin/", dir: true, mode: 0o755},
	{name: "bin/run.sh", body: "#!/bin/sh\necho run\n", mode: 0o755},
	{name: "empty/", dir: true, mode: 0o755},
}

func tarBytes(t *testing.T, entries []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: time.Unix(1700000000, 0)}
		switch {
		case e.dir:
			h.Typeflag = tar.TypeDir
		case e.link != "":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.link
		case e.hard != "":
			h.Typeflag, h.Linkname = tar.TypeLink, e.hard
		case e.device:
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, 1, 3
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func xzBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipBytes(t *testing.T, entries []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		body := e.body
		switch {
		case e.dir:
			h.SetMode(fs.ModeDir | fs.FileMode(e.mode))
		case e.link != "":
			h.SetMode(fs.ModeSymlink | 0o777)
			body = e.link
		default:
			h.SetMode(fs.FileMode(e.mode))
		}
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if !e.dir {
			if _, err := w.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// newFetcher makes a fetcher with its cache in a temporary directory.
func newFetcher(t *testing.T, cfg Config) *Fetcher {
	t.Helper()
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(t.TempDir(), "cache")
	}
	if cfg.CacheSize == 0 {
		cfg.CacheSize = DefaultCacheSize
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func fetchInto(t *testing.T, f *Fetcher, items ...Item) (string, error) {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return dir, f.Fetch(ctx, dir, items, nil)
}

// tree lists what a directory holds: "name" for files (with " x" when
// executable), "name/" for directories, "name -> target" for links.
func tree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out = append(out, rel+" -> "+target)
		case d.IsDir():
			out = append(out, rel+"/")
		case info.Mode()&0o100 != 0:
			out = append(out, rel+" x")
		default:
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
