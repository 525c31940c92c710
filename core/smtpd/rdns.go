package smtpd

import (
	"context"
	"net/netip"
	"time"

	"github.com/sluice-mta/sluice/core/dns"
)

// ReverseResolver looks up a client's forward-confirmed reverse DNS name;
// *dns.Resolver is one.
type ReverseResolver interface {
	LookupReverse(ctx context.Context, ip netip.Addr) dns.Reverse
}

var _ ReverseResolver = (*dns.Resolver)(nil)

// cachedReverser is a ReverseResolver that can answer from its cache
// alone (*dns.Resolver): a client whose answers are cached — a client that
// connects again within their TTL — costs no goroutine at connect.
type cachedReverser interface {
	CachedReverse(ip netip.Addr) (dns.Reverse, bool)
}

var _ cachedReverser = (*dns.Resolver)(nil)

// DefaultRDNSTimeout is the reverse DNS budget when Listener.RDNSTimeout
// is zero.
const DefaultRDNSTimeout = 2 * time.Second

// rdnsLookup is the reverse DNS lookup of one connection's client, started
// when the connection is accepted so that it runs while the banner is sent
// and the client greets (or answered at once from the resolver's cache). The session waits for it, within what is left of
// the budget, when it first needs the name (the connect hook, the Received
// header).
type rdnsLookup struct {
	done     chan struct{}
	deadline time.Time
	res      dns.Reverse // set before done is closed
}

// startRDNS starts the reverse lookup of ip; nil without a resolver.
func (s *Server) startRDNS(ip netip.Addr) *rdnsLookup {
	if s.opts.Resolver == nil || !ip.IsValid() {
		return nil
	}
	if cr, ok := s.opts.Resolver.(cachedReverser); ok {
		if res, ok := cr.CachedReverse(ip); ok {
			l := &rdnsLookup{done: make(chan struct{}), res: res}
			close(l.done)
			return l
		}
	}
	budget := s.lc.RDNSTimeout.D()
	l := &rdnsLookup{done: make(chan struct{}), deadline: time.Now().Add(budget)}
	go func() {
		defer close(l.done)
		ctx, cancel := context.WithDeadline(s.ctx, l.deadline)
		defer cancel()
		l.res = s.opts.Resolver.LookupReverse(ctx, ip)
	}()
	return l
}

// result waits for the lookup until its deadline and returns its outcome:
// ReverseTempFail when it is not done by then, the zero Reverse for a nil
// lookup (none was made).
func (l *rdnsLookup) result() dns.Reverse {
	if l == nil {
		return dns.Reverse{}
	}
	select {
	case <-l.done:
		return l.res
	default:
	}
	t := time.NewTimer(time.Until(l.deadline) + rdnsGrace)
	defer t.Stop()
	select {
	case <-l.done:
		return l.res
	case <-t.C:
		return dns.Reverse{Status: dns.ReverseTempFail}
	}
}

// rdnsGrace is how long past its deadline result waits for a resolver
// that is slow to notice its context ended.
const rdnsGrace = 50 * time.Millisecond

// rdns returns the reverse DNS of the session's client (waiting for it as
// result does), and logs it the first time.
func (ss *session) rdns() dns.Reverse {
	g, ok := ss.conn.Conn().(*guardConn)
	if !ok || g.rdns == nil {
		return dns.Reverse{}
	}
	res := g.rdns.result()
	if g.rdnsLogged.CompareAndSwap(false, true) {
		ss.log.Debug("reverse dns", "status", res.Status, "name", res.Name, "ptr", res.PTR)
	}
	return res
}
