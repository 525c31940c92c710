package dns

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	mdns "github.com/miekg/dns"
)

// Lookup answers the query (qtype, name) as text, one string a record: an
// address for A and AAAA, "pref host" for MX, the record's strings joined
// for TXT, a host name for PTR, CNAME and NS. A name that does not exist
// (NXDOMAIN) or has no such records (NODATA) returns nil and no error.
// Other query types are refused.
//
// Lookup serves the plugins' "dns" grant (it satisfies filter.Resolver);
// every string is printable ASCII without line breaks.
func (r *Resolver) Lookup(ctx context.Context, qtype uint16, name string) ([]string, error) {
	if !textType(qtype) {
		return nil, fmt.Errorf("dns: query type %s is not supported; use A, AAAA, MX, TXT, PTR, CNAME or NS", typeName(qtype))
	}
	fq, err := canonName(name)
	if err != nil {
		return nil, err
	}
	ans, err := r.resolve(ctx, qtype, fq)
	if err != nil {
		return nil, err
	}
	return answerText(ans.rrs), nil
}

func typeName(qtype uint16) string {
	if s, ok := mdns.TypeToString[qtype]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(qtype))
}

// lookup resolves (qtype, name) for the typed lookups: NXDOMAIN is an
// error wrapping ErrNotFound. secure says a trusted server validated the
// answer, records or their absence.
func (r *Resolver) lookup(ctx context.Context, qtype uint16, name string) (rrs []mdns.RR, secure bool, err error) {
	fq, err := canonName(name)
	if err != nil {
		return nil, false, err
	}
	ans, err := r.resolve(ctx, qtype, fq)
	if err != nil {
		return nil, false, err
	}
	if ans.nx {
		return nil, ans.secure, fmt.Errorf("dns: %s: %w", hostName(fq), ErrNotFound)
	}
	return ans.rrs, ans.secure, nil
}

// LookupMX returns the mail exchangers of domain, most preferred first,
// those of equal preference in random order. A domain without MX records
// returns none and no error (the caller falls back to its address, RFC 5321
// section 5.1); one that does not exist returns an error wrapping
// ErrNotFound.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]MX, error) {
	mxs, _, err := r.LookupMXSecure(ctx, domain)
	return mxs, err
}

// LookupMXSecure is LookupMX that also says whether the answer was
// DNSSEC-validated by a trusted server (Options.Trusted), as DANE needs
// (RFC 7672 section 2.2.1).
func (r *Resolver) LookupMXSecure(ctx context.Context, domain string) ([]MX, bool, error) {
	rrs, secure, err := r.lookup(ctx, mdns.TypeMX, domain)
	if err != nil {
		return nil, secure, err
	}
	mxs := make([]MX, 0, len(rrs))
	for _, rr := range rrs {
		if mx, ok := rr.(*mdns.MX); ok && mx.Mx != "" {
			mxs = append(mxs, MX{Host: hostName(mx.Mx), Pref: mx.Preference})
		}
	}
	slices.SortStableFunc(mxs, func(a, b MX) int { return int(a.Pref) - int(b.Pref) })
	for i := 0; i < len(mxs); {
		j := i + 1
		for j < len(mxs) && mxs[j].Pref == mxs[i].Pref {
			j++
		}
		same := mxs[i:j]
		rand.Shuffle(len(same), func(a, b int) { same[a], same[b] = same[b], same[a] })
		i = j
	}
	return mxs, secure, nil
}

// LookupIP returns the IPv4 (A) then IPv6 (AAAA) addresses of host, asking
// for both at once. It fails only if neither lookup found addresses: with
// ErrNotFound if the host does not exist, with a *TempError if a lookup
// failed; a host with no addresses returns none and no error.
func (r *Resolver) LookupIP(ctx context.Context, host string) ([]netip.Addr, error) {
	addrs, _, err := r.LookupIPSecure(ctx, host)
	return addrs, err
}

