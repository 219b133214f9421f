package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FormatVersion is the layout of the work directory this binary writes.
const FormatVersion = 1

// SchemaVersion is the version of the record envelope this binary writes.
const SchemaVersion = 1

var (
	// ErrLocked: another process holds the work directory.
	ErrLocked = errors.New("work directory is locked")
	// ErrNewerFormat: the work directory or a record was written by a newer
	// mesolite.
	ErrNewerFormat = errors.New("written by a newer mesolite")
	// ErrBadKey: a kind or key that is not a plain file name.
	ErrBadKey = errors.New("invalid record key")
)

// Store is an open work directory. Its methods are safe for concurrent use
// on different keys; callers serialize writes to one key.
type Store struct {
	workDir string
	meta    string
	lock    *os.File
}

// Envelope is a record as it lies on disk.
type Envelope struct {
	Schema  int             `json:"schema"`
	Kind    string          `json:"kind"`
	Key     string          `json:"key"`
	Written time.Time       `json:"written"`
	Data    json.RawMessage `json:"data"`
}

// SetAside is a record that could not be loaded and was renamed aside.
type SetAside struct {
	Kind string
	Key  string
	Path string // where the file is now
	Err  error
}

// Open locks workDir, creating it if needed, checks its format, and removes
// temporary files a crash may have left.
func Open(workDir string) (*Store, error) {
	abs, err := filepath.Abs(workDir)
	if err != nil {
		return nil, fmt.Errorf("resolve work directory %s: %w", workDir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("create work directory: %w", err)
	}
	lock, err := lockDir(abs)
	if err != nil {
		return nil, err
	}
	s := &Store{workDir: abs, meta: filepath.Join(abs, "meta"), lock: lock}
	if err := s.checkFormat(); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.sweep(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := strings.TrimSpace(string(pid))
			if holder != "" {
				holder = " (pid " + holder + ")"
			}
			return nil, fmt.Errorf("%w: %s is in use by another mesolite agent%s; stop it or pass another --work-dir", ErrLocked, dir, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// WorkDir is the absolute work directory.
func (s *Store) WorkDir() string { return s.workDir }

// Close releases the lock.
func (s *Store) Close() error {
	if s.lock == nil {
		return nil
	}
	err := s.lock.Close()
	s.lock = nil
	return err
}

type format struct {
	Format int `json:"format"`
}

func (s *Store) checkFormat() error {
	if err := os.MkdirAll(s.meta, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", s.meta, err)
	}
	path := filepath.Join(s.meta, "FORMAT")
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		out, _ := json.Marshal(format{Format: FormatVersion})
		return writeFileAtomic(path, append(out, '\n'))
	case err != nil:
		return fmt.Errorf("read %s: %w", path, err)
	}
	var f format
	if err := json.Unmarshal(b, &f); err != nil || f.Format < 1 {
		return fmt.Errorf("read %s: not a mesolite format file (%q); if this is not a mesolite work directory, pass another --work-dir", path, strings.TrimSpace(string(b)))
	}
	if f.Format > FormatVersion {
		return fmt.Errorf("work directory %s: %w (format %d, this binary reads up to %d); run the newer mesolite or pass another --work-dir", s.workDir, ErrNewerFormat, f.Format, FormatVersion)
	}
	return nil
}

// sweep removes temporary files left by an interrupted Put.
func (s *Store) sweep() error {
	return filepath.WalkDir(s.meta, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && isTemp(d.Name()) {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove stale temp file: %w", err)
			}
		}
		return nil
	})
}

func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-")
}

// MaxKeyLength is the longest kind or key. The file names derived from a
// key must fit the 255-byte limit of file systems: the temporary file
// ".<key>.json.tmp-<10 digits>" (key + 21 bytes) and the set-aside name
// "<key>.json.corrupt-<time>" (key + 39 bytes).
const MaxKeyLength = 200

func validName(s string) bool {
	if s == "" || len(s) > MaxKeyLength || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if r == '/' || r == 0 || r == '\\' || r == '\n' {
			return false
		}
	}
	return true
}

func (s *Store) path(kind, key string) (string, error) {
	if !validName(kind) || !validName(key) {
		return "", fmt.Errorf("%w: %q/%q", ErrBadKey, kind, key)
	}
	return filepath.Join(s.meta, kind, key+".json"), nil
}

