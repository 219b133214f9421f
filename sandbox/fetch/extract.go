package fetch

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/ulikunitz/xz"
)

// archiveKind is what the fetcher does with a file when extract is true.
type archiveKind int

const (
	notArchive archiveKind = iota
	kindTar
	kindTarGz
	kindTarBz2
	kindTarXz
	kindZip
	kindGz // a single gzipped file: gunzipped next to it, as Mesos does
)

// kindOf tells the kind from the file name's suffix, as Mesos's fetcher
// does (case-sensitive): .tar, .tgz, .tar.gz, .tbz2, .tar.bz2, .txz,
// .tar.xz and .zip are archives; any other .gz is one gzipped file.
func kindOf(name string) archiveKind {
	switch {
	case strings.HasSuffix(name, ".tar"):
		return kindTar
	case strings.HasSuffix(name, ".tgz"), strings.HasSuffix(name, ".tar.gz"):
		return kindTarGz
	case strings.HasSuffix(name, ".tbz2"), strings.HasSuffix(name, ".tar.bz2"):
		return kindTarBz2
	case strings.HasSuffix(name, ".txz"), strings.HasSuffix(name, ".tar.xz"):
		return kindTarXz
	case strings.HasSuffix(name, ".zip"):
		return kindZip
	case strings.HasSuffix(name, ".gz"):
		return kindGz
	}
	return notArchive
}

// extractInto unpacks the archive file src (named name, for messages and
// its kind) into the directory dir, all or nothing: the entries are
// written to a staging directory inside dir, checked, and only then moved
// into place, so a refused or broken archive leaves nothing in dir.
// limit caps the bytes unpacked (0: no limit).
//
// No entry is ever written through a symlink: parents are real
// directories made here, files are written to a temporary name and
// renamed over whatever had their name, and links are made, never
// followed. Entries named absolutely or with "..", symlinks that resolve
// outside dir, and hard links to outside are refused.
//
// It returns the names (relative to dir) of the symlinks it made, which
// the caller checks again once every URI of the task is in place.
func extractInto(ctx context.Context, src, name, dir string, limit int64, progress func(int64)) ([]string, error) {
	stage, err := os.MkdirTemp(dir, tempPrefix+"x-")
	if err != nil {
		return nil, errorf(ErrIO, "create staging directory: %w", err)
	}
	// A leftover staging directory is swept by the next Fetch.
	defer func() { _ = os.RemoveAll(stage) }()
	x := &extractor{ctx: ctx, root: stage, archive: path.Base(name), limit: limit, progress: progress, dirs: map[string]bool{".": true}}
	if err := x.run(src, kindOf(name)); err != nil {
		return nil, err
	}
	if err := x.checkLinks(); err != nil {
		return nil, err
	}
	if err := x.applyDirModes(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// A dry run first finds any conflict before anything moves.
	if err := merge(stage, dir, "", x.archive, true); err != nil {
		return nil, err
	}
	if err := merge(stage, dir, "", x.archive, false); err != nil {
		return nil, err
	}
	return x.links, nil
}

// extractor writes the entries of one archive below root.
type extractor struct {
	ctx      context.Context
	root     string
	archive  string
	limit    int64
	written  int64
	progress func(int64)
	dirs     map[string]bool // clean names known to be real directories
	modes    []dirMode
	links    []string // clean names of the symlinks made
}

type dirMode struct {
	name string
	mode fs.FileMode
	mt   time.Time
}

func (x *extractor) run(src string, kind archiveKind) error {
	if kind == kindZip {
		return x.zip(src)
	}
	f, err := os.Open(src)
	if err != nil {
		return errorf(ErrIO, "open %s: %w", x.archive, err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 256<<10)
	var r io.Reader = br
	switch kind {
	case kindTarGz, kindGz:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return x.bad(err)
		}
		defer func() { _ = zr.Close() }() // read only: nothing to report
		if kind == kindGz {
			out := strings.TrimSuffix(x.archive, ".gz")
			return x.file(out, out, 0o644, zr, time.Time{})
		}
		r = zr
	case kindTarBz2:
		r = bzip2.NewReader(br)
	case kindTarXz:
		xr, err := xz.NewReader(br)
		if err != nil {
			return x.bad(err)
		}
		r = xr
	}
	return x.tar(r)
}

func (x *extractor) bad(err error) error {
	return errorf(ErrBadArchive, "archive %s is not readable: %w", x.archive, err)
}

func (x *extractor) tar(r io.Reader) error {
	tr := tar.NewReader(r)
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return x.bad(err)
		}
		mode := fs.FileMode(h.Mode) & fs.ModePerm
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeGNUSparse:
			err = x.file(h.Name, h.Name, mode, tr, h.ModTime)
		case tar.TypeDir:
			err = x.dir(h.Name, mode, h.ModTime)
		case tar.TypeSymlink:
			err = x.symlink(h.Name, h.Linkname)
		case tar.TypeLink:
			err = x.hardlink(h.Name, h.Linkname)
		default:
			// Devices, FIFOs and extended headers: a task has no use for them.
			continue
		}
		if err != nil {
			return err
		}
	}
}

