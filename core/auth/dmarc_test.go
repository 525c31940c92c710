package auth

import (
	"context"
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/sluice-mta/sluice/core/mail"
)

func TestDMARC(t *testing.T) {
	srv, r := testDNS(t,
		txt("_dmarc.relaxed.test.", "v=DMARC1; p=reject"),
		txt("_dmarc.strict.test.", "v=DMARC1; p=quarantine; adkim=s; aspf=s"),
		txt("_dmarc.org.test.", "v=DMARC1; p=reject; sp=quarantine"),
		txt("_dmarc.own.org.test.", "v=DMARC1; p=none"),
		txt("_dmarc.nosp.test.", "v=DMARC1; p=quarantine"),
		txt("_dmarc.broken.test.", "v=DMARC1; p=maybe"),
		txt("_dmarc.sample.test.", "v=DMARC1; p=reject; pct=0"),
		txt("_dmarc.co.uk.", "v=DMARC1; p=reject"),
	)
	srv.SetRcode("_dmarc.servfail.test.", mdns.RcodeServerFailure)
	c := newTestChecker(r)
	spf := func(d string, res Result) *SPFResult { return &SPFResult{Result: res, Domain: d} }
	dk := func(d string, res Result) []*DKIMResult { return []*DKIMResult{{Result: res, Domain: d}} }
	for _, tc := range []struct {
		name        string
		from        string
		spf         *SPFResult
		dkim        []*DKIMResult
		want        Result
		policy      string
		disposition string
	}{
		{"spf exact", "From: a@relaxed.test", spf("relaxed.test", Pass), nil, Pass, "reject", "none"},
		{"spf relaxed subdomain", "From: a@relaxed.test", spf("bounce.relaxed.test", Pass), nil, Pass, "reject", "none"},
		{"dkim relaxed parent", "From: a@mail.relaxed.test", nil, dk("relaxed.test", Pass), Pass, "reject", "none"},
		{"spf fail", "From: a@relaxed.test", spf("relaxed.test", Fail), nil, Fail, "reject", "reject"},
		{"dkim fail", "From: a@relaxed.test", nil, dk("relaxed.test", Fail), Fail, "reject", "reject"},
		{"unaligned passes", "From: a@relaxed.test", spf("other.test", Pass), dk("other.test", Pass), Fail, "reject", "reject"},
		{"lookalike is not aligned", "From: a@relaxed.test", spf("notrelaxed.test", Pass), nil, Fail, "reject", "reject"},
		{"strict exact", "From: a@strict.test", spf("strict.test", Pass), nil, Pass, "quarantine", "none"},
		{"strict spf subdomain", "From: a@strict.test", spf("b.strict.test", Pass), nil, Fail, "quarantine", "quarantine"},
		{"strict dkim subdomain", "From: a@strict.test", nil, dk("s.strict.test", Pass), Fail, "quarantine", "quarantine"},
		{"subdomain uses sp", "From: a@x.org.test", nil, nil, Fail, "quarantine", "quarantine"},
		{"subdomain with own record uses its p", "From: a@own.org.test", nil, nil, Fail, "none", "none"},
		{"subdomain without sp uses p", "From: a@deep.x.nosp.test", nil, nil, Fail, "quarantine", "quarantine"},
		{"subdomain passes via parent dkim", "From: a@x.org.test", nil, dk("org.test", Pass), Pass, "quarantine", "none"},
		{"org domain under public suffix", "From: a@shop.example.co.uk", nil, nil, None, "", "none"},
		{"no record", "From: a@nothing.test", spf("nothing.test", Fail), nil, None, "", "none"},
		{"temp error", "From: a@servfail.test", nil, nil, TempError, "", "none"},
		{"broken record", "From: a@broken.test", nil, nil, PermError, "", "none"},
		{"pct=0 softens reject", "From: a@sample.test", nil, nil, Fail, "reject", "quarantine"},
		{"display name and case", "From: \"Relaxed, Inc.\" <A@Relaxed.TEST>", spf("relaxed.test", Pass), nil, Pass, "reject", "none"},
		{"two From fields", "From: a@relaxed.test\r\nFrom: b@relaxed.test", nil, nil, PermError, "", "none"},
		{"two From domains", "From: a@relaxed.test, b@other.test", nil, nil, PermError, "", "none"},
		{"no From", "Subject: hi", nil, nil, None, "", "none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := mail.ParseHeader([]byte(tc.from + "\r\n\r\nbody\r\n"))
			got := c.checkDMARC(context.Background(), h.Values("From"), &Results{SPF: tc.spf, DKIM: tc.dkim})
			if got.Result != tc.want || got.Policy != tc.policy || got.Disposition != tc.disposition {
				t.Errorf("got %s policy %q disposition %q (%s), want %s policy %q disposition %q",
					got.Result, got.Policy, got.Disposition, got.Reason, tc.want, tc.policy, tc.disposition)
			}
		})
	}
}

// TestDMARCEndToEnd runs all three checks on a message whose SPF passes for
// a bounce subdomain and whose From is the organisational domain.
func TestDMARCEndToEnd(t *testing.T) {
	_, r := testDNS(t,
		txt("bounce.shop.test.", "v=spf1 ip4:192.0.2.0/24 -all"),
		txt("_dmarc.shop.test.", "v=DMARC1; p=reject"),
	)
	c := newTestChecker(r)
	in := CheckInput{ClientIP: netip.MustParseAddr("192.0.2.5"), Helo: "out.shop.test", MailFrom: "b@bounce.shop.test",
		Message: crlf("From: Shop <news@shop.test>\nSubject: x\n\nhi\n")}
	res, err := c.Check(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if res.DMARC.Result != Pass || !res.DMARC.SPFAligned || res.Disposition() != "none" {
		t.Errorf("dmarc %+v, want an aligned SPF pass", res.DMARC)
	}
	in.ClientIP = netip.MustParseAddr("203.0.113.5")
	res, err = c.Check(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if res.SPF.Result != Fail || res.DMARC.Result != Fail || res.Disposition() != "reject" {
		t.Errorf("spf %s dmarc %+v, want fail and reject", res.SPF.Result, res.DMARC)
	}
}
