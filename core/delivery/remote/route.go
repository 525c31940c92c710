package remote

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/mail"
)

// target is one host to try, in order: a mail exchanger or a relay.
type target struct {
	host string
	port int
}

// targets returns the hosts to try for domain, in order, and whether the
// relay credentials apply; or the failure that ends the attempt. The route
// a deliver-stage plugin chose wins, then Routes, then RelayHost, then the
// domain's MX hosts.
func (d *Deliverer) targets(ctx context.Context, m *mail.Message, domain string) ([]target, bool, *failure) {
	relay := func(s string) ([]target, bool, *failure) {
		hp, err := parseHostPort(s)
		if err != nil {
			return nil, false, deferred("4.3.5", "none", "bad route for %s: %v", domain, err)
		}
		return []target{{hp.host, hp.port}}, false, nil
	}
	if m.Route != "" {
		return relay(m.Route)
	}
	if r, ok := d.routes[domain]; ok {
		return relay(r)
	}
	if d.relay != nil {
		return []target{{d.relay.host, d.relay.port}}, d.opts.RelayUser != "", nil
	}
	mxs, err := d.opts.Resolver.LookupMX(ctx, domain)
	switch {
	case errors.Is(err, dns.ErrNotFound):
		return nil, false, bounced(550, "5.1.2", "none", "domain %s does not exist (NXDOMAIN)", domain)
	case err != nil:
		return nil, false, deferred("4.4.3", "none", "looking up the MX hosts of %s failed: %v", domain, err)
	case len(mxs) == 1 && mxs[0].Host == ".":
		return nil, false, bounced(556, "5.1.10", "none", "domain %s accepts no mail (null MX, RFC 7505)", domain)
	case len(mxs) == 0:
		// No MX: the domain itself is the implicit MX (RFC 5321 5.1).
		return []target{{domain, d.opts.Port}}, false, nil
	}
	out := make([]target, 0, len(mxs))
	for _, mx := range mxs {
		if mx.Host != "." && mx.Host != "" {
			out = append(out, target{mx.Host, d.opts.Port})
		}
	}
	if len(out) == 0 {
		return nil, false, bounced(556, "5.1.10", "none", "domain %s accepts no mail (null MX, RFC 7505)", domain)
	}
	return out, false, nil
}

// addrs returns the addresses of t, or the failure to resolve them. An
// address we listen on ourselves is a mail loop, bounced with 5.4.6.
func (d *Deliverer) addrs(ctx context.Context, t target, domain string) ([]netip.Addr, *failure) {
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(t.host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if d.opts.Resolver == nil {
			return nil, deferred("4.4.3", "none", "cannot resolve %s: no DNS resolver configured", t.host)
		}
		addrs, err = d.opts.Resolver.LookupIP(ctx, t.host)
		switch {
		case errors.Is(err, dns.ErrNotFound):
			return nil, deferred("4.4.3", "none", "host %s not found (NXDOMAIN)", t.host)
		case err != nil:
			return nil, deferred("4.4.3", "none", "looking up the address of %s failed: %v", t.host, err)
		case len(addrs) == 0:
			return nil, deferred("4.4.3", "none", "host %s has no address records", t.host)
		}
	}
	for _, a := range addrs {
		if d.isOwn(netip.AddrPortFrom(a.Unmap(), uint16(t.port))) {
			return nil, bounced(554, "5.4.6", relayName(t.host, a, t.port), "mail for %s loops back to myself", domain)
		}
	}
	return addrs, nil
}

// isOwn reports whether ap is one of the addresses we listen on; a
// listener on the unspecified address owns every loopback address.
func (d *Deliverer) isOwn(ap netip.AddrPort) bool {
	for _, own := range d.opts.OwnAddrs {
		if own.Port() != ap.Port() {
			continue
		}
		oa := own.Addr().Unmap()
		if oa == ap.Addr() || (oa.IsUnspecified() && ap.Addr().IsLoopback()) {
			return true
		}
	}
	return false
}

// relayName names a connection for logs: "mx.example.com[192.0.2.1]:25".
func relayName(host string, a netip.Addr, port int) string {
	return fmt.Sprintf("%s[%s]:%d", host, a.Unmap(), port)
}

// acquire takes a slot for domain and then a global one, waiting no longer
// than ctx allows. It never holds a global slot while it waits for a
// destination's, so a busy destination cannot starve the others.
func (d *Deliverer) acquire(ctx context.Context, domain string) (release func(), err error) {
	limit := d.opts.MaxPerDestination
	if n, ok := d.limits[domain]; ok {
		limit = n
	}
	relDest, err := d.dests.acquire(ctx, domain, limit)
	if err != nil {
		return nil, err
	}
	select {
	case d.global <- struct{}{}:
	case <-ctx.Done():
		relDest()
		return nil, ctx.Err()
	}
	return func() {
		<-d.global
		relDest()
	}, nil
}
