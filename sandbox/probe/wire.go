package probe

import (
	"bufio"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// The helper's protocol, over one long-lived TCP connection from the agent
// (through a port the helper container publishes on the host's loopback):
// newline-delimited JSON. The client opens with a hello holding the token
// the helper was started with; the server answers with its own hello, or
// an error and a close. Then each request carries an id, the server
// performs it in a goroutine of its own and answers with the same id when
// it is done, so a slow check never holds up another. One connection
// serves every check: a check costs a line each way, not a connection
// through Docker's proxy.

// ProtocolVersion is the version a server states in its hello.
const ProtocolVersion = 1

// maxLine bounds one message on the wire (a Result with MaxBody of body,
// base64-encoded, fits well).
const maxLine = 1 << 20

// maxInFlight bounds the checks a server runs at once for one connection;
// a client with more waits for room.
const maxInFlight = 1024

type hello struct {
	Token   string `json:"token,omitempty"`
	Probe   int    `json:"probe,omitempty"` // ProtocolVersion, in the server's answer
	Err     string `json:"err,omitempty"`
	Gateway string `json:"gateway,omitempty"` // the server's NetworkHost address, for the log
}

type message struct {
	ID  uint64   `json:"id"`
	Req *Request `json:"req,omitempty"`
	Res *Result  `json:"res,omitempty"`
}

// Server performs the checks clients send over their connections.
type Server struct {
	// Token is what a client's hello must hold.
	Token string
	// HostAddr replaces the host of a NetworkHost request's address (the
	// gateway of the server's network, where ports of the host's network
	// are reached from inside a container); empty: addresses as they are.
	HostAddr string
	// Do performs a check; nil: Do of this package.
	Do func(context.Context, Request) Result
}

// Serve accepts connections on ln until ctx ends, then closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { _ = ln.Close() }) // unblocks Accept
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept probe connections: %w", err)
		}
		go s.serveConn(ctx, c)
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	br := bufio.NewReaderSize(c, 4096)
	var wmu sync.Mutex
	bw := bufio.NewWriter(c)
	write := func(v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		wmu.Lock()
		defer wmu.Unlock()
		_, _ = bw.Write(append(b, '\n')) // a failed write shows in Flush
		return bw.Flush()
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // the hello comes at once or not at all
	var h hello
	if err := readJSON(br, &h); err != nil {
		return
	}
	if subtle.ConstantTimeCompare([]byte(h.Token), []byte(s.Token)) != 1 {
		_ = write(hello{Err: "wrong token"}) // closing anyway
		return
	}
	_ = c.SetReadDeadline(time.Time{}) // requests come when checks are due
	if err := write(hello{Probe: ProtocolVersion, Gateway: s.HostAddr}); err != nil {
		return
	}
	do := s.Do
	if do == nil {
		do = Do
	}
	sem := make(chan struct{}, maxInFlight)
	for {
		var m message
		if err := readJSON(br, &m); err != nil || m.Req == nil {
			return
		}
		req := *m.Req
		if req.Network == NetworkHost && s.HostAddr != "" {
			if _, port, err := net.SplitHostPort(req.Addr); err == nil {
				req.Addr = net.JoinHostPort(s.HostAddr, port)
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		go func(id uint64) {
			defer func() { <-sem }()
			res := do(ctx, req)
			if ctx.Err() != nil {
				// Cut by the server's end (or the client's): no answer, so
				// the client sees a transport failure, not the empty
				// Result of a check that was never made, which reads as a
				// success.
				return
			}
			if err := write(message{ID: id, Res: &res}); err != nil {
				cancel() // the client is gone: so are its other checks
			}
		}(m.ID)
	}
}

// readJSON reads one line of at most maxLine bytes into v.
func readJSON(br *bufio.Reader, v any) error {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
		if len(line) > maxLine {
			return errors.New("message too long")
		}
	}
	return json.Unmarshal(line, v)
}

// ErrTransport marks a Result whose check could not be made because the
// way to the helper failed; it says nothing about the task.
var ErrTransport = errors.New("probe transport")

// Client sends checks to a Server over one connection, made on first use
// and again after it broke. It is a Prober; its zero value is not usable.
type Client struct {
	// Dial opens a connection to the server (its current address).
	Dial func(ctx context.Context) (net.Conn, error)
	// Token is the server's token.
	Token string
	// Grace is how long past a request's Timeout the client waits for the
	// answer before it gives up on it (default 5s).
	Grace time.Duration
	// Broken, when set, is called (in its own goroutine) with the cause
	// when a connection breaks or cannot be made, so the owner can check
	// on the helper.
	Broken func(error)

	mu      sync.Mutex
	conn    *clientConn
	dialing chan struct{} // closed when a dial in progress ends
	lastErr error
}

type clientConn struct {
	c       net.Conn
	wmu     sync.Mutex
	bw      *bufio.Writer
	mu      sync.Mutex
	next    uint64
	pending map[uint64]chan Result
	err     error // set when the connection broke
}

// Transport reports whether res is a failure of the way to the helper
// rather than a result of the check.
func Transport(res Result) bool { return strings.HasPrefix(res.Err, ErrTransport.Error()+": ") }

func transportResult(format string, args ...any) Result {
	return Result{Err: ErrTransport.Error() + ": " + fmt.Sprintf(format, args...)}
}

// Probe sends req and waits for its answer.
func (c *Client) Probe(ctx context.Context, req Request) Result {
	grace := c.Grace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, req.Timeout+grace)
		defer cancel()
	}
	cc, err := c.connect(ctx)
	if err != nil {
		return transportResult("connect to the check helper: %v", err)
	}
	ch := make(chan Result, 1)
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return transportResult("check helper connection: %v", cc.err)
	}
	cc.next++
	id := cc.next
	cc.pending[id] = ch
	cc.mu.Unlock()
	b, err := json.Marshal(message{ID: id, Req: &req})
	if err == nil {
		cc.wmu.Lock()
		_ = cc.c.SetWriteDeadline(time.Now().Add(grace)) // a stuck server breaks the connection rather than the caller
		_, _ = cc.bw.Write(append(b, '\n'))              // a failed write shows in Flush
		err = cc.bw.Flush()
		cc.wmu.Unlock()
	}
	if err != nil {
		c.fail(cc, fmt.Errorf("send: %w", err), true)
	}
	select {
	case res := <-ch:
		return res
	case <-ctx.Done():
		cc.mu.Lock()
		delete(cc.pending, id)
		cc.mu.Unlock()
		return transportResult("the check helper did not answer in time: %v", ctx.Err())
	}
}

