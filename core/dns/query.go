package dns

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// canonName lower-cases name and makes it fully qualified, or says why it
// is not a domain name.
func canonName(name string) (string, error) {
	if name == "" || name == "." {
		return "", fmt.Errorf("dns: empty name to look up")
	}
	fq := mdns.CanonicalName(name)
	if _, ok := mdns.IsDomainName(fq); !ok || strings.Contains(fq, "..") {
		return "", fmt.Errorf("dns: %q is not a valid domain name", name)
	}
	return fq, nil
}

// resolve answers the question (name, qtype) from the cache or, sharing
// the exchange with identical concurrent questions, from the servers.
func (r *Resolver) resolve(ctx context.Context, qtype uint16, name string) (*answer, error) {
	k := qkey{name: name, qtype: qtype}
	if r.cache != nil {
		if ans, ok := r.cache.get(k, r.now()); ok {
			return ans, nil
		}
	}
	r.mu.Lock()
	f, ok := r.flights[k]
	if !ok {
		f = &flight{done: make(chan struct{})}
		r.flights[k] = f
		// The exchange outlives a caller that gives up, for the others
		// waiting and for the cache; it is bounded by the attempts'
		// timeouts.
		go r.fly(context.WithoutCancel(ctx), k, f)
	}
	f.waiters++
	r.mu.Unlock()
	select {
	case <-f.done:
		return f.ans, f.err
	case <-ctx.Done():
		return nil, &TempError{Name: name, Type: qtype, Err: ctx.Err()}
	}
}

// fly runs the exchange of f, caches its answer and releases the waiters.
func (r *Resolver) fly(ctx context.Context, k qkey, f *flight) {
	ans, ttl, err := r.query(ctx, k.qtype, k.name)
	if err == nil && ttl > 0 && r.cache != nil {
		r.cache.put(k, ans, r.now().Add(ttl))
	}
	r.mu.Lock()
	delete(r.flights, k)
	r.mu.Unlock()
	f.ans, f.err = ans, err
	close(f.done)
}

// query asks the servers, in rounds, until one answers NOERROR or
// NXDOMAIN. It returns the answer and how long it may be cached.
func (r *Resolver) query(ctx context.Context, qtype uint16, name string) (*answer, time.Duration, error) {
	req := new(mdns.Msg)
	req.SetQuestion(name, qtype)
	req.SetEdns0(ednsSize, false)
	// RFC 6840 section 5.7: ask a validating resolver to say (AD) whether
	// it validated the answer, without the DNSSEC records themselves.
	req.AuthenticatedData = true
	var last error
	for range r.attempts {
		for _, server := range r.servers {
			resp, err := r.exchange(ctx, req, server)
			if err == nil {
				switch resp.Rcode {
				case mdns.RcodeSuccess, mdns.RcodeNameError:
					ans, ttl := extract(resp, name, qtype)
					ans.secure = resp.AuthenticatedData && r.trusted[server]
					return ans, ttl, nil
				}
				err = fmt.Errorf("%s answered %s", server, rcodeName(resp.Rcode))
			}
			last = err
			if ctx.Err() != nil {
				return nil, 0, &TempError{Name: name, Type: qtype, Err: ctx.Err()}
			}
		}
	}
	return nil, 0, &TempError{Name: name, Type: qtype, Err: last}
}

func rcodeName(rc int) string {
	if s, ok := mdns.RcodeToString[rc]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", rc)
}

// exchange sends req to server over UDP, and again over TCP if the answer
// is truncated, within one attempt's timeout.
func (r *Resolver) exchange(ctx context.Context, req *mdns.Msg, server string) (*mdns.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req = req.Copy()
	req.Id = mdns.Id()
	udp := &mdns.Client{Net: "udp", UDPSize: ednsSize}
	resp, _, err := udp.ExchangeContext(ctx, req, server)
	if err == nil && resp.Truncated {
		tcp := &mdns.Client{Net: "tcp"}
		resp, _, err = tcp.ExchangeContext(ctx, req, server)
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s: %w after %v", server, errTimeout, r.timeout)
		}
		return nil, fmt.Errorf("%s: %w", server, err)
	}
	if len(resp.Question) != 1 || resp.Question[0].Qtype != req.Question[0].Qtype ||
		!strings.EqualFold(resp.Question[0].Name, req.Question[0].Name) {
		return nil, fmt.Errorf("%s answered a different question", server)
	}
	return resp, nil
}

// extract picks from resp the records of type qtype for name, following
// CNAMEs within the answer, and says how long the outcome may be cached: the
// smallest TTL of the records used, or for NXDOMAIN and NODATA the SOA
// minimum (no SOA: not cached).
func extract(resp *mdns.Msg, name string, qtype uint16) (*answer, time.Duration) {
	ans := &answer{nx: resp.Rcode == mdns.RcodeNameError}
	ttl := uint32(MaxTTL / time.Second)
	cur := name
	for range maxChain + 1 {
		var next string
		for _, rr := range resp.Answer {
			h := rr.Header()
			if h.Class != mdns.ClassINET || !strings.EqualFold(h.Name, cur) {
				continue
			}
			switch {
			case h.Rrtype == qtype:
				ans.rrs = append(ans.rrs, rr)
				ttl = min(ttl, h.Ttl)
			case h.Rrtype == mdns.TypeCNAME && next == "":
				next = rr.(*mdns.CNAME).Target
				ttl = min(ttl, h.Ttl)
			}
		}
		if len(ans.rrs) > 0 {
			ans.nx = false
			return ans, time.Duration(ttl) * time.Second
		}
		if next == "" {
			break
		}
		cur = next
	}
	// NXDOMAIN or NODATA: cache per RFC 2308 for the SOA's minimum.
	for _, rr := range resp.Ns {
		if soa, ok := rr.(*mdns.SOA); ok {
			neg := min(soa.Hdr.Ttl, soa.Minttl, uint32(MaxNegativeTTL/time.Second))
			return ans, time.Duration(min(ttl, neg)) * time.Second
		}
	}
	return ans, 0
}
