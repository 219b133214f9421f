package fetch

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestSlipArchivesRefused: every way an archive entry could land outside
// the sandbox is refused, with a message naming the archive and the
// entry, and nothing of the archive is unpacked, inside or outside.
func TestSlipArchivesRefused(t *testing.T) {
	s := newServer(t)
	ok := member{name: "ok.txt", body: "fine", mode: 0o644}
	cases := []struct {
		name    string
		archive string
		body    []byte
		entry   string
	}{
		{"tar ../", "slip.tar", tarBytes(t, []member{ok, {name: "../../escaped.txt", body: "x", mode: 0o644}}), "../../escaped.txt"},
		{"tar .. inside", "slip2.tar", tarBytes(t, []member{ok, {name: "a/../../escaped.txt", body: "x", mode: 0o644}}), "a/../../escaped.txt"},
		{"tar absolute", "abs.tar.gz", gzipBytes(t, tarBytes(t, []member{ok, {name: "/tmp/escaped.txt", body: "x", mode: 0o644}})), "/tmp/escaped.txt"},
		{"symlink out", "link.tar", tarBytes(t, []member{ok, {name: "etc", link: "../../../../etc"}}), "etc"},
		{"symlink absolute", "abslink.tgz", gzipBytes(t, tarBytes(t, []member{ok, {name: "etc", link: "/etc"}})), "etc"},
		{"file through a symlink", "through.tar", tarBytes(t, []member{ok, {name: "sub/", dir: true, mode: 0o755}, {name: "l", link: "sub"}, {name: "l/x.txt", body: "x", mode: 0o644}}), "l/x.txt"},
		{"hard link out", "hard.tar", tarBytes(t, []member{ok, {name: "h", hard: "../../etc/passwd"}}), "h"},
		{"hard link absolute", "hardabs.tar", tarBytes(t, []member{ok, {name: "h", hard: "/etc/passwd"}}), "h"},
		{"chained links", "chain.tar", tarBytes(t, []member{ok, {name: "d", link: "."}, {name: "c", link: "d/.."}}), "c"},
		{"zip slip", "slip.zip", zipBytes(t, []member{ok, {name: "../../escaped.txt", body: "x", mode: 0o644}}), "../../escaped.txt"},
		{"zip absolute", "abs.zip", zipBytes(t, []member{ok, {name: "/tmp/escaped.txt", body: "x", mode: 0o644}}), "/tmp/escaped.txt"},
		{"zip symlink out", "link.zip", zipBytes(t, []member{ok, {name: "etc", link: "../../etc"}}), "etc"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "a", "b", "sandbox")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			f := newFetcher(t, Config{})
			err := f.Fetch(t.Context(), dir, []Item{{URI: s.put("/"+c.archive, c.body), Extract: true}}, nil)
			var ee *EntryError
			if !errors.Is(err, ErrBadArchive) || !errors.As(err, &ee) {
				t.Fatalf("got %v, want a refused entry", err)
			}
			if ee.Archive != c.archive || ee.Entry != c.entry || !strings.Contains(err.Error(), c.archive) || !strings.Contains(err.Error(), c.entry) {
				t.Fatalf("message %q (entry %q of %q) does not name archive %q and entry %q", err, ee.Entry, ee.Archive, c.archive, c.entry)
			}
			// Only the downloaded archive itself is in the sandbox, and
			// nothing was written around it.
			if got := tree(t, parent); !reflect.DeepEqual(got, []string{"a/", "a/b/", "a/b/sandbox/", "a/b/sandbox/" + c.archive}) {
				t.Fatalf("after the refusal the tree holds %q", got)
			}
		})
	}
}

// TestLinksInsideKept: symlinks and hard links that stay inside are
// unpacked; a read-only directory and repeated names work; devices are
// skipped.
func TestLinksInsideKept(t *testing.T) {
	s := newServer(t)
	body := tarBytes(t, []member{
		{name: "./", dir: true, mode: 0o755},
		{name: "lib/", dir: true, mode: 0o555},
		{name: "lib/real.so", body: "v1", mode: 0o644},
		{name: "lib/real.so", body: "v2", mode: 0o644},
		{name: "lib/alias.so", link: "real.so"},
		{name: "top", link: "lib/real.so"},
		{name: "hard", hard: "lib/real.so"},
		{name: "null", device: true},
	})
	f := newFetcher(t, Config{})
	dir, err := fetchInto(t, f, Item{URI: s.put("/ok.tar", body), Extract: true})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"hard", "lib/", "lib/alias.so -> real.so", "lib/real.so", "ok.tar", "top -> lib/real.so"}
	if got := tree(t, dir); !reflect.DeepEqual(got, want) {
		t.Fatalf("sandbox holds %q, want %q", got, want)
	}
	if got := readFile(t, filepath.Join(dir, "top")); got != "v2" {
		t.Fatalf("top reads %q", got)
	}
	if st, _ := os.Stat(filepath.Join(dir, "lib")); st.Mode().Perm() != 0o755 {
		t.Fatalf("lib has mode %v, want the archive's 0555 made writable for its owner", st.Mode().Perm())
	}
}

