package fetch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestArchiveKinds fetches the same content packed every way Mesos's
// fetcher unpacks, without the cache: the archive stays in the sandbox
// beside what it unpacked to, and modes are kept.
func TestArchiveKinds(t *testing.T) {
	s := newServer(t)
	tb := tarBytes(t, helloEntries)
	bz2, err := os.ReadFile("testdata/hello.tar.bz2")
	if err != nil {
		t.Fatal(err)
	}
	unpacked := []string{"bin/", "bin/run.sh x", "empty/", "hello.txt"}
	cases := []struct {
		name string
		body []byte
	}{
		{"app.tar", tb},
		{"app.tar.gz", gzipBytes(t, tb)},
		{"app.tgz", gzipBytes(t, tb)},
		{"app.tar.bz2", bz2},
		{"app.tbz2", bz2},
		{"app.tar.xz", xzBytes(t, tb)},
		{"app.txz", xzBytes(t, tb)},
		{"app.zip", zipBytes(t, helloEntries)},
	}
	f := newFetcher(t, Config{})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir, err := fetchInto(t, f, Item{URI: s.put("/"+c.name, c.body), Extract: true})
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string{c.name}, unpacked...)
			if got := tree(t, dir); !reflect.DeepEqual(got, sortStrings(want)) {
				t.Fatalf("sandbox holds %q, want %q", got, sortStrings(want))
			}
			if got := readFile(t, filepath.Join(dir, "bin/run.sh")); got != "#!/bin/sh\necho run\n" {
				t.Fatalf("bin/run.sh = %q", got)
			}
		})
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestGzipAlone: a .gz that is not a tarball is gunzipped next to itself
// at the sandbox's root, as Mesos's fetcher does with gunzip.
func TestGzipAlone(t *testing.T) {
	s := newServer(t)
	f := newFetcher(t, Config{})
	dir, err := fetchInto(t, f, Item{URI: s.put("/data/notes.txt.gz", gzipBytes(t, []byte("some notes\n"))), Extract: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); !reflect.DeepEqual(got, []string{"notes.txt", "notes.txt.gz"}) {
		t.Fatalf("sandbox holds %q", got)
	}
	if got := readFile(t, filepath.Join(dir, "notes.txt")); got != "some notes\n" {
		t.Fatalf("notes.txt = %q", got)
	}
}

// TestExecutableDestPathExtract: executable sets the run bit and skips
// extraction; destPath renames, into subdirectories too; extract false
// leaves an archive packed; legacy uris extract.
func TestExecutableDestPathExtract(t *testing.T) {
	s := newServer(t)
	tgz := gzipBytes(t, tarBytes(t, helloEntries))
	f := newFetcher(t, Config{})
	dir, err := fetchInto(t, f,
		Item{URI: s.put("/tool.sh", []byte("#!/bin/sh\necho tool\n")), Executable: true, DestPath: "bin/tool"},
		Item{URI: s.put("/packed.tgz", tgz), Extract: false},
		Item{URI: s.put("/exec.tgz", tgz), Extract: true, Executable: true},
		Item{URI: s.put("/plain.txt", []byte("plain")), Extract: true, DestPath: "conf/renamed.txt"},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"bin/", "bin/tool x", "conf/", "conf/renamed.txt", "exec.tgz x", "packed.tgz"}
	if got := tree(t, dir); !reflect.DeepEqual(got, want) {
		t.Fatalf("sandbox holds %q, want %q", got, want)
	}
	st, err := os.Stat(filepath.Join(dir, "bin/tool"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("bin/tool: %v %v, want mode 0755", st.Mode(), err)
	}

	items := FromURIs([]string{s.put("/legacy.tgz", tgz)})
	dir, err = fetchInto(t, f, items...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "hello.txt")); err != nil {
		t.Fatalf("legacy uris did not extract: %v", err)
	}
}

// TestCacheHitMakesNoRequest: the second fetch of a cached URI is served
// from the cache without a request; an unpacked cached archive leaves
// only its contents in the sandbox (as Mesos does); cache:false always
// downloads.
func TestCacheHitMakesNoRequest(t *testing.T) {
	s := newServer(t)
	uri := s.put("/app.tgz", gzipBytes(t, tarBytes(t, helloEntries)))
	f := newFetcher(t, Config{})
	var phases []string
	for i := 0; i < 2; i++ {
		dir := t.TempDir()
		err := f.Fetch(context.Background(), dir, []Item{{URI: uri, Extract: true, Cache: true}}, func(p Progress) {
			phases = append(phases, p.Phase)
		})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"bin/", "bin/run.sh x", "empty/", "hello.txt"}
		if got := tree(t, dir); !reflect.DeepEqual(got, want) {
			t.Fatalf("fetch %d: sandbox holds %q, want %q", i+1, got, want)
		}
		if n := s.requests("/app.tgz"); n != 1 {
			t.Fatalf("after fetch %d: %d requests, want 1", i+1, n)
		}
	}
	if !contains(phases, PhaseCached) {
		t.Fatalf("no %q phase reported: %q", PhaseCached, phases)
	}
	if used, _ := f.CacheUsage(); used == 0 {
		t.Fatal("the cache reports no use")
	}
	// Not extracted from the cache: copied, and executable when asked.
	dir, err := fetchInto(t, f, Item{URI: uri, Cache: true, Executable: true, DestPath: "a.bin"})
	if err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); !reflect.DeepEqual(got, []string{"a.bin x"}) {
		t.Fatalf("sandbox holds %q", got)
	}
	if _, err := fetchInto(t, f, Item{URI: uri, Extract: true}); err != nil {
		t.Fatal(err)
	}
	if n := s.requests("/app.tgz"); n != 2 {
		t.Fatalf("cache:false made %d requests in all, want 2", n)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestCacheEviction: with room for two entries, the least recently used
// goes when a third comes; the cache survives a reopen (a restart) with
// its entries, and a smaller capacity evicts down to it.
func TestCacheEviction(t *testing.T) {
	s := newServer(t)
	body := bytes.Repeat([]byte("x"), 1000)
	a, b, c := s.put("/a", body), s.put("/b", body), s.put("/c", body)
	cacheDir := filepath.Join(t.TempDir(), "cache")
	f := newFetcher(t, Config{CacheDir: cacheDir, CacheSize: 2500})
	get := func(uri string) {
		t.Helper()
		if _, err := fetchInto(t, f, Item{URI: uri, Cache: true}); err != nil {
			t.Fatal(err)
		}
	}
	get(a)
	get(b)
	get(a) // a hit: now used after b
	get(c) // evicts b, the least recently used
	if got := []int{s.requests("/a"), s.requests("/b"), s.requests("/c")}; !reflect.DeepEqual(got, []int{1, 1, 1}) {
		t.Fatalf("requests a, b, c = %v, want 1 1 1", got)
	}
	if used, capacity := f.CacheUsage(); used != 2000 || capacity != 2500 {
		t.Fatalf("cache use %d of %d, want 2000 of 2500", used, capacity)
	}
	if _, err := os.Stat(filepath.Join(cacheDir, keyOf(b))); !os.IsNotExist(err) {
		t.Fatalf("b is still in the cache: %v", err)
	}
	get(a)
	get(b) // evicted: downloaded again
	if got := []int{s.requests("/a"), s.requests("/b")}; !reflect.DeepEqual(got, []int{1, 2}) {
		t.Fatalf("requests a, b = %v, want 1 2", got)
	}

	// Reopened (an agent restart): the entries are still there.
	f2 := newFetcher(t, Config{CacheDir: cacheDir, CacheSize: 2500})
	if used, _ := f2.CacheUsage(); used != 2000 {
		t.Fatalf("reopened cache holds %d bytes, want 2000", used)
	}
	f3 := newFetcher(t, Config{CacheDir: cacheDir, CacheSize: 1500})
	if used, _ := f3.CacheUsage(); used != 1000 {
		t.Fatalf("cache reopened smaller holds %d bytes, want 1000", used)
	}
	// A file larger than the whole cache is fetched, not cached.
	big := s.put("/big", bytes.Repeat([]byte("y"), 4000))
	dir, err := fetchInto(t, f3, Item{URI: big, Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(dir, "big")); err != nil || st.Size() != 4000 {
		t.Fatalf("big: %v", err)
	}
	if names := cacheFiles(t, cacheDir); len(names) != 2 {
		t.Fatalf("cache holds %q, want one entry and its .uri", names)
	}
}

func cacheFiles(t *testing.T, dir string) []string {
	t.Helper()
	list, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list {
		out = append(out, e.Name())
	}
	return out
}

// TestCacheConcurrentFetches: eight tasks fetching one cached URI at
// once cause one download.
func TestCacheConcurrentFetches(t *testing.T) {
	s := newServer(t)
	uri := s.put("/app.tgz", gzipBytes(t, tarBytes(t, helloEntries)))
	gate := make(chan struct{})
	s.mu.Lock()
	s.gate["/app.tgz"] = gate
	s.mu.Unlock()
	f := newFetcher(t, Config{})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	dirs := make([]string, 8)
	for i := range errs {
		dirs[i] = t.TempDir()
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			errs[i] = f.Fetch(ctx, dirs[i], []Item{{URI: uri, Extract: true, Cache: true}}, nil)
		}(i)
	}
	// Release the answer once the first request is in.
	deadline := time.Now().Add(10 * time.Second)
	for s.requests("/app.tgz") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		if _, err := os.Stat(filepath.Join(dirs[i], "hello.txt")); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
	}
	if n := s.requests("/app.tgz"); n != 1 {
		t.Fatalf("%d requests for 8 concurrent fetches, want 1", n)
	}
}

