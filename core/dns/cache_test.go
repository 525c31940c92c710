package dns

import (
	"errors"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
)

func TestCacheTTL(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(
		"a.test. 300 IN A 192.0.2.1",
		"a.test. 60 IN A 192.0.2.2", // the RRset's smallest TTL counts
		"b.test. 300 IN A 192.0.2.3",
		"alias.test. 30 IN CNAME b.test.", // so does the chain's
		"zero.test. 0 IN A 192.0.2.4",
		"long.test. 999999 IN A 192.0.2.5",
	))
	clk := newClock()
	r := newResolver(t, Options{Now: clk.Now}, srv)
	lookup := func(name string) {
		t.Helper()
		if got, err := r.Lookup(t.Context(), mdns.TypeA, name); err != nil || len(got) == 0 {
			t.Fatalf("Lookup(%s) = %q, %v", name, got, err)
		}
	}
	tests := []struct {
		name string
		ttl  time.Duration
	}{
		{"a.test", 60 * time.Second},
		{"alias.test", 30 * time.Second},
		{"zero.test", 0},
		{"long.test", MaxTTL},
	}
	for _, tt := range tests {
		srv.Reset()
		lookup(tt.name)
		if tt.ttl > 0 {
			clk.Add(tt.ttl - time.Second)
			lookup(tt.name)
			if n := srv.Queries(); n != 1 {
				t.Errorf("%s: %d queries within the TTL; want 1", tt.name, n)
			}
			clk.Add(time.Second)
		}
		lookup(tt.name)
		if n := srv.Queries(); n != 2 {
			t.Errorf("%s: %d queries once the TTL (%v) passed; want 2", tt.name, n, tt.ttl)
		}
	}
}

func TestNegativeCache(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(testZone...))
	clk := newClock()
	r := newResolver(t, Options{Now: clk.Now}, srv)
	tests := []struct {
		qtype  uint16
		name   string
		negTTL time.Duration
		want   time.Duration
	}{
		{mdns.TypeA, "missing.test", 30 * time.Second, 30 * time.Second}, // NXDOMAIN
		{mdns.TypeMX, "a.test", 45 * time.Second, 45 * time.Second},      // NODATA
		{mdns.TypeA, "other.test", 5 * time.Hour, MaxNegativeTTL},        // capped
	}
	for _, tt := range tests {
		srv.SetNegativeTTL(tt.negTTL)
		srv.Reset()
		lookup := func() {
			t.Helper()
			if got, err := r.Lookup(t.Context(), tt.qtype, tt.name); err != nil || got != nil {
				t.Fatalf("Lookup(%s) = %q, %v; want nil, nil", tt.name, got, err)
			}
		}
		lookup()
		clk.Add(tt.want - time.Second)
		lookup()
		if n := srv.Queries(); n != 1 {
			t.Errorf("%s: %d queries within the negative TTL; want 1", tt.name, n)
		}
		clk.Add(time.Second)
		lookup()
		if n := srv.Queries(); n != 2 {
			t.Errorf("%s: %d queries once the negative TTL passed; want 2", tt.name, n)
		}
	}
	// Cached, NXDOMAIN still reads as ErrNotFound and NODATA as none.
	r = newResolver(t, Options{Now: clk.Now}, srv)
	r.Lookup(t.Context(), mdns.TypeA, "missing.test")
	r.Lookup(t.Context(), mdns.TypeMX, "a.test")
	srv.Reset()
	if _, _, err := r.lookup(t.Context(), mdns.TypeA, "missing.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("cached NXDOMAIN: %v; want ErrNotFound", err)
	}
	if rrs, _, err := r.lookup(t.Context(), mdns.TypeMX, "a.test"); err != nil || len(rrs) != 0 {
		t.Errorf("cached NODATA: %v, %v; want none, nil", rrs, err)
	}
	if n := srv.Queries(); n != 0 {
		t.Errorf("lookups of cached answers sent %d queries", n)
	}
}

func TestCacheEviction(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(testZone...))
	r := newResolver(t, Options{CacheSize: 2}, srv)
	for _, name := range []string{"a.test", "v6only.test", "a.test", "deep.sub.test", "a.test", "v6only.test"} {
		r.Lookup(t.Context(), mdns.TypeA, name)
	}
	// a.test stays as the most recently used; v6only.test was evicted by
	// deep.sub.test and asked again.
	if n := srv.Queries(); n != 4 {
		t.Errorf("%d queries; want 4", n)
	}
	if n := r.cache.len(); n != 2 {
		t.Errorf("cache holds %d answers; want 2", n)
	}

	off := newResolver(t, Options{CacheSize: -1}, srv)
	srv.Reset()
	for range 3 {
		off.Lookup(t.Context(), mdns.TypeA, "a.test")
	}
	if n := srv.Queries(); n != 3 || off.cache != nil {
		t.Errorf("cache off: %d queries for 3 lookups; want 3", n)
	}
}

func TestCoalescing(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(testZone...))
	r := newResolver(t, Options{CacheSize: -1, Timeout: 5 * time.Second}, srv)
	release := srv.Hold()
	const callers = 20
	var wg sync.WaitGroup
	results := make(chan []string, callers)
	for range callers {
		wg.Go(func() {
			got, err := r.Lookup(t.Context(), mdns.TypeA, "a.test")
			if err != nil {
				t.Error(err)
			}
			results <- got
		})
	}
	// Wait until every caller waits on the one exchange, then answer it.
	for waiting := 0; waiting < callers; {
		time.Sleep(time.Millisecond)
		r.mu.Lock()
		waiting = 0
		for _, f := range r.flights {
			waiting += f.waiters
		}
		r.mu.Unlock()
	}
	release()
	wg.Wait()
	close(results)
	for got := range results {
		if len(got) != 2 {
			t.Errorf("a caller got %q", got)
		}
	}
	if n := srv.Queries(); n != 1 {
		t.Errorf("%d concurrent identical lookups sent %d queries; want 1", callers, n)
	}
}