// TestLinkAcrossURIs: a link of one archive that leads out only through
// a link of an earlier one is caught once both are in, and removed.
func TestLinkAcrossURIs(t *testing.T) {
	s := newServer(t)
	first := tarBytes(t, []member{{name: "d", link: "."}})
	second := tarBytes(t, []member{{name: "c", link: "d/.."}})
	f := newFetcher(t, Config{})
	dir, err := fetchInto(t, f,
		Item{URI: s.put("/first.tar", first), Extract: true},
		Item{URI: s.put("/second.tar", second), Extract: true})
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Entry != "c" {
		t.Fatalf("got %v, want entry c refused", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "c")); !os.IsNotExist(err) {
		t.Fatalf("the link c is still in the sandbox: %v", err)
	}
}

// TestDestPathNotThroughLink: destPath never follows a symlink an
// earlier URI unpacked.
func TestDestPathNotThroughLink(t *testing.T) {
	s := newServer(t)
	f := newFetcher(t, Config{})
	_, err := fetchInto(t, f,
		Item{URI: s.put("/links.tar", tarBytes(t, []member{{name: "real/", dir: true, mode: 0o755}, {name: "l", link: "real"}})), Extract: true},
		Item{URI: s.put("/file.txt", []byte("x")), DestPath: "l/file.txt"})
	if !errors.Is(err, ErrBadDest) {
		t.Fatalf("got %v, want ErrBadDest", err)
	}
}

// TestBadArchive: a file named like an archive that is not one fails as
// a bad archive naming it.
func TestBadArchive(t *testing.T) {
	s := newServer(t)
	f := newFetcher(t, Config{})
	for _, name := range []string{"junk.tgz", "junk.zip", "junk.tar.xz", "junk.tar.bz2", "junk.gz"} {
		_, err := fetchInto(t, f, Item{URI: s.put("/"+name, []byte("this is not an archive, just text that goes on")), Extract: true})
		if !errors.Is(err, ErrBadArchive) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: got %v, want ErrBadArchive naming it", name, err)
		}
	}
}

// TestLocalFiles: file:// URIs and absolute paths are fetched from under
// host_path_roots only, with symlinks resolved; CheckURI (the check at
// POST) says the same and names the config key.
func TestLocalFiles(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	mustWrite(t, filepath.Join(root, "app.tgz"), gzipBytes(t, tarBytes(t, helloEntries)))
	mustWrite(t, filepath.Join(outside, "secret.txt"), []byte("secret"))
	if err := os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "link.txt")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "out")); err != nil {
		t.Fatal(err)
	}
	roots := []string{root}
	cases := []struct {
		uri   string
		class error // nil: allowed
		says  string
	}{
		{"file://" + root + "/app.tgz", nil, ""},
		{root + "/app.tgz", nil, ""},
		{"file://localhost" + root + "/app.tgz", nil, ""},
		{root + "/not-yet.tgz", nil, ""},
		{"http://127.0.0.1:1/x.tgz", nil, ""},
		{"file://" + outside + "/secret.txt", ErrNotAllowed, "host_path_roots"},
		{outside + "/secret.txt", ErrNotAllowed, "outside the allowed roots"},
		{root + "/../" + filepath.Base(outside) + "/secret.txt", ErrNotAllowed, "host_path_roots"},
		{root + "/link.txt", ErrNotAllowed, "resolves to"},
		{root + "/out/secret.txt", ErrNotAllowed, "resolves to"},
		{root + "/out/new.txt", ErrNotAllowed, "resolves to"},
		{"file://otherhost" + root + "/app.tgz", ErrNotAllowed, "file:///path"},
		{"app.tgz", ErrNotAllowed, "relative path"},
		{"ftp://127.0.0.1/app.tgz", ErrNotAllowed, "scheme \"ftp\""},
		{"hdfs://nn/app.tgz", ErrNotAllowed, "http, https, file"},
		{"", ErrNotAllowed, "empty"},
	}
	for _, c := range cases {
		err := CheckURI(c.uri, roots)
		if c.class == nil {
			if err != nil {
				t.Errorf("CheckURI(%q) = %v, want it allowed", c.uri, err)
			}
			continue
		}
		if !errors.Is(err, c.class) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("CheckURI(%q) = %v, want %v saying %q", c.uri, err, c.class, c.says)
		}
	}
	if err := CheckURI(root+"/app.tgz", nil); !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), "host_path_roots") {
		t.Errorf("without roots: %v", err)
	}

	f := newFetcher(t, Config{HostPathRoots: roots})
	dir, err := fetchInto(t, f, Item{URI: "file://" + root + "/app.tgz", Extract: true, Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bin/run.sh")); err != nil {
		t.Fatal(err)
	}
	for _, uri := range []string{root + "/link.txt", "file://" + outside + "/secret.txt"} {
		dir, err := fetchInto(t, f, Item{URI: uri})
		if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), uri) {
			t.Errorf("fetch %s: %v, want ErrNotAllowed naming it", uri, err)
		}
		if got := tree(t, dir); len(got) != 0 {
			t.Errorf("fetch %s left %q", uri, got)
		}
	}
	if _, err := fetchInto(t, f, Item{URI: root + "/not-yet.tgz"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing local file: %v, want ErrNotFound", err)
	}
}

