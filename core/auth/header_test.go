package auth

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/authres"

	"github.com/sluice-mta/sluice/core/mail"
)

func TestAuthservID(t *testing.T) {
	for in, want := range map[string]string{
		"mx.sluice.test; spf=pass":                "mx.sluice.test",
		"  (comment (nested)) MX.sluice.test;spf": "MX.sluice.test",
		"mx.sluice.test 1; none":                  "mx.sluice.test",
		`"mx.sluice.test"; none`:                  "mx.sluice.test",
		`"mx.sl\uice.test"; none`:                 "mx.sluice.test",
		`"unterminated`:                           "",
		"(only a comment)":                        "",
		"mx.sluice.test":                          "mx.sluice.test",
	} {
		if got := authservID(in); got != want {
			t.Errorf("authservID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestApplyReplacesForgedResults(t *testing.T) {
	_, r := testDNS(t, txt("ok.test.", "v=spf1 +all"))
	c := newTestChecker(r)
	msg := crlf("Authentication-Results: mx.sluice.test; spf=pass smtp.mailfrom=forged.test;\n" +
		"\tdkim=pass header.d=forged.test\n" +
		"Received: from x\n" +
		"Authentication-Results: other.example; spf=fail\n" +
		"authentication-results: (hello) MX.SLUICE.TEST.; dmarc=pass\n" +
		"From: a@ok.test\n" +
		"Subject: Authentication-Results: mx.sluice.test; dkim=pass\n" +
		"\n" +
		"Authentication-Results: mx.sluice.test; in the body stays\n")
	h, body := mail.ParseHeader(msg)
	res, err := c.Check(context.Background(), CheckInput{ClientIP: netip.MustParseAddr("192.0.2.1"), Helo: "h.ok.test", MailFrom: "a@ok.test", Message: msg, Header: &h})
	if err != nil {
		t.Fatal(err)
	}
	res.Apply(&h)
	out := h.Message(body)
	want := crlf("Received: from x\n" +
		"Authentication-Results: other.example; spf=fail\n" +
		"From: a@ok.test\n" +
		"Subject: Authentication-Results: mx.sluice.test; dkim=pass\n" +
		"\n" +
		"Authentication-Results: mx.sluice.test; in the body stays\n")
	ours, rest, ok := bytes.Cut(out, []byte("\r\nReceived: "))
	if !ok || string(append([]byte("Received: "), rest...)) != string(want) {
		t.Fatalf("Apply gave\n%s\nwant our header then\n%s", out, want)
	}
	// Our header unfolds to Header() and parses back.
	oh, _ := mail.ParseHeader(append(ours, "\r\n"...))
	if len(oh.Fields) != 1 || oh.Fields[0].Name != "Authentication-Results" {
		t.Fatalf("our header: %q", ours)
	}
	v := strings.ReplaceAll(oh.Fields[0].Unfolded(), "\t", " ")
	if v != res.Header() {
		t.Errorf("unfolded %q != Header() %q", v, res.Header())
	}
	id, results, err := authres.Parse(v)
	if err != nil || id != "mx.sluice.test" || len(results) != 3 {
		t.Fatalf("authres.Parse(%q) = %q, %d results, %v", v, id, len(results), err)
	}
	spf, ok := results[0].(*authres.SPFResult)
	if !ok || spf.Value != authres.ResultPass || spf.From != "a@ok.test" {
		t.Errorf("spf result %+v", results[0])
	}
	if d, ok := results[1].(*authres.DKIMResult); !ok || d.Value != authres.ResultNone {
		t.Errorf("dkim result %+v", results[1])
	}
	if d, ok := results[2].(*authres.DMARCResult); !ok || d.Value != authres.ResultNone || d.From != "ok.test" {
		t.Errorf("dmarc result %+v", results[2])
	}
}

func TestHeaderCleansValues(t *testing.T) {
	r := &Results{Hostname: "mx.sluice.test", SPF: &SPFResult{Result: PermError, MailFrom: "a\"b;c@x.test",
		Helo: "h\r\nInjected: yes", Reason: "bad \\ \"record\""}}
	h := r.Header()
	if strings.ContainsAny(h, "\r\n\\") || strings.Count(h, ";") != 1 {
		t.Errorf("header %q carries raw input", h)
	}
	if _, _, err := authres.Parse(h); err != nil {
		t.Errorf("authres.Parse(%q): %v", h, err)
	}
}
