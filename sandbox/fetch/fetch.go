// Package fetch is Mesos's fetcher: it downloads (or copies) the URIs of
// an app's "fetch" (and legacy "uris") into a task's sandbox before the
// task starts, unpacks archives, marks files executable, and keeps a
// cache of downloads under the work directory.
//
// What a task sees is all or nothing per URI: a download is written to a
// temporary file and renamed into place; an archive is unpacked into a
// staging directory and moved in only when every entry is in and checked.
// A failed or interrupted fetch leaves no partial file in the sandbox (the
// next Fetch into the same sandbox sweeps the temporary names first) and
// none in the cache (see cache.go).
//
// The package imports nothing of mesolite; the agent maps an app's fetch
// entries to Items and its agent.toml [fetcher] keys to a Config.
package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Defaults of the agent.toml keys [fetcher] cache_size, max_size, timeout.
const (
	DefaultCacheSize = 2 << 30
	DefaultMaxSize   = 2 << 30
	DefaultTimeout   = 10 * time.Minute
)

// tempPrefix starts the name of everything the fetcher writes before it
// is complete, in the sandbox and in the cache.
const tempPrefix = ".fetch-tmp-"

// progressEvery is how often progress is reported while bytes flow.
const progressEvery = 250 * time.Millisecond

// Item is one entry of an app's "fetch": Mesos's CommandInfo.URI.
type Item struct {
	URI        string
	Extract    bool // unpack an archive (by its name's suffix) into the sandbox
	Executable bool // chmod 755 the file; no extraction
	Cache      bool // go through the fetcher cache
	DestPath   string
}

// FromURIs converts Marathon's legacy "uris" strings: each is fetched with
// extract on, not executable, not cached.
func FromURIs(uris []string) []Item {
	out := make([]Item, 0, len(uris))
	for _, u := range uris {
		out = append(out, Item{URI: u, Extract: true})
	}
	return out
}

// Config sets a Fetcher up.
type Config struct {
	// CacheDir holds the cache; with CacheSize 0 or CacheDir "" the cache
	// is off and cache:true entries download like the others.
	CacheDir  string
	CacheSize int64
	// MaxSize caps what one URI may download, and what its archive may
	// unpack to; 0: no limit.
	MaxSize int64
	// Timeout caps the fetch of one URI (download and unpacking); 0: none.
	Timeout time.Duration
	// HostPathRoots are the directories local files may be fetched from.
	HostPathRoots []string
	// Failpoint, when set, is called with "fetch.cache.write" once a
	// download is complete and synced in the cache under its temporary
	// name, and "fetch.cache.commit" once it is renamed to its key: the
	// crash windows of the cache, where the fault-injection tests kill.
	Failpoint func(point string)
	// Client makes the HTTP requests; nil: one with Go's defaults except
	// transparent decompression, which would unpack a .tar.gz served with
	// Content-Encoding: gzip behind the fetcher's back.
	Client *http.Client
}

// Fetcher fetches URIs into sandboxes. It is safe for concurrent use.
type Fetcher struct {
	cfg   Config
	cache *cache // nil when the cache is off
}

// New returns a Fetcher. With the cache on, it makes the cache directory,
// sweeps what an earlier process left half-written, and evicts down to
// CacheSize.
func New(cfg Config) (*Fetcher, error) {
	if cfg.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.DisableCompression = true
		cfg.Client = &http.Client{Transport: t}
	}
	f := &Fetcher{cfg: cfg}
	if cfg.CacheDir != "" && cfg.CacheSize > 0 {
		c, err := openCache(cfg.CacheDir, cfg.CacheSize, cfg.Failpoint)
		if err != nil {
			return nil, err
		}
		f.cache = c
	}
	return f, nil
}

// CacheUsage returns the bytes the cache holds and its capacity.
func (f *Fetcher) CacheUsage() (used, capacity int64) {
	if f.cache == nil {
		return 0, 0
	}
	return f.cache.usage()
}

// Progress is what a fetch reports while it runs.
type Progress struct {
	URI   string
	Index int // of the URI, from 0
	Count int // URIs in this fetch
	Phase string
	Bytes int64 // downloaded, copied or unpacked so far
	Total int64 // the size when known, else -1
}

// Phases of Progress.
const (
	PhaseDownload = "downloading"
	PhaseCached   = "from the cache"
	PhaseExtract  = "unpacking"
	PhaseDone     = "done"
)

