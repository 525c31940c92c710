package dns

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/testclock"
)

// newResolver returns a Resolver asking srvs, with a short timeout and opts'
// other fields.
func newResolver(t *testing.T, opts Options, srvs ...*dnstest.Server) *Resolver {
	t.Helper()
	for _, s := range srvs {
		opts.Servers = append(opts.Servers, s.Addr)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 300 * time.Millisecond
	}
	r, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var testZone = []string{
	"a.test. 300 IN A 192.0.2.1",
	"a.test. 300 IN A 192.0.2.2",
	"a.test. 300 IN AAAA 2001:db8::1",
	"v6only.test. 300 IN AAAA 2001:db8::2",
	"mail.test. 300 IN MX 10 MX1.Mail.Test.",
	"txt.test. 300 IN TXT \"v=spf1 \" \"ip4:192.0.2.0/24 -all\"",
	"txt.test. 300 IN TXT \"say \\\"hi\\\" \\\\ there\\010\"",
	"1.2.0.192.in-addr.arpa. 300 IN PTR host.Example.Test.",
	"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa. 300 IN PTR v6.test.",
	"alias.test. 300 IN CNAME alias2.test.",
	"alias2.test. 300 IN CNAME a.test.",
	"dangling.test. 300 IN CNAME nowhere.test.",
	"ns.test. 300 IN NS ns1.test.",
	"deep.sub.test. 300 IN A 192.0.2.9",
}

func TestLookup(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(testZone...))
	r := newResolver(t, Options{}, srv)
	tests := []struct {
		qtype uint16
		name  string
		want  []string
	}{
		{mdns.TypeA, "a.test", []string{"192.0.2.1", "192.0.2.2"}},
		{mdns.TypeA, "A.TEST.", []string{"192.0.2.1", "192.0.2.2"}},
		{mdns.TypeAAAA, "a.test", []string{"2001:db8::1"}},
		{mdns.TypeMX, "mail.test", []string{"10 mx1.mail.test"}},
		{mdns.TypeTXT, "txt.test", []string{"v=spf1 ip4:192.0.2.0/24 -all", `say "hi" \ there\010`}},
		{mdns.TypePTR, "1.2.0.192.in-addr.arpa", []string{"host.example.test"}},
		{mdns.TypeA, "alias.test", []string{"192.0.2.1", "192.0.2.2"}},
		{mdns.TypeCNAME, "alias.test", []string{"alias2.test"}},
		{mdns.TypeNS, "ns.test", []string{"ns1.test"}},
		{mdns.TypeA, "dangling.test", nil}, // chain ends in NXDOMAIN
		{mdns.TypeA, "missing.test", nil},  // NXDOMAIN
		{mdns.TypeMX, "a.test", nil},       // NODATA
		{mdns.TypeA, "sub.test", nil},      // empty non-terminal: NODATA
	}
	for _, tt := range tests {
		got, err := r.Lookup(t.Context(), tt.qtype, tt.name)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Lookup(%s, %q) = %q, %v; want %q", typeName(tt.qtype), tt.name, got, err, tt.want)
		}
	}
}

func TestLookupRefuses(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(testZone...))
	r := newResolver(t, Options{}, srv)
	for _, name := range []string{"", ".", "a..test", "bad name with spaces and more than sixty-three characters in one label xxxxxxxxxxxxxxxxxxxxxxxx.test"} {
		_, err := r.Lookup(t.Context(), mdns.TypeA, name)
		var te *TempError
		if err == nil || errors.As(err, &te) {
			t.Errorf("Lookup(A, %q) = %v; want a permanent error", name, err)
		}
	}
	if _, err := r.Lookup(t.Context(), mdns.TypeSRV, "a.test"); err == nil {
		t.Error("Lookup(SRV) succeeded; want unsupported type")
	}
	if n := srv.Queries(); n != 0 {
		t.Errorf("refused lookups sent %d queries", n)
	}
}

