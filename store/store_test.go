package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type rec struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags,omitempty"`
}

func openT(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// reopen closes s and opens its directory again, as a restart would.
func reopen(t *testing.T, s *Store) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return openT(t, s.WorkDir())
}

// loadAll loads every record of kind into a map, failing on set-asides.
func loadAll(t *testing.T, s *Store, kind string) map[string]rec {
	t.Helper()
	got := map[string]rec{}
	aside, err := s.Load(kind, func(key string, schema int, data json.RawMessage) error {
		if schema != SchemaVersion {
			t.Errorf("%s/%s: schema %d, want %d", kind, key, schema, SchemaVersion)
		}
		var r rec
		if err := json.Unmarshal(data, &r); err != nil {
			return err
		}
		got[key] = r
		return nil
	})
	if err != nil {
		t.Fatalf("load %s: %v", kind, err)
	}
	if len(aside) != 0 {
		t.Fatalf("load %s: set aside %+v", kind, aside)
	}
	return got
}

func writeRaw(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// files lists the regular files under dir, relative, sorted.
func files(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTripSurvivesReopen(t *testing.T) {
	s := openT(t, t.TempDir())
	want := map[string]rec{
		"a":                          {Name: "a", Count: 1},
		"b.instance-1234":            {Name: "b", Count: 2, Tags: []string{"x", "y"}},
		"c@2026-01-01T00:00:00.000Z": {Name: "c", Count: 3},
	}
	for k, v := range want {
		if err := s.Put("things", k, v); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	// Overwrite one: the new content wins.
	want["a"] = rec{Name: "a2", Count: 10}
	if err := s.Put("things", "a", want["a"]); err != nil {
		t.Fatal(err)
	}

	s = reopen(t, s)
	var got rec
	ok, err := s.Get("things", "b.instance-1234", &got)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if !reflect.DeepEqual(got, want["b.instance-1234"]) {
		t.Errorf("get = %+v, want %+v", got, want["b.instance-1234"])
	}
	ok, err = s.Get("things", "missing", &got)
	if ok || err != nil {
		t.Errorf("get missing: ok=%v err=%v, want false, nil", ok, err)
	}
	ok, err = s.Get("nokind", "x", &got)
	if ok || err != nil {
		t.Errorf("get of an unknown kind: ok=%v err=%v, want false, nil", ok, err)
	}

	keys, err := s.Keys("things")
	if err != nil {
		t.Fatal(err)
	}
	wantKeys := []string{"a", "b.instance-1234", "c@2026-01-01T00:00:00.000Z"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("keys = %q, want %q", keys, wantKeys)
	}
	if keys, err := s.Keys("nokind"); err != nil || len(keys) != 0 {
		t.Errorf("keys of an unknown kind = %q, %v; want none", keys, err)
	}

	if got := loadAll(t, s, "things"); !reflect.DeepEqual(got, want) {
		t.Errorf("load = %+v, want %+v", got, want)
	}
	var order []string
	if _, err := s.Load("things", func(key string, _ int, _ json.RawMessage) error {
		order = append(order, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(order, wantKeys) {
		t.Errorf("load order = %q, want key order %q", order, wantKeys)
	}

	if err := s.Delete("things", "a"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if err := s.Delete("things", "a"); err != nil {
		t.Errorf("delete of a missing record: %v, want nil", err)
	}
	s = reopen(t, s)
	if ok, err := s.Get("things", "a", &got); ok || err != nil {
		t.Errorf("get after delete: ok=%v err=%v", ok, err)
	}
	delete(want, "a")
	if got := loadAll(t, s, "things"); !reflect.DeepEqual(got, want) {
		t.Errorf("load after delete = %+v, want %+v", got, want)
	}
}

// Load's callback may delete the record it is given (the agent drops
// finished deployments that way); that is no failure.
func TestLoadCallbackDeletes(t *testing.T) {
	s := openT(t, t.TempDir())
	for _, k := range []string{"done", "live"} {
		if err := s.Put("deployments", k, rec{Name: k}); err != nil {
			t.Fatal(err)
		}
	}
	aside, err := s.Load("deployments", func(key string, _ int, _ json.RawMessage) error {
		if key == "done" {
			return s.Delete("deployments", key)
		}
		return nil
	})
	if err != nil || len(aside) != 0 {
		t.Fatalf("load: aside %+v, err %v", aside, err)
	}
	if keys, _ := s.Keys("deployments"); !reflect.DeepEqual(keys, []string{"live"}) {
		t.Errorf("keys = %q, want [live]", keys)
	}
}

func TestConcurrentPutsOfDifferentKeys(t *testing.T) {
	s := openT(t, t.TempDir())
	const n = 16
	errs := make(chan error, n)
	for i := range n {
		go func() {
			k := fmt.Sprintf("k%02d", i)
			for j := range 5 {
				if err := s.Put("fresh-kind", k, rec{Name: k, Count: j}); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	got := loadAll(t, reopen(t, s), "fresh-kind")
	if len(got) != n {
		t.Fatalf("loaded %d records, want %d", len(got), n)
	}
	for k, r := range got {
		if r.Name != k || r.Count != 4 {
			t.Errorf("%s = %+v, want its last write", k, r)
		}
	}
}

func TestEnvelopeOnDisk(t *testing.T) {
	s := openT(t, t.TempDir())
	before := time.Now().UTC().Add(-time.Second)
	v := rec{Name: "pg", Count: 7, Tags: []string{"db"}}
	if err := s.Put("instances", "pg.instance-1", v); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(s.WorkDir(), "meta", "instances", "pg.instance-1.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the record is not at %s: %v", path, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatalf("record is not a JSON object: %v\n%s", err, b)
	}
	var names []string
	for k := range fields {
		names = append(names, k)
	}
	if len(fields) != 5 {
		t.Errorf("envelope fields = %q, want schema, kind, key, written, data", names)
	}
	var env struct {
		Schema  int       `json:"schema"`
		Kind    string    `json:"kind"`
		Key     string    `json:"key"`
		Written time.Time `json:"written"`
		Data    rec       `json:"data"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	if env.Schema != 1 || env.Kind != "instances" || env.Key != "pg.instance-1" {
		t.Errorf("envelope = schema %d kind %q key %q, want 1 instances pg.instance-1", env.Schema, env.Kind, env.Key)
	}
	if env.Written.Before(before) || env.Written.After(time.Now().Add(time.Second)) || env.Written.Location() != time.UTC {
		t.Errorf("written = %v, want now in UTC", env.Written)
	}
	if !reflect.DeepEqual(env.Data, v) {
		t.Errorf("data = %+v, want %+v", env.Data, v)
	}
	if !strings.HasSuffix(string(b), "}\n") {
		t.Errorf("record does not end in a newline: %q", b[len(b)-5:])
	}
	if got := files(t, filepath.Join(s.WorkDir(), "meta")); !reflect.DeepEqual(got, []string{"FORMAT", "instances/pg.instance-1.json"}) {
		t.Errorf("files under meta = %q, want FORMAT and the record only (no temp files)", got)
	}
	fb, err := os.ReadFile(filepath.Join(s.WorkDir(), "meta", "FORMAT"))
	if err != nil || strings.TrimSpace(string(fb)) != `{"format":1}` {
		t.Errorf("meta/FORMAT = %q, %v; want {\"format\":1}", fb, err)
	}
}

func TestStrayTempFileRemovedByOpenIgnoredByLoad(t *testing.T) {
	s := openT(t, t.TempDir())
	if err := s.Put("apps", "x", rec{Name: "x"}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.WorkDir(), "meta", "apps")
	stray := filepath.Join(dir, ".x.json.tmp-123")
	half := []byte(`{"schema":1,"kind":"apps","key":"x","writ`)
	writeRaw(t, stray, half)

	// While it lies there, neither Keys nor Load see it.
	if keys, err := s.Keys("apps"); err != nil || !reflect.DeepEqual(keys, []string{"x"}) {
		t.Errorf("keys = %q, %v; want [x]", keys, err)
	}
	if got := loadAll(t, s, "apps"); len(got) != 1 || got["x"].Name != "x" {
		t.Errorf("load = %+v, want only x", got)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Errorf("load touched the temp file: %v", err)
	}

	// A crash left it: the next Open sweeps it (in any kind's directory).
	other := filepath.Join(s.WorkDir(), "meta", "instances", ".i.json.tmp-99")
	writeRaw(t, other, half)
	s = reopen(t, s)
	for _, p := range []string{stray, other} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after Open: %v", p, err)
		}
	}
	if got := loadAll(t, s, "apps"); len(got) != 1 || got["x"].Name != "x" {
		t.Errorf("load after sweep = %+v, want only x", got)
	}
}

func TestUnreadableRecordsAreSetAside(t *testing.T) {
	s := openT(t, t.TempDir())
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if err := s.Put("instances", k, rec{Name: k}); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(s.WorkDir(), "meta", "instances")
	full, err := os.ReadFile(filepath.Join(dir, "b.json"))
	if err != nil {
		t.Fatal(err)
	}
	broken := map[string][]byte{
		"b": full[:len(full)/2],                                     // truncated by a crash (no fsync)
		"c": []byte("\x00\x00\x00\x00garbage"),                      // garbage
		"d": append(append([]byte(nil), full...), []byte("xyz")...), // trailing bytes
		"e": []byte(`{"schema":1,"kind":"instances","key":"e"}`),    // no data
	}
	for k, b := range broken {
		writeRaw(t, filepath.Join(dir, k+".json"), b)
	}
	// One more whose data parses but that the caller refuses.
	if err := s.Put("instances", "f", rec{Name: "refused"}); err != nil {
		t.Fatal(err)
	}
	refusedBytes, err := os.ReadFile(filepath.Join(dir, "f.json"))
	if err != nil {
		t.Fatal(err)
	}
	broken["f"] = refusedBytes
	errRefused := errors.New("unknown goal")

	s = reopen(t, s)
	loaded := map[string]bool{}
	aside, err := s.Load("instances", func(key string, _ int, data json.RawMessage) error {
		var r rec
		if err := json.Unmarshal(data, &r); err != nil {
			return err
		}
		if r.Name == "refused" {
			return errRefused
		}
		loaded[key] = true
		return nil
	})
	if err != nil {
		t.Fatalf("load: %v (one bad record must not stop the others)", err)
	}
	if !reflect.DeepEqual(loaded, map[string]bool{"a": true}) {
		t.Errorf("loaded %v, want only a", loaded)
	}
	if len(aside) != len(broken) {
		t.Fatalf("set aside %d records, want %d: %+v", len(aside), len(broken), aside)
	}
	for _, sa := range aside {
		want, ok := broken[sa.Key]
		if !ok {
			t.Errorf("unexpected set-aside %+v", sa)
			continue
		}
		if sa.Kind != "instances" || sa.Err == nil {
			t.Errorf("set-aside %s: kind %q err %v, want instances and a reason", sa.Key, sa.Kind, sa.Err)
		}
		if filepath.Dir(sa.Path) != dir || !strings.HasPrefix(filepath.Base(sa.Path), sa.Key+".json.corrupt-") {
			t.Errorf("set-aside %s: path %s, want %s/%s.json.corrupt-<time>", sa.Key, sa.Path, dir, sa.Key)
		}
		got, err := os.ReadFile(sa.Path)
		if err != nil {
			t.Errorf("set-aside %s: file not kept: %v", sa.Key, err)
		} else if string(got) != string(want) {
			t.Errorf("set-aside %s: content changed", sa.Key)
		}
		if _, err := os.Stat(filepath.Join(dir, sa.Key+".json")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("set-aside %s: still under its own name: %v", sa.Key, err)
		}
	}
	for _, sa := range aside {
		if sa.Key == "f" && !errors.Is(sa.Err, errRefused) {
			t.Errorf("set-aside f: err %v, want the callback's error", sa.Err)
		}
	}

	// Set-aside files are no records: the next load and Keys skip them.
	s = reopen(t, s)
	if keys, err := s.Keys("instances"); err != nil || !reflect.DeepEqual(keys, []string{"a"}) {
		t.Errorf("keys after set-aside = %q, %v; want [a]", keys, err)
	}
	if got := loadAll(t, s, "instances"); len(got) != 1 {
		t.Errorf("second load = %+v, want only a", got)
	}
}

func TestGetOfCorruptRecordFails(t *testing.T) {
	s := openT(t, t.TempDir())
	path := filepath.Join(s.WorkDir(), "meta", "agent", "agent.json")
	writeRaw(t, path, []byte(`{"schema":1,"ki`))
	var r rec
	ok, err := s.Get("agent", "agent", &r)
	if err == nil || ok {
		t.Fatalf("get of a truncated record: ok=%v err=%v, want an error", ok, err)
	}
	if !strings.Contains(err.Error(), "agent/agent") {
		t.Errorf("error %q does not name the record", err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("get moved the record: %v", err)
	}
}

func TestNewerRecordIsAnErrorAndUntouched(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
	}{
		{"same shape", `{"schema":99,"kind":"apps","key":"b","written":"2030-01-01T00:00:00Z","data":{"name":"b"}}`},
		{"new shape", `{"schema":99,"kind":"apps","key":"b","written":1893456000,"payload":[1,2,3]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openT(t, t.TempDir())
			if err := s.Put("apps", "a", rec{Name: "a"}); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(s.WorkDir(), "meta", "apps")
			path := filepath.Join(dir, "b.json")
			writeRaw(t, path, []byte(tc.body))
			_, err := s.Load("apps", func(string, int, json.RawMessage) error { return nil })
			if !errors.Is(err, ErrNewerFormat) {
				t.Fatalf("load: %v, want ErrNewerFormat", err)
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "99") {
				t.Errorf("error %q does not name the file and its schema", err)
			}
			var r rec
			if _, err := s.Get("apps", "b", &r); !errors.Is(err, ErrNewerFormat) {
				t.Errorf("get: %v, want ErrNewerFormat", err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tc.body {
				t.Errorf("record changed or moved: %q, %v", got, err)
			}
			if got := files(t, dir); !reflect.DeepEqual(got, []string{"a.json", "b.json"}) {
				t.Errorf("files = %q, want a.json b.json (nothing set aside)", got)
			}
		})
	}
}

func TestNewerFormatRefusesOpen(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fpath := filepath.Join(dir, "meta", "FORMAT")
	writeRaw(t, fpath, []byte(`{"format":99}`+"\n"))
	_, err := Open(dir)
	if !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("open: %v, want ErrNewerFormat", err)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "99") {
		t.Errorf("error %q does not name the directory and the format", err)
	}
	if b, _ := os.ReadFile(fpath); string(b) != `{"format":99}`+"\n" {
		t.Errorf("FORMAT rewritten: %q", b)
	}
	// The failed Open released its lock.
	writeRaw(t, fpath, []byte(`{"format":1}`+"\n"))
	openT(t, dir)
}

func TestGarbageFormatRefusesOpen(t *testing.T) {
	for _, body := range []string{"garbage\n", `{"format":0}`, ""} {
		dir := t.TempDir()
		fpath := filepath.Join(dir, "meta", "FORMAT")
		writeRaw(t, fpath, []byte(body))
		s, err := Open(dir)
		if err == nil {
			_ = s.Close()
			t.Fatalf("open with FORMAT %q succeeded", body)
		}
		msg := err.Error()
		for _, want := range []string{fpath, "not a mesolite format file", "--work-dir"} {
			if !strings.Contains(msg, want) {
				t.Errorf("FORMAT %q: error %q does not contain %q", body, msg, want)
			}
		}
		if errors.Is(err, ErrNewerFormat) || errors.Is(err, ErrLocked) {
			t.Errorf("FORMAT %q: error %v has the wrong class", body, err)
		}
	}
}

func TestBadKeys(t *testing.T) {
	s := openT(t, t.TempDir())
	bad := []string{"", ".", "..", "a/b", "../x", ".hidden", "a\x00b", "a\\b", "a\nb", strings.Repeat("k", MaxKeyLength+1)}
	for _, k := range bad {
		var r rec
		if err := s.Put("apps", k, rec{}); !errors.Is(err, ErrBadKey) {
			t.Errorf("put key %q: %v, want ErrBadKey", k, err)
		}
		if err := s.Put(k, "x", rec{}); !errors.Is(err, ErrBadKey) {
			t.Errorf("put kind %q: %v, want ErrBadKey", k, err)
		}
		if _, err := s.Get("apps", k, &r); !errors.Is(err, ErrBadKey) {
			t.Errorf("get key %q: %v, want ErrBadKey", k, err)
		}
		if err := s.Delete("apps", k); !errors.Is(err, ErrBadKey) {
			t.Errorf("delete key %q: %v, want ErrBadKey", k, err)
		}
		if _, err := s.Keys(k); !errors.Is(err, ErrBadKey) {
			t.Errorf("keys of kind %q: %v, want ErrBadKey", k, err)
		}
		if _, err := s.Load(k, func(string, int, json.RawMessage) error { return nil }); !errors.Is(err, ErrBadKey) {
			t.Errorf("load kind %q: %v, want ErrBadKey", k, err)
		}
	}
	// Nothing escaped meta/ or landed in it.
	if got := files(t, s.WorkDir()); !reflect.DeepEqual(got, []string{"LOCK", "meta/FORMAT"}) {
		t.Errorf("files = %q, want LOCK and meta/FORMAT only", got)
	}
}

// The longest key still fits a file name when it is written (temp file)
// and when it is set aside.
func TestLongestKey(t *testing.T) {
	s := openT(t, t.TempDir())
	key := strings.Repeat("k", MaxKeyLength)
	if err := s.Put("instances", key, rec{Name: "long"}); err != nil {
		t.Fatalf("put a %d-byte key: %v", len(key), err)
	}
	var r rec
	if ok, err := s.Get("instances", key, &r); !ok || err != nil || r.Name != "long" {
		t.Fatalf("get: %+v ok=%v err=%v", r, ok, err)
	}
	aside, err := s.Load("instances", func(string, int, json.RawMessage) error { return errors.New("refused") })
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if len(aside) != 1 || aside[0].Key != key {
		t.Fatalf("set aside %+v, want the long key", aside)
	}
	if _, err := os.Stat(aside[0].Path); err != nil {
		t.Errorf("set-aside file: %v", err)
	}
}

func TestLockInProcess(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	_, err := Open(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	abs, _ := filepath.Abs(dir)
	for _, want := range []string{abs, "pid " + strconv.Itoa(os.Getpid()), "another mesolite agent"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// The failed Open did not disturb the holder's pid.
	if b, _ := os.ReadFile(filepath.Join(dir, "LOCK")); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("LOCK holds %q, want our pid", b)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	openT(t, dir)
}

const lockHolderEnv = "MESOLITE_STORE_LOCK_HOLDER"

// TestMain runs the test binary as the other process of
// TestLockAcrossProcesses when lockHolderEnv names a directory: it opens
// the store there, says "locked <pid>" and holds the lock until its stdin
// closes.
func TestMain(m *testing.M) {
	if dir := os.Getenv(lockHolderEnv); dir != "" {
		s, err := Open(dir)
		if err != nil {
			fmt.Printf("error %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("locked %d\n", os.Getpid())
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = s.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestLockAcrossProcesses(t *testing.T) {
	dir := t.TempDir()
	abs, _ := filepath.Abs(dir)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+dir)
	stdin, err := cmd.StdinPipe() // the holder exits when we do
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if line := sc.Text(); strings.HasPrefix(line, "locked ") || strings.HasPrefix(line, "error ") {
				ready <- line
				break
			}
		}
		close(ready)
		_, _ = io.Copy(io.Discard, stdout)
	}()
	var line string
	select {
	case line = <-ready:
	case <-time.After(30 * time.Second):
		t.Fatal("the holder process did not lock the store within 30s")
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	if line != "locked "+pid {
		t.Fatalf("holder said %q, want %q", line, "locked "+pid)
	}

	_, err = Open(dir)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("open while another process holds the lock: %v, want ErrLocked", err)
	}
	for _, want := range []string{abs, "pid " + pid} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}

	// kill -9: the kernel drops the flock with the process.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	werr := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("holder ended with %v, want killed by SIGKILL", werr)
	}
	s := openT(t, dir)
	if b, _ := os.ReadFile(filepath.Join(s.WorkDir(), "LOCK")); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("LOCK holds %q after takeover, want our pid %d", b, os.Getpid())
	}
}

// TestRecordedV1 opens a work directory written by this format's agent
// (testdata/v1: the tutorial's app running, a stopped app, a deployment in
// progress, the agent identity) and checks that every record loads and
// that loading changes no byte. A ':' of a file name (version keys hold
// times) is "%3A" in the repository, whose files must make a valid Go
// module zip (go install …@version refuses one with a ':' in a name).
func TestRecordedV1(t *testing.T) {
	src := filepath.Join("testdata", "v1")
	dir := t.TempDir()
	want := map[string][]byte{}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		rel = strings.ReplaceAll(rel, "%3A", ":")
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		want[rel] = b
		writeRaw(t, filepath.Join(dir, rel), b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(want) < 5 {
		t.Fatalf("testdata/v1 holds %d files, want the recorded work directory", len(want))
	}

	s := openT(t, dir)
	var ident struct {
		AgentID     string    `json:"agentId"`
		FrameworkID string    `json:"frameworkId"`
		Created     time.Time `json:"created"`
	}
	if ok, err := s.Get("agent", "agent", &ident); !ok || err != nil {
		t.Fatalf("get agent identity: ok=%v err=%v", ok, err)
	}
	if ident.AgentID != "2aa127e7-4420-4fc7-8f66-e873f9c7413d-S0" || ident.FrameworkID != "d054b57f-9c5c-473d-abe6-6fe39b405e89-0000" || ident.Created.IsZero() {
		t.Errorf("identity = %+v", ident)
	}

	type loaded struct {
		ID    string          `json:"id"`
		AppID string          `json:"appId"`
		Def   json.RawMessage `json:"definition"`
		Task  *struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"task"`
		Steps [][]string `json:"steps"`
	}
	wantKeys := map[string][]string{
		"apps":        {"db_pg", "postgres"},
		"versions":    {"postgres@2026-11-27T05:03:59.041Z"},
		"instances":   {"db_pg.instance-3b863945-e2f1-4ee1-9c4b-c51d2eafdf50", "postgres.instance-2cd2ee3d-1f28-4840-9c02-eae3ec4a9347"},
		"deployments": {"82a1e6d6-52ec-4cee-8c93-369b2c5c14d9"},
	}
	got := map[string]map[string]loaded{}
	for kind, keys := range wantKeys {
		got[kind] = map[string]loaded{}
		aside, err := s.Load(kind, func(key string, schema int, data json.RawMessage) error {
			if schema != 1 {
				return fmt.Errorf("schema %d", schema)
			}
			dec := json.NewDecoder(strings.NewReader(string(data)))
			var l loaded
			if err := dec.Decode(&l); err != nil {
				return err
			}
			got[kind][key] = l
			return nil
		})
		if err != nil || len(aside) != 0 {
			t.Fatalf("load %s: aside %+v, err %v", kind, aside, err)
		}
		var gotKeys []string
		for k := range got[kind] {
			gotKeys = append(gotKeys, k)
		}
		if len(gotKeys) != len(keys) {
			t.Errorf("%s: loaded %q, want %q", kind, gotKeys, keys)
		}
		for _, k := range keys {
			if _, ok := got[kind][k]; !ok {
				t.Errorf("%s/%s not loaded", kind, k)
			}
		}
	}
	if a := got["apps"]["postgres"]; a.ID != "/postgres" || !strings.Contains(string(a.Def), `"image": "postgres:9.5"`) {
		t.Errorf("apps/postgres = %+v", a)
	}
	if i := got["instances"]["postgres.instance-2cd2ee3d-1f28-4840-9c02-eae3ec4a9347"]; i.AppID != "/postgres" || i.Task == nil || i.Task.State != "TASK_RUNNING" {
		t.Errorf("running instance = %+v", i)
	}
	if i := got["instances"]["db_pg.instance-3b863945-e2f1-4ee1-9c4b-c51d2eafdf50"]; i.AppID != "/db/pg" || i.Task == nil || i.Task.State != "TASK_KILLED" {
		t.Errorf("stopped instance = %+v", i)
	}
	if d := got["deployments"]["82a1e6d6-52ec-4cee-8c93-369b2c5c14d9"]; d.AppID != "/postgres" || len(d.Steps) != 2 {
		t.Errorf("deployment = %+v", d)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Loading wrote nothing: the same files, byte for byte, plus the lock.
	after := files(t, dir)
	var wantFiles []string
	for rel := range want {
		wantFiles = append(wantFiles, rel)
	}
	wantFiles = append(wantFiles, "LOCK")
	if len(after) != len(wantFiles) {
		t.Errorf("files after loading = %q, want %q", after, wantFiles)
	}
	for rel, b := range want {
		got, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Errorf("%s: %v", rel, err)
			continue
		}
		if string(got) != string(b) {
			t.Errorf("%s changed by loading", rel)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	v := rec{Name: strings.Repeat("x", 1900), Count: 1}
	keys := make([]string, 16)
	for i := range keys {
		keys[i] = fmt.Sprintf("pg.instance-%d", i)
	}
	b.SetBytes(2 << 10)
	for i := 0; b.Loop(); i++ {
		v.Count = i
		if err := s.Put("instances", keys[i%len(keys)], v); err != nil {
			b.Fatal(err)
		}
	}
}
