// Package dnstest runs a small authoritative DNS server on 127.0.0.1 for
// tests: it answers over UDP and TCP on one port from an in-memory zone that
// a test can change while it runs, and can be told to fail in the ways real
// servers do (SERVFAIL and other error codes, silence, truncated UDP
// answers).
//
//	srv := dnstest.Start(t, dnstest.Zone(
//		"example.com. 300 IN MX 10 mx.example.com.",
//		"mx.example.com. 300 IN A 192.0.2.1",
//	))
//	r, _ := sdns.New(sdns.Options{Servers: []string{srv.Addr}})
//
// A name that has no records and no records below it answers NXDOMAIN; a
// name that has records, but none of the type asked, answers NODATA. Both
// carry an SOA in the authority section whose minimum is the negative TTL
// (see SetNegativeTTL). CNAMEs are chased within the zone as a recursive
// resolver would.
package dnstest

import (
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DefaultNegativeTTL is the SOA minimum of NXDOMAIN and NODATA answers
// until SetNegativeTTL changes it.
const DefaultNegativeTTL = 60

// Query is one question the server received.
type Query struct {
	Name string // lower case, fully qualified
	Type uint16
	Net  string // "udp" or "tcp"
}

// Server is a running test DNS server. Its methods are safe for concurrent
// use.
type Server struct {
	// Addr is the server's "127.0.0.1:port", the same for UDP and TCP.
	Addr string

	mu       sync.Mutex
	zone     map[string][]dns.RR
	rcode    map[string]int
	drop     map[string]bool
	truncate bool
	negTTL   uint32
	log      []Query
	hold     chan struct{} // while non-nil, answers wait for it to close
	signed   map[string]bool
	t        testing.TB
}

// RR parses one record in zone-file form, such as
// "example.com. 300 IN A 192.0.2.1". It panics on a malformed record, like
// regexp.MustCompile, since its input is a literal in a test.
func RR(s string) dns.RR {
	rr, err := dns.NewRR(s)
	if err != nil || rr == nil {
		panic(fmt.Sprintf("dnstest: bad record %q: %v", s, err))
	}
	return rr
}

// Zone builds a zone for Start from records in zone-file form (see RR).
func Zone(records ...string) map[string][]dns.RR {
	z := make(map[string][]dns.RR)
	for _, s := range records {
		rr := RR(s)
		name := canon(rr.Header().Name)
		z[name] = append(z[name], rr)
	}
	return z
}

func canon(name string) string { return dns.CanonicalName(name) }

// Start runs a server for zone (keyed by owner name; case and the final dot
// do not matter) until the test ends.
func Start(t testing.TB, zone map[string][]dns.RR) *Server {
	t.Helper()
	s := &Server{
		t:      t,
		zone:   make(map[string][]dns.RR),
		rcode:  make(map[string]int),
		drop:   make(map[string]bool),
		signed: make(map[string]bool),
		negTTL: DefaultNegativeTTL,
	}
	for name, rrs := range zone {
		s.zone[canon(name)] = append(s.zone[canon(name)], rrs...)
	}
	pc, ln := listen(t)
	s.Addr = pc.LocalAddr().String()
	h := dns.HandlerFunc(s.serve)
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	for _, srv := range []*dns.Server{udp, tcp} {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
		t.Cleanup(func() { srv.Shutdown() })
	}
	return s
}

// listen opens a UDP socket and a TCP listener on the same loopback port.
func listen(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: listen udp: %v", err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
		lastErr = err
	}
	t.Fatalf("dnstest: no port free for both UDP and TCP: %v", lastErr)
	return nil, nil
}

// Set replaces the records of name with rrs; with no rrs, name is removed
// and answers NXDOMAIN.
func (s *Server) Set(name string, rrs ...dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = canon(name)
	if len(rrs) == 0 {
		delete(s.zone, name)
		return
	}
	s.zone[name] = append([]dns.RR(nil), rrs...)
}

// Add adds records in zone-file form (see RR) to those already there.
func (s *Server) Add(records ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		rr := RR(r)
		name := canon(rr.Header().Name)
		s.zone[name] = append(s.zone[name], rr)
	}
}

// SetRcode makes every query for name answer rcode, such as
// dns.RcodeServerFailure or dns.RcodeRefused, with no records;
// dns.RcodeSuccess restores normal answers.
func (s *Server) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcode, canon(name))
		return
	}
	s.rcode[canon(name)] = rcode
}

// SetDrop makes the server ignore queries for name (they are still
// counted), so clients time out.
func (s *Server) SetDrop(name string, drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if drop {
		s.drop[canon(name)] = true
	} else {
		delete(s.drop, canon(name))
	}
}

