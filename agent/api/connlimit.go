package api

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// MaxConns is how many connections the API holds open at once. It stays
// well under the 1,024 file descriptors many systems give a process, which
// the agent also needs for Docker, the store and the tasks' output.
const MaxConns = 512

// ConnLimiter caps the API's open connections. When the cap is reached, a
// new connection takes the place of the one that has waited longest
// without a request being served on it: still sending its request line,
// headers or body, or idle between requests. Slow or stalled clients are
// thus shed first, and a client that sends a whole request at once, such
// as /ping, is always served. When every connection is serving a request
// (event streams), the new one is closed.
//
// Wire it into an http.Server with Listener, ConnState and ConnContext;
// the API marks the time a handler spends reading a request body.
type ConnLimiter struct {
	max int

	mu    sync.Mutex
	conns map[net.Conn]*connInfo
}

type connInfo struct {
	since   time.Time // when the connection entered its state
	state   http.ConnState
	serving bool // a handler runs for it
	reading bool // that handler is reading the request body
}

// sheddable: no request is being served on it, or its handler waits for
// the request's body.
func (i *connInfo) sheddable() bool { return !i.serving || i.reading }

// NewConnLimiter returns a limiter of max connections.
func NewConnLimiter(max int) *ConnLimiter {
	return &ConnLimiter{max: max, conns: map[net.Conn]*connInfo{}}
}

// Listener wraps ln so that accepting beyond the cap sheds a connection.
func (l *ConnLimiter) Listener(ln net.Listener) net.Listener { return &limitListener{ln, l} }

type limitListener struct {
	net.Listener
	l *ConnLimiter
}

func (ll *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := ll.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if ll.l.admit(c) {
			return c, nil
		}
		c.Close()
	}
}

// admit registers c, shedding the longest-waiting connection that serves
// no request when the cap is reached. It reports false when none can go.
func (l *ConnLimiter) admit(c net.Conn) bool {
	l.mu.Lock()
	var victim net.Conn
	if len(l.conns) >= l.max {
		var oldest time.Time
		for vc, info := range l.conns {
			if info.sheddable() && (victim == nil || info.since.Before(oldest)) {
				victim, oldest = vc, info.since
			}
		}
		if victim == nil {
			l.mu.Unlock()
			return false
		}
		delete(l.conns, victim)
	}
	l.conns[c] = &connInfo{since: time.Now(), state: http.StateNew}
	l.mu.Unlock()
	if victim != nil {
		victim.Close()
	}
	return true
}

// ConnState is the http.Server's ConnState hook.
func (l *ConnLimiter) ConnState(c net.Conn, s http.ConnState) {
	l.mu.Lock()
	defer l.mu.Unlock()
	info := l.conns[c]
	if info == nil {
		return
	}
	switch s {
	case http.StateClosed, http.StateHijacked:
		delete(l.conns, c)
	case http.StateActive, http.StateIdle:
		// Active: the first bytes of a request came; its handler, if it
		// gets that far, marks the connection serving.
		info.state, info.since, info.serving, info.reading = s, time.Now(), false, false
	}
}

type connKey struct{}

// ConnContext is the http.Server's ConnContext hook: it lets a handler
// find its connection.
func (l *ConnLimiter) ConnContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// Open reports the connections held.
func (l *ConnLimiter) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// Serve marks the request's connection as serving a request until the
// returned function is called, except while its body is being read (until
// the body is read to its end or closed), when it may still be shed.
func (l *ConnLimiter) Serve(r *http.Request) (done func()) {
	c, _ := r.Context().Value(connKey{}).(net.Conn)
	if c == nil {
		return func() {}
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	l.set(c, func(i *connInfo) { i.serving, i.reading = true, hasBody })
	if hasBody {
		r.Body = &markedBody{ReadCloser: r.Body, done: func() { l.set(c, func(i *connInfo) { i.reading = false }) }}
	}
	return func() { l.set(c, func(i *connInfo) { i.serving, i.reading = false, false }) }
}

func (l *ConnLimiter) set(c net.Conn, change func(*connInfo)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if info := l.conns[c]; info != nil {
		change(info)
		info.since = time.Now()
	}
}

// markedBody calls done once its body is read to the end or closed.
type markedBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *markedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.once.Do(b.done)
	}
	return n, err
}

func (b *markedBody) Close() error {
	b.once.Do(b.done)
	return b.ReadCloser.Close()
}
