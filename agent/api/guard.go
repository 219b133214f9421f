package api

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// Guard keeps web pages from giving the API orders. mesolite runs next to
// the user's browser with the power to start containers, so before
// anything is read or done:
//
//   - a Host that is not one of the agent's own names gets 403: a page of
//     a name that resolves to 127.0.0.1 (DNS rebinding) would otherwise be
//     same-origin with the API. Allowed: the listen address's host,
//     localhost and *.localhost, loopback addresses, the agent's hostname,
//     any IP address when the API listens on all addresses, and the names
//     in [security] allowed_hosts. The port does not matter.
//   - an Origin that is neither the request's own origin (the same scheme
//     and Host: the agent's own pages) nor in [security] allowed_origins
//     gets 403, whatever the method: a page of another site, or a sandboxed
//     one ("null"). A request that changes something and carries no Origin
//     but says Sec-Fetch-Site: cross-site or same-site gets 403 too.
//   - a POST, PUT or PATCH whose body is not declared JSON gets 415, as
//     Marathon answers, so that a form or a no-cors fetch (text/plain,
//     which needs no preflight) is never parsed as an order. A request
//     without a body needs no Content-Type.
//
// Only the listed origins get CORS headers, and their preflights an
// answer; the agent's own pages need none.
type Guard struct {
	listenHost string
	anyIP      bool // listening on all addresses: every IP literal is the agent's
	hostname   string
	hosts      map[string]bool
	origins    map[string]bool
}

// NewGuard returns the guard of an API that listens on listen (host:port)
// as hostname, with the extra hosts and origins of agent.toml.
func NewGuard(listen, hostname string, allowedHosts, allowedOrigins []string) *Guard {
	g := &Guard{hostname: strings.ToLower(hostname), hosts: map[string]bool{}, origins: map[string]bool{}}
	if h, _, err := net.SplitHostPort(listen); err == nil {
		g.listenHost = strings.ToLower(h)
		if ip := net.ParseIP(h); h == "" || ip != nil && ip.IsUnspecified() {
			g.anyIP = true
		}
	}
	for _, h := range allowedHosts {
		g.hosts[strings.ToLower(strings.TrimSpace(h))] = true
	}
	for _, o := range allowedOrigins {
		g.origins[normalizeOrigin(o)] = true
	}
	return g
}

// normalizeOrigin lowers the scheme and host of an origin and drops a
// trailing slash, as browsers send it.
func normalizeOrigin(o string) string {
	return strings.ToLower(strings.TrimSuffix(strings.TrimSpace(o), "/"))
}

// hostAllowed reports whether a Host header names this agent.
func (g *Guard) hostAllowed(hostport string) bool {
	if hostport == "" {
		return true // HTTP/1.0 without Host: no browser sends that
	}
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.Trim(host, "[]"), "."))
	switch {
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		// Browsers resolve these to loopback themselves.
		return true
	case host == g.listenHost || host == g.hostname || g.hosts[host]:
		return true
	}
	if ip := net.ParseIP(host); ip != nil {
		// An address is no name an attacker's DNS can point here.
		return ip.IsLoopback() || g.anyIP
	}
	return false
}

// sameOrigin reports whether origin is the request's own: the page that
// sent it was served by this API at the address the request went to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Path != "" || u.User != nil {
		return false
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return strings.EqualFold(u.Scheme, scheme) && strings.EqualFold(u.Host, r.Host)
}

// Check answers the requests the guard refuses, and preflights of listed
// origins, and sets the CORS headers of listed origins. It returns false
// when it has answered.
func (g *Guard) Check(w http.ResponseWriter, r *http.Request) bool {
	if !g.hostAllowed(r.Host) {
		writeJSON(w, http.StatusForbidden, msg("Forbidden: the Host "+quote(r.Host)+" is not a name of this agent (a page of another site reaching 127.0.0.1 through DNS rebinding looks like this); add the name to [security] allowed_hosts in agent.toml to allow it"))
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		if !safeMethod(r.Method) {
			if site := r.Header.Get("Sec-Fetch-Site"); site == "cross-site" || site == "same-site" {
				writeJSON(w, http.StatusForbidden, msg("Forbidden: a request from another site; add its origin to [security] allowed_origins in agent.toml to allow it"))
				return false
			}
		}
	} else if !sameOrigin(origin, r) {
		if !g.origins[normalizeOrigin(origin)] {
			writeJSON(w, http.StatusForbidden, msg("Forbidden: requests from origin "+quote(origin)+" are refused; add it to [security] allowed_origins in agent.toml to allow it"))
			return false
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "Location, Marathon-Deployment-Id")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Content-Type, Authorization, Accept")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return false
		}
	}
	if takesBody(r.Method) && !declaredJSON(r) {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{
			"message": "Unsupported Media Type",
			"details": "send the body as JSON with Content-Type: application/json",
		})
		return false
	}
	return true
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

func takesBody(m string) bool {
	return m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch
}

// declaredJSON reports whether a request's body, if it has one, is
// declared application/json. A Content-Type that is there must say JSON
// even when the body is empty.
func declaredJSON(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return r.ContentLength == 0
	}
	media, _, err := mime.ParseMediaType(ct)
	return err == nil && media == "application/json"
}

func quote(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return "\"" + strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '"' {
			return '?'
		}
		return r
	}, s) + "\""
}