// TestCacheCrashLeftovers: what a crash leaves half-written in the cache
// (a temporary download, a .uri without its data) is swept on open, and
// complete entries are kept.
func TestCacheCrashLeftovers(t *testing.T) {
	s := newServer(t)
	uri := s.put("/kept", []byte("kept"))
	dir := filepath.Join(t.TempDir(), "cache")
	f := newFetcher(t, Config{CacheDir: dir, CacheSize: 1 << 20})
	if _, err := fetchInto(t, f, Item{URI: uri, Cache: true}); err != nil {
		t.Fatal(err)
	}
	half := filepath.Join(dir, tempPrefix+"0123456789abcdef-42")
	orphan := filepath.Join(dir, keyOf("http://gone/")+".uri")
	for _, p := range []string{half, orphan} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	f = newFetcher(t, Config{CacheDir: dir, CacheSize: 1 << 20})
	got := cacheFiles(t, dir)
	want := sortStrings([]string{keyOf(uri), keyOf(uri) + ".uri"})
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("cache after reopen holds %q, want %q", got, want)
	}
	if _, err := fetchInto(t, f, Item{URI: uri, Cache: true}); err != nil {
		t.Fatal(err)
	}
	if n := s.requests("/kept"); n != 1 {
		t.Fatalf("%d requests, want 1 (the entry survives the reopen)", n)
	}
}

