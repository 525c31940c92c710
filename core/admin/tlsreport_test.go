package admin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sluice-mta/sluice/core/testclock"
	"github.com/sluice-mta/sluice/core/tlsrpt"
)

// TestTLSReportRoundTrip: today's counts of a real reporter go through the
// socket, all domains or one; a server without a reporter says so.
func TestTLSReportRoundTrip(t *testing.T) {
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	clock := testclock.New(time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC))
	r := tlsrpt.New(tlsrpt.Options{DB: db, Now: clock.Now})
	ctx := context.Background()
	r.Record(ctx, tlsrpt.Result{PolicyDomain: "a.example", PolicyType: tlsrpt.PolicyTLSA, PolicyStrings: []string{"3 1 1 abcd"}, Success: true})
	r.Record(ctx, tlsrpt.Result{PolicyDomain: "b.example", Failure: tlsrpt.ResultSTARTTLSNotSupported, MXHost: "mx.b.example"})
	cl := serveBackend(t, Backend{TLSReport: r})

	rep, err := cl.TLSReport(ctx, "")
	if err != nil || rep.Day != "2026-11-27" || len(rep.Domains) != 2 {
		t.Fatalf("TLSReport = %+v, %v", rep, err)
	}
	var b strings.Builder
	if err := WriteTLSReport(&b, rep, ""); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"a.example  tlsa             1           0       -\n",
		"b.example  no-policy-found  0           1       starttls-not-supported=1\n",
		"  b.example no-policy-found: starttls-not-supported mx.b.example ×1\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	if rep, err := cl.TLSReport(ctx, "B.Example."); err != nil || len(rep.Domains) != 1 || rep.Domains[0].Domain != "b.example" {
		t.Errorf("--domain B.Example.: %+v, %v", rep, err)
	}
	rep, _ = cl.TLSReport(ctx, "c.example")
	b.Reset()
	WriteTLSReport(&b, rep, "c.example")
	if b.String() != "no outbound TLS sessions to c.example counted today (2026-11-27 UTC)\n" {
		t.Errorf("no counts: %q", b.String())
	}
	if _, err := serveBackend(t, Backend{}).TLSReport(ctx, ""); err == nil || !strings.Contains(err.Error(), "keeps no TLS report counts") {
		t.Errorf("without a reporter: %v", err)
	}
}
