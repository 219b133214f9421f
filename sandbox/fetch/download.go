package fetch

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
)

// download writes the source's bytes to w, enforcing MaxSize and
// reporting progress, and returns how many it wrote.
func (f *Fetcher) download(ctx context.Context, src source, w io.Writer, rep *reporter) (int64, error) {
	body, total, err := f.open(ctx, src)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	rep.phase(PhaseDownload, total)
	limit := f.cfg.MaxSize
	r := io.Reader(body)
	if limit > 0 {
		r = io.LimitReader(body, limit+1)
	}
	cr := &countingReader{ctx: ctx, r: r, fn: func(n int64) {
		rep.bytes(n)
	}}
	tw := &trackingWriter{w: w}
	n, err := io.Copy(tw, cr)
	switch {
	case err != nil && ctx.Err() != nil:
		return n, ctx.Err()
	case tw.err != nil:
		return n, errorf(ErrIO, "write: %w", tw.err)
	case err != nil && src.url == nil:
		return n, errorf(ErrIO, "read: %w", err)
	case errors.Is(err, io.ErrUnexpectedEOF) && total > 0:
		return n, errorf(ErrIncomplete, "the connection closed after %d of %d bytes", n, total)
	case err != nil:
		return n, errorf(classify(err), "read: %w", err)
	case limit > 0 && n > limit:
		return n, errorf(ErrTooLarge, "larger than %s ([fetcher] max_size in agent.toml)", formatBytes(limit))
	case total >= 0 && n != total:
		return n, errorf(ErrIncomplete, "got %d of %d bytes", n, total)
	}
	return n, nil
}

// open starts reading a source: an HTTP GET that answered 200, or a local
// file under the allowed roots. total is the size, or -1 when unknown.
func (f *Fetcher) open(ctx context.Context, src source) (io.ReadCloser, int64, error) {
	if src.url == nil {
		return f.openLocal(src.local)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.url.String(), nil)
	if err != nil {
		return nil, 0, errorf(ErrNotAllowed, "%w", err)
	}
	req.Header.Set("User-Agent", "mesolite-fetcher")
	resp, err := f.cfg.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, 0, errorf(classify(err), "%w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, errorf(ErrHTTPStatus, "the server answered HTTP %s", resp.Status)
	}
	if max := f.cfg.MaxSize; max > 0 && resp.ContentLength > max {
		resp.Body.Close()
		return nil, 0, errorf(ErrTooLarge, "%s is larger than %s ([fetcher] max_size in agent.toml)", formatBytes(resp.ContentLength), formatBytes(max))
	}
	return resp.Body, resp.ContentLength, nil
}

func (f *Fetcher) openLocal(p string) (io.ReadCloser, int64, error) {
	resolved, err := resolveLocal(p, f.cfg.HostPathRoots)
	if err != nil {
		return nil, 0, err
	}
	file, err := os.Open(resolved)
	if err != nil {
		return nil, 0, notExist(p, err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, 0, errorf(ErrIO, "%w", err)
	}
	if !st.Mode().IsRegular() {
		file.Close()
		return nil, 0, errorf(ErrNotAllowed, "%s is not a regular file", p)
	}
	if max := f.cfg.MaxSize; max > 0 && st.Size() > max {
		file.Close()
		return nil, 0, errorf(ErrTooLarge, "%s is larger than %s ([fetcher] max_size in agent.toml)", formatBytes(st.Size()), formatBytes(max))
	}
	return file, st.Size(), nil
}

// trackingWriter remembers the error of a failed write, to tell it from a
// failed read.
type trackingWriter struct {
	w   io.Writer
	err error
}

func (t *trackingWriter) Write(p []byte) (int, error) {
	n, err := t.w.Write(p)
	if err != nil {
		t.err = err
	}
	return n, err
}
