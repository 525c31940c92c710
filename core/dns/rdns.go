package dns

import (
	"context"
	"errors"
	"net/netip"
	"strings"

	mdns "github.com/miekg/dns"
)

// Outcomes of LookupReverse, as Reverse.Status; plugins read them as the
// "reverse DNS status" property.
const (
	// ReverseConfirmed: a PTR name of the address resolves back to it
	// (forward-confirmed reverse DNS, FCrDNS); Reverse.Name is that name.
	ReverseConfirmed = "confirmed"
	// ReverseUnconfirmed: the address has PTR names, but none of them
	// resolves back to it (or none is a valid host name).
	ReverseUnconfirmed = "unconfirmed"
	// ReverseNone: the address has no PTR records (NXDOMAIN or NODATA).
	ReverseNone = "none"
	// ReverseTempFail: a lookup failed or did not finish in time; trying
	// later may give another answer.
	ReverseTempFail = "tempfail"
)

// MaxReverseNames bounds how many PTR names of one address LookupReverse
// resolves forward (a hostile zone may list many).
const MaxReverseNames = 5

// Reverse is the outcome of a forward-confirmed reverse lookup.
type Reverse struct {
	// Name is the verified name: the first PTR name (in the order of the
	// answer) whose A or AAAA records include the address; "" unless
	// Status is ReverseConfirmed.
	Name string
	// PTR is the first PTR name, verified or not; "" when there is none
	// or the lookup failed.
	PTR string
	// Status is one of ReverseConfirmed, ReverseUnconfirmed, ReverseNone
	// and ReverseTempFail.
	Status string
}

// LookupReverse looks up the PTR names of ip and forward-confirms them
// (FCrDNS, as Postfix names a client): it resolves up to MaxReverseNames of
// them at once and keeps the first, in the answer's order, that has ip
// among its addresses. A PTR name that is not a valid host name (or looks
// like an IPv4 address) is never confirmed. The caller's ctx bounds the
// whole; when it ends first the outcome is ReverseTempFail unless a name is
// already confirmed. A forward lookup that fails temporarily makes the
// outcome ReverseTempFail rather than ReverseUnconfirmed when no name is
// confirmed.
func (r *Resolver) LookupReverse(ctx context.Context, ip netip.Addr) Reverse {
	ip = ip.Unmap()
	names, err := r.LookupPTR(ctx, ip)
	switch {
	case errors.Is(err, ErrNotFound):
		return Reverse{Status: ReverseNone}
	case err != nil:
		return Reverse{Status: ReverseTempFail}
	case len(names) == 0:
		return Reverse{Status: ReverseNone}
	}
	out := Reverse{PTR: names[0], Status: ReverseUnconfirmed}
	names = names[:min(len(names), MaxReverseNames)]
	type answer struct {
		confirmed, temp bool
	}
	answers := make([]chan answer, len(names))
	for i, name := range names {
		answers[i] = make(chan answer, 1)
		if !validHostName(name) {
			answers[i] <- answer{}
			continue
		}
		go func() {
			addrs, err := r.LookupIP(ctx, name)
			var te *TempError
			answers[i] <- answer{confirmed: containsAddr(addrs, ip), temp: errors.As(err, &te)}
		}()
	}
	temp := false
	for i, ch := range answers {
		a := <-ch
		if a.confirmed {
			out.Name, out.Status = names[i], ReverseConfirmed
			return out
		}
		temp = temp || a.temp
	}
	if temp {
		out.Status = ReverseTempFail
	}
	return out
}

// containsAddr reports whether addrs has ip (compared unmapped).
func containsAddr(addrs []netip.Addr, ip netip.Addr) bool {
	for _, a := range addrs {
		if a.Unmap() == ip {
			return true
		}
	}
	return false
}

// validHostName reports whether name is a host name a client may be
// known by: dot-separated labels of letters, digits and hyphens (not at a
// label's ends), at most 63 bytes a label and 253 in all, and not all
// digits and dots (which would pass for an IPv4 address).
func validHostName(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	numeric := true
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-':
				numeric = false
			default:
				return false
			}
		}
	}
	return !numeric
}

// CachedReverse is LookupReverse answered from the cache alone, without a
// query, a goroutine or a wait: ok is false when an answer it needs (the
// PTR question, or A or AAAA of a PTR name it would try) is not cached,
// and the caller looks up as usual. A cached outcome is never
// ReverseTempFail (failures are not cached).
func (r *Resolver) CachedReverse(ip netip.Addr) (rev Reverse, ok bool) {
	if r.cache == nil || !ip.IsValid() {
		return Reverse{}, false
	}
	ip = ip.Unmap()
	arpa, err := mdns.ReverseAddr(ip.String())
	if err != nil {
		return Reverse{}, false
	}
	now := r.now()
	cached := func(qtype uint16, name string) (*answer, bool) {
		fq, err := canonName(name)
		if err != nil {
			return nil, false
		}
		return r.cache.get(qkey{name: fq, qtype: qtype}, now)
	}
	ptr, ok := cached(mdns.TypePTR, arpa)
	if !ok {
		return Reverse{}, false
	}
	var names []string
	if !ptr.nx {
		for _, rr := range ptr.rrs {
			if p, isPTR := rr.(*mdns.PTR); isPTR && p.Ptr != "" {
				names = append(names, hostName(p.Ptr))
			}
		}
	}
	if len(names) == 0 {
		return Reverse{Status: ReverseNone}, true
	}
	out := Reverse{PTR: names[0], Status: ReverseUnconfirmed}
	for _, name := range names[:min(len(names), MaxReverseNames)] {
		if !validHostName(name) {
			continue
		}
		var addrs []netip.Addr
		for _, qtype := range []uint16{mdns.TypeA, mdns.TypeAAAA} {
			ans, ok := cached(qtype, name)
			if !ok {
				return Reverse{}, false
			}
			for _, rr := range ans.rrs {
				if a, isAddr := rrAddr(rr); isAddr {
					addrs = append(addrs, a)
				}
			}
		}
		if containsAddr(addrs, ip) {
			out.Name, out.Status = name, ReverseConfirmed
			return out, true
		}
	}
	return out, true
}
