// Package mtasts finds and caches the MTA-STS policies (RFC 8461) of the
// domains outbound mail goes to: the _mta-sts TXT record, the policy
// fetched over verified HTTPS from mta-sts.<domain> (resolved through our
// own resolver, never the system's), kept in a key-value store (the
// node's own KV database) for its max_age and refreshed in the background: when
// the record's id changes, and, whether or not mail goes to the domain,
// once a day while it is cached (RFC 8461 section 10.2), so that a policy
// does not lapse between two messages. Parsing and MX matching are mox's
// mtasts package.
package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	moxdns "github.com/mjl-/mox/dns"
	moxsts "github.com/mjl-/mox/mtasts"

	"github.com/sluice-mta/sluice/core/dns"
)

// Defaults of Options.
const (
	DefaultPort    = 443
	DefaultTimeout = time.Minute // RFC 8461 section 3.3
	// RefreshAfter is the age after which a cached policy is fetched
	// again in the background (RFC 8461 section 10.2).
	RefreshAfter = 24 * time.Hour
	// DefaultSweepInterval is how often the cached policies are looked
	// over for those older than RefreshAfter.
	DefaultSweepInterval = time.Hour
	// FailureTTL is how long a failed fetch (of a domain without a cached
	// policy) is remembered: the deliveries to the domain meanwhile are
	// not each held up by a policy server that does not answer.
	FailureTTL = 5 * time.Minute
	// maxPolicySize bounds a policy body (RFC 8461 section 3.3: 64 KiB).
	maxPolicySize = 64 << 10
	// maxMaxAge is the largest max_age honoured (RFC 8461: 31557600 s).
	maxMaxAge = 31557600 * time.Second
	// keyPrefix keeps the cache's keys apart from plugins' keys (a
	// plugin's keys start with its name, which holds no NUL).
	keyPrefix = "\x00sluice/mta-sts/"
)

// Modes of a policy.
const (
	ModeEnforce = "enforce"
	ModeTesting = "testing"
	ModeNone    = "none"
)

// Resolver is the DNS the policies are found through; *dns.Resolver
// satisfies it.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
}

var _ Resolver = (*dns.Resolver)(nil)

// Store keeps fetched policies; core/kvstore's Store satisfies it. Keys
// lists the unexpired keys under a prefix.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// Options configure a Cache.
type Options struct {
	// Resolver finds the TXT record and the policy host's addresses.
	Resolver Resolver
	// Store keeps the policies; nil keeps them in memory only.
	Store Store
	// Roots verify the policy servers' certificates; nil means the
	// system's roots.
	Roots *x509.CertPool
	// Port is the HTTPS port of the policy hosts; 443 when zero.
	Port int
	// Timeout bounds one fetch; DefaultTimeout when zero.
	Timeout time.Duration
	// SweepInterval is how often the cached policies (those of earlier
	// runs too) are looked over and the ones older than RefreshAfter
	// fetched again; DefaultSweepInterval when zero, never when negative.
	SweepInterval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives debug lines and refresh failures; nil discards them.
	Logger *slog.Logger
}

// Policy is a domain's MTA-STS policy.
type Policy struct {
	// Domain is the policy domain, ID the TXT record's id when fetched.
	Domain, ID string
	// Mode is ModeEnforce, ModeTesting or ModeNone.
	Mode string
	// MaxAge is how long the policy may be cached.
	MaxAge time.Duration
	// Text is the policy as served.
	Text string
	// Fetched is when it was fetched.
	Fetched time.Time

	parsed *moxsts.Policy
}

// Matches reports whether the policy lists host (an MX host name) as an
// mx line, wildcards included.
func (p *Policy) Matches(host string) bool {
	d, err := moxdns.ParseDomain(strings.TrimSuffix(strings.ToLower(host), "."))
	if err != nil {
		return false
	}
	return p.parsed.Matches(d)
}

