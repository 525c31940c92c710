package tlsrpt

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"

	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
)

func TestParseRecord(t *testing.T) {
	for _, tc := range []struct {
		in      string
		rua     []string
		ext     int
		wantErr string
	}{
		{in: "v=TLSRPTv1; rua=mailto:tlsrpt@example.com", rua: []string{"mailto:tlsrpt@example.com"}},
		{in: "v=TLSRPTv1;rua=mailto:a@example.com;", rua: []string{"mailto:a@example.com"}},
		{in: "v=TLSRPTv1 ; rua=mailto:a@example.com , https://r.example.com/v1 ;\text=1",
			rua: []string{"mailto:a@example.com", "https://r.example.com/v1"}, ext: 1},
		{in: "v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com", rua: []string{"mailto:a@example.com", "mailto:b@example.com"}},
		{in: "v=TLSRPTv1; foo.bar-1=x; rua=mailto:a@example.com", rua: []string{"mailto:a@example.com"}, ext: 1},
		{in: "v=TLSRPTv1", wantErr: "no rua"},
		{in: "v=TLSRPTv1;", wantErr: "no field"},
		{in: "v=TLSRPTv1; ext=1", wantErr: "no rua"},
		{in: "v=TLSRPTv2; rua=mailto:a@example.com", wantErr: "does not start"},
		{in: "v=TLSRPTv10; rua=mailto:a@example.com", wantErr: "expected"},
		{in: "v=tlsrptv1; rua=mailto:a@example.com", wantErr: "does not start"},
		{in: "v=TLSRPTv1 rua=mailto:a@example.com", wantErr: "expected"},
		{in: "v=TLSRPTv1; rua=a@example.com", wantErr: "no scheme"},
		{in: "v=TLSRPTv1; rua=mailto:a@example.com!10m", wantErr: "must be encoded"},
		{in: "v=TLSRPTv1; rua=mailto:a@example.com,", wantErr: "empty URI"},
		{in: "v=TLSRPTv1; rua=", wantErr: "empty URI"},
		{in: "v=TLSRPTv1; rua=mailto:a@example.com; -x=1", wantErr: "bad field name"},
		{in: "v=TLSRPTv1; rua=mailto:a@example.com; x=", wantErr: "empty value"},
		{in: "v=TLSRPTv1; rua=mailto:a@example.com; x=a b", wantErr: "expected"},
		{in: "v=TLSRPTv1; rua=mailto:a@example.com; novalue", wantErr: "no '='"},
		{in: "v=TLSRPTv1; rua=mailto:a@exa mple.com", wantErr: "must be encoded"},
	} {
		rec, err := ParseRecord(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseRecord(%q) = %v, %v; want an error with %q", tc.in, rec, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(rec.RUA, tc.rua) || len(rec.Extensions) != tc.ext {
			t.Errorf("ParseRecord(%q) = %+v, %v; want rua %q and %d extensions", tc.in, rec, err, tc.rua, tc.ext)
		}
	}
}

func TestMailto(t *testing.T) {
	rec, err := ParseRecord("v=TLSRPTv1; rua=mailto:tls@example.com,mailto:a@example.net%2Cb@example.net?subject=x," +
		"https://reports.example.com/tlsrpt,mailto:notanaddress,mailto:TLS@example.com")
	if err != nil {
		t.Fatal(err)
	}
	addrs, ignored := rec.Mailto()
	if want := []string{"tls@example.com", "a@example.net", "b@example.net"}; !slices.Equal(addrs, want) {
		t.Errorf("addresses %q, want %q", addrs, want)
	}
	if want := []string{"https://reports.example.com/tlsrpt", "mailto:notanaddress"}; !slices.Equal(ignored, want) {
		t.Errorf("ignored %q, want %q", ignored, want)
	}
}

// TestLookup asks a loopback DNS server: one record is used, none, two or
// a broken one mean no reports, and a failing server is a temporary error.
func TestLookup(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(
		`_smtp._tls.ok.test. 300 IN TXT "v=TLSRPTv1; " "rua=mailto:tlsrpt@ok.test"`,
		`_smtp._tls.ok.test. 300 IN TXT "v=spf1 -all"`,
		`_smtp._tls.two.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:a@two.test"`,
		`_smtp._tls.two.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:b@two.test"`,
		`_smtp._tls.broken.test. 300 IN TXT "v=TLSRPTv1; rua=tlsrpt@broken.test"`,
		`_smtp._tls.other.test. 300 IN TXT "hello"`,
		`_smtp._tls.fail.test. 300 IN TXT "v=TLSRPTv1; rua=mailto:x@fail.test"`,
	))
	srv.SetRcode("_smtp._tls.fail.test.", mdns.RcodeServerFailure)
	res, err := dns.New(dns.Options{Servers: []string{srv.Addr}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rec, err := Lookup(ctx, res, "ok.test")
	if err != nil || !slices.Equal(rec.RUA, []string{"mailto:tlsrpt@ok.test"}) {
		t.Errorf("ok.test: %+v, %v", rec, err)
	}
	for _, d := range []string{"none.test", "two.test", "broken.test", "other.test"} {
		if _, err := Lookup(ctx, res, d); !errors.Is(err, ErrNoRecord) {
			t.Errorf("%s: %v, want ErrNoRecord", d, err)
		}
	}
	var te *dns.TempError
	if _, err := Lookup(ctx, res, "fail.test"); !errors.As(err, &te) {
		t.Errorf("fail.test: %v, want a temporary DNS error", err)
	}
}
