package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// A task's output streams live in its sandbox as Mesos's logrotate
// container logger keeps them:
//
//	stdout      the file being written
//	stdout.1    the one before it, full
//	…
//	stdout.N-1  the oldest kept; N is the number of files (LogMaxFiles)
//	.mesolite-stdout.anchor
//	            "<inode> <offset>": the file with that inode starts at that
//	            offset of the stream (the bytes the task ever wrote to it)
//
// The task owns its sandbox and can plant links there: every file is
// opened without following a link (O_NOFOLLOW), and files made afresh
// (the anchor) replace whatever had their name, so the agent never writes
// to, or reads, a file of the task's choosing.
//
// A file is rotated when the next write would take it over the size
// limit, at the last line end the write holds when it holds one. A line
// that reaches the writer in pieces may be split between two files (as
// in Mesos); read across the files, as ReadLog does, the stream is whole. The
// anchor always names a file that exists, so offsets stay right across
// rotations and crashes: before the oldest file is deleted, the anchor
// moves to the next one.

// Defaults of the limits, as Mesos's logrotate logger (10 MB per file)
// and DC/OS ("rotate 9": the file being written and 9 more).
const (
	DefaultLogMaxSize  = 10 << 20
	DefaultLogMaxFiles = 10
	// MinLogMaxSize is the smallest size limit, one page as in Mesos.
	MinLogMaxSize = 4096
)

// LogWriter appends to one output stream of a task and rotates it. It is
// not safe for concurrent use.
type LogWriter struct {
	dir, name string
	maxSize   int64
	maxFiles  int
	f         *os.File
	size      int64
	// start is the stream offset of the first byte of the current file.
	start int64
}

// OpenLog opens the stream name (stdout or stderr) in a sandbox for
// appending, creating it if needed. A stream written before (by an agent
// that stopped, or by an older version without rotation) goes on where it
// ended.
func OpenLog(dir, name string, maxSize int64, maxFiles int) (*LogWriter, error) {
	if maxSize < MinLogMaxSize {
		maxSize = MinLogMaxSize
	}
	if maxFiles < 1 {
		maxFiles = 1
	}
	w := &LogWriter{dir: dir, name: name, maxSize: maxSize, maxFiles: maxFiles}
	f, err := os.OpenFile(w.path(0), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	w.f, w.size = f, st.Size()
	files, err := listLog(dir, name)
	if err != nil {
		f.Close()
		return nil, err
	}
	if _, ok := files.anchored(); !ok {
		// No anchor (a new stream, or one an older version wrote): the
		// oldest file starts the stream.
		if err := writeAnchor(dir, name, files[0].ino, 0); err != nil {
			f.Close()
			return nil, err
		}
		if files, err = listLog(dir, name); err != nil {
			f.Close()
			return nil, err
		}
	}
	w.start = files[len(files)-1].start
	return w, nil
}

func (w *LogWriter) path(n int) string {
	if n == 0 {
		return filepath.Join(w.dir, w.name)
	}
	return filepath.Join(w.dir, w.name+"."+strconv.Itoa(n))
}

// Write appends p, rotating at line ends so that no file grows beyond the
// size limit.
func (w *LogWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		room := w.maxSize - w.size
		if room <= 0 {
			if err := w.rotate(); err != nil {
				return written, err
			}
			continue
		}
		chunk := p
		if int64(len(p)) > room {
			if i := bytes.LastIndexByte(p[:room], '\n'); i >= 0 {
				chunk = p[:i+1]
			} else if w.size > 0 {
				// The line does not fit: it starts the next file.
				if err := w.rotate(); err != nil {
					return written, err
				}
				continue
			} else {
				chunk = p[:room] // one line longer than a whole file
			}
		}
		n, err := w.f.Write(chunk)
		written += n
		w.size += int64(n)
		if err != nil {
			return written, fmt.Errorf("write %s: %w", w.name, err)
		}
		p = p[n:]
	}
	return written, nil
}

