package dsn

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	moxdsn "github.com/mjl-/mox/dsn"

	"github.com/sluice-mta/sluice/core/mail"
)

// TestUTF8Recipient: a report about an internationalized recipient (the
// 5.6.7 bounce of a message no relay could take without SMTPUTF8) names
// it whole, with RFC 6533's utf-8 address type in a
// message/global-delivery-status part, as mox's DSN parser (the oracle)
// reads it; a report about ASCII recipients keeps message/delivery-status
// and rfc822.
func TestUTF8Recipient(t *testing.T) {
	r := report()
	r.Rcpts = []Rcpt{
		{Addr: "jösé@remote.test", ORCPT: "utf-8; jösé@remote.test", Action: "failed", Status: mail.MustEnhanced("5.6.7"),
			Diagnostic: "smtp; 553 5.6.7 mailbox name not allowed"},
		{Addr: "bob@example.com", ORCPT: "rfc822;bob@example.com", Action: "failed", Status: mail.MustEnhanced("5.6.7")},
	}
	msg, err := Build(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(msg, []byte("Content-Type: message/global-delivery-status")) {
		t.Errorf("no message/global-delivery-status part:\n%s", msg)
	}
	if !bytes.Contains(msg, []byte("Final-Recipient: utf-8; jösé@remote.test\r\n")) {
		t.Errorf("Final-Recipient of the UTF-8 address lost:\n%s", msg)
	}
	// mox's parser takes RFC 5322 dates without the optional day name
	// only, so the two date fields (not what this test is about) go.
	var forMox []string
	for _, l := range strings.Split(string(msg), "\r\n") {
		if !strings.HasPrefix(l, "Arrival-Date:") && !strings.HasPrefix(l, "Last-Attempt-Date:") {
			forMox = append(forMox, l)
		}
	}
	m, _, err := moxdsn.Parse(slog.New(slog.DiscardHandler), strings.NewReader(strings.Join(forMox, "\r\n")))
	if err != nil {
		t.Fatalf("mox cannot parse the report: %v\n%s", err, msg)
	}
	if len(m.Recipients) != 2 {
		t.Fatalf("mox read %d recipients, want 2", len(m.Recipients))
	}
	for i, want := range []string{"jösé@remote.test", "bob@example.com"} {
		rc := m.Recipients[i]
		if got := rc.FinalRecipient.XString(true); got != want {
			t.Errorf("recipient %d: Final-Recipient %q, want %q", i, got, want)
		}
		if got := rc.OriginalRecipient.XString(true); got != want {
			t.Errorf("recipient %d: Original-Recipient %q, want %q", i, got, want)
		}
		if rc.Status != "5.6.7" {
			t.Errorf("recipient %d: Status %q", i, rc.Status)
		}
	}

	ascii, err := Build(report())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(ascii), "Content-Type: message/delivery-status\r\n") || strings.Contains(string(ascii), "utf-8;") {
		t.Errorf("an ASCII report should stay message/delivery-status with rfc822 addresses:\n%s", ascii)
	}
}
