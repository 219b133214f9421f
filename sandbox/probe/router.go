package probe

import (
	"context"
	"sync"
	"time"
)

// Paths a Router may take.
const (
	// PathPending: detection has not finished; checks wait for it.
	PathPending = "pending"
	// PathDirect: this process connects to containers' own addresses.
	PathDirect = "direct"
	// PathHelper: a helper container inside Docker's network connects for
	// this process, which cannot reach containers' addresses.
	PathHelper = "helper"
	// PathNone: neither works; TCP and HTTP checks cannot be made, and
	// their results are transport failures (neither healthy nor unhealthy).
	PathNone = "unavailable"
)

// Info says which path checks take and why.
type Info struct {
	Path   string    `json:"path"`
	Reason string    `json:"reason,omitempty"`
	Since  time.Time `json:"since"`
}

// Router sends each check along the path detection chose. Until the first
// Set, a check waits for it (within its own timeout), so checks of tasks
// adopted at start neither fail nor succeed on a path that is not the
// one. It is a Prober.
type Router struct {
	mu    sync.Mutex
	ready chan struct{} // closed by the first Set
	info  Info
	via   Prober
}

// NewRouter returns a Router whose path is pending.
func NewRouter() *Router {
	return &Router{ready: make(chan struct{}), info: Info{Path: PathPending, Since: time.Now().UTC()}}
}

// Set chooses the path: via performs the checks (nil with PathNone).
func (r *Router) Set(info Info, via Prober) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if info.Since.IsZero() {
		info.Since = time.Now().UTC()
	}
	r.info, r.via = info, via
	select {
	case <-r.ready:
	default:
		close(r.ready)
	}
}

// Info returns the current path.
func (r *Router) Info() Info {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info
}

// Probe performs req on the chosen path, waiting for the choice at most
// req.Timeout (or until ctx ends).
func (r *Router) Probe(ctx context.Context, req Request) Result {
	wait := ctx
	if req.Timeout > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, req.Timeout)
		defer cancel()
	}
	select {
	case <-r.ready:
	case <-wait.Done():
		return transportResult("the path of the checks is not known yet (detection runs)")
	}
	r.mu.Lock()
	info, via := r.info, r.via
	r.mu.Unlock()
	if via == nil {
		return transportResult("no path to the tasks' addresses: %s", info.Reason)
	}
	return via.Probe(ctx, req)
}