// rotate starts a new file: the oldest kept file is deleted (the anchor
// moved off it first), each other one moves up a number, the current one
// becomes name.1. A crash between the steps leaves a gap in the numbers,
// never a byte in two files or a wrong offset.
func (w *LogWriter) rotate() error {
	files, err := listLog(w.dir, w.name)
	if err != nil {
		return err
	}
	// The writer knows where its file starts; the others precede it.
	files[len(files)-1].start = w.start
	for i := len(files) - 2; i >= 0; i-- {
		files[i].start = files[i+1].start - files[i].size
	}
	keep := w.maxFiles - 1 // rotated files that stay
	// Files numbered keep or more would move beyond the last number kept:
	// they go, oldest first, after the anchor moved to the oldest that
	// stays. They are a prefix of files (oldest first).
	drop := 0
	for drop < len(files) && files[drop].n > 0 && files[drop].n >= keep {
		drop++
	}
	if drop > 0 {
		stay := files[drop]
		if err := writeAnchor(w.dir, w.name, stay.ino, stay.start); err != nil {
			return err
		}
		for _, f := range files[:drop] {
			if err := os.Remove(w.path(f.n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("rotate %s: %w", w.name, err)
			}
		}
	}
	if keep == 0 {
		return w.replace()
	}
	// Oldest first, so that no rename lands on a file still to be moved.
	for _, f := range files[drop : len(files)-1] {
		if err := os.Rename(w.path(f.n), w.path(f.n+1)); err != nil {
			return fmt.Errorf("rotate %s: %w", w.name, err)
		}
	}
	if err := os.Rename(w.path(0), w.path(1)); err != nil {
		return fmt.Errorf("rotate %s: %w", w.name, err)
	}
	return w.reopen(w.start + w.size)
}

// replace starts a new file when no rotated file is kept: the new file is
// made aside, anchored, and renamed over the old one.
func (w *LogWriter) replace() error {
	tmp := w.path(0) + ".new"
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotate %s: %w", w.name, err)
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", w.name, err)
	}
	ino, err := inode(f)
	if err == nil {
		err = writeAnchor(w.dir, w.name, ino, w.start+w.size)
	}
	if err == nil {
		err = os.Rename(tmp, w.path(0))
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("rotate %s: %w", w.name, err)
	}
	w.f.Close()
	w.f, w.start, w.size = f, w.start+w.size, 0
	return nil
}

func (w *LogWriter) reopen(start int64) error {
	f, err := os.OpenFile(w.path(0), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", w.name, err)
	}
	w.f.Close()
	w.f, w.start, w.size = f, start, 0
	return nil
}

// Close closes the current file.
func (w *LogWriter) Close() error { return w.f.Close() }

// logFile is one file of a stream.
type logFile struct {
	n     int // 0 for the file being written, else its rotation number
	ino   uint64
	size  int64
	start int64 // stream offset of its first byte
}

// logFiles is a stream's files, oldest first, and its anchor.
type logFiles []logFile

func (fs logFiles) anchored() (int, bool) {
	for i, f := range fs {
		if f.start >= 0 {
			return i, true
		}
	}
	return 0, false
}

// listLog reads which files a stream has, oldest first (the file being
// written last, created empty if missing from the listing), and the
// offset each starts at. Without a usable anchor every start is -1.
func listLog(dir, name string) (logFiles, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", name, err)
	}
	var files logFiles
	for _, e := range entries {
		n := 0
		switch {
		case e.Name() == name:
		case strings.HasPrefix(e.Name(), name+"."):
			v, err := strconv.Atoi(strings.TrimPrefix(e.Name(), name+"."))
			if err != nil || v < 1 {
				continue
			}
			n = v
		default:
			continue
		}
		info, err := e.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // rotated away while we listed
			}
			return nil, fmt.Errorf("stat %s: %w", e.Name(), err)
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok || !info.Mode().IsRegular() {
			continue
		}
		files = append(files, logFile{n: n, ino: st.Ino, size: info.Size(), start: -1})
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	// Oldest first: highest number first, the file being written last.
	sortLogFiles(files)
	ino, start, ok := readAnchor(dir, name)
	if !ok {
		return files, nil
	}
	at := -1
	for i, f := range files {
		if f.ino == ino {
			at = i
		}
	}
	if at < 0 {
		return files, nil
	}
	files[at].start = start
	for i := at + 1; i < len(files); i++ {
		files[i].start = files[i-1].start + files[i-1].size
	}
	for i := at - 1; i >= 0; i-- {
		files[i].start = max(0, files[i+1].start-files[i].size)
	}
	return files, nil
}