func mustWrite(t *testing.T, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDestPath covers the destination names.
func TestDestPath(t *testing.T) {
	for _, p := range []string{"", "/abs", "a/../../b", "..", ".", "a/./..", "x\x00y"} {
		if err := CheckDestPath(p); !errors.Is(err, ErrBadDest) {
			t.Errorf("CheckDestPath(%q) = %v, want ErrBadDest", p, err)
		}
	}
	for _, p := range []string{"app.jar", "lib/app.jar", "./app.jar", "a/b/c.tgz"} {
		if err := CheckDestPath(p); err != nil {
			t.Errorf("CheckDestPath(%q) = %v", p, err)
		}
	}
	src, _ := parseURI("http://h/dir/")
	if _, err := destName(Item{URI: "http://h/dir/"}, src); !errors.Is(err, ErrBadDest) || !strings.Contains(err.Error(), "destPath") {
		t.Errorf("a URI without a file name: %v", err)
	}
	src, _ = parseURI("http://h/a%20b.tgz?x=1")
	if got, err := destName(Item{}, src); err != nil || got != "a b.tgz" {
		t.Errorf("destName = %q, %v", got, err)
	}
}

// TestKindOf follows Mesos's suffixes.
func TestKindOf(t *testing.T) {
	cases := map[string]archiveKind{
		"a.tar": kindTar, "a.tgz": kindTarGz, "a.tar.gz": kindTarGz, "a.tbz2": kindTarBz2,
		"a.tar.bz2": kindTarBz2, "a.txz": kindTarXz, "a.tar.xz": kindTarXz, "a.zip": kindZip,
		"a.gz": kindGz, "a.jar": notArchive, "a.TGZ": notArchive, "a.xz": notArchive, "a.bz2": notArchive,
	}
	for name, want := range cases {
		if got := kindOf(name); got != want {
			t.Errorf("kindOf(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestMergeIntoSandbox: archives unpack into directories the sandbox
// already has (a volume's mount point, an earlier archive's), and a file
// never replaces a directory nor the reverse.
func TestMergeIntoSandbox(t *testing.T) {
	s := newServer(t)
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	f := newFetcher(t, Config{})
	err := f.Fetch(t.Context(), dir, []Item{
		{URI: s.put("/one.tar", tarBytes(t, []member{{name: "lib/a.so", body: "a", mode: 0o644}, {name: "data/seed.txt", body: "seed", mode: 0o644}})), Extract: true},
		{URI: s.put("/two.tar", tarBytes(t, []member{{name: "lib/b.so", body: "b", mode: 0o644}, {name: "lib/a.so", body: "a2", mode: 0o644}})), Extract: true},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"data/", "data/seed.txt", "lib/", "lib/a.so", "lib/b.so", "one.tar", "two.tar"}
	if got := tree(t, dir); !reflect.DeepEqual(got, want) {
		t.Fatalf("sandbox holds %q, want %q", got, want)
	}
	if got := readFile(t, filepath.Join(dir, "lib/a.so")); got != "a2" {
		t.Fatalf("lib/a.so = %q, want the later archive's", got)
	}
	err = f.Fetch(t.Context(), dir, []Item{
		{URI: s.put("/three.tar", tarBytes(t, []member{{name: "aaa.txt", body: "first", mode: 0o644}, {name: "lib", body: "a file", mode: 0o644}})), Extract: true},
	}, nil)
	var ee *EntryError
	if !errors.As(err, &ee) || ee.Entry != "lib" || ee.Archive != "three.tar" {
		t.Fatalf("got %v, want entry lib of three.tar refused", err)
	}
	if st, err := os.Lstat(filepath.Join(dir, "lib")); err != nil || !st.IsDir() {
		t.Fatalf("lib is no longer a directory: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "aaa.txt")); !os.IsNotExist(err) {
		t.Fatalf("a refused archive moved aaa.txt in: %v", err)
	}
}
