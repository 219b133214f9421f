package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestContainerName(t *testing.T) {
	s := &TaskSpec{ContainerID: "c0545002-91cf-4beb-a141-367d29d516eb"}
	if got := s.Name(); got != "mesos-c0545002-91cf-4beb-a141-367d29d516eb" {
		t.Errorf("name = %q", got)
	}
}

func TestMountResolve(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	within := filepath.Join(base, "sandbox")
	outside := filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(within, "data"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustLink := func(target, link string) {
		t.Helper()
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
	}
	mustLink("/etc", filepath.Join(within, "etc"))
	mustLink(outside, filepath.Join(within, "out"))
	mustLink("data", filepath.Join(within, "data-link")) // relative, stays inside
	linkedRoot := filepath.Join(base, "sandbox-link")
	mustLink(within, linkedRoot)

	tests := []struct {
		name       string
		m          Bind
		wantSource string
		wantErr    error
		errText    string
		notCreated string // a path Resolve must not create
	}{
		{name: "subdirectory", m: Bind{Source: filepath.Join(within, "data"), Within: within}, wantSource: filepath.Join(within, "data")},
		{name: "the directory itself", m: Bind{Source: within, Within: within}, wantSource: within},
		{name: "link inside the directory", m: Bind{Source: filepath.Join(within, "data-link"), Within: within}, wantSource: filepath.Join(within, "data")},
		{name: "containing directory reached through a link", m: Bind{Source: filepath.Join(linkedRoot, "data"), Within: linkedRoot}, wantSource: filepath.Join(within, "data")},
		{name: "link to /etc", m: Bind{Source: filepath.Join(within, "etc"), Within: within}, wantErr: ErrUnsafePath},
		{name: "link to a sibling", m: Bind{Source: filepath.Join(within, "out"), Within: within}, wantErr: ErrUnsafePath},
		{name: "prefix is not containment", m: Bind{Source: base + "/sandboxes", Within: within, Create: true}, wantErr: ErrUnsafePath, notCreated: base + "/sandboxes"},
		{name: "no containing directory", m: Bind{Source: filepath.Join(within, "data")}, wantErr: ErrUnsafePath},
		{name: "create a missing directory", m: Bind{Source: filepath.Join(within, "new", "deep"), Within: within, Create: true}, wantSource: filepath.Join(within, "new", "deep")},
		{name: "create through a link to outside", m: Bind{Source: filepath.Join(within, "out", "planted"), Within: within, Create: true}, wantErr: ErrUnsafePath, notCreated: filepath.Join(outside, "planted")},
		{name: "create with dot-dot", m: Bind{Source: within + "/../escaped", Within: within, Create: true}, wantErr: ErrUnsafePath, notCreated: filepath.Join(base, "escaped")},
		{name: "missing without create", m: Bind{Source: filepath.Join(within, "gone"), Within: within}, errText: "does not exist: create it, or fix the volume's hostPath", notCreated: filepath.Join(within, "gone")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			err := m.Resolve()
			if tc.notCreated != "" {
				if _, serr := os.Lstat(tc.notCreated); !errors.Is(serr, os.ErrNotExist) {
					t.Errorf("%s exists after Resolve: %v", tc.notCreated, serr)
				}
			}
			if tc.wantErr != nil || tc.errText != "" {
				if err == nil {
					t.Fatalf("resolved to %s, want an error", m.Source)
				}
				if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
					t.Errorf("error %v, want class %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.errText) {
					t.Errorf("error %q does not contain %q", err, tc.errText)
				}
				if m.Source != tc.m.Source {
					t.Errorf("source changed to %s on failure", m.Source)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve: %v", err)
			}
			if m.Source != tc.wantSource {
				t.Errorf("source = %s, want %s", m.Source, tc.wantSource)
			}
			if st, err := os.Stat(m.Source); err != nil || !st.IsDir() {
				t.Errorf("source %s is not a directory: %v", m.Source, err)
			}
		})
	}
}
