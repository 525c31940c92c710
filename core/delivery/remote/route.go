package remote

import (
	"context"
	"crypto/x509"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sluice-mta/sluice/core/delivery/mtasts"
	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/mail"
)

// target is one host to try, in order: a mail exchanger or a relay.
type target struct {
	host string
	port int
}

// dest is where one domain's mail goes and how its sessions are secured.
type dest struct {
	domain  string
	targets []target
	// relay is set when the targets are a relay (smarthost, route), not
	// the domain's mail exchangers; user and pass log in to it.
	relay      bool
	user, pass string
	relayTLS   string
	// roots, when set, verify the relay instead of Options.RelayRoots.
	roots *x509.CertPool
	// tlsOptional is set when the message says "TLS-Required: No" (RFC
	// 8689): the domain's published policies (MTA-STS, DANE) are
	// reported but do not stop delivery.
	tlsOptional bool
	// policy is the TLS policy (TLSNone, TLSOpportunistic, …).
	policy string
	// mxSecure is set when the MX answer was DNSSEC-validated.
	mxSecure bool
	// sts is the domain's MTA-STS policy, stsErr why it could not be had.
	sts    *mtasts.Policy
	stsErr error
}

// targets returns where mail for domain goes, or the failure that ends the
// attempt. The route a deliver-stage plugin chose wins, then Routes, then
// RelayHost, then the domain's MX hosts.
func (d *Deliverer) targets(ctx context.Context, m *mail.Message, domain string) (*dest, *failure) {
	ds := &dest{domain: domain, policy: d.opts.TLS, relayTLS: RelayStartTLS}
	relay := func(s string) (*dest, *failure) {
		hp, err := parseHostPort(s)
		if err != nil {
			return nil, deferred("4.3.5", "none", "bad route for %s: %v", domain, err)
		}
		ds.targets, ds.relay = []target{{hp.host, hp.port}}, true
		return ds, nil
	}
	if m.Route != "" {
		if ds.policy == TLSDANEOnly || ds.policy == TLSVerify {
			ds.policy = TLSOpportunistic // a plugin's relay is no MX: no name to verify
		}
		return relay(m.Route)
	}
	r, routed := d.routes[domain]
	switch {
	case routed && r.Relay != "":
		ds.policy = r.TLS
		ds.user, ds.pass, ds.relayTLS, ds.roots = r.User, r.Password, r.RelayTLS, r.Roots
		return relay(r.Relay)
	case d.relay != nil:
		// The smarthost takes the mail of every domain without a relay of
		// its own, verified whatever the domain's MX policy would be.
		ds.targets, ds.relay = []target{{d.relay.host, d.relay.port}}, true
		ds.user, ds.pass, ds.relayTLS, ds.policy = d.opts.RelayUser, d.opts.RelayPassword, d.opts.RelayTLS, TLSVerify
		return ds, nil
	case routed:
		ds.policy = r.TLS
	}
	if d.opts.DANE || d.opts.MTASTS != nil {
		ds.tlsOptional = tlsNotRequired(m)
	}
	mxs, secure, err := d.opts.Resolver.LookupMXSecure(ctx, domain)
	ds.mxSecure = secure
	switch {
	case errors.Is(err, dns.ErrNotFound):
		return nil, bounced(550, "5.1.2", "none", "domain %s does not exist (NXDOMAIN)", domain)
	case err != nil:
		return nil, deferred("4.4.3", "none", "looking up the MX hosts of %s failed: %v", domain, err)
	case len(mxs) == 1 && mxs[0].Host == ".":
		return nil, bounced(556, "5.1.10", "none", "domain %s accepts no mail (null MX, RFC 7505)", domain)
	case len(mxs) == 0:
		// No MX: the domain itself is the implicit MX (RFC 5321 5.1).
		ds.targets = []target{{domain, d.opts.Port}}
	}
	for _, mx := range mxs {
		if mx.Host != "." && mx.Host != "" {
			ds.targets = append(ds.targets, target{mx.Host, d.opts.Port})
		}
	}
	if len(ds.targets) == 0 {
		return nil, bounced(556, "5.1.10", "none", "domain %s accepts no mail (null MX, RFC 7505)", domain)
	}
	if d.opts.MTASTS != nil && (ds.policy == TLSOpportunistic || ds.policy == TLSVerify) {
		ds.sts, ds.stsErr = d.opts.MTASTS.Get(ctx, domain)
	}
	return ds, nil
}

// addrs returns the addresses of t and whether their lookup was
// DNSSEC-validated, or the failure to resolve them. An address we listen
// on ourselves is a mail loop, bounced with 5.4.6.
func (d *Deliverer) addrs(ctx context.Context, t target, domain string) ([]netip.Addr, bool, *failure) {
	var addrs []netip.Addr
	secure := false
	if a, err := netip.ParseAddr(t.host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		if d.opts.Resolver == nil {
			return nil, false, deferred("4.4.3", "none", "cannot resolve %s: no DNS resolver configured", t.host)
		}
		addrs, secure, err = d.opts.Resolver.LookupIPSecure(ctx, t.host)
		switch {
		case errors.Is(err, dns.ErrNotFound):
			return nil, false, deferred("4.4.3", "none", "host %s not found (NXDOMAIN)", t.host)
		case err != nil:
			return nil, false, deferred("4.4.3", "none", "looking up the address of %s failed: %v", t.host, err)
		case len(addrs) == 0:
			return nil, false, deferred("4.4.3", "none", "host %s has no address records", t.host)
		}
	}
	for _, a := range addrs {
		if d.isOwn(netip.AddrPortFrom(a.Unmap(), uint16(t.port))) {
			return nil, false, bounced(554, "5.4.6", relayName(t.host, a, t.port), "mail for %s loops back to myself", domain)
		}
	}
	return addrs, secure, nil
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
	// Appended rather than fmt.Sprintf'd: it is named for every message.
	b := make([]byte, 0, len(host)+len("[]:65535")+len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"))
	b = append(append(b, host...), '[')
	b = a.Unmap().AppendTo(b)
	b = strconv.AppendInt(append(b, "]:"...), int64(port), 10)
	return string(b)
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

// tlsNotRequired reports whether m's header has "TLS-Required: No" (RFC
// 8689 section 5): its sender asks that the recipient domain's TLS
// policies not stop it, as a TLS report (RFC 8460 section 3) does.
func tlsNotRequired(m *mail.Message) bool {
	h, _ := mail.ParseHeader(m.Body)
	for _, v := range h.Values("TLS-Required") {
		if strings.EqualFold(strings.TrimSpace(v), "no") {
			return true
		}
	}
	return false
}