// connect returns the live connection, dialing one if there is none. One
// dial at a time: other callers wait for it.
func (c *Client) connect(ctx context.Context) (*clientConn, error) {
	c.mu.Lock()
	if c.conn != nil {
		cc := c.conn
		c.mu.Unlock()
		return cc, nil
	}
	if c.dialing != nil {
		wait := c.dialing
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
		cc, err := c.conn, c.lastErr
		c.mu.Unlock()
		if cc != nil {
			return cc, nil
		}
		return nil, err
	}
	done := make(chan struct{})
	c.dialing = done
	c.mu.Unlock()
	cc, err := c.dial(ctx)
	c.mu.Lock()
	c.conn, c.lastErr, c.dialing = cc, err, nil
	c.mu.Unlock()
	close(done)
	if err != nil {
		if c.Broken != nil {
			go c.Broken(err)
		}
		return nil, err
	}
	go c.readLoop(cc)
	return cc, nil
}

func (c *Client) dial(ctx context.Context) (*clientConn, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nc, err := c.Dial(dctx)
	if err != nil {
		return nil, err
	}
	if _, err := Hello(dctx, nc, c.Token); err != nil {
		_ = nc.Close() // the connection is of no use
		return nil, err
	}
	return &clientConn{c: nc, bw: bufio.NewWriter(nc), pending: map[uint64]chan Result{}}, nil
}

// Hello opens the protocol on conn: it sends the token and reads the
// server's answer, within ctx. A server that answers is a probe server of
// this protocol version, which is how detection tells a helper from
// whatever else might accept a connection.
func Hello(ctx context.Context, conn net.Conn, token string) (gateway string, err error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl) // bounded by AfterFunc below otherwise
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	b, _ := json.Marshal(hello{Token: token})
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return "", fmt.Errorf("send hello: %w", err)
	}
	// Read byte by byte up to the newline, so nothing after the hello is
	// taken from the connection before the read loop's reader owns it.
	var line []byte
	one := make([]byte, 1)
	for len(line) < 4096 {
		if _, err := conn.Read(one); err != nil {
			return "", fmt.Errorf("read hello: %w", err)
		}
		if one[0] == '\n' {
			break
		}
		line = append(line, one[0])
	}
	var h hello
	if err := json.Unmarshal(line, &h); err != nil {
		return "", fmt.Errorf("read hello: not a check helper: %w", err)
	}
	if h.Err != "" {
		return "", fmt.Errorf("check helper refused: %s", h.Err)
	}
	if h.Probe != ProtocolVersion {
		return "", fmt.Errorf("check helper speaks protocol %d, want %d", h.Probe, ProtocolVersion)
	}
	_ = conn.SetDeadline(time.Time{}) // the connection lives on
	return h.Gateway, nil
}

func (c *Client) readLoop(cc *clientConn) {
	br := bufio.NewReaderSize(cc.c, 4096)
	for {
		var m message
		if err := readJSON(br, &m); err != nil {
			c.fail(cc, fmt.Errorf("read: %w", err), true)
			return
		}
		if m.Res == nil {
			continue
		}
		cc.mu.Lock()
		ch := cc.pending[m.ID]
		delete(cc.pending, m.ID)
		cc.mu.Unlock()
		if ch != nil {
			ch <- *m.Res
		}
	}
}

// fail marks cc broken: every waiting check gets a transport result, and
// the next check dials again. notify calls Broken.
func (c *Client) fail(cc *clientConn, cause error, notify bool) {
	cc.mu.Lock()
	if cc.err != nil {
		cc.mu.Unlock()
		return
	}
	cc.err = cause
	pending := cc.pending
	cc.pending = nil
	cc.mu.Unlock()
	_ = cc.c.Close() // broken already
	for _, ch := range pending {
		ch <- transportResult("check helper connection lost: %v", cause)
	}
	c.mu.Lock()
	if c.conn == cc {
		c.conn = nil
	}
	c.mu.Unlock()
	if notify && c.Broken != nil {
		go c.Broken(cause)
	}
}

// Close closes the connection; a later Probe dials again.
func (c *Client) Close() error {
	c.mu.Lock()
	cc := c.conn
	c.mu.Unlock()
	if cc != nil {
		c.fail(cc, errors.New("client closed"), false)
	}
	return nil
}