func (x *extractor) zip(src string) error {
	zr, err := zip.OpenReader(src)
	if err != nil {
		return x.bad(err)
	}
	defer func() { _ = zr.Close() }() // read only: nothing to report
	for _, f := range zr.File {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		m := f.Mode()
		switch {
		case m.IsDir():
			err = x.dir(f.Name, m.Perm(), f.Modified)
		case m&fs.ModeSymlink != 0:
			err = x.zipLink(f)
		case m.IsRegular():
			err = x.zipFile(f)
		default:
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (x *extractor) zipFile(f *zip.File) error {
	rc, err := f.Open()
	if err != nil {
		return x.bad(err)
	}
	defer rc.Close()
	perm := f.Mode().Perm()
	if perm == 0 {
		perm = 0o644
	}
	return x.file(f.Name, f.Name, perm, rc, f.Modified)
}

func (x *extractor) zipLink(f *zip.File) error {
	rc, err := f.Open()
	if err != nil {
		return x.bad(err)
	}
	defer rc.Close()
	target, err := io.ReadAll(io.LimitReader(rc, 4096))
	if err != nil {
		return x.bad(err)
	}
	return x.symlink(f.Name, string(target))
}

// refuse is the error for an entry that is not unpacked.
func (x *extractor) refuse(entry, format string, args ...any) error {
	return &EntryError{Archive: x.archive, Entry: entry, Reason: fmt.Sprintf(format, args...)}
}

// clean checks an entry's name and returns it clean and relative; "" for
// the archive's root itself.
func (x *extractor) clean(entry string) (string, error) {
	switch {
	case strings.ContainsRune(entry, 0):
		return "", x.refuse(entry, "has a NUL byte in its name")
	case strings.HasPrefix(entry, "/"):
		return "", x.refuse(entry, "has an absolute name: it would land outside the sandbox")
	case hasDotDot(entry):
		return "", x.refuse(entry, "has \"..\" in its name: it would land outside the sandbox")
	}
	c := path.Clean(entry)
	if c == "." {
		return "", nil
	}
	return c, nil
}

// parent makes sure every parent directory of the clean name c is a real
// directory below root (never a symlink), creating the missing ones.
func (x *extractor) parent(entry, c string) error {
	d := path.Dir(c)
	if x.dirs[d] {
		return nil
	}
	walked := "."
	for _, seg := range strings.Split(d, "/") {
		walked = path.Join(walked, seg)
		if x.dirs[walked] {
			continue
		}
		p := filepath.Join(x.root, walked)
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(p, 0o755); err != nil {
				return errorf(ErrIO, "create %s: %w", walked, err)
			}
		case err != nil:
			return errorf(ErrIO, "stat %s: %w", walked, err)
		case st.Mode()&fs.ModeSymlink != 0:
			return x.refuse(entry, "goes through the symlink %s: it could land outside the sandbox", walked)
		case !st.IsDir():
			return x.refuse(entry, "goes through %s, which is not a directory", walked)
		}
		x.dirs[walked] = true
	}
	return nil
}

// file writes one regular file from r, through a temporary name renamed
// over whatever had the name (a symlink is replaced, not followed).
func (x *extractor) file(entry, name string, mode fs.FileMode, r io.Reader, mt time.Time) error {
	c, err := x.clean(name)
	if err != nil || c == "" {
		return err
	}
	if err := x.parent(entry, c); err != nil {
		return err
	}
	if x.dirs[c] {
		return x.refuse(entry, "is a file where the archive has a directory")
	}
	dst := filepath.Join(x.root, c)
	tmp, err := os.CreateTemp(filepath.Dir(dst), tempPrefix)
	if err != nil {
		return errorf(ErrIO, "create %s: %w", c, err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			_ = os.Remove(tmp.Name()) // inside the staging directory, removed whole
		}
	}()
	src := r
	if x.limit > 0 {
		src = io.LimitReader(r, x.limit-x.written+1)
	}
	tw := &trackingWriter{w: tmp}
	n, err := io.Copy(tw, &countingReader{ctx: x.ctx, r: src, base: x.written, fn: x.progress})
	x.written += n
	switch {
	case err != nil && x.ctx.Err() != nil:
		return x.ctx.Err()
	case tw.err != nil:
		return errorf(ErrIO, "write %s: %w", c, tw.err)
	case err != nil:
		return x.bad(err)
	}
	if x.limit > 0 && x.written > x.limit {
		return errorf(ErrTooLarge, "archive %s unpacks to more than %s ([fetcher] max_size in agent.toml)", x.archive, formatBytes(x.limit))
	}
	if err := tmp.Chmod(mode); err != nil {
		return errorf(ErrIO, "chmod %s: %w", c, err)
	}
	if err := tmp.Close(); err != nil {
		return errorf(ErrIO, "write %s: %w", c, err)
	}
	if !mt.IsZero() {
		_ = os.Chtimes(tmp.Name(), mt, mt)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return errorf(ErrIO, "rename %s: %w", c, err)
	}
	ok = true
	return nil
}

func (x *extractor) dir(entry string, mode fs.FileMode, mt time.Time) error {
	c, err := x.clean(entry)
	if err != nil || c == "" {
		return err
	}
	if err := x.parent(entry, c); err != nil {
		return err
	}
	p := filepath.Join(x.root, c)
	st, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(p, 0o755); err != nil {
			return errorf(ErrIO, "create %s: %w", c, err)
		}
	case err != nil:
		return errorf(ErrIO, "stat %s: %w", c, err)
	case !st.IsDir() || st.Mode()&fs.ModeSymlink != 0:
		return x.refuse(entry, "is a directory where the archive has a file or a link")
	}
	x.dirs[c] = true
	x.modes = append(x.modes, dirMode{name: c, mode: mode, mt: mt})
	return nil
}

// symlink makes a link whose target, read from where the link is, must
// stay inside the sandbox. checkLinks checks again once every entry is
// out, when the targets' own links are known.
func (x *extractor) symlink(entry, target string) error {
	c, err := x.clean(entry)
	if err != nil || c == "" {
		return err
	}
	if err := x.parent(entry, c); err != nil {
		return err
	}
	if target == "" || strings.ContainsRune(target, 0) {
		return x.refuse(entry, "is a symlink with an empty or invalid target")
	}
	if path.IsAbs(target) {
		return x.refuse(entry, "is a symlink to the absolute path %s: it points outside the sandbox", target)
	}
	if escapes(path.Join(path.Dir(c), target)) {
		return x.refuse(entry, "is a symlink to %s: it points outside the sandbox", target)
	}
	if x.dirs[c] {
		return x.refuse(entry, "is a symlink where the archive has a directory")
	}
	dst := filepath.Join(x.root, c)
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errorf(ErrIO, "replace %s: %w", c, err)
	}
	if err := os.Symlink(target, dst); err != nil {
		return errorf(ErrIO, "create symlink %s: %w", c, err)
	}
	x.links = append(x.links, c)
	return nil
}