// TestFailuresLeaveNothing: a 404, a truncated body, a size limit passed
// (announced or not) and a timeout fail with their class, a message that
// names the URI and the cause, and leave nothing in the sandbox or the
// cache.
func TestFailuresLeaveNothing(t *testing.T) {
	s := newServer(t)
	tgz := gzipBytes(t, tarBytes(t, helloEntries))
	s.put("/truncated.tar.gz", tgz)
	s.put("/chunked", bytes.Repeat([]byte("z"), 5000))
	cases := []struct {
		name  string
		item  Item
		class error
		says  string
	}{
		{"404", Item{URI: s.URL + "/missing.tgz", Extract: true, Cache: true}, ErrHTTPStatus, "HTTP 404 Not Found"},
		{"truncated", Item{URI: s.URL + "/truncated.tar.gz", Extract: true, Cache: true}, ErrIncomplete, "bytes"},
		{"truncated no cache", Item{URI: s.URL + "/truncated.tar.gz", Extract: true}, ErrIncomplete, "bytes"},
		{"announced too large", Item{URI: s.put("/large", bytes.Repeat([]byte("l"), 5000)), Cache: true}, ErrTooLarge, "max_size"},
		{"too large without Content-Length", Item{URI: s.URL + "/chunked"}, ErrTooLarge, "max_size"},
		{"timeout", Item{URI: s.URL + "/hang", Cache: true}, ErrTimeout, "[fetcher] timeout"},
		{"connection refused", Item{URI: refusedURL(t)}, ErrNetwork, "refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cacheDir := filepath.Join(t.TempDir(), "cache")
			f := newFetcher(t, Config{CacheDir: cacheDir, MaxSize: 4096, Timeout: 300 * time.Millisecond})
			dir, err := fetchInto(t, f, c.item)
			var fe *Error
			if !errors.As(err, &fe) || !errors.Is(err, c.class) {
				t.Fatalf("got %v, want an *Error of class %v", err, c.class)
			}
			if fe.URI != c.item.URI || !strings.Contains(err.Error(), c.item.URI) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("message %q does not name the URI and %q", err, c.says)
			}
			if got := tree(t, dir); len(got) != 0 {
				t.Fatalf("sandbox holds %q after a failure", got)
			}
			if got := cacheFiles(t, cacheDir); len(got) != 0 {
				t.Fatalf("cache holds %q after a failure", got)
			}
		})
	}
}

