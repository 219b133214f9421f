package fetch

import (
	"errors"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// source is a parsed URI: a URL to download or a local file to copy.
type source struct {
	uri   string
	url   *url.URL // http and https
	local string   // file:// and absolute paths, clean
}

// parseURI reads a fetch URI as Mesos's fetcher does, for the schemes
// mesolite supports: http, https, file and absolute paths. Leading blanks
// are ignored, as Mesos ignores them.
func parseURI(raw string) (source, error) {
	s := strings.TrimLeft(raw, " \t\r\n")
	switch {
	case s == "":
		return source{}, errorf(ErrNotAllowed, "the uri is empty")
	case strings.ContainsRune(s, 0):
		return source{}, errorf(ErrNotAllowed, "the uri contains a NUL byte")
	case strings.HasPrefix(s, "/"):
		return source{uri: raw, local: filepath.Clean(s)}, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return source{}, errorf(ErrNotAllowed, "%v", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https":
		if u.Host == "" {
			return source{}, errorf(ErrNotAllowed, "%s has no host", s)
		}
		return source{uri: raw, url: u}, nil
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return source{}, errorf(ErrNotAllowed, "file URI with host %q: only local files (file:///path) can be fetched", u.Host)
		}
		if !path.IsAbs(u.Path) {
			return source{}, errorf(ErrNotAllowed, "file URI without an absolute path: write file:///path")
		}
		return source{uri: raw, local: filepath.Clean(u.Path)}, nil
	case "":
		return source{}, errorf(ErrNotAllowed, "%q is a relative path: give an absolute path under host_path_roots, or an http(s) URL", s)
	}
	return source{}, errorf(ErrNotAllowed, "scheme %q is not supported by mesolite: use http, https, file or an absolute path", u.Scheme)
}

// CheckURI is the check an app's fetch URIs pass when the app is posted:
// the scheme is one mesolite fetches, and a local file (file:// or an
// absolute path) lies under one of roots (host_path_roots), with symlinks
// resolved as far as the path exists, the same rule a host volume's
// absolute hostPath follows. A local file that does not exist yet is
// accepted; the fetch checks again, and fails the task if it is missing.
func CheckURI(uri string, roots []string) error {
	src, err := parseURI(uri)
	if err != nil {
		return err
	}
	if src.local == "" {
		return nil
	}
	_, err = resolveLocal(src.local, roots)
	return err
}

// resolveLocal returns the path of a local file with symlinks resolved
// (as far as it exists), after checking that it lies under one of roots
// both as written and as resolved.
func resolveLocal(p string, roots []string) (string, error) {
	if len(roots) == 0 {
		return "", errorf(ErrNotAllowed, "local files are disabled: add a root to host_path_roots in agent.toml, or serve the file over http")
	}
	list := strings.Join(roots, ", ")
	if !underAny(p, roots, false) {
		return "", errorf(ErrNotAllowed, "%q is outside the allowed roots %s (host_path_roots in agent.toml)", p, list)
	}
	resolved, err := resolveExisting(p)
	if err != nil {
		return "", errorf(ErrIO, "resolve %s: %v", p, err)
	}
	if !underAny(resolved, roots, true) {
		return "", errorf(ErrNotAllowed, "%q resolves to %q, outside the allowed roots %s (host_path_roots in agent.toml)", p, resolved, list)
	}
	return resolved, nil
}

// resolveExisting resolves the symlinks of the longest part of p that
// exists and appends the rest.
func resolveExisting(p string) (string, error) {
	existing, rest := p, ""
	for {
		if _, err := os.Lstat(existing); err == nil {
			break
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		rest = filepath.Join(filepath.Base(existing), rest)
		existing = parent
	}
	resolved, err := filepath.EvalSymlinks(existing)
	if err != nil {
		return "", err
	}
	return filepath.Join(resolved, rest), nil
}

// underAny reports whether p is one of roots or lies below one; with
// resolve, each root's own symlinks are resolved first.
func underAny(p string, roots []string, resolve bool) bool {
	for _, r := range roots {
		r = filepath.Clean(r)
		if resolve {
			if rr, err := filepath.EvalSymlinks(r); err == nil {
				r = rr
			}
		}
		if within(p, r) {
			return true
		}
	}
	return false
}

// within reports whether p is root or lies below it; both clean.
func within(p, root string) bool {
	return p == root || root == "/" || strings.HasPrefix(p, root+string(filepath.Separator))
}

// CheckDestPath checks a fetch entry's destPath: a relative path inside
// the sandbox, without "..".
func CheckDestPath(p string) error {
	switch {
	case p == "":
		return errorf(ErrBadDest, "destPath is empty")
	case strings.ContainsRune(p, 0):
		return errorf(ErrBadDest, "destPath contains a NUL byte")
	case path.IsAbs(p):
		return errorf(ErrBadDest, "destPath %q must be relative to the sandbox", p)
	case hasDotDot(p):
		return errorf(ErrBadDest, "destPath %q may not contain \"..\"", p)
	case path.Clean(p) == ".":
		return errorf(ErrBadDest, "destPath %q names the sandbox itself, not a file in it", p)
	}
	return nil
}

// destName is where a fetched file lands, relative to the sandbox: the
// entry's destPath, or the last segment of the URI's path.
func destName(it Item, src source) (string, error) {
	if it.DestPath != "" {
		if err := CheckDestPath(it.DestPath); err != nil {
			return "", err
		}
		return path.Clean(it.DestPath), nil
	}
	p := src.local
	if src.url != nil {
		p = src.url.Path
	}
	base := path.Base(p)
	if strings.HasSuffix(p, "/") || base == "/" || base == "." || base == "" {
		return "", errorf(ErrBadDest, "the uri has no file name: set destPath")
	}
	return base, nil
}

func hasDotDot(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return true
		}
	}
	return false
}

// notExist reports a missing file as ErrNotFound.
func notExist(p string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errorf(ErrNotFound, "%s does not exist", p)
	}
	return errorf(ErrIO, "%v", err)
}
