package auth

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"

	sdns "github.com/sluice-mta/sluice/core/dns"
)

// Resolver is the part of *dns.Resolver (core/dns) the checks ask: TXT for
// SPF, DKIM and DMARC records, and the addresses, exchangers and host names
// SPF's a, mx, exists and ptr mechanisms need. Errors wrapping
// dns.ErrNotFound mean the name does not exist; any other error is taken as
// temporary.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
	LookupMX(ctx context.Context, domain string) ([]sdns.MX, error)
	LookupPTR(ctx context.Context, ip netip.Addr) ([]string, error)
}

var _ Resolver = (*sdns.Resolver)(nil)

// netError turns an error of r into the *net.DNSError the SPF and go-msgauth
// libraries look at: not found for NXDOMAIN, temporary for anything else.
func netError(name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sdns.ErrNotFound) {
		return &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
	}
	return &net.DNSError{Err: err.Error(), Name: name, IsTemporary: true}
}

// spfResolver adapts a Resolver to spf.DNSResolver (net.Resolver's method
// set).
type spfResolver struct{ r Resolver }

var _ spf.DNSResolver = spfResolver{}

// LookupTXT implements spf.DNSResolver.
func (s spfResolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	txt, err := s.r.LookupTXT(ctx, name)
	return txt, netError(name, err)
}

// LookupMX implements spf.DNSResolver. A null MX (RFC 7505) has no hosts.
func (s spfResolver) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	mxs, err := s.r.LookupMX(ctx, name)
	if err != nil {
		return nil, netError(name, err)
	}
	out := make([]*net.MX, 0, len(mxs))
	for _, mx := range mxs {
		if mx.Host == "." || mx.Host == "" {
			continue
		}
		out = append(out, &net.MX{Host: mx.Host, Pref: mx.Pref})
	}
	return out, nil
}

// LookupIPAddr implements spf.DNSResolver.
func (s spfResolver) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	ips, err := s.r.LookupIP(ctx, host)
	if err != nil {
		return nil, netError(host, err)
	}
	out := make([]net.IPAddr, len(ips))
	for i, ip := range ips {
		out[i] = net.IPAddr{IP: net.IP(ip.Unmap().AsSlice())}
	}
	return out, nil
}

// LookupAddr implements spf.DNSResolver.
func (s spfResolver) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return nil, &net.DNSError{Err: "not an IP address", Name: addr, IsNotFound: true}
	}
	names, err := s.r.LookupPTR(ctx, ip)
	if err != nil {
		return nil, netError(addr, err)
	}
	for i, n := range names {
		// net.Resolver returns names fully qualified; spf expects that.
		if !strings.HasSuffix(n, ".") {
			names[i] = n + "."
		}
	}
	return names, nil
}

// txtLookup returns a go-msgauth LookupTXT function asking r within ctx.
func txtLookup(ctx context.Context, r Resolver) func(string) ([]string, error) {
	return func(name string) ([]string, error) {
		txt, err := r.LookupTXT(ctx, name)
		return txt, netError(name, err)
	}
}