// refusedURL is a loopback address where nothing listens.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr + "/x.tgz"
}

// TestClassify covers the classes that need a real network to happen
// (no test resolves a name: traffic stays on this machine).
func TestClassify(t *testing.T) {
	cases := []struct {
		err  error
		want error
	}{
		{&net.DNSError{Err: "no such host", Name: "repo.example", IsNotFound: true}, ErrDNS},
		{fmt.Errorf("dial: %w", &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}), ErrDNS},
		{context.DeadlineExceeded, ErrTimeout},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, ErrTimeout},
		{fmt.Errorf("body: %w", errors.New("unexpected EOF")), ErrNetwork},
		{errors.New("connection reset by peer"), ErrNetwork},
	}
	for _, c := range cases {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestArchiveUnpacksPastLimit: max_size also caps what an archive
// unpacks to (a small archive of zeros is a bomb).
func TestArchiveUnpacksPastLimit(t *testing.T) {
	s := newServer(t)
	bomb := gzipBytes(t, tarBytes(t, []member{{name: "zeros", body: strings.Repeat("\x00", 1<<20), mode: 0o644}}))
	if len(bomb) > 64<<10 {
		t.Fatalf("the bomb is %d bytes", len(bomb))
	}
	f := newFetcher(t, Config{MaxSize: 64 << 10})
	dir, err := fetchInto(t, f, Item{URI: s.put("/bomb.tgz", bomb), Extract: true})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "unpacks to more than") {
		t.Fatalf("got %v, want ErrTooLarge for what it unpacks to", err)
	}
	if got := tree(t, dir); !reflect.DeepEqual(got, []string{"bomb.tgz"}) {
		t.Fatalf("sandbox holds %q, want only the archive", got)
	}
}

// TestProgress: the download reports its size and percent, and the
// message a task shows says so.
func TestProgress(t *testing.T) {
	s := newServer(t)
	uri := s.put("/big.bin", bytes.Repeat([]byte("p"), 3<<20))
	f := newFetcher(t, Config{})
	var got []Progress
	err := f.Fetch(context.Background(), t.TempDir(), []Item{{URI: uri}}, func(p Progress) { got = append(got, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) < 2 || got[0].Phase != PhaseDownload || got[0].Total != 3<<20 || got[len(got)-1].Phase != PhaseDone || got[len(got)-1].Bytes != 3<<20 {
		t.Fatalf("progress %+v", got)
	}
	cases := []struct {
		p    Progress
		want string
	}{
		{Progress{URI: "http://h/app.tgz", Index: 0, Count: 2, Phase: PhaseDownload, Bytes: 12 << 20, Total: 50 << 20},
			"fetching 1 of 2, http://h/app.tgz: downloading 12.0 MiB of 50.0 MiB (24%)"},
		{Progress{URI: "http://h/app.tgz", Index: 1, Count: 2, Phase: PhaseDownload, Bytes: 1536, Total: -1},
			"fetching 2 of 2, http://h/app.tgz: downloading 1.5 KiB"},
		{Progress{URI: "http://h/app.tgz", Count: 1, Phase: PhaseCached, Total: -1},
			"fetching 1 of 1, http://h/app.tgz: from the cache"},
		{Progress{URI: "http://h/app.tgz", Count: 1, Phase: PhaseExtract, Bytes: 3 << 30, Total: -1},
			"fetching 1 of 1, http://h/app.tgz: unpacking 3.0 GiB"},
	}
	for _, c := range cases {
		if s := c.p.String(); s != c.want {
			t.Errorf("got %q, want %q", s, c.want)
		}
	}
}

// TestSweepsLeftovers: temporary files a crash left in a sandbox are
// removed before the next fetch into it.
func TestSweepsLeftovers(t *testing.T) {
	s := newServer(t)
	dir := t.TempDir()
	for _, p := range []string{tempPrefix + "123", tempPrefix + "x-456/partial"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := newFetcher(t, Config{})
	if err := f.Fetch(context.Background(), dir, []Item{{URI: s.put("/a.txt", []byte("a"))}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := tree(t, dir); !reflect.DeepEqual(got, []string{"a.txt"}) {
		t.Fatalf("sandbox holds %q", got)
	}
}