// Put writes v as the record kind/key, atomically and durably.
func (s *Store) Put(kind, key string, v any) error {
	path, err := s.path(kind, key)
	if err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("marshal %s/%s: %w", kind, key, err)
	}
	env := Envelope{Schema: SchemaVersion, Kind: kind, Key: key, Written: time.Now().UTC(), Data: data}
	b, err := json.MarshalIndent(env, "", "  ")
	if err != nil {
		return fmt.Errorf("marshal %s/%s: %w", kind, key, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	if err := writeFileAtomic(path, append(b, '\n')); err != nil {
		return fmt.Errorf("write %s/%s: %w", kind, key, err)
	}
	return nil
}

// Get reads the record kind/key into v. It reports false when there is none.
func (s *Store) Get(kind, key string, v any) (bool, error) {
	path, err := s.path(kind, key)
	if err != nil {
		return false, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read %s/%s: %w", kind, key, err)
	}
	env, err := parse(b)
	if err != nil {
		return false, fmt.Errorf("read %s/%s: %w", kind, key, err)
	}
	if env.Schema > SchemaVersion {
		return false, newerRecord(path, env.Schema)
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return false, fmt.Errorf("decode %s/%s: %w", kind, key, err)
	}
	return true, nil
}

// Delete removes the record kind/key durably. Deleting a missing record is
// not an error.
func (s *Store) Delete(kind, key string) error {
	path, err := s.path(kind, key)
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("delete %s/%s: %w", kind, key, err)
	}
	return syncDir(filepath.Dir(path))
}

// Keys lists the keys of kind's records, sorted.
func (s *Store) Keys(kind string) ([]string, error) {
	if !validName(kind) {
		return nil, fmt.Errorf("%w: %q", ErrBadKey, kind)
	}
	entries, err := os.ReadDir(filepath.Join(s.meta, kind))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	var keys []string
	for _, e := range entries {
		if n := e.Name(); !e.IsDir() && strings.HasSuffix(n, ".json") && !isTemp(n) {
			keys = append(keys, strings.TrimSuffix(n, ".json"))
		}
	}
	sort.Strings(keys)
	return keys, nil
}

// Load calls fn for every record of kind, in key order. A record that does
// not parse, or for which fn returns an error, is renamed aside and
// reported; the others still load. A record from a newer schema stops the
// load with ErrNewerFormat.
func (s *Store) Load(kind string, fn func(key string, schema int, data json.RawMessage) error) ([]SetAside, error) {
	if !validName(kind) {
		return nil, fmt.Errorf("%w: %q", ErrBadKey, kind)
	}
	dir := filepath.Join(s.meta, kind)
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") && !isTemp(e.Name()) {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var aside []SetAside
	for _, name := range names {
		path := filepath.Join(dir, name)
		key := strings.TrimSuffix(name, ".json")
		b, err := os.ReadFile(path)
		if err != nil {
			return aside, fmt.Errorf("read %s/%s: %w", kind, key, err)
		}
		env, perr := parse(b)
		if perr == nil && env.Schema > SchemaVersion {
			return aside, newerRecord(path, env.Schema)
		}
		if perr == nil {
			perr = fn(key, env.Schema, env.Data)
		}
		if perr != nil {
			to, err := setAside(path)
			if err != nil {
				return aside, err
			}
			aside = append(aside, SetAside{Kind: kind, Key: key, Path: to, Err: perr})
		}
	}
	return aside, nil
}

func newerRecord(path string, schema int) error {
	return fmt.Errorf("record %s: %w (schema %d, this binary reads up to %d); run the newer mesolite or pass another --work-dir", path, ErrNewerFormat, schema, SchemaVersion)
}

// parse reads an envelope. The whole file must be one JSON object, so a
// record with trailing bytes is refused rather than half-read. A record of
// a newer schema is returned as soon as its schema is known, whatever the
// rest looks like: only the newer binary may judge it.
func parse(b []byte) (*Envelope, error) {
	var env Envelope
	if err := json.Unmarshal(b, &env); err != nil {
		var head struct {
			Schema int `json:"schema"`
		}
		if json.Unmarshal(b, &head) == nil && head.Schema > SchemaVersion {
			return &Envelope{Schema: head.Schema}, nil
		}
		return nil, fmt.Errorf("parse record: %w", err)
	}
	if env.Schema > SchemaVersion {
		return &env, nil
	}
	if env.Schema < 1 || len(env.Data) == 0 {
		return nil, errors.New("parse record: no schema or data")
	}
	return &env, nil
}

func setAside(path string) (string, error) {
	to := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000000000")
	if err := os.Rename(path, to); err != nil {
		return "", fmt.Errorf("set aside %s: %w", path, err)
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return "", err
	}
	return to, nil
}

// writeFileAtomic writes b to path through a temporary file in the same
// directory: write, fsync, rename, fsync the directory.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	cleanup := func() { _ = os.Remove(tmp) }
	if _, err := f.Write(b); err != nil {
		_ = f.Close()
		cleanup()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		cleanup()
		return err
	}
	if err := f.Close(); err != nil {
		cleanup()
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		cleanup()
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
