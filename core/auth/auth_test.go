package auth

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	sdns "github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
)

// rfc6376Key is the public key of RFC 6376 appendix C.
const rfc6376Key = "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYfcTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"

// rfc8463Key is the Ed25519 public key of RFC 8463 appendix A.2.
const rfc8463Key = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

// rfc8463RSAKey is the RSA public key of RFC 8463 appendix A.2.
const rfc8463RSAKey = "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB"

// testDNS starts a loopback DNS server for records and a resolver asking it
// without caching.
func testDNS(t *testing.T, records ...string) (*dnstest.Server, *sdns.Resolver) {
	t.Helper()
	srv := dnstest.Start(t, dnstest.Zone(records...))
	r, err := sdns.New(sdns.Options{Servers: []string{srv.Addr}, Timeout: 300 * time.Millisecond, Attempts: 1, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	return srv, r
}

// txt writes a TXT record in zone-file form, splitting long values into
// 255-byte strings.
func txt(name, value string) string {
	var parts []string
	for len(value) > 255 {
		parts = append(parts, `"`+value[:255]+`"`)
		value = value[255:]
	}
	parts = append(parts, `"`+value+`"`)
	return name + " 300 IN TXT " + strings.Join(parts, " ")
}

func newTestChecker(r Resolver) *Checker {
	return NewChecker(CheckerOptions{Hostname: "mx.sluice.test", Resolver: r,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

// crlf turns LF line ends into CRLF.
func crlf(s string) []byte {
	return []byte(strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n"))
}

func readEML(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return crlf(string(b))
}

func TestSPF(t *testing.T) {
	srv, r := testDNS(t,
		txt("pass.test.", "v=spf1 ip4:192.0.2.0/24 -all"),
		txt("fail.test.", "v=spf1 ip4:198.51.100.1 -all"),
		txt("soft.test.", "v=spf1 ip4:198.51.100.1 ~all"),
		txt("neutral.test.", "v=spf1 ?all"),
		txt("mx.test.", "v=spf1 mx a:host.mx.test -all"),
		"mx.test. 300 IN MX 10 mail.mx.test.",
		"mail.mx.test. 300 IN A 192.0.2.77",
		"host.mx.test. 300 IN AAAA 2001:db8::25",
		txt("nospf.test.", "some other text"),
		txt("broken.test.", "v=spf1 ip4:not-an-ip -all"),
		txt("incl.test.", "v=spf1 include:temp.test -all"),
		txt("helo.test.", "v=spf1 ip4:192.0.2.9 -all"),
	)
	srv.SetRcode("temp.test.", mdns.RcodeServerFailure)
	srv.SetRcode("servfail.test.", mdns.RcodeServerFailure)
	c := newTestChecker(r)
	for _, tc := range []struct {
		ip, helo, from string
		want           Result
		domain         string
	}{
		{"192.0.2.10", "client.test", "a@pass.test", Pass, "pass.test"},
		{"192.0.2.10", "client.test", "a@fail.test", Fail, "fail.test"},
		{"192.0.2.10", "client.test", "a@soft.test", SoftFail, "soft.test"},
		{"192.0.2.10", "client.test", "a@neutral.test", Neutral, "neutral.test"},
		{"192.0.2.77", "client.test", "a@mx.test", Pass, "mx.test"},
		{"2001:db8::25", "client.test", "a@mx.test", Pass, "mx.test"},
		{"192.0.2.78", "client.test", "a@mx.test", Fail, "mx.test"},
		{"192.0.2.10", "client.test", "a@nospf.test", None, "nospf.test"},
		{"192.0.2.10", "client.test", "a@nxdomain.test", None, "nxdomain.test"},
		{"192.0.2.10", "client.test", "a@servfail.test", TempError, "servfail.test"},
		{"192.0.2.10", "client.test", "a@incl.test", TempError, "incl.test"},
		{"192.0.2.10", "client.test", "a@broken.test", PermError, "broken.test"},
		{"::ffff:192.0.2.10", "client.test", "a@PASS.test", Pass, "pass.test"},
		// The null sender is checked by its HELO name.
		{"192.0.2.9", "helo.test", "", Pass, "helo.test"},
		{"192.0.2.10", "helo.test", "", Fail, "helo.test"},
	} {
		t.Run(tc.from+"/"+tc.ip, func(t *testing.T) {
			res, err := c.Check(context.Background(), CheckInput{ClientIP: netip.MustParseAddr(tc.ip),
				Helo: tc.helo, MailFrom: tc.from, Message: crlf("From: a@example.org\n\nhi\n")})
			if err != nil {
				t.Fatal(err)
			}
			if res.SPF.Result != tc.want || res.SPF.Domain != tc.domain {
				t.Errorf("spf = %s for %s (%s), want %s for %s", res.SPF.Result, res.SPF.Domain, res.SPF.Reason, tc.want, tc.domain)
			}
			if !strings.Contains(res.Header(), "spf="+string(tc.want)+" ") {
				t.Errorf("header %q lacks spf=%s", res.Header(), tc.want)
			}
		})
	}
}

func TestDKIMVerifyRFCExamples(t *testing.T) {
	_, r := testDNS(t,
		txt("brisbane._domainkey.example.com.", rfc6376Key),
		txt("brisbane._domainkey.football.example.com.", rfc8463Key),
		txt("test._domainkey.football.example.com.", rfc8463RSAKey),
	)
	c := newTestChecker(r)
	for _, tc := range []struct {
		file    string
		domains []string
	}{
		{"rfc6376-a2.eml", []string{"example.com"}},
		{"rfc8463-a3.eml", []string{"football.example.com", "football.example.com"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			msg := readEML(t, tc.file)
			res, err := c.Check(context.Background(), CheckInput{ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "x.test", MailFrom: "joe@football.example.com", Message: msg})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.DKIM) != len(tc.domains) {
				t.Fatalf("got %d DKIM results, want %d", len(res.DKIM), len(tc.domains))
			}
			for i, d := range res.DKIM {
				if d.Result != Pass || d.Domain != tc.domains[i] {
					t.Errorf("signature %d: %s d=%s (%s), want pass d=%s", i, d.Result, d.Domain, d.Reason, tc.domains[i])
				}
			}
			// A changed body breaks every signature.
			bad := []byte(strings.Replace(string(msg), "hungry", "thirsty", 1))
			res, err = c.Check(context.Background(), CheckInput{ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "x.test", Message: bad})
			if err != nil {
				t.Fatal(err)
			}
			for i, d := range res.DKIM {
				if d.Result != Fail {
					t.Errorf("altered message, signature %d: %s, want fail", i, d.Result)
				}
			}
		})
	}
}

func TestDKIMVerifyKeyProblems(t *testing.T) {
	srv, r := testDNS(t, txt("brisbane._domainkey.football.example.com.", "v=DKIM1; k=ed25519; p="))
	srv.SetRcode("test._domainkey.football.example.com.", mdns.RcodeServerFailure)
	c := newTestChecker(r)
	res, err := c.Check(context.Background(), CheckInput{ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "x.test", Message: readEML(t, "rfc8463-a3.eml")})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.DKIM) != 2 || res.DKIM[0].Result != PermError || res.DKIM[1].Result != TempError {
		t.Fatalf("got %+v %+v, want permerror (revoked key) and temperror (SERVFAIL)", res.DKIM[0], res.DKIM[1])
	}
	res, err = c.Check(context.Background(), CheckInput{ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "x.test", Message: crlf("From: a@b.test\n\nunsigned\n")})
	if err != nil {
		t.Fatal(err)
	}
	if res.DKIM == nil || len(res.DKIM) != 0 || !strings.Contains(res.Header(), "dkim=none") {
		t.Errorf("unsigned message: %v, header %q; want no results and dkim=none", res.DKIM, res.Header())
	}
}