func TestTypedLookups(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(testZone...))
	r := newResolver(t, Options{}, srv)
	ctx := t.Context()

	ips, err := r.LookupIP(ctx, "a.test")
	want := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1")}
	if err != nil || !slices.Equal(ips, want) {
		t.Errorf("LookupIP(a.test) = %v, %v; want %v", ips, err, want)
	}
	if ips, err := r.LookupIP(ctx, "v6only.test"); err != nil || len(ips) != 1 || ips[0] != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("LookupIP(v6only.test) = %v, %v", ips, err)
	}
	if ips, err := r.LookupIP(ctx, "mail.test"); err != nil || ips != nil {
		t.Errorf("LookupIP(mail.test), no addresses = %v, %v; want nil, nil", ips, err)
	}
	if _, err := r.LookupIP(ctx, "missing.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupIP(missing.test) error = %v; want ErrNotFound", err)
	}

	txts, err := r.LookupTXT(ctx, "txt.test")
	if err != nil || len(txts) != 2 || txts[0] != "v=spf1 ip4:192.0.2.0/24 -all" {
		t.Errorf("LookupTXT = %q, %v", txts, err)
	}
	if txts, err := r.LookupTXT(ctx, "a.test"); err != nil || txts != nil {
		t.Errorf("LookupTXT NODATA = %q, %v; want nil, nil", txts, err)
	}
	if _, err := r.LookupTXT(ctx, "missing.test"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupTXT NXDOMAIN error = %v; want ErrNotFound", err)
	}

	ptrs := []struct {
		ip   string
		want []string
	}{
		{"192.0.2.1", []string{"host.example.test"}},
		{"::ffff:192.0.2.1", []string{"host.example.test"}},
		{"2001:db8::1", []string{"v6.test"}},
	}
	for _, tt := range ptrs {
		got, err := r.LookupPTR(ctx, netip.MustParseAddr(tt.ip))
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("LookupPTR(%s) = %q, %v; want %q", tt.ip, got, err, tt.want)
		}
	}
	if _, err := r.LookupPTR(ctx, netip.MustParseAddr("192.0.2.99")); !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupPTR without record: %v; want ErrNotFound", err)
	}
	if _, err := r.LookupPTR(ctx, netip.Addr{}); err == nil {
		t.Error("LookupPTR(invalid address) succeeded")
	}
}

func TestLookupMX(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(
		"example.test. 300 IN MX 20 b.example.test.",
		"example.test. 300 IN MX 10 a.example.test.",
		"example.test. 300 IN MX 30 d.example.test.",
		"example.test. 300 IN MX 10 c.example.test.",
		"nullmx.test. 300 IN MX 0 .",
		"nomx.test. 300 IN A 192.0.2.1",
	))
	r := newResolver(t, Options{}, srv)
	ctx := t.Context()
	seen := map[string]bool{}
	for range 64 {
		mxs, err := r.LookupMX(ctx, "Example.Test")
		if err != nil || len(mxs) != 4 {
			t.Fatalf("LookupMX = %v, %v", mxs, err)
		}
		for i := 1; i < len(mxs); i++ {
			if mxs[i-1].Pref > mxs[i].Pref {
				t.Fatalf("LookupMX not sorted by preference: %v", mxs)
			}
		}
		if mxs[2] != (MX{"b.example.test", 20}) || mxs[3] != (MX{"d.example.test", 30}) {
			t.Fatalf("LookupMX = %v", mxs)
		}
		seen[mxs[0].Host+" "+mxs[1].Host] = true
	}
	if len(seen) != 2 || !seen["a.example.test c.example.test"] || !seen["c.example.test a.example.test"] {
		t.Errorf("equal preferences not shuffled: orders seen %v", seen)
	}
	if n := srv.Queries(); n != 1 {
		t.Errorf("64 lookups sent %d queries; want 1 (cached)", n)
	}
	if mxs, err := r.LookupMX(ctx, "nullmx.test"); err != nil || len(mxs) != 1 || mxs[0].Host != "." {
		t.Errorf("null MX = %v, %v; want host \".\"", mxs, err)
	}
	if mxs, err := r.LookupMX(ctx, "nomx.test"); err != nil || len(mxs) != 0 {
		t.Errorf("LookupMX NODATA = %v, %v; want none, nil", mxs, err)
	}
	_, err := r.LookupMX(ctx, "missing.test")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("LookupMX NXDOMAIN error = %v; want ErrNotFound", err)
	}
	var te *TempError
	if errors.As(err, &te) {
		t.Errorf("NXDOMAIN reported as temporary: %v", err)
	}
}

func TestServerFailures(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(testZone...))
	srv.SetRcode("a.test", mdns.RcodeServerFailure)
	srv.SetRcode("mail.test", mdns.RcodeRefused)
	srv.SetDrop("txt.test", true)
	r := newResolver(t, Options{Timeout: 100 * time.Millisecond, Attempts: 2}, srv)
	ctx := t.Context()
	tests := []struct {
		qtype   uint16
		name    string
		timeout bool
	}{
		{mdns.TypeA, "a.test", false},
		{mdns.TypeMX, "mail.test", false},
		{mdns.TypeTXT, "txt.test", true},
	}
	for _, tt := range tests {
		srv.Reset()
		for range 2 { // failures are not cached
			_, err := r.Lookup(ctx, tt.qtype, tt.name)
			var te *TempError
			if !errors.As(err, &te) || !te.Temporary() || te.Timeout() != tt.timeout {
				t.Fatalf("Lookup(%s) error = %v; want a TempError, Timeout() %v", tt.name, err, tt.timeout)
			}
			if errors.Is(err, ErrNotFound) {
				t.Errorf("Lookup(%s) error %v is ErrNotFound", tt.name, err)
			}
		}
		if n := srv.Queries(); n != 4 {
			t.Errorf("%s: two lookups sent %d queries; want 2×2 attempts", tt.name, n)
		}
	}
	if _, err := r.LookupIP(ctx, "a.test"); err == nil {
		t.Error("LookupIP with SERVFAIL on A and no AAAA succeeded")
	}
	srv.SetRcode("a.test", mdns.RcodeSuccess)
	if got, err := r.Lookup(ctx, mdns.TypeA, "a.test"); err != nil || len(got) != 2 {
		t.Errorf("after recovery Lookup = %q, %v", got, err)
	}
}

