package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// numbered returns lines "line from" … "line to-1".
func numbered(from, to int) []byte {
	var b bytes.Buffer
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	return b.Bytes()
}

// files returns the stream's files, oldest first, and their contents.
func streamContents(t *testing.T, dir, name string) ([]string, string) {
	t.Helper()
	files, err := listLog(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var all strings.Builder
	for _, f := range files {
		p := filepath.Join(dir, name)
		if f.n > 0 {
			p = fmt.Sprintf("%s.%d", p, f.n)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, filepath.Base(p))
		all.Write(b)
	}
	return names, all.String()
}

func TestLogRotation(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxSize  int64
		maxFiles int
		chunk    int // bytes per Write; 0: one line per Write, which keeps every file's lines whole
	}{
		{"one line per write", 4096, 4, 0},
		{"big writes that split lines", 4096, 3, 10000},
		{"tiny writes", 4096, 5, 3},
		{"no rotated file kept", 4096, 1, 777},
		{"nothing deleted", 4096, 100, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			w, err := OpenLog(dir, "stdout", tc.maxSize, tc.maxFiles)
			if err != nil {
				t.Fatal(err)
			}
			all := numbered(1, 20000)
			if tc.chunk == 0 {
				for _, l := range bytes.SplitAfter(all, []byte("\n")) {
					if _, err := w.Write(l); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				for p := all; len(p) > 0; {
					n := min(tc.chunk, len(p))
					if _, err := w.Write(p[:n]); err != nil {
						t.Fatal(err)
					}
					p = p[n:]
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			names, kept := streamContents(t, dir, "stdout")
			if len(names) > tc.maxFiles {
				t.Fatalf("%d files, more than %d: %v", len(names), tc.maxFiles, names)
			}
			want := []string{}
			for i := len(names) - 1; i >= 1; i-- {
				want = append(want, fmt.Sprintf("stdout.%d", i))
			}
			want = append(want, "stdout")
			if strings.Join(names, " ") != strings.Join(want, " ") {
				t.Fatalf("files %v, want %v", names, want)
			}
			for _, n := range names {
				st, _ := os.Stat(filepath.Join(dir, n))
				if st.Size() > tc.maxSize {
					t.Errorf("%s is %d bytes", n, st.Size())
				}
				if n != "stdout" && tc.chunk == 0 {
					b, _ := os.ReadFile(filepath.Join(dir, n))
					if !bytes.HasSuffix(b, []byte("\n")) || bytes.HasPrefix(b, []byte("ine")) {
						t.Errorf("%s does not hold whole lines", n)
					}
				}
			}
			// What is kept is the end of the stream, without a hole.
			if !strings.HasSuffix(string(all), kept) {
				t.Fatalf("kept output is not the stream's end (%d bytes kept)", len(kept))
			}
			if tc.maxFiles == 100 && kept != string(all) {
				t.Fatalf("lost output with room to keep it all")
			}
			if tc.maxFiles > 1 && int64(len(kept)) < min(int64(len(all)), int64(tc.maxFiles-1)*tc.maxSize-32) {
				t.Errorf("only %d bytes kept in %d files of %d", len(kept), tc.maxFiles, tc.maxSize)
			}
			// Offsets count from the stream's first byte.
			data, at, end, err := ReadLog(dir, "stdout", 0, int64(len(all)))
			if err != nil {
				t.Fatal(err)
			}
			if end != int64(len(all)) || at != end-int64(len(kept)) || string(data) != kept {
				t.Fatalf("ReadLog(0): at %d end %d, %d bytes; want at %d end %d", at, end, len(data), int64(len(all)-len(kept)), len(all))
			}
			for _, off := range []int64{at, at + 1, end - 5000, end - 1, end} {
				if off < at {
					continue
				}
				data, got, _, err := ReadLog(dir, "stdout", off, 3000)
				if err != nil {
					t.Fatal(err)
				}
				if got != off || string(data) != string(all[off:min(off+3000, end)]) {
					t.Fatalf("ReadLog(%d, 3000): at %d, %q…", off, got, data[:min(20, len(data))])
				}
			}
			if _, got, e, _ := ReadLog(dir, "stdout", -1, 0); got != end || e != end {
				t.Fatalf("ReadLog(-1): %d %d, want the end %d", got, e, end)
			}
		})
	}
}

// TestLogReopen: a stream written by an agent that stopped goes on where
// it ended, with its offsets, and a stream an older version wrote (no
// anchor) starts at offset 0.
func TestLogReopen(t *testing.T) {
	dir := t.TempDir()
	all := numbered(1, 3000)
	if err := os.WriteFile(filepath.Join(dir, "stderr"), all[:1000], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, part := range [][]byte{all[1000:15000], all[15000:]} {
		w, err := OpenLog(dir, "stderr", 4096, 3)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(part); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	_, kept := streamContents(t, dir, "stderr")
	data, at, end, err := ReadLog(dir, "stderr", 0, 1<<20)
	if err != nil || end != int64(len(all)) || string(data) != kept || at != end-int64(len(kept)) || !strings.HasSuffix(string(all), kept) {
		t.Fatalf("after reopening: at %d end %d (%d bytes), want end %d; %v", at, end, len(data), len(all), err)
	}
}

// TestLogRotationCrashGap: a rotation cut short by a crash leaves a gap
// in the numbers; the stream and its offsets stay right.
func TestLogRotationCrashGap(t *testing.T) {
	dir := t.TempDir()
	all := numbered(1, 4000)
	w, err := OpenLog(dir, "stdout", 4096, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(all[:12000]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	// stdout.2 moved to stdout.3, then the crash: no stdout.2.
	if err := os.Rename(filepath.Join(dir, "stdout.2"), filepath.Join(dir, "stdout.3")); err != nil {
		t.Fatal(err)
	}
	w, err = OpenLog(dir, "stdout", 4096, 5)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(all[12000:]); err != nil {
		t.Fatal(err)
	}
	w.Close()
	_, kept := streamContents(t, dir, "stdout")
	data, at, end, err := ReadLog(dir, "stdout", 0, 1<<20)
	if err != nil || end != int64(len(all)) || string(data) != kept || !strings.HasSuffix(string(all), kept) || at != end-int64(len(kept)) {
		t.Fatalf("at %d end %d: kept %d bytes; %v", at, end, len(kept), err)
	}
}

// TestLogPlantedLinks: the task owns its sandbox and may plant links
// where the agent writes or reads; the agent writes through none and
// reads through none.
func TestLogPlantedLinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("root only\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A link named stdout: not opened for writing, not read.
	if err := os.Symlink(secret, filepath.Join(dir, "stdout")); err != nil {
		t.Fatal(err)
	}
	if w, err := OpenLog(dir, "stdout", 4096, 3); err == nil {
		_, _ = w.Write([]byte("planted\n"))
		w.Close()
	}
	if data, _, _, err := ReadLog(dir, "stdout", 0, 1<<20); err == nil && strings.Contains(string(data), "root only") {
		t.Fatal("ReadLog read through a planted link")
	}
	// Links named like the anchor's temporary file and a rotated file:
	// replaced, never written through.
	if err := os.Symlink(secret, filepath.Join(dir, ".mesolite-stderr.anchor.tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(secret, filepath.Join(dir, "stderr.new")); err != nil {
		t.Fatal(err)
	}
	for _, files := range []int{3, 1} {
		w, err := OpenLog(dir, "stderr", 4096, files)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(numbered(1, 2000)); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	if b, _ := os.ReadFile(secret); string(b) != "root only\n" {
		t.Fatalf("a file outside the sandbox was written through a link: %q", b)
	}
}