// String renders the progress for a task's message:
// "fetching 1 of 2, http://h/app.tgz: downloading 12.0 MiB of 50.0 MiB (24%)".
func (p Progress) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "fetching %d of %d, %s: %s", p.Index+1, p.Count, p.URI, p.Phase)
	switch {
	case p.Phase == PhaseCached || p.Phase == PhaseDone:
	case p.Total > 0:
		fmt.Fprintf(&b, " %s of %s (%d%%)", formatBytes(p.Bytes), formatBytes(p.Total), min(100, p.Bytes*100/p.Total))
	case p.Bytes > 0 || p.Phase == PhaseDownload:
		fmt.Fprintf(&b, " %s", formatBytes(p.Bytes))
	}
	return b.String()
}

// Fetch fetches items into sandboxDir, in order, and stops at the first
// failure, returning an *Error. progress (which may be nil) is called on a
// phase change and at most every 250 ms while bytes flow (also when they
// stall), never twice at once, never after Fetch returns.
//
// A crash or a failure leaves no file of the failing URI in the sandbox;
// the URIs before it stay. The caller runs the task only after Fetch
// returned nil, so it never sees a partial sandbox.
func (f *Fetcher) Fetch(ctx context.Context, sandboxDir string, items []Item, progress func(Progress)) error {
	if progress == nil {
		progress = func(Progress) {}
	}
	if err := sweep(sandboxDir); err != nil {
		return &Error{URI: "(sandbox)", Class: ErrIO, Err: err}
	}
	var links []string
	for i, it := range items {
		l, err := f.fetchOne(ctx, sandboxDir, it, i, len(items), progress)
		if err != nil {
			return &Error{URI: it.URI, Class: classOf(err, ErrIO), Err: err}
		}
		links = append(links, l...)
	}
	// Each archive's links were checked in its own tree; check them again
	// in the sandbox, where an earlier URI's links may lie on their way.
	for _, l := range links {
		if err := resolveWithin(sandboxDir, l); err != nil {
			_ = os.Remove(filepath.Join(sandboxDir, l))
			return &Error{URI: "(sandbox)", Class: ErrBadArchive, Err: &EntryError{Archive: "(an earlier URI)", Entry: l, Reason: "is a symlink that " + err.Error()}}
		}
	}
	return nil
}

// sweep removes what an interrupted fetch left in the sandbox.
func sweep(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read sandbox %s: %w", dir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("remove %s: %w", e.Name(), err)
			}
		}
	}
	return nil
}

func (f *Fetcher) fetchOne(ctx context.Context, dir string, it Item, i, n int, progress func(Progress)) ([]string, error) {
	if f.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, f.cfg.Timeout, errTimeout{f.cfg.Timeout})
		defer cancel()
	}
	src, err := parseURI(it.URI)
	if err != nil {
		return nil, err
	}
	dest, err := destName(it, src)
	if err != nil {
		return nil, err
	}
	extract := it.Extract && !it.Executable && kindOf(dest) != notArchive
	rep := &reporter{fn: progress, p: Progress{URI: it.URI, Index: i, Count: n, Total: -1}}
	defer rep.start()()
	var links []string
	if it.Cache && f.cache != nil {
		links, err = f.viaCache(ctx, dir, src, dest, it, extract, rep)
	} else {
		links, err = f.direct(ctx, dir, src, dest, it, extract, rep)
	}
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(err, ctx.Err()) {
			return nil, cause
		}
		return nil, err
	}
	rep.finish()
	return links, nil
}

// errTimeout is the cause of a URI's context when its timeout fires.
type errTimeout struct{ d time.Duration }

func (e errTimeout) Error() string {
	return fmt.Sprintf("timed out after %s ([fetcher] timeout in agent.toml)", e.d)
}
func (e errTimeout) Is(target error) bool { return target == ErrTimeout }