func sortLogFiles(files logFiles) {
	key := func(f logFile) int {
		if f.n == 0 {
			return -1 // the file being written is the newest
		}
		return f.n
	}
	for i := 1; i < len(files); i++ {
		for j := i; j > 0 && key(files[j]) > key(files[j-1]); j-- {
			files[j], files[j-1] = files[j-1], files[j]
		}
	}
}

// anchorPath is the stream's anchor; mesolite's own files in a sandbox
// start with .mesolite-.
func anchorPath(dir, name string) string { return filepath.Join(dir, ".mesolite-"+name+".anchor") }

func readAnchor(dir, name string) (uint64, int64, bool) {
	f, err := os.OpenFile(anchorPath(dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return 0, 0, false
	}
	b, err := io.ReadAll(io.LimitReader(f, 64))
	_ = f.Close() // read-only: nothing to lose
	if err != nil {
		return 0, 0, false
	}
	a, s, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	ino, err1 := strconv.ParseUint(a, 10, 64)
	start, err2 := strconv.ParseInt(s, 10, 64)
	if !ok || err1 != nil || err2 != nil || start < 0 {
		return 0, 0, false
	}
	return ino, start, true
}

// writeAnchor replaces the anchor atomically.
func writeAnchor(dir, name string, ino uint64, start int64) error {
	path := anchorPath(dir, name)
	tmp := path + ".tmp"
	if err := createNew(tmp, []byte(fmt.Sprintf("%d %d\n", ino, start))); err != nil {
		return fmt.Errorf("write %s anchor: %w", name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s anchor: %w", name, err)
	}
	return nil
}

// createNew writes a file afresh: whatever had its name (a link the task
// planted) is removed, never written through.
func createNew(path string, data []byte) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func inode(f *os.File) (uint64, error) {
	info, err := f.Stat()
	if err != nil {
		return 0, err
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("no inode")
	}
	return st.Ino, nil
}

// ReadLog reads the stream name of a sandbox across its rotated files.
// Offsets count the bytes the task ever wrote to the stream; what was
// rotated away is gone. It returns the bytes kept in [offset,
// offset+length), the offset of the first of them, and the stream's end.
// A negative offset reads nothing and returns the end; an offset beyond
// the end reads nothing at the end.
func ReadLog(dir, name string, offset, length int64) ([]byte, int64, int64, error) {
	for attempt := 0; ; attempt++ {
		data, at, end, err := readLogOnce(dir, name, offset, length)
		if !errors.Is(err, errRotated) || attempt == 4 {
			return data, at, end, err
		}
	}
}

// errRotated: a file changed under the reader; it reads again.
var errRotated = errors.New("rotated while reading")

func readLogOnce(dir, name string, offset, length int64) ([]byte, int64, int64, error) {
	files, err := listLog(dir, name)
	if err != nil {
		return nil, 0, 0, err
	}
	if _, ok := files.anchored(); !ok {
		files[0].start = 0
		for i := 1; i < len(files); i++ {
			files[i].start = files[i-1].start + files[i-1].size
		}
	}
	last := files[len(files)-1]
	end := last.start + last.size
	if offset < 0 {
		return nil, end, end, nil
	}
	from := max(offset, files[0].start)
	to := min(offset+length, end)
	if length < 0 || offset+length < offset {
		to = end
	}
	if from >= to {
		return nil, min(from, end), end, nil
	}
	out := make([]byte, 0, to-from)
	for _, f := range files {
		lo, hi := max(from, f.start), min(to, f.start+f.size)
		if lo >= hi {
			continue
		}
		p := filepath.Join(dir, name)
		if f.n > 0 {
			p += "." + strconv.Itoa(f.n)
		}
		fh, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, 0, errRotated
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("read %s: %w", name, err)
		}
		ino, err := inode(fh)
		if err != nil || ino != f.ino {
			fh.Close()
			return nil, 0, 0, errRotated
		}
		buf := make([]byte, hi-lo)
		n, err := fh.ReadAt(buf, lo-f.start)
		fh.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, 0, 0, fmt.Errorf("read %s: %w", name, err)
		}
		out = append(out, buf[:n]...)
		if int64(n) < hi-lo {
			break
		}
	}
	return out, from, end, nil
}
