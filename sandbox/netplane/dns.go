package netplane

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/rs/zerolog"
)

// Zones mesolite answers for itself; every other name is forwarded.
var ownZones = []string{"mesos.", "thisdcos.directory."}

// upstreamTimeout bounds one question to one upstream resolver.
const upstreamTimeout = 2 * time.Second

// zone is an immutable index of a DNS state's records.
type zone struct {
	names     map[string][]dns.RR // by lower-case fully qualified name
	upstreams []string
}

func newZone(d *DNS) *zone {
	z := &zone{names: map[string][]dns.RR{}}
	if d == nil {
		return z
	}
	self := map[string]bool{d.Listen.String(): true, netip.AddrPortFrom(d.Address, 53).String(): true}
	for _, u := range d.Upstreams {
		if !self[u] {
			z.upstreams = append(z.upstreams, u)
		}
	}
	for _, r := range d.Records {
		name := strings.ToLower(dns.Fqdn(r.Name))
		hdr := dns.RR_Header{Name: name, Class: dns.ClassINET, Ttl: defaultTTL}
		var rr dns.RR
		switch r.Type {
		case TypeA:
			hdr.Rrtype = dns.TypeA
			rr = &dns.A{Hdr: hdr, A: net.IP(r.Addr.AsSlice())}
		case TypeSRV:
			hdr.Rrtype = dns.TypeSRV
			rr = &dns.SRV{Hdr: hdr, Target: dns.Fqdn(r.Target), Port: r.Port}
		default:
			continue
		}
		z.names[name] = append(z.names[name], rr)
	}
	return z
}

// ownZone is the zone of mesolite's that holds name, or "".
func ownZone(name string) string {
	for _, z := range ownZones {
		if name == z || strings.HasSuffix(name, "."+z) {
			return z
		}
	}
	return ""
}

func soa(z string) dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: z, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: defaultTTL},
		Ns:      "ns1." + z,
		Mbox:    "root.ns1." + z,
		Serial:  1,
		Refresh: 60, Retry: 600, Expire: 86400, Minttl: defaultTTL,
	}
}

// answer answers a question about mesolite's own names: the records, or
// NXDOMAIN for a name it does not know, with the zone's SOA as authority
// when there is no answer. ok is false for names outside its zones.
func (z *zone) answer(q dns.Question) (m *dns.Msg, ok bool) {
	name := strings.ToLower(q.Name)
	zn := ownZone(name)
	if zn == "" {
		return nil, false
	}
	m = new(dns.Msg)
	m.Authoritative = true
	rrs, exists := z.names[name]
	if !exists && !z.hasBelow(name) {
		m.Rcode = dns.RcodeNameError
		m.Ns = []dns.RR{soa(zn)}
		return m, true
	}
	for _, rr := range rrs {
		if q.Qtype == dns.TypeANY || rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, dns.Copy(rr))
		}
	}
	// Mesos-DNS shuffles records, a rudimentary spread over tasks.
	rand.Shuffle(len(m.Answer), func(i, j int) { m.Answer[i], m.Answer[j] = m.Answer[j], m.Answer[i] })
	for _, rr := range m.Answer {
		if srv, ok := rr.(*dns.SRV); ok {
			for _, a := range z.names[strings.ToLower(srv.Target)] {
				if a.Header().Rrtype == dns.TypeA {
					m.Extra = append(m.Extra, dns.Copy(a))
				}
			}
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []dns.RR{soa(zn)}
	}
	return m, true
}

// hasBelow reports whether a name exists below name (an empty
// non-terminal, such as marathon.mesos itself): NOERROR, not NXDOMAIN.
func (z *zone) hasBelow(name string) bool {
	if _, ok := z.names[name]; ok {
		return true
	}
	for _, zn := range ownZones {
		if name == zn {
			return true
		}
	}
	suffix := "." + name
	for n := range z.names {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

// DNSServer answers mesolite's names and forwards every other question to
// the upstream resolvers, over UDP and TCP on one address. Update swaps
// what it answers without dropping a question.
type DNSServer struct {
	log zerolog.Logger

	mu     sync.Mutex // guards listen, udp, tcp
	listen netip.AddrPort
	udp    *dns.Server
	tcp    *dns.Server

	zone atomic.Pointer[zone] // read on every question
}

// NewDNSServer returns a server that listens nowhere until Update.
func NewDNSServer(log zerolog.Logger) *DNSServer {
	s := &DNSServer{log: log}
	s.zone.Store(newZone(nil))
	return s
}

// Addr is the address the server listens on, if any.
func (s *DNSServer) Addr() netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.listen
}

// Update makes the server answer d: it binds d.Listen first (or again
// when it changed), then swaps the records. A nil d stops the server.
func (s *DNSServer) Update(d *DNS) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d == nil {
		s.stopLocked()
		s.zone.Store(newZone(nil))
		return nil
	}
	if err := s.bindLocked(d.Listen); err != nil {
		return err
	}
	s.zone.Store(newZone(d))
	return nil
}