func TestFailover(t *testing.T) {
	bad := dnstest.Start(t, dnstest.Zone(testZone...))
	good := dnstest.Start(t, dnstest.Zone(testZone...))
	bad.SetRcode("a.test", mdns.RcodeServerFailure)
	bad.SetDrop("mail.test", true)
	r := newResolver(t, Options{Timeout: 100 * time.Millisecond}, bad, good)
	if got, err := r.Lookup(t.Context(), mdns.TypeA, "a.test"); err != nil || len(got) != 2 {
		t.Errorf("Lookup past SERVFAIL = %q, %v", got, err)
	}
	if got, err := r.Lookup(t.Context(), mdns.TypeMX, "mail.test"); err != nil || len(got) != 1 {
		t.Errorf("Lookup past a silent server = %q, %v", got, err)
	}
	if b, g := bad.Queries(), good.Queries(); b != 2 || g != 2 {
		t.Errorf("queries: first server %d, second %d; want 2 and 2", b, g)
	}
}

func TestTruncatedRetriesOverTCP(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(testZone...))
	srv.SetTruncate(true)
	r := newResolver(t, Options{}, srv)
	got, err := r.Lookup(t.Context(), mdns.TypeA, "a.test")
	if err != nil || len(got) != 2 {
		t.Fatalf("Lookup = %q, %v", got, err)
	}
	log := srv.Log()
	if len(log) != 2 || log[0].Net != "udp" || log[1].Net != "tcp" {
		t.Errorf("queries = %+v; want one over UDP, then one over TCP", log)
	}
}

func TestCallerGivesUp(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(testZone...))
	r := newResolver(t, Options{Timeout: 5 * time.Second}, srv)
	release := srv.Hold()
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := r.Lookup(ctx, mdns.TypeA, "a.test")
	var te *TempError
	if !errors.As(err, &te) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lookup past the caller's deadline: %v; want a TempError wrapping it", err)
	}
	release()
	// The exchange went on without the caller; its answer serves the next.
	if got, err := r.Lookup(t.Context(), mdns.TypeA, "a.test"); err != nil || len(got) != 2 {
		t.Errorf("next Lookup = %q, %v", got, err)
	}
	if n := srv.Queries(); n != 1 {
		t.Errorf("%d queries; want 1", n)
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "resolv.conf")
	os.WriteFile(conf, []byte("search example.com\nnameserver 192.0.2.53\nnameserver 2001:db8::53\noptions ndots:1\n"), 0o644)
	empty := filepath.Join(dir, "empty.conf")
	os.WriteFile(empty, []byte("search example.com\n"), 0o644)
	tests := []struct {
		opts    Options
		servers []string
		ok      bool
	}{
		{Options{ResolvConf: conf}, []string{"192.0.2.53:53", "[2001:db8::53]:53"}, true},
		{Options{Servers: []string{"127.0.0.1", "127.0.0.1:5353", "::1", "[::1]:54"}},
			[]string{"127.0.0.1:53", "127.0.0.1:5353", "[::1]:53", "[::1]:54"}, true},
		{Options{ResolvConf: empty}, nil, false},
		{Options{ResolvConf: filepath.Join(dir, "missing")}, nil, false},
		{Options{Servers: []string{"dns.example.com"}}, nil, false},
	}
	for _, tt := range tests {
		r, err := New(tt.opts)
		if (err == nil) != tt.ok {
			t.Errorf("New(%+v) error = %v; want ok %v", tt.opts, err, tt.ok)
			continue
		}
		if err == nil && !slices.Equal(r.servers, tt.servers) {
			t.Errorf("New(%+v) servers = %q; want %q", tt.opts, r.servers, tt.servers)
		}
	}
	r, err := New(Options{Servers: []string{"127.0.0.1"}})
	if err != nil || r.timeout != DefaultTimeout || r.attempts != DefaultAttempts || r.cache.max != DefaultCacheSize {
		t.Errorf("defaults: %v, timeout %v, attempts %d", err, r.timeout, r.attempts)
	}
}

// newClock is the clock these tests start from.
func newClock() *testclock.Clock { return testclock.New(time.Unix(1_700_000_000, 0)) }