// Strings is the policy as TLS-RPT reports it (RFC 8460 section 4.4):
// its lines, without line ends.
func (p *Policy) Strings() []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(p.Text, "\r\n", "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// MXList is the policy's mx lines, for messages.
func (p *Policy) MXList() string {
	var mx []string
	for _, m := range p.parsed.MX {
		s := m.Domain.ASCII
		if m.Wildcard {
			s = "*." + s
		}
		mx = append(mx, s)
	}
	return strings.Join(mx, ", ")
}

// Parse parses a policy body of domain (mox's parser) into a Policy.
func Parse(domain, text string) (*Policy, error) {
	if len(text) > maxPolicySize {
		return nil, fmt.Errorf("policy of %s is larger than %d bytes", domain, maxPolicySize)
	}
	mp, err := moxsts.ParsePolicy(text)
	if err != nil {
		return nil, err
	}
	age := min(time.Duration(mp.MaxAgeSeconds)*time.Second, maxMaxAge)
	return &Policy{Domain: domain, Mode: string(mp.Mode), MaxAge: age, Text: text, parsed: mp}, nil
}

// Cache finds, fetches and keeps policies. It is safe for concurrent use.
type Cache struct {
	opts   Options
	log    *slog.Logger
	client *http.Client

	// ctx ends with Close, and with it the background refreshes.
	ctx    context.Context
	cancel context.CancelFunc

	mu         sync.Mutex
	mem        map[string]*Policy // without a Store
	refreshing map[string]bool
	// failed remembers recent fetch failures, for FailureTTL.
	failed map[string]failedFetch
	wg     sync.WaitGroup
	closed bool
}

// New returns a Cache.
func New(opts Options) *Cache {
	if opts.Port <= 0 {
		opts.Port = DefaultPort
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SweepInterval == 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	c := &Cache{opts: opts, log: opts.Logger, mem: map[string]*Policy{}, refreshing: map[string]bool{}, failed: map[string]failedFetch{}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	tr := &http.Transport{
		Proxy:               nil, // never an HTTP proxy from the environment
		DialContext:         c.dial,
		TLSClientConfig:     &tls.Config{RootCAs: opts.Roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: opts.Timeout,
		DisableKeepAlives:   true, // policies are cached; connections are not reused
	}
	c.client = &http.Client{
		Transport: tr,
		Timeout:   opts.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return errors.New("redirects are not allowed for MTA-STS policies (RFC 8461 section 3.3)")
		},
	}
	if opts.SweepInterval > 0 {
		c.wg.Add(1)
		go c.sweeper()
	}
	return c
}

// Close stops the background refreshes and waits for them to end.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// dial connects to a policy host, resolving it through the Resolver.
func (c *Cache) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ips, err := c.opts.Resolver.LookupIP(ctx, host)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	var errs []error
	for _, ip := range ips {
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("%s has no addresses", host)
	}
	return nil, errors.Join(errs...)
}

// FetchError is a policy that could not be fetched or parsed while the
// domain publishes an MTA-STS record: the domain is treated as having no
// policy, and TLS-RPT reports it (sts-policy-fetch-error or
// sts-policy-invalid).
type FetchError struct {
	Domain string
	// Invalid is set when a policy was served but did not parse; WebPKI
	// when the policy server's certificate did not verify.
	Invalid, WebPKI bool
	Err             error
}

func (e *FetchError) Error() string {
	what := "fetching"
	if e.Invalid {
		what = "parsing"
	}
	return fmt.Sprintf("MTA-STS: %s the policy of %s failed: %v", what, e.Domain, e.Err)
}

func (e *FetchError) Unwrap() error { return e.Err }

// Get returns the policy that applies to mail for domain: a cached one
// that has not expired, or one fetched now; nil when the domain has none
// (or its mode is none). A *FetchError means a record is published but no
// policy could be had: treat the domain as having none.
func (c *Cache) Get(ctx context.Context, domain string) (*Policy, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	now := c.opts.Now()
	cached := c.load(ctx, domain, now)
	id, recErr := c.record(ctx, domain)
	switch {
	case cached != nil:
		// A cached policy applies until it expires, even when the record
		// is gone (RFC 8461 section 5.1); a new id, or age, refreshes it.
		if (recErr == nil && id != "" && id != cached.ID) || now.Sub(cached.Fetched) > RefreshAfter {
			c.refresh(domain, id)
		}
		return active(cached), nil
	case recErr != nil:
		return nil, nil // no record, or DNS trouble: no policy
	}
	if err := c.recentFailure(domain, id, now); err != nil {
		return nil, err
	}
	p, err := c.fetch(ctx, domain, id)
	if err != nil {
		c.mu.Lock()
		c.failed[domain] = failedFetch{id: id, err: err, until: now.Add(FailureTTL)}
		c.mu.Unlock()
		return nil, err
	}
	return active(p), nil
}

// active is p, or nil for a policy whose mode is none.
func active(p *Policy) *Policy {
	if p == nil || p.Mode == ModeNone {
		return nil
	}
	return p
}

// record looks up the _mta-sts TXT record and returns its id; an error
// when there is no (single, valid) record.
func (c *Cache) record(ctx context.Context, domain string) (string, error) {
	txts, err := c.opts.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		return "", err
	}
	var rec *moxsts.Record
	for _, txt := range txts {
		r, isSTS, err := moxsts.ParseRecord(txt)
		if !isSTS {
			continue
		}
		if err != nil {
			return "", err
		}
		if rec != nil {
			return "", moxsts.ErrMultipleRecords
		}
		rec = r
	}
	if rec == nil {
		return "", moxsts.ErrNoRecord
	}
	return rec.ID, nil
}

// fetch gets the policy of domain over HTTPS and stores it.
func (c *Cache) fetch(ctx context.Context, domain, id string) (*Policy, error) {
	host := "mta-sts." + domain
	if c.opts.Port != DefaultPort {
		host = net.JoinHostPort(host, strconv.Itoa(c.opts.Port))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+host+"/.well-known/mta-sts.txt", nil)
	if err != nil {
		return nil, &FetchError{Domain: domain, Err: err}
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var ve *tls.CertificateVerificationError
		return nil, &FetchError{Domain: domain, WebPKI: errors.As(err, &ve), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, &FetchError{Domain: domain, Err: fmt.Errorf("HTTP status %s, want 200", resp.Status)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPolicySize+1))
	if err != nil {
		return nil, &FetchError{Domain: domain, Err: err}
	}
	p, err := Parse(domain, string(body))
	if err != nil {
		return nil, &FetchError{Domain: domain, Invalid: true, Err: err}
	}
	p.ID, p.Fetched = id, c.opts.Now()
	c.save(ctx, p)
	c.log.Debug("MTA-STS policy fetched", "domain", domain, "mode", p.Mode, "max_age", p.MaxAge.String())
	return p, nil
}

// stored is a policy as the Store keeps it.
type stored struct {
	ID      string    `json:"id"`
	Text    string    `json:"text"`
	Fetched time.Time `json:"fetched"`
}

// save keeps p for its max_age.
func (c *Cache) save(ctx context.Context, p *Policy) {
	if c.opts.Store == nil {
		c.mu.Lock()
		c.mem[p.Domain] = p
		c.mu.Unlock()
		return
	}
	b, _ := json.Marshal(stored{ID: p.ID, Text: p.Text, Fetched: p.Fetched})
	if err := c.opts.Store.Set(ctx, keyPrefix+p.Domain, b, p.MaxAge); err != nil {
		c.log.Warn("MTA-STS: storing a policy failed", "domain", p.Domain, "err", err)
	}
}

// load returns the cached policy of domain unless it has expired at now.
func (c *Cache) load(ctx context.Context, domain string, now time.Time) *Policy {
	var p *Policy
	if c.opts.Store == nil {
		c.mu.Lock()
		p = c.mem[domain]
		c.mu.Unlock()
	} else {
		b, ok, err := c.opts.Store.Get(ctx, keyPrefix+domain)
		if err != nil || !ok {
			return nil
		}
		var s stored
		if json.Unmarshal(b, &s) != nil {
			return nil
		}
		if p, err = Parse(domain, s.Text); err != nil {
			return nil
		}
		p.ID, p.Fetched = s.ID, s.Fetched
	}
	if p == nil || !now.Before(p.Fetched.Add(p.MaxAge)) {
		return nil
	}
	return p
}