// LookupIPSecure is LookupIP that also says whether both answers were
// DNSSEC-validated by a trusted server (Options.Trusted).
func (r *Resolver) LookupIPSecure(ctx context.Context, host string) ([]netip.Addr, bool, error) {
	type result struct {
		rrs    []mdns.RR
		secure bool
		err    error
	}
	aaaa := make(chan result, 1)
	go func() {
		rrs, secure, err := r.lookup(ctx, mdns.TypeAAAA, host)
		aaaa <- result{rrs, secure, err}
	}()
	rrs4, secure4, err4 := r.lookup(ctx, mdns.TypeA, host)
	res6 := <-aaaa
	secure := secure4 && res6.secure
	var addrs []netip.Addr
	for _, rr := range append(rrs4, res6.rrs...) {
		if a, ok := rrAddr(rr); ok {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) > 0 {
		return addrs, secure, nil
	}
	// Prefer the temporary failure: a retry may find addresses.
	for _, err := range []error{err4, res6.err} {
		if _, ok := err.(*TempError); ok {
			return nil, false, err
		}
	}
	if err4 != nil {
		return nil, secure, err4
	}
	return nil, secure, res6.err
}

// LookupTXT returns the TXT records of name, each record's strings joined
// (as SPF and DKIM records are read). Bytes outside printable ASCII appear
// as \DDD escapes.
func (r *Resolver) LookupTXT(ctx context.Context, name string) ([]string, error) {
	rrs, _, err := r.lookup(ctx, mdns.TypeTXT, name)
	if err != nil {
		return nil, err
	}
	var txts []string
	for _, rr := range rrs {
		if t, ok := rr.(*mdns.TXT); ok {
			txts = append(txts, txtText(t.Txt))
		}
	}
	return txts, nil
}

// LookupPTR returns the host names of ip (reverse DNS), lower case without
// the final dot.
func (r *Resolver) LookupPTR(ctx context.Context, ip netip.Addr) ([]string, error) {
	if !ip.IsValid() {
		return nil, fmt.Errorf("dns: reverse lookup of an invalid IP address")
	}
	arpa, err := mdns.ReverseAddr(ip.Unmap().String())
	if err != nil {
		return nil, fmt.Errorf("dns: reverse lookup of %s: %w", ip, err)
	}
	rrs, _, err := r.lookup(ctx, mdns.TypePTR, arpa)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, rr := range rrs {
		if p, ok := rr.(*mdns.PTR); ok && p.Ptr != "" {
			names = append(names, hostName(p.Ptr))
		}
	}
	return names, nil
}

// textType reports whether Lookup answers qtype.
func textType(qtype uint16) bool {
	switch qtype {
	case mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX, mdns.TypeTXT, mdns.TypePTR, mdns.TypeCNAME, mdns.TypeNS:
		return true
	}
	return false
}

// answerText renders records as Lookup returns them.
func answerText(rrs []mdns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if s, ok := rrText(rr); ok {
			out = append(out, s)
		}
	}
	return out
}

// rrText renders one record; false for types Lookup does not answer and
// for records without data (an empty RDATA unpacks to empty fields).
func rrText(rr mdns.RR) (string, bool) {
	name := func(n string) (string, bool) { return hostName(n), n != "" }
	switch v := rr.(type) {
	case *mdns.A, *mdns.AAAA:
		a, ok := rrAddr(rr)
		if !ok {
			return "", false
		}
		return a.String(), true
	case *mdns.MX:
		return strconv.Itoa(int(v.Preference)) + " " + hostName(v.Mx), v.Mx != ""
	case *mdns.TXT:
		return txtText(v.Txt), true
	case *mdns.PTR:
		return name(v.Ptr)
	case *mdns.CNAME:
		return name(v.Target)
	case *mdns.NS:
		return name(v.Ns)
	}
	return "", false
}

// rrAddr is the address of an A or AAAA record.
func rrAddr(rr mdns.RR) (netip.Addr, bool) {
	switch v := rr.(type) {
	case *mdns.A:
		if ip4 := v.A.To4(); ip4 != nil {
			return netip.AddrFrom4([4]byte(ip4)), true
		}
	case *mdns.AAAA:
		if len(v.AAAA) == 16 {
			return netip.AddrFrom16([16]byte(v.AAAA)), true
		}
	}
	return netip.Addr{}, false
}

// hostName is name in lower case without the final dot ("." stays).
func hostName(name string) string {
	name = strings.ToLower(name)
	if len(name) > 1 {
		name = strings.TrimSuffix(name, ".")
	}
	return name
}

// txtText joins the strings of a TXT record. miekg/dns hands them over in
// presentation form; the \" and \\ escapes are undone, while \DDD escapes
// of bytes outside printable ASCII stay, so the text is always one
// printable line.
func txtText(ss []string) string {
	var b strings.Builder
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && i+3 < len(s) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]):
				b.WriteString(s[i : i+4])
				i += 3
			case c == '\\' && i+1 < len(s) && s[i+1] >= ' ' && s[i+1] <= '~':
				b.WriteByte(s[i+1])
				i++
			case c < ' ' || c > '~':
				fmt.Fprintf(&b, "\\%03d", c)
			default:
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
