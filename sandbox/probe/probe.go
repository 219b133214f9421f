// Package probe performs the network checks of tasks: a TCP connection or
// an HTTP(S) GET to a task's own address. Health checks and readiness
// checks both go through a Prober, the one seam between "what to check"
// (the agent) and "how to reach it" (the host):
//
//   - Direct dials from this process. It is the path where the host can
//     reach containers' own addresses (Linux with Docker Engine).
//   - Client sends each probe to a Server that runs inside Docker's network
//     (a helper container), which dials from there. It is the path where
//     the host cannot reach containers (Docker Desktop, rootless Docker):
//     only published ports reach containers there, and a published port
//     accepts connections through Docker's proxy even when nothing listens,
//     so probing it would say nothing about the process.
//
// Both paths run the same code (Do) against the same address, so a task's
// process that does not listen is never reported reachable on any path.
package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Protocols a Request may ask for.
const (
	TCP   = "TCP"
	HTTP  = "HTTP"
	HTTPS = "HTTPS"
)

// NetworkHost is Request.Network for a task on the host's network: its
// address is a port on the host's loopback, which a helper inside
// Docker's network reaches at its network's gateway instead.
const NetworkHost = "host"

// MaxBody bounds Request.Body.
const MaxBody = 64 << 10

// Request is one check of one address.
type Request struct {
	Protocol string        `json:"protocol"` // TCP, HTTP or HTTPS
	Addr     string        `json:"addr"`     // host:port
	Path     string        `json:"path,omitempty"`
	Timeout  time.Duration `json:"timeout"`
	// Network is the Docker network the address is on ("bridge", a
	// network's name, or NetworkHost). Direct ignores it; a helper needs
	// it to be on that network.
	Network string `json:"network,omitempty"`
	// Body, for HTTP(S), asks for up to Body bytes of the answer's body
	// (readiness checks keep the last response); 0 reads no body.
	Body int `json:"body,omitempty"`
}

// Result is what a check found. Err is empty when the connection was made
// and, for HTTP(S), an answer's status line was read (whatever its code).
type Result struct {
	Err    string `json:"err,omitempty"`
	Code   int    `json:"code,omitempty"`   // HTTP status code
	Status string `json:"status,omitempty"` // "200 OK", as http.Response.Status
	Body   []byte `json:"body,omitempty"`
	// ContentType is the answer's Content-Type when Body was asked for.
	ContentType string `json:"contentType,omitempty"`
}

// Prober performs checks. Probe returns when the check is done or ctx
// ends; every outcome, including a transport that cannot be used, is a
// Result with Err set.
type Prober interface {
	Probe(ctx context.Context, req Request) Result
}

// Direct checks from this process.
type Direct struct{}

// Probe performs req with Do.
func (Direct) Probe(ctx context.Context, req Request) Result { return Do(ctx, req) }

// Do performs one check from this process, bounded by req.Timeout and ctx.
func Do(ctx context.Context, req Request) Result {
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	switch req.Protocol {
	case TCP:
		d := net.Dialer{KeepAlive: -1} // a check's connection lives a moment: no keep-alive probes to set up
		conn, err := d.DialContext(ctx, "tcp", req.Addr)
		if err != nil {
			return Result{Err: err.Error()}
		}
		_ = conn.Close() // nothing was written: nothing to lose
		return Result{}
	case HTTP, HTTPS:
		if req.Protocol == HTTP && req.Body == 0 && PlainRequestPath(req.Path) {
			code, status, err := HTTPGet(ctx, req.Addr, req.Path)
			if err != nil {
				return Result{Err: err.Error()}
			}
			return Result{Code: code, Status: status}
		}
		return clientGet(ctx, req)
	}
	return Result{Err: "unknown protocol " + strconv.Quote(req.Protocol)}
}

// httpClient does the checks HTTPGet does not (HTTPS, bodies, paths that
// need escaping). Certificates are not verified, as in Marathon, and
// redirects count as answers (3xx), so none is followed.
var httpClient = &http.Client{
	Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // Marathon's checks trust any certificate
		DisableKeepAlives: true,
		Proxy:             nil,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func clientGet(ctx context.Context, req Request) Result {
	scheme := "http"
	if req.Protocol == HTTPS {
		scheme = "https"
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+req.Addr+req.Path, nil)
	if err != nil {
		return Result{Err: err.Error()}
	}
	resp, err := httpClient.Do(hr)
	if err != nil {
		return Result{Err: err.Error()}
	}
	defer resp.Body.Close()
	res := Result{Code: resp.StatusCode, Status: resp.Status}
	if n := min(req.Body, MaxBody); n > 0 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, int64(n)))
		if err != nil {
			return Result{Err: fmt.Sprintf("GET %s://%s%s: read body: %v", scheme, req.Addr, req.Path, err)}
		}
		res.Body, res.ContentType = b, resp.Header.Get("Content-Type")
	}
	return res
}

// PlainRequestPath reports whether a check's path can be sent as it is in
// a request line: absolute, printable, without spaces.
func PlainRequestPath(p string) bool {
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return false
		}
	}
	return true
}

// HTTPGet is an HTTP check without net/http: one connection, one
// "GET path HTTP/1.1" with Connection: close, and the status line of the
// answer; the body is not read. A check every second per task through
// http.Client (a transport, its goroutines and buffers per request) costs
// several times the CPU. Interim 1xx answers other than 101 are skipped,
// as http.Client does. status is as http.Response.Status ("200 OK").
func HTTPGet(ctx context.Context, addr, path string) (code int, status string, err error) {
	d := net.Dialer{KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, "", fmt.Errorf("GET http://%s%s: %w", addr, path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl) // a connection that cannot take a deadline is bounded by AfterFunc below
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: "+addr+"\r\nUser-Agent: mesolite-health-check\r\nAccept: */*\r\nConnection: close\r\n\r\n"); err != nil {
		return 0, "", fmt.Errorf("GET http://%s%s: %w", addr, path, err)
	}
	br := bufio.NewReaderSize(conn, 1024)
	for interim := 0; interim < 8; interim++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, "", fmt.Errorf("GET http://%s%s: read status line: %w", addr, path, err)
		}
		proto, rest, ok := strings.Cut(strings.TrimRight(string(line), "\r\n"), " ")
		if !ok || !strings.HasPrefix(proto, "HTTP/") || len(rest) < 3 {
			return 0, "", fmt.Errorf("GET http://%s%s: malformed status line %q", addr, path, line)
		}
		code, err := strconv.Atoi(rest[:3])
		if err != nil || code < 100 || code > 999 {
			return 0, "", fmt.Errorf("GET http://%s%s: malformed status code %q", addr, path, rest)
		}
		if code >= 200 || code == http.StatusSwitchingProtocols {
			return code, strings.TrimLeft(rest, " "), nil
		}
		// An interim answer: skip its headers, read the next status line.
		for partial := false; ; {
			h, err := br.ReadSlice('\n')
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				return 0, "", fmt.Errorf("GET http://%s%s: read headers: %w", addr, path, err)
			}
			if err == nil && !partial && len(strings.TrimRight(string(h), "\r\n")) == 0 {
				break
			}
			partial = err != nil
		}
	}
	return 0, "", fmt.Errorf("GET http://%s%s: too many interim answers", addr, path)
}
