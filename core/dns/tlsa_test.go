package dns

import (
	"context"
	"testing"

	"github.com/sluice-mta/sluice/core/dns/dnstest"
)

// TestSecureLookups: an answer is secure only when the zone is signed (the
// server sets AD) and the server is trusted; TLSA records come back parsed,
// and a name without them is no error.
func TestSecureLookups(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(
		"signed.test. 300 IN MX 10 mx.signed.test.",
		"mx.signed.test. 300 IN A 192.0.2.1",
		"mx.signed.test. 300 IN AAAA 2001:db8::1",
		"_25._tcp.mx.signed.test. 300 IN TLSA 3 1 1 0123456789abcdef",
		"plain.test. 300 IN MX 10 mx.plain.test.",
		"mx.plain.test. 300 IN A 192.0.2.2",
	))
	srv.SetSigned("signed.test", true)
	ctx := context.Background()
	trusting := newResolver(t, Options{Trusted: []string{srv.Addr}, CacheSize: -1}, srv)
	other := newResolver(t, Options{CacheSize: -1}, srv)

	tests := []struct {
		name string
		r    *Resolver
		host string
		want bool
	}{
		{"signed zone, trusted server", trusting, "signed.test", true},
		{"unsigned zone, trusted server", trusting, "plain.test", false},
		{"signed zone, server not trusted", other, "signed.test", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mxs, secure, err := tt.r.LookupMXSecure(ctx, tt.host)
			if err != nil || len(mxs) != 1 || secure != tt.want {
				t.Fatalf("LookupMXSecure(%s) = %v, %v, %v; want one MX, secure %v", tt.host, mxs, secure, err, tt.want)
			}
			addrs, secure, err := tt.r.LookupIPSecure(ctx, mxs[0].Host)
			if err != nil || len(addrs) == 0 || secure != tt.want {
				t.Errorf("LookupIPSecure(%s) = %v, %v, %v; want secure %v", mxs[0].Host, addrs, secure, err, tt.want)
			}
		})
	}

	recs, secure, err := trusting.LookupTLSA(ctx, 25, "mx.signed.test")
	if err != nil || !secure || len(recs) != 1 || recs[0].String() != "3 1 1 0123456789abcdef" {
		t.Errorf("LookupTLSA = %v, %v, %v; want one secure record 3 1 1 0123456789abcdef", recs, secure, err)
	}
	// A validated denial: secure, no records, no error.
	recs, secure, err = trusting.LookupTLSA(ctx, 25, "mx2.signed.test")
	if err != nil || !secure || len(recs) != 0 {
		t.Errorf("LookupTLSA of a missing name = %v, %v, %v; want none, secure, no error", recs, secure, err)
	}
	recs, secure, err = trusting.LookupTLSA(ctx, 25, "mx.plain.test")
	if err != nil || secure || len(recs) != 0 {
		t.Errorf("LookupTLSA in an unsigned zone = %v, %v, %v; want none, insecure", recs, secure, err)
	}
}