// hardlink links an entry to an earlier one of the same archive.
func (x *extractor) hardlink(entry, target string) error {
	c, err := x.clean(entry)
	if err != nil || c == "" {
		return err
	}
	if target == "" || path.IsAbs(target) || hasDotDot(target) || strings.ContainsRune(target, 0) {
		return x.refuse(entry, "is a hard link to %s: it points outside the sandbox", target)
	}
	t := path.Clean(target)
	if err := x.parent(entry, t); err != nil {
		return err
	}
	if err := x.parent(entry, c); err != nil {
		return err
	}
	st, err := os.Lstat(filepath.Join(x.root, t))
	if err != nil || st.IsDir() {
		return x.refuse(entry, "is a hard link to %s, which is not an earlier file of the archive", target)
	}
	if x.dirs[c] {
		return x.refuse(entry, "is a hard link where the archive has a directory")
	}
	dst := filepath.Join(x.root, c)
	if err := os.Remove(dst); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errorf(ErrIO, "replace %s: %w", c, err)
	}
	if err := os.Link(filepath.Join(x.root, t), dst); err != nil {
		return errorf(ErrIO, "create hard link %s: %w", c, err)
	}
	return nil
}

// checkLinks resolves every symlink made, following the links it meets
// as the kernel would, and refuses the archive if one leads above root
// (a link to "d/.." where d is a link to "." does).
func (x *extractor) checkLinks() error {
	for _, l := range x.links {
		if err := resolveWithin(x.root, l); err != nil {
			return x.refuse(l, "is a symlink that %v: it points outside the sandbox", err)
		}
	}
	return nil
}

