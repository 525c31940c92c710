package mtasts

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testwait"

	"github.com/dgraph-io/badger/v4"
	mdns "github.com/miekg/dns"

	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/internal/testca"
	"github.com/sluice-mta/sluice/core/kvstore"
	"github.com/sluice-mta/sluice/core/testclock"
)

var _ Store = (*kvstore.Store)(nil)

// server serves example.test's policy over HTTPS on loopback and counts
// the fetches; the DNS server names it.
type server struct {
	port int
	hits atomic.Int32
	mu   sync.Mutex
	text string
	code int
}

func (s *server) set(code int, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.code, s.text = code, text
}

type setup struct {
	srv   *server
	dns   *dnstest.Server
	cache *Cache
	opts  Options
	clock *testclock.Clock
}

func newSetup(t testing.TB, text string) *setup {
	t.Helper()
	ca := testca.New(t, "Sluice test CA")
	roots, cert := ca.Pool(), ca.Chain(ca.Issue(t, []string{"mta-sts.example.test"}, time.Time{}, time.Time{}))
	srv := &server{code: 200, text: text}
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.hits.Add(1)
		srv.mu.Lock()
		defer srv.mu.Unlock()
		if r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(srv.code)
		fmt.Fprint(w, srv.text)
	}))
	hs.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	hs.StartTLS()
	t.Cleanup(hs.Close)
	_, port, _ := net.SplitHostPort(hs.Listener.Addr().String())
	srv.port, _ = strconv.Atoi(port)
	d := dnstest.Start(t, dnstest.Zone(
		`_mta-sts.example.test. 300 IN TXT "v=STSv1; id=1"`,
		"mta-sts.example.test. 300 IN A 127.0.0.1",
	))
	res, err := dns.New(dns.Options{Servers: []string{d.Addr}, CacheSize: -1, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clock := testclock.New(time.Now())
	opts := Options{Resolver: res, Store: kvstore.New(db), Roots: roots, Port: srv.port, Now: clock.Now}
	c := New(opts)
	t.Cleanup(c.Close)
	return &setup{srv: srv, dns: d, cache: c, opts: opts, clock: clock}
}

const enforce = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmx: *.backup.example.test\nmax_age: 3600\n"

// TestCacheKeepsPolicies: a policy is fetched once over HTTPS from the
// policy host our resolver names, kept in the store (a new Cache on the
// same store does not fetch it again) for its max_age, then fetched anew;
// its MX patterns match as RFC 8461 says.
func TestCacheKeepsPolicies(t *testing.T) {
	s := newSetup(t, enforce)
	ctx := context.Background()
	p, err := s.cache.Get(ctx, "Example.TEST.")
	if err != nil || p == nil {
		t.Fatalf("Get = %v, %v", p, err)
	}
	if p.Mode != ModeEnforce || p.MaxAge != time.Hour || p.ID != "1" {
		t.Errorf("policy %+v; want enforce, max_age 1h, id 1", p)
	}
	for host, want := range map[string]bool{"mx1.example.test": true, "MX1.example.test.": true, "a.backup.example.test": true,
		"backup.example.test": false, "a.b.backup.example.test": false, "mx2.example.test": false} {
		if p.Matches(host) != want {
			t.Errorf("Matches(%s) = %v, want %v", host, !want, want)
		}
	}
	if got := p.Strings(); len(got) != 5 || got[1] != "mode: enforce" {
		t.Errorf("Strings() = %q", got)
	}
	// The policy host was resolved through our DNS server.
	asked := false
	for _, q := range s.dns.Log() {
		asked = asked || (q.Name == "mta-sts.example.test." && q.Type == mdns.TypeA)
	}
	if !asked {
		t.Errorf("the DNS server was not asked for mta-sts.example.test: %v", s.dns.Log())
	}
	s.cache.Get(ctx, "example.test")
	New(s.opts).Get(ctx, "example.test")
	if n := s.srv.hits.Load(); n != 1 {
		t.Errorf("%d fetches; want 1 (the policy is cached in the store)", n)
	}
	s.clock.Add(time.Hour + time.Second)
	if p, err := s.cache.Get(ctx, "example.test"); err != nil || p == nil || s.srv.hits.Load() != 2 {
		t.Errorf("after max_age: %v, %v, %d fetches; want a new fetch", p, err, s.srv.hits.Load())
	}
}

// TestCacheRefreshesInBackground: a new record id refreshes the policy in
// the background, the cached one applying meanwhile; a failed refresh
// keeps it; it outlives its record until it expires.
func TestCacheRefreshesInBackground(t *testing.T) {
	s := newSetup(t, enforce)
	ctx := context.Background()
	if p, _ := s.cache.Get(ctx, "example.test"); p == nil || p.Mode != ModeEnforce {
		t.Fatalf("first Get = %v", p)
	}
	s.srv.set(200, "version: STSv1\nmode: testing\nmx: mx1.example.test\nmax_age: 3600\n")
	s.dns.Set("_mta-sts.example.test", dnstest.RR(`_mta-sts.example.test. 300 IN TXT "v=STSv1; id=2"`))
	if p, _ := s.cache.Get(ctx, "example.test"); p == nil || p.Mode != ModeEnforce {
		t.Errorf("Get while refreshing = %v; want the cached policy at once", p)
	}
	testwait.Until(t, 10*time.Second, "the new policy (testing, id 2) to replace the cached one", func() bool {
		p, _ := s.cache.Get(ctx, "example.test")
		return p != nil && p.Mode == ModeTesting && p.ID == "2"
	})
	// The record gone: the cached policy applies until it expires.
	s.dns.Set("_mta-sts.example.test")
	if p, _ := s.cache.Get(ctx, "example.test"); p == nil || p.Mode != ModeTesting {
		t.Errorf("Get without a record = %v; want the cached policy", p)
	}
	s.clock.Add(2 * time.Hour)
	if p, err := s.cache.Get(ctx, "example.test"); p != nil || err != nil {
		t.Errorf("Get after expiry without a record = %v, %v; want none", p, err)
	}
}

// TestCacheSweep: a cached policy fetched more than a day ago is fetched
// again without mail to its domain, even when its record has been taken
// away (RFC 8461 section 10.2); a younger one is left alone. The sweeper
// does it every SweepInterval, for the policies an earlier run cached too.
func TestCacheSweep(t *testing.T) {
	s := newSetup(t, "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 604800\n")
	ctx := context.Background()
	s.opts.SweepInterval = -1
	c := New(s.opts)
	t.Cleanup(c.Close)
	if p, _ := c.Get(ctx, "example.test"); p == nil || s.srv.hits.Load() != 1 {
		t.Fatalf("first Get = %v, %d fetches", p, s.srv.hits.Load())
	}
	// The record stripped; the policy server now says testing.
	s.dns.Set("_mta-sts.example.test")
	s.srv.set(200, "version: STSv1\nmode: testing\nmx: mx1.example.test\nmax_age: 604800\n")
	s.clock.Add(30 * time.Minute)
	c.sweep(ctx)
	if n := s.srv.hits.Load(); n != 1 {
		t.Errorf("a sweep fetched a policy 30 minutes old (%d fetches)", n)
	}
	s.clock.Add(24 * time.Hour)
	c.sweep(ctx)
	if n := s.srv.hits.Load(); n != 2 {
		t.Fatalf("%d fetches after a sweep of a policy a day old; want 2", n)
	}
	if p, _ := c.Get(ctx, "example.test"); p == nil || p.Mode != ModeTesting || p.ID != "1" {
		t.Errorf("after the sweep Get = %+v; want the new policy (testing), under the old record's id", p)
	}
	// A new Cache (a restart) with its sweeper running: it refreshes what
	// the earlier one cached, a day later, with nothing asked of it.
	s.opts.SweepInterval = 10 * time.Millisecond
	c2 := New(s.opts)
	t.Cleanup(c2.Close)
	s.clock.Add(25 * time.Hour)
	testwait.Until(t, 10*time.Second, "the sweeper to fetch the day-old policy", func() bool { return s.srv.hits.Load() == 3 })
}

// TestCacheFailures: no record is no policy (nothing fetched); a record
// whose policy is missing or does not parse is a FetchError (treated as
// no policy, reported), remembered for FailureTTL; mode none is no
// policy.
func TestCacheFailures(t *testing.T) {
	ctx := context.Background()
	s := newSetup(t, enforce)
	if p, err := s.cache.Get(ctx, "other.test"); p != nil || err != nil || s.srv.hits.Load() != 0 {
		t.Errorf("domain without a record: %v, %v, %d fetches", p, err, s.srv.hits.Load())
	}
	for _, tt := range []struct {
		code    int
		text    string
		invalid bool
	}{
		{404, "", false},
		{200, "version: STSv1\nmode: sometimes\n", true},
	} {
		s := newSetup(t, tt.text)
		s.srv.set(tt.code, tt.text)
		p, err := s.cache.Get(ctx, "example.test")
		var fe *FetchError
		if p != nil || !errors.As(err, &fe) || fe.Invalid != tt.invalid {
			t.Errorf("HTTP %d %q: %v, %v; want a FetchError (invalid %v)", tt.code, tt.text, p, err, tt.invalid)
		}
		// The failure is remembered for FailureTTL: the next deliveries
		// are not each held up by the policy server; then it is asked
		// again.
		s.srv.set(200, enforce)
		if p, err := s.cache.Get(ctx, "example.test"); p != nil || !errors.As(err, &fe) || s.srv.hits.Load() != 1 {
			t.Errorf("HTTP %d, asked again at once: %v, %v, %d fetches; want the remembered failure, 1 fetch", tt.code, p, err, s.srv.hits.Load())
		}
		s.clock.Add(FailureTTL)
		if p, err := s.cache.Get(ctx, "example.test"); p == nil || err != nil || s.srv.hits.Load() != 2 {
			t.Errorf("HTTP %d, asked again after FailureTTL: %v, %v, %d fetches; want the policy, 2 fetches", tt.code, p, err, s.srv.hits.Load())
		}
	}
	// A policy server whose certificate is from a CA not trusted.
	s = newSetup(t, enforce)
	s.opts.Roots = testca.New(t, "Sluice test CA").Pool()
	p, err := New(s.opts).Get(ctx, "example.test")
	var fe *FetchError
	if p != nil || !errors.As(err, &fe) || !fe.WebPKI {
		t.Errorf("untrusted policy server: %v, %v; want a FetchError with WebPKI set", p, err)
	}
	s = newSetup(t, "version: STSv1\nmode: none\nmax_age: 3600\n")
	if p, err := s.cache.Get(ctx, "example.test"); p != nil || err != nil {
		t.Errorf("mode none: %v, %v; want no policy", p, err)
	}
}
