package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// cache keeps downloads under one directory, keyed by URI, within a size
// cap, evicting the least recently used entries first:
//
//	<dir>/<sha256 of the URI>        the downloaded bytes, complete
//	<dir>/<sha256 of the URI>.uri    the URI, for people (ls, cat)
//	<dir>/.fetch-tmp-*               a download in progress
//
// An entry appears only complete: it is downloaded to a temporary file,
// fsynced, renamed to its key and the directory fsynced, so a crash
// leaves either no entry or a whole one, and the temporary files are
// swept when the cache opens. The last use of an entry is its file's
// modification time (updated on each hit, not synced: after a crash the
// order of eviction may be a little off, never the contents).
//
// Concurrent fetches of one URI download it once: the first downloads,
// the others wait for it. An entry in use (being copied or unpacked) is
// never evicted. The cap counts committed entries; downloads in progress
// may take up to their own size on top of it.
type cache struct {
	dir      string
	capacity int64
	fail     func(point string) // nil in production

	mu       sync.Mutex // guards the fields below
	entries  map[string]*entry
	total    int64
	inflight map[string]*flight
}

type entry struct {
	size int64
	used time.Time
	refs int
}

type flight struct {
	done chan struct{}
	err  error
}

func openCache(dir string, capacity int64, fail func(string)) (*cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create fetcher cache %s: %w", dir, err)
	}
	if fail == nil {
		fail = func(string) {}
	}
	c := &cache{dir: dir, capacity: capacity, fail: fail, entries: map[string]*entry{}, inflight: map[string]*flight{}}
	list, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read fetcher cache %s: %w", dir, err)
	}
	for _, e := range list {
		name := e.Name()
		p := filepath.Join(dir, name)
		switch {
		case strings.HasPrefix(name, tempPrefix):
			if err := os.RemoveAll(p); err != nil {
				return nil, fmt.Errorf("sweep fetcher cache: %w", err)
			}
		case isKey(name) && e.Type().IsRegular():
			info, err := e.Info()
			if err != nil {
				continue
			}
			c.entries[name] = &entry{size: info.Size(), used: info.ModTime()}
			c.total += info.Size()
		case strings.HasSuffix(name, ".uri") && isKey(strings.TrimSuffix(name, ".uri")):
			if _, err := os.Lstat(strings.TrimSuffix(p, ".uri")); errors.Is(err, fs.ErrNotExist) {
				_ = os.Remove(p)
			}
		}
	}
	c.mu.Lock()
	c.evictLocked(0)
	c.mu.Unlock()
	return c, nil
}

func isKey(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func keyOf(uri string) string {
	sum := sha256.Sum256([]byte(uri))
	return hex.EncodeToString(sum[:])
}

func (c *cache) usage() (int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.total, c.capacity
}

// acquire returns the path of uri's cached file, calling fill to
// download it on a miss. The file stays (is not evicted) until release
// is called. hit says whether no download was needed. A file too large
// for the cache is returned all the same, from outside the cache, and
// deleted on release.
func (c *cache) acquire(ctx context.Context, uri string, fill func(*os.File) (int64, error)) (path string, release func(), hit bool, err error) {
	key := keyOf(uri)
	for {
		c.mu.Lock()
		if e, ok := c.entries[key]; ok {
			now := time.Now()
			e.refs++
			e.used = now
			c.mu.Unlock()
			p := filepath.Join(c.dir, key)
			_ = os.Chtimes(p, now, now) // the last use, for the order of eviction after a restart
			return p, c.releaser(key), true, nil
		}
		if fl, ok := c.inflight[key]; ok {
			c.mu.Unlock()
			select {
			case <-fl.done:
			case <-ctx.Done():
				return "", nil, false, ctx.Err()
			}
			if fl.err != nil && !errors.Is(fl.err, context.Canceled) && !errors.Is(fl.err, context.DeadlineExceeded) {
				return "", nil, false, fl.err // the same URI, the same answer
			}
			// Committed, too large for the cache, or the other fetch was
			// cancelled: look again, and download if still missing.
			continue
		}
		fl := &flight{done: make(chan struct{})}
		c.inflight[key] = fl
		c.mu.Unlock()
		path, release, err = c.download(key, uri, fill)
		c.mu.Lock()
		delete(c.inflight, key)
		c.mu.Unlock()
		fl.err = err
		close(fl.done)
		return path, release, false, err
	}
}

// download fills a temporary file and commits it under key.
func (c *cache) download(key, uri string, fill func(*os.File) (int64, error)) (string, func(), error) {
	tmp, err := os.CreateTemp(c.dir, tempPrefix+key[:16]+"-")
	if err != nil {
		return "", nil, errorf(ErrIO, "create a file in the fetcher cache: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			_ = os.Remove(tmp.Name()) // a leftover is swept when the cache opens
		}
	}()
	n, err := fill(tmp)
	if err != nil {
		return "", nil, err
	}
	if err := tmp.Sync(); err != nil {
		return "", nil, errorf(ErrIO, "sync the fetcher cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", nil, errorf(ErrIO, "write the fetcher cache: %w", err)
	}
	c.fail("fetch.cache.write") // crash: a temporary file, swept on open
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.evictLocked(n) {
		// Too large for the cache, or everything else is in use: this
		// fetch uses the file once, as Mesos falls back to bypassing.
		ok = true
		name := tmp.Name()
		return name, func() { _ = os.Remove(name) }, nil // a leftover is swept when the cache opens
	}
	final := filepath.Join(c.dir, key)
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", nil, errorf(ErrIO, "commit to the fetcher cache: %w", err)
	}
	ok = true
	// A failed directory sync leaves the entry complete but perhaps not
	// durable: after a crash it is whole or missing, and a missing entry
	// is downloaded again. Nothing to undo, so the error is dropped.
	_ = syncDir(c.dir)
	_ = os.WriteFile(final+".uri", []byte(uri+"\n"), 0o600) // for people only
	c.fail("fetch.cache.commit")                            // crash: a complete entry, found on open
	c.entries[key] = &entry{size: n, used: time.Now(), refs: 1}
	c.total += n
	return final, c.releaser(key), nil
}

func (c *cache) releaser(key string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			if e, ok := c.entries[key]; ok && e.refs > 0 {
				e.refs--
			}
			c.mu.Unlock()
		})
	}
}

// evictLocked removes unused entries, least recently used first, until
// need more bytes fit under the capacity; it reports whether they do.
func (c *cache) evictLocked(need int64) bool {
	if need > c.capacity {
		return false
	}
	if c.total+need <= c.capacity {
		return true
	}
	keys := make([]string, 0, len(c.entries))
	for k, e := range c.entries {
		if e.refs == 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return c.entries[keys[i]].used.Before(c.entries[keys[j]].used) })
	for _, k := range keys {
		if c.total+need <= c.capacity {
			break
		}
		p := filepath.Join(c.dir, k)
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		_ = os.Remove(p + ".uri")
		c.total -= c.entries[k].size
		delete(c.entries, k)
	}
	return c.total+need <= c.capacity
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