// Bind makes the server listen on d.Listen (unless it already does) and
// leaves what it answers as it is; a nil d changes nothing. The plane binds
// before it changes the rules, so that an agent that cannot have the
// address (another agent serves DNS there) fails before it touches them.
func (s *DNSServer) Bind(d *DNS) error {
	if d == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bindLocked(d.Listen)
}

func (s *DNSServer) bindLocked(addr netip.AddrPort) error {
	if s.udp != nil && s.listen == addr {
		return nil
	}
	s.stopLocked()
	return s.startLocked(addr)
}

// inUse says what to do when the DNS address is taken.
func inUse(err error) string {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return ""
	}
	return " (another mesolite agent with networking on, or another DNS server, holds it: stop that agent, " +
		"or give each agent its own [network] table, dns_listen and named_vip_range, or set [network] mode = \"off\")"
}

func (s *DNSServer) startLocked(addr netip.AddrPort) error {
	pc, err := net.ListenPacket("udp4", addr.String())
	if err != nil {
		return fmt.Errorf("dns: listen on udp %s: %w%s", addr, err, inUse(err))
	}
	l, err := net.Listen("tcp4", addr.String())
	if err != nil {
		_ = pc.Close() // unused: the error changes nothing
		return fmt.Errorf("dns: listen on tcp %s: %w%s", addr, err, inUse(err))
	}
	s.udp = &dns.Server{PacketConn: pc, Handler: s}
	s.tcp = &dns.Server{Listener: l, Handler: s, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		go func() {
			if err := srv.ActivateAndServe(); err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error().Err(err).Stringer("listen", addr).Msg("dns server stopped")
			}
		}()
	}
	s.listen = addr
	s.log.Info().Stringer("listen", addr).Msg("dns server listening")
	return nil
}

func (s *DNSServer) stopLocked() {
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		if srv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = srv.ShutdownContext(ctx) // the sockets are closed either way
			cancel()
		}
	}
	s.udp, s.tcp, s.listen = nil, nil, netip.AddrPort{}
}

// Close stops the server.
func (s *DNSServer) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopLocked()
}

// ServeDNS answers one question.
func (s *DNSServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := resolve(s.zone.Load(), r, w.LocalAddr().Network())
	_ = w.WriteMsg(m) // the client went away: nothing to do
}

// resolve answers a query from zone z, forwarding what is not its own.
// network ("udp" or "tcp") is how the question came, and how it is
// forwarded.
func resolve(z *zone, r *dns.Msg, network string) *dns.Msg {
	if len(r.Question) != 1 || r.Opcode != dns.OpcodeQuery {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeNotImplemented)
		return m
	}
	if m, ok := z.answer(r.Question[0]); ok {
		rcode := m.Rcode
		m.SetReply(r) // resets the rcode
		m.Rcode = rcode
		m.Authoritative = true
		m.RecursionAvailable = true
		return m
	}
	return z.forward(r, network)
}

// forward asks the upstream resolvers in turn, over UDP and over TCP when
// the answer was truncated; SERVFAIL when none answers. An answer for a
// client that asked over UDP is truncated to what it can take.
func (z *zone) forward(r *dns.Msg, network string) *dns.Msg {
	for _, u := range z.upstreams {
		resp, _, err := (&dns.Client{Net: "udp", Timeout: upstreamTimeout}).Exchange(r, u)
		if err == nil && resp.Truncated {
			resp, _, err = (&dns.Client{Net: "tcp", Timeout: upstreamTimeout}).Exchange(r, u)
		}
		if err != nil {
			continue
		}
		resp.Id = r.Id
		if !strings.HasPrefix(network, "tcp") {
			size := dns.MinMsgSize
			if o := r.IsEdns0(); o != nil {
				size = int(o.UDPSize())
			}
			resp.Truncate(size)
		}
		return resp
	}
	m := new(dns.Msg)
	m.SetRcode(r, dns.RcodeServerFailure)
	m.RecursionAvailable = true
	return m
}

// Lookup answers a question from a DNS state without a server, as the
// server would (forwarding included). The agent's `mesolite dns` uses it
// where the server runs in the helper container.
func Lookup(d *DNS, name string, qtype uint16) *dns.Msg {
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	q.RecursionDesired = true
	return resolve(newZone(d), q, "udp")
}
