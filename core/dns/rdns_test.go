package dns

import (
	"context"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
)

// reverseZone serves the addresses the reverse lookup tests ask about.
func reverseZone(t *testing.T) *dnstest.Server {
	t.Helper()
	srv := dnstest.Start(t, dnstest.Zone(
		// 192.0.2.1: confirmed by its second name.
		"1.2.0.192.in-addr.arpa. 300 IN PTR other.test.",
		"1.2.0.192.in-addr.arpa. 300 IN PTR Host.Test.",
		"other.test. 300 IN A 192.0.2.99",
		"host.test. 300 IN A 192.0.2.1",
		// 192.0.2.2: a name that points elsewhere.
		"2.2.0.192.in-addr.arpa. 300 IN PTR forged.test.",
		"forged.test. 300 IN A 198.51.100.1",
		// 192.0.2.3: a name that does not exist.
		"3.2.0.192.in-addr.arpa. 300 IN PTR gone.test.",
		// 192.0.2.4: a numeric name that resolves back (a spoof).
		"4.2.0.192.in-addr.arpa. 300 IN PTR 192.0.2.4.",
		"192.0.2.4. 300 IN A 192.0.2.4",
		// 192.0.2.5: the forward lookup fails.
		"5.2.0.192.in-addr.arpa. 300 IN PTR broken.test.",
		// 192.0.2.6: the PTR lookup fails.
		// 192.0.2.7: the reverse name exists without PTR (NODATA).
		"7.2.0.192.in-addr.arpa. 300 IN TXT \"x\"",
		// 2001:db8::1 confirmed by AAAA.
		"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR v6.test.",
		"v6.test. 300 IN AAAA 2001:db8::1",
	))
	srv.SetRcode("broken.test.", mdns.RcodeServerFailure)
	srv.SetRcode("6.2.0.192.in-addr.arpa.", mdns.RcodeServerFailure)
	return srv
}

func TestLookupReverse(t *testing.T) {
	srv := reverseZone(t)
	r := newResolver(t, Options{Attempts: 1}, srv)
	for _, tc := range []struct {
		ip   string
		want Reverse
	}{
		{"192.0.2.1", Reverse{Name: "host.test", PTR: "other.test", Status: ReverseConfirmed}},
		{"::ffff:192.0.2.1", Reverse{Name: "host.test", PTR: "other.test", Status: ReverseConfirmed}},
		{"192.0.2.2", Reverse{PTR: "forged.test", Status: ReverseUnconfirmed}},
		{"192.0.2.3", Reverse{PTR: "gone.test", Status: ReverseUnconfirmed}},
		{"192.0.2.4", Reverse{PTR: "192.0.2.4", Status: ReverseUnconfirmed}},
		{"192.0.2.5", Reverse{PTR: "broken.test", Status: ReverseTempFail}},
		{"192.0.2.6", Reverse{Status: ReverseTempFail}},
		{"192.0.2.7", Reverse{Status: ReverseNone}},
		{"192.0.2.8", Reverse{Status: ReverseNone}},
		{"2001:db8::1", Reverse{Name: "v6.test", PTR: "v6.test", Status: ReverseConfirmed}},
	} {
		got := r.LookupReverse(t.Context(), netip.MustParseAddr(tc.ip))
		if got != tc.want {
			t.Errorf("LookupReverse(%s) = %+v, want %+v", tc.ip, got, tc.want)
		}
	}
}

// TestCachedReverse: once LookupReverse has looked an address up, the
// cache alone gives the same outcome without a query; an address whose
// answers are not all cached (never asked, or a failure) is not answered.
func TestCachedReverse(t *testing.T) {
	srv := reverseZone(t)
	r := newResolver(t, Options{Attempts: 1}, srv)
	ips := []string{"192.0.2.1", "::ffff:192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.7", "192.0.2.8", "2001:db8::1", "192.0.2.5", "192.0.2.6"}
	for _, s := range ips {
		if got, ok := r.CachedReverse(netip.MustParseAddr(s)); ok {
			t.Errorf("CachedReverse(%s) before any lookup = %+v, true; want not cached", s, got)
		}
	}
	for _, s := range ips {
		ip := netip.MustParseAddr(s)
		want := r.LookupReverse(t.Context(), ip)
		before := srv.Queries()
		got, ok := r.CachedReverse(ip)
		if n := srv.Queries() - before; n != 0 {
			t.Errorf("CachedReverse(%s) sent %d queries", s, n)
		}
		if want.Status == ReverseTempFail {
			if ok {
				t.Errorf("CachedReverse(%s) = %+v, true after a failed lookup; want not cached", s, got)
			}
			continue
		}
		if !ok || got != want {
			t.Errorf("CachedReverse(%s) = %+v, %v; want %+v, true (LookupReverse's)", s, got, ok, want)
		}
	}
}

func TestLookupReverseDeadline(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone("1.2.0.192.in-addr.arpa. 300 IN PTR host.test."))
	r := newResolver(t, Options{Timeout: 5 * time.Second}, srv)
	release := srv.Hold()
	defer release()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	got := r.LookupReverse(ctx, netip.MustParseAddr("192.0.2.1"))
	if got != (Reverse{Status: ReverseTempFail}) {
		t.Errorf("LookupReverse past its deadline = %+v, want tempfail", got)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("LookupReverse took %v past a 100ms deadline", d)
	}
}

func TestValidHostName(t *testing.T) {
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"mail.example.com", true}, {"a-b.example", true}, {"localhost", true}, {"1.2.3.example", true},
		{"", false}, {"192.0.2.1", false}, {"-a.example", false}, {"a-.example", false},
		{"a..example", false}, {"a_b.example", false}, {"a b.example", false}, {"[192.0.2.1]", false},
	} {
		if got := validHostName(tc.name); got != tc.want {
			t.Errorf("validHostName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
