// Package ui is the dashboard at /ui/: plain HTML, CSS and JavaScript
// embedded in the binary, with no build step and nothing loaded from
// elsewhere. The files are public, like /ping: they hold no data. What the
// dashboard shows it reads from the API with the same token as any client,
// from the same origin, sending JSON as application/json.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed static
var static embed.FS

// Prefix is where the dashboard is served.
const Prefix = "/ui/"

// Serves reports whether the path p (without any /service/marathon prefix)
// belongs to the dashboard.
func Serves(p string) bool { return p == "/ui" || strings.HasPrefix(p, Prefix) }

// WantsHTML reports whether a request for / comes from a browser (it
// accepts text/html), which is sent on to the dashboard; API clients keep
// the answer they had.
func WantsHTML(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) &&
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// securityHeaders keep the dashboard out of other sites' frames and let it
// load and connect to its own origin only.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Frame-Options":        "DENY",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
	"Cache-Control":          "no-cache",
}

type file struct {
	data []byte
	etag string
}

var (
	filesOnce sync.Once
	files     map[string]file
)

// load reads the embedded files once, with an ETag each, so a browser
// revalidates with a 304 instead of downloading them again.
func load() map[string]file {
	filesOnce.Do(func() {
		files = map[string]file{}
		sub, _ := fs.Sub(static, "static")
		_ = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := fs.ReadFile(sub, p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			files[p] = file{data: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
			return nil
		})
		b := defaultsJSON()
		sum := sha256.Sum256(b)
		files["defaults.json"] = file{data: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	})
	return files
}

// Serve answers a request for the dashboard; p is the request's path
// without any /service/marathon prefix (see Serves).
func Serve(w http.ResponseWriter, r *http.Request, p string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if p == "/ui" {
		// Relative to where the client is, so /service/marathon/ui works too.
		http.Redirect(w, r, r.URL.Path+"/", http.StatusMovedPermanently)
		return
	}
	name := strings.TrimPrefix(p, Prefix)
	if name == "" {
		name = "index.html"
	}
	name = path.Clean(name)
	f, ok := load()[name]
	if !ok {
		http.Error(w, "not found: "+p, http.StatusNotFound)
		return
	}
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	w.Header().Set("ETag", f.etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(f.data))
}
