// Package dns is Sluice's DNS resolver: the one place the core and the
// plugins' "dns" grant ask the DNS, for DNSBL queries, reverse DNS, SPF and
// MX delivery. It is a stub resolver built on github.com/miekg/dns that asks
// recursive servers (those of /etc/resolv.conf unless told otherwise).
//
// Queries go over UDP with EDNS0 (a 1232-byte buffer) and again over TCP
// when the answer is truncated; a server that fails or does not answer in
// time is followed by the next, for a few rounds. CNAME chains are followed
// within the answer. Answers are cached for the smallest TTL of the records
// used (at most MaxTTL); NXDOMAIN and NODATA answers for the SOA minimum of
// the authority section (at most MaxNegativeTTL). Concurrent identical
// queries share one exchange.
//
// Names are looked up case-insensitively and made fully qualified; host
// names in answers come back in lower case without the final dot.
package dns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// Defaults and bounds of Options and of caching.
const (
	DefaultTimeout   = 2 * time.Second
	DefaultAttempts  = 2
	DefaultCacheSize = 10000
	// MaxTTL caps how long a positive answer is cached.
	MaxTTL = 24 * time.Hour
	// MaxNegativeTTL caps how long NXDOMAIN and NODATA are cached.
	MaxNegativeTTL = time.Hour
	// ednsSize is the UDP payload size advertised with EDNS0, the DNS flag
	// day 2020 value that avoids IP fragmentation.
	ednsSize = 1232
	// maxChain bounds the CNAME hops followed in one answer.
	maxChain = 8
)

// Options configure a Resolver. The zero value asks the servers of
// /etc/resolv.conf with the defaults above.
type Options struct {
	// Servers are the recursive servers to ask, in order, as "host:port" or
	// "host" (port 53). Empty means the nameservers of ResolvConf.
	Servers []string
	// ResolvConf is the resolver configuration read when Servers is empty;
	// empty means /etc/resolv.conf.
	ResolvConf string
	// Timeout bounds one query attempt to one server; 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// Attempts is how many rounds over all Servers one lookup makes before
	// it fails temporarily (like resolv.conf's "attempts"); 0 means
	// DefaultAttempts.
	Attempts int
	// CacheSize is how many answers the cache holds, the least recently
	// used going first; 0 means DefaultCacheSize and a negative value turns
	// caching off (concurrent identical queries are still shared).
	CacheSize int
	// Now is the clock cache expiry follows; nil means time.Now.
	Now func() time.Time
	// Trusted are the servers (of Servers, in the same form) whose DNSSEC
	// validation is believed: an answer from one of them with the AD bit
	// set is secure (see LookupTLSA). Only a validating resolver on this
	// machine, or reached over a trusted network, belongs here; an AD bit
	// from any other server is ignored.
	Trusted []string
}

// ErrNotFound is wrapped by the errors of the typed lookups (LookupMX,
// LookupIP, LookupTXT, LookupPTR) when the name does not exist (NXDOMAIN):
// a permanent answer. A name that exists but has no records of the type
// asked (NODATA) is no error: those lookups return no records and nil.
var ErrNotFound = errors.New("no such domain (NXDOMAIN)")

// TempError is a lookup that failed for now and may work later: every
// server answered SERVFAIL, REFUSED or another error code, or none answered
// in time, or the caller's context ended.
type TempError struct {
	Name string // the fully qualified name looked up
	Type uint16 // the query type
	Err  error  // the last failure, for example a timeout
}

// Error says what failed and that trying later may help.
func (e *TempError) Error() string {
	return fmt.Sprintf("dns: lookup %s %s failed temporarily: %v (check the resolvers' health; retrying later may succeed)",
		mdns.TypeToString[e.Type], e.Name, e.Err)
}

// Unwrap returns the underlying failure.
func (e *TempError) Unwrap() error { return e.Err }

// Temporary reports that the failure is temporary: always true.
func (e *TempError) Temporary() bool { return true }

// Timeout reports whether the failure was a timeout.
func (e *TempError) Timeout() bool {
	var ne net.Error
	return errors.Is(e.Err, errTimeout) || (errors.As(e.Err, &ne) && ne.Timeout())
}

var errTimeout = errors.New("no answer in time")

// MX is one mail exchanger of a domain.
type MX struct {
	// Host is the exchanger's name, lower case without the final dot; "."
	// is a null MX (RFC 7505): the domain accepts no mail.
	Host string
	Pref uint16
}

// Resolver answers DNS lookups; it is safe for concurrent use.
type Resolver struct {
	servers  []string
	timeout  time.Duration
	attempts int
	now      func() time.Time
	cache    *cache // nil when caching is off
	// trusted are the server addresses whose AD bit is believed.
	trusted map[string]bool

	mu      sync.Mutex
	flights map[qkey]*flight
}

// New returns a Resolver configured by opts.
func New(opts Options) (*Resolver, error) {
	servers := opts.Servers
	if len(servers) == 0 {
		path := opts.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		conf, err := mdns.ClientConfigFromFile(path)
		if err != nil {
			return nil, fmt.Errorf("dns: no servers configured and %s is unreadable: %w (name the DNS servers to use)", path, err)
		}
		if len(conf.Servers) == 0 {
			return nil, fmt.Errorf("dns: no servers configured and %s names no nameserver (add a nameserver line or name the DNS servers to use)", path)
		}
		for _, s := range conf.Servers {
			servers = append(servers, net.JoinHostPort(s, conf.Port))
		}
	}
	r := &Resolver{
		timeout:  opts.Timeout,
		attempts: opts.Attempts,
		now:      opts.Now,
		flights:  make(map[qkey]*flight),
		trusted:  make(map[string]bool, len(opts.Trusted)),
	}
	for _, s := range opts.Trusted {
		addr, err := serverAddr(s)
		if err != nil {
			return nil, err
		}
		r.trusted[addr] = true
	}
	for _, s := range servers {
		addr, err := serverAddr(s)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, addr)
	}
	if r.timeout <= 0 {
		r.timeout = DefaultTimeout
	}
	if r.attempts <= 0 {
		r.attempts = DefaultAttempts
	}
	if r.now == nil {
		r.now = time.Now
	}
	switch {
	case opts.CacheSize == 0:
		r.cache = newCache(DefaultCacheSize)
	case opts.CacheSize > 0:
		r.cache = newCache(opts.CacheSize)
	}
	return r, nil
}

// serverAddr turns "host" or "host:port" into an address to dial.
func serverAddr(s string) (string, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		host, port = s, "53"
	}
	if _, err := netip.ParseAddr(host); err != nil {
		return "", fmt.Errorf("dns: server %q is not an IP address with an optional port, like \"127.0.0.1:53\"", s)
	}
	return net.JoinHostPort(host, port), nil
}
