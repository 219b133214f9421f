package conformance

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Reporter returns the report function the tests give Handler and
// Transport: it fails t with each mismatch. Reports that arrive after t
// has finished (an event stream still open at the end) are dropped, since
// testing forbids logging then; the Checker's counts still include them.
func Reporter(t testing.TB) func(error) {
	var mu sync.Mutex
	done := false
	t.Cleanup(func() {
		mu.Lock()
		done = true
		mu.Unlock()
	})
	return func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			t.Errorf("%v", err)
		}
	}
}

// Handler wraps the API's handler so that every answer it writes is
// checked, event streams event by event, and each mismatch is reported.
func (c *Checker) Handler(h http.Handler, report func(error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w}
		rec.onEvent = func(typ string, data []byte) {
			if err := c.CheckEvent(typ, data, r.URL.Query()); err != nil {
				report(err)
			}
		}
		h.ServeHTTP(rec, r)
		if rec.streaming() {
			rec.sse.flush()
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		err := c.CheckResponse(Response{
			Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Status: status,
			Header: w.Header(), Body: rec.body.Bytes(),
		})
		if err != nil {
			report(err)
		}
	})
}

// recorder passes an answer through while keeping a copy of it: the whole
// body, or the events of an event stream.
type recorder struct {
	http.ResponseWriter
	status  int
	body    bytes.Buffer
	sse     *sseParser
	onEvent func(typ string, data []byte)
}

func (w *recorder) streaming() bool { return w.sse != nil }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
		if strings.HasPrefix(w.Header().Get("Content-Type"), "text/event-stream") {
			w.sse = &sseParser{onEvent: w.onEvent}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.sse != nil {
		w.sse.write(b)
	} else {
		w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets event streams flush through the recorder.
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// sseParser splits Server-Sent Events as they arrive: "event: <type>" and
// "data: <json>" lines, an empty line ending each event, comment lines
// (":keep-alive") ignored; lines end in \r\n or \n.
type sseParser struct {
	buf     []byte
	typ     string
	data    []byte
	onEvent func(typ string, data []byte)
}

func (p *sseParser) write(b []byte) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			return
		}
		line := strings.TrimSuffix(string(p.buf[:i]), "\r")
		p.buf = p.buf[i+1:]
		p.line(line)
	}
}

func (p *sseParser) line(line string) {
	switch {
	case line == "":
		if p.typ != "" || len(p.data) > 0 {
			p.onEvent(p.typ, p.data)
		}
		p.typ, p.data = "", nil
	case strings.HasPrefix(line, ":"):
	case strings.HasPrefix(line, "event:"):
		p.typ = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
	case strings.HasPrefix(line, "data:"):
		d := strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
		if len(p.data) > 0 {
			p.data = append(p.data, '\n')
		}
		p.data = append(p.data, d...)
	}
}

// flush ends a stream: an event cut off by the end of the stream is not
// checked (the client never received it whole).
func (p *sseParser) flush() { p.typ, p.data, p.buf = "", nil, nil }

// Transport wraps a client's transport so that every answer the client
// receives is checked, event streams event by event as the client reads
// them. Use it where the API runs in another process.
func (c *Checker) Transport(rt http.RoundTripper, report func(error)) http.RoundTripper {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return roundTripper(func(req *http.Request) (*http.Response, error) {
		res, err := rt.RoundTrip(req)
		if err != nil {
			return res, err
		}
		q := req.URL.Query()
		if strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") && res.StatusCode == http.StatusOK {
			if err := c.CheckResponse(Response{
				Method: req.Method, Path: req.URL.Path, Query: q, Status: res.StatusCode, Header: res.Header,
			}); err != nil {
				report(err)
			}
			p := &sseParser{onEvent: func(typ string, data []byte) {
				if err := c.CheckEvent(typ, data, q); err != nil {
					report(err)
				}
			}}
			res.Body = &teeBody{ReadCloser: res.Body, p: p}
			return res, nil
		}
		body, rerr := io.ReadAll(res.Body)
		_ = res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(body))
		if rerr != nil {
			return res, nil // the client sees the short body; nothing whole to check
		}
		if err := c.CheckResponse(Response{
			Method: req.Method, Path: req.URL.Path, Query: q, Status: res.StatusCode, Header: res.Header, Body: body,
		}); err != nil {
			report(err)
		}
		return res, nil
	})
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// teeBody hands an event stream's bytes to the parser as the client reads
// them.
type teeBody struct {
	io.ReadCloser
	p *sseParser
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.p.write(p[:n])
	}
	return n, err
}

// Collector gathers mismatches where no test is at hand to fail at once
// (the CLI's own client, which the end-to-end tests run in process): Report
// records, Drain hands them to the test that made the requests.
type Collector struct {
	mu   sync.Mutex
	errs []error
}

// Report records a mismatch.
func (c *Collector) Report(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.errs = append(c.errs, err)
}

// Drain returns the mismatches recorded since the last Drain.
func (c *Collector) Drain() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.errs
	c.errs = nil
	return out
}