// SetSigned makes the server treat zone (and every name below it) as
// DNSSEC-signed, or not: its answers, records or NXDOMAIN and NODATA, then
// carry the AD bit when the query asks for it (AD or DO set), as a
// validating resolver's do. The server sends no signatures; a client
// trusting its AD bit is a client trusting its resolver.
func (s *Server) SetSigned(zone string, signed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if signed {
		s.signed[canon(zone)] = true
	} else {
		delete(s.signed, canon(zone))
	}
}

// isSigned reports whether name is in a zone SetSigned named; s.mu is held.
func (s *Server) isSigned(name string) bool {
	for z := range s.signed {
		if name == z || z == "." || strings.HasSuffix(name, "."+z) {
			return true
		}
	}
	return false
}

// SetTruncate makes every UDP answer an empty one with the TC bit set, so
// clients must ask again over TCP, which answers in full.
func (s *Server) SetTruncate(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = on
}

// Hold makes the server keep every answer back until release is called
// (or the test ends): queries are received and counted at once but
// answered only then, so a test can have several lookups in flight
// together.
func (s *Server) Hold() (release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{})
	s.hold = ch
	var once sync.Once
	release = func() {
		once.Do(func() {
			s.mu.Lock()
			if s.hold == ch {
				s.hold = nil
			}
			s.mu.Unlock()
			close(ch)
		})
	}
	s.t.Cleanup(release) // runs before the server shuts down
	return release
}

// SetNegativeTTL sets the SOA minimum, and so the TTL resolvers cache
// NXDOMAIN and NODATA answers for.
func (s *Server) SetNegativeTTL(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.negTTL = uint32(d / time.Second)
}

// Queries returns how many queries the server has received.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.log)
}

// Log returns the queries received so far, oldest first.
func (s *Server) Log() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Query(nil), s.log...)
}

// Reset forgets the queries received so far.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	if len(req.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(req, dns.RcodeFormatError)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	name := canon(q.Name)
	network := "tcp"
	if _, ok := w.RemoteAddr().(*net.UDPAddr); ok {
		network = "udp"
	}
	m, hold, ok := s.answer(req, Query{Name: name, Type: q.Qtype, Net: network})
	if hold != nil {
		<-hold
	}
	if !ok {
		return
	}
	if opt := req.IsEdns0(); opt != nil {
		m.SetEdns0(opt.UDPSize(), false)
	}
	w.WriteMsg(m)
}

// answer builds the reply to req and returns the hold to wait for before
// sending it; false means send none.
func (s *Server) answer(req *dns.Msg, q Query) (*dns.Msg, chan struct{}, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = append(s.log, q)
	m, ok := s.reply(req, q)
	if ok && m.Rcode != dns.RcodeServerFailure && s.isSigned(q.Name) {
		opt := req.IsEdns0()
		m.AuthenticatedData = req.AuthenticatedData || (opt != nil && opt.Do())
	}
	return m, s.hold, ok
}

// reply builds the reply to req; false means send none.
func (s *Server) reply(req *dns.Msg, q Query) (*dns.Msg, bool) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = true
	if s.drop[q.Name] {
		return nil, false
	}
	if rc, ok := s.rcode[q.Name]; ok {
		m.Rcode = rc
		return m, true
	}
	if s.truncate && q.Net == "udp" {
		m.Truncated = true
		return m, true
	}
	name := q.Name
	for range 8 {
		rrs := s.zone[name]
		var cname dns.RR
		found := false
		for _, rr := range rrs {
			switch rr.Header().Rrtype {
			case q.Type:
				m.Answer = append(m.Answer, dns.Copy(rr))
				found = true
			case dns.TypeCNAME:
				cname = rr
			}
		}
		if found || cname == nil {
			break
		}
		m.Answer = append(m.Answer, dns.Copy(cname))
		name = canon(cname.(*dns.CNAME).Target)
		if rc, ok := s.rcode[name]; ok {
			m.Rcode = rc
			return m, true
		}
	}
	if len(m.Answer) > 0 && m.Answer[len(m.Answer)-1].Header().Rrtype == q.Type {
		return m, true
	}
	if !s.exists(name) {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = []dns.RR{s.soa()}
	return m, true
}

// exists reports whether name has records or names below it.
func (s *Server) exists(name string) bool {
	if _, ok := s.zone[name]; ok {
		return true
	}
	for n := range s.zone {
		if strings.HasSuffix(n, "."+name) {
			return true
		}
	}
	return false
}

func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr:     dns.RR_Header{Name: ".", Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: s.negTTL},
		Ns:      "ns.dnstest.",
		Mbox:    "hostmaster.dnstest.",
		Serial:  1,
		Refresh: 3600,
		Retry:   600,
		Expire:  86400,
		Minttl:  s.negTTL,
	}
}