// resolveWithin follows the symlink at name (relative to root) through
// every link on its way and fails if the path ever climbs above root.
// Missing components end the walk: what does not exist cannot lead out.
func resolveWithin(root, name string) error {
	todo := strings.Split(name, "/")
	var cur []string
	hops := 0
	for len(todo) > 0 {
		seg := todo[0]
		todo = todo[1:]
		switch seg {
		case "", ".":
			continue
		case "..":
			if len(cur) == 0 {
				return errors.New("resolves above the sandbox")
			}
			cur = cur[:len(cur)-1]
			continue
		}
		p := filepath.Join(root, filepath.Join(cur...), seg)
		st, err := os.Lstat(p)
		if err != nil {
			return nil
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur = append(cur, seg)
			continue
		}
		if hops++; hops > 40 {
			return errors.New("has too many levels of links")
		}
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if path.IsAbs(target) {
			return fmt.Errorf("leads to the absolute path %s", target)
		}
		todo = append(strings.Split(target, "/"), todo...)
	}
	return nil
}

// escapes reports whether a relative, joined path climbs above its root.
func escapes(p string) bool {
	c := path.Clean(p)
	return c == ".." || strings.HasPrefix(c, "../") || path.IsAbs(c)
}

func (x *extractor) applyDirModes() error {
	// Deepest first, so a read-only directory is made so after its children.
	for i := len(x.modes) - 1; i >= 0; i-- {
		m := x.modes[i]
		p := filepath.Join(x.root, m.name)
		mode := m.mode
		if mode == 0 {
			mode = 0o755
		}
		if err := os.Chmod(p, mode|0o700); err != nil {
			return errorf(ErrIO, "chmod %s: %w", m.name, err)
		}
		if !m.mt.IsZero() {
			_ = os.Chtimes(p, m.mt, m.mt)
		}
	}
	return nil
}

// merge moves everything in stage into dir. A name dir lacks is renamed
// in whole; a directory dir has is merged into; a file or link replaces
// a file or link. A directory never replaces a file, nor the reverse, and
// nothing is followed through a symlink of dir. With dry, nothing moves:
// merge only reports the first conflict.
func merge(stage, dir, rel, archive string, dry bool) error {
	entries, err := os.ReadDir(stage)
	if err != nil {
		return errorf(ErrIO, "read %s: %w", stage, err)
	}
	for _, e := range entries {
		src, dst := filepath.Join(stage, e.Name()), filepath.Join(dir, e.Name())
		name := path.Join(rel, e.Name())
		dl, err := os.Lstat(dst)
		if errors.Is(err, fs.ErrNotExist) {
			if dry {
				continue
			}
			if err := os.Rename(src, dst); err != nil {
				return errorf(ErrIO, "move %s into the sandbox: %w", name, err)
			}
			continue
		}
		if err != nil {
			return errorf(ErrIO, "stat %s: %w", dst, err)
		}
		switch {
		case e.IsDir() && dl.IsDir():
			if err := merge(src, dst, name, archive, dry); err != nil {
				return err
			}
		case e.IsDir() || dl.IsDir():
			return &EntryError{Archive: archive, Entry: name, Reason: "conflicts with what the sandbox already has under that name (a file against a directory)"}
		case !dry:
			if err := os.Rename(src, dst); err != nil {
				return errorf(ErrIO, "move %s into the sandbox: %w", name, err)
			}
		}
	}
	return nil
}

// countingReader reports the bytes read so far (plus base) and stops
// reading once ctx ends.
type countingReader struct {
	ctx  context.Context
	r    io.Reader
	base int64
	n    int64
	fn   func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.fn != nil && n > 0 {
		c.fn(c.base + c.n)
	}
	return n, err
}