// direct downloads into the sandbox (the archive stays there, as Mesos
// leaves it when the cache is bypassed), then unpacks it.
func (f *Fetcher) direct(ctx context.Context, dir string, src source, dest string, it Item, extract bool, rep *reporter) ([]string, error) {
	tmp, err := os.CreateTemp(dir, tempPrefix)
	if err != nil {
		return nil, errorf(ErrIO, "create a file in the sandbox: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone once placed; a leftover is swept by the next Fetch
	_, err = f.download(ctx, src, tmp, rep)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = errorf(ErrIO, "write %s: %w", dest, cerr)
	}
	if err != nil {
		return nil, err
	}
	mode := fs.FileMode(0o644)
	if it.Executable {
		mode = 0o755
	}
	if err := place(dir, tmp.Name(), dest, mode); err != nil {
		return nil, err
	}
	if !extract {
		return nil, nil
	}
	return f.extract(ctx, filepath.Join(dir, dest), dest, dir, rep)
}

// viaCache takes the file from the cache, downloading it there first on
// a miss, then unpacks it into the sandbox or copies it there.
func (f *Fetcher) viaCache(ctx context.Context, dir string, src source, dest string, it Item, extract bool, rep *reporter) ([]string, error) {
	cached, release, hit, err := f.cache.acquire(ctx, src.uri, func(w *os.File) (int64, error) {
		return f.download(ctx, src, w, rep)
	})
	if err != nil {
		return nil, err
	}
	defer release()
	if hit {
		rep.phase(PhaseCached, -1)
	}
	if extract {
		return f.extract(ctx, cached, dest, dir, rep)
	}
	tmp, err := os.CreateTemp(dir, tempPrefix)
	if err != nil {
		return nil, errorf(ErrIO, "create a file in the sandbox: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // gone once placed; a leftover is swept by the next Fetch
	err = copyFile(cached, tmp)
	if cerr := tmp.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, errorf(ErrIO, "copy %s from the cache: %w", dest, err)
	}
	mode := fs.FileMode(0o644)
	if it.Executable {
		mode = 0o755
	}
	return nil, place(dir, tmp.Name(), dest, mode)
}

func copyFile(src string, w *os.File) error {
	r, err := os.Open(src)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(w, r) // copy_file_range on Linux
	return err
}

func (f *Fetcher) extract(ctx context.Context, archive, name, dir string, rep *reporter) ([]string, error) {
	rep.phase(PhaseExtract, -1)
	return extractInto(ctx, archive, name, dir, f.cfg.MaxSize, rep.bytes)
}

// place renames the finished temporary file tmp to dest in the sandbox,
// making dest's parent directories without following a symlink.
func place(dir, tmp, dest string, mode fs.FileMode) error {
	if err := os.Chmod(tmp, mode); err != nil {
		return errorf(ErrIO, "chmod %s: %w", dest, err)
	}
	if d := path.Dir(dest); d != "." {
		walked := dir
		for _, seg := range strings.Split(d, "/") {
			walked = filepath.Join(walked, seg)
			st, err := os.Lstat(walked)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				if err := os.Mkdir(walked, 0o755); err != nil {
					return errorf(ErrIO, "create %s: %w", walked, err)
				}
			case err != nil:
				return errorf(ErrIO, "stat %s: %w", walked, err)
			case !st.IsDir():
				return errorf(ErrBadDest, "destPath %s goes through %s, which is not a directory", dest, seg)
			}
		}
	}
	target := filepath.Join(dir, dest)
	if st, err := os.Lstat(target); err == nil && st.IsDir() {
		return errorf(ErrBadDest, "destPath %s is a directory in the sandbox", dest)
	}
	if err := os.Rename(tmp, target); err != nil {
		return errorf(ErrIO, "move %s into the sandbox: %w", dest, err)
	}
	return nil
}

// reporter throttles progress: a phase change is reported at once, bytes
// at most every progressEvery, and the last count of a stalled stream
// once the period has passed (start runs that timer). Calls to fn never
// overlap.
type reporter struct {
	fn func(Progress)

	mu    sync.Mutex // guards the fields below and serializes fn
	p     Progress
	last  time.Time
	dirty bool
}

// phase reports a new phase, with its total size (-1 when unknown).
func (r *reporter) phase(phase string, total int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Phase, r.p.Bytes, r.p.Total = phase, 0, total
	r.emitLocked()
}

// finish reports the end, with the count of the last phase.
func (r *reporter) finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Phase = PhaseDone
	r.emitLocked()
}

// bytes records how far the phase is, reporting it when due.
func (r *reporter) bytes(n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.p.Bytes, r.dirty = n, true
	if time.Since(r.last) >= progressEvery {
		r.emitLocked()
	}
}

func (r *reporter) emitLocked() {
	r.last, r.dirty = time.Now(), false
	r.fn(r.p)
}

// start reports a stalled count every period until the returned stop.
func (r *reporter) start() (stop func()) {
	done, exited := make(chan struct{}), make(chan struct{})
	tick := time.NewTicker(progressEvery)
	go func() {
		defer close(exited)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				r.mu.Lock()
				if r.dirty && time.Since(r.last) >= progressEvery {
					r.emitLocked()
				}
				r.mu.Unlock()
			}
		}
	}()
	return func() { close(done); <-exited }
}

// formatBytes renders a size as Mesos's UI does: 12.0 MiB.
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
