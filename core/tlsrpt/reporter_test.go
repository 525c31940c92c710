package tlsrpt

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	mdns "github.com/miekg/dns"
	moxtlsrpt "github.com/mjl-/mox/tlsrpt"

	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/testclock"
)

func openDB(t testing.TB, dir string) *badger.DB {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	return db
}

var (
	stsPolicy = []string{"version: STSv1", "mode: enforce", "mx: mx1.example.com", "mx: *.mx.example.com", "max_age: 86400"}
	mxIP      = netip.MustParseAddr("192.0.2.25")
	ourIP     = netip.MustParseAddr("198.51.100.7")
)

// results is a day's traffic to example.com under one MTA-STS policy: ok
// successes, then expired failures at mx1 and one STARTTLS refusal, and a
// session to other.example without a policy.
func results(ok, expired int) []Result {
	var out []Result
	for range ok {
		out = append(out, Result{PolicyDomain: "Example.COM.", PolicyType: PolicySTS, PolicyStrings: stsPolicy, MXHost: "mx1.example.com", Success: true})
	}
	for range expired {
		out = append(out, Result{PolicyDomain: "example.com", PolicyType: PolicySTS, PolicyStrings: stsPolicy, MXHost: "mx1.example.com.",
			SendingIP: ourIP, ReceivingIP: mxIP, Failure: ResultCertificateExpired, Detail: "x509: certificate has expired"})
	}
	out = append(out, Result{PolicyDomain: "example.com", PolicyType: PolicySTS, PolicyStrings: stsPolicy, MXHost: "mx2.mx.example.com",
		ReceivingIP: netip.MustParseAddr("2001:db8::25"), Failure: ResultSTARTTLSNotSupported})
	out = append(out, Result{PolicyDomain: "other.example", PolicyType: PolicyNone, MXHost: "mx.other.example", Success: true})
	return out
}

// checkExample checks example.com's counts: ok successes, expired and
// refused (STARTTLS) failures.
func checkExample(t *testing.T, c DomainCounts, ok, expired, refused int) {
	t.Helper()
	if c.Domain != "example.com" || len(c.Policies) != 1 {
		t.Fatalf("counts %+v, want example.com with one policy", c)
	}
	p := c.Policies[0]
	if p.Type != PolicySTS || !slices.Equal(p.Strings, stsPolicy) || p.Successful != int64(ok) || p.Failed != int64(expired+refused) {
		t.Errorf("policy %+v, want sts with %d successful, %d failed", p, ok, expired+refused)
	}
	want := []FailureCount{
		{ResultType: ResultCertificateExpired, SendingIP: ourIP.String(), MXHost: "mx1.example.com", ReceivingIP: mxIP.String(), Reason: "x509: certificate has expired", Count: int64(expired)},
		{ResultType: ResultSTARTTLSNotSupported, MXHost: "mx2.mx.example.com", ReceivingIP: "2001:db8::25", Count: int64(refused)},
	}
	if !slices.Equal(p.Failures, want) {
		t.Errorf("failures %+v,\nwant %+v", p.Failures, want)
	}
}

// TestCountsSurviveRestart records a day's results, stops (Run's context
// ends, then Close, as the server does) and opens the database again: a new
// Reporter shows the same counts, and adds to them.
func TestCountsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	clock := testclock.New(time.Date(2026, 11, 27, 9, 30, 0, 0, time.UTC))
	db := openDB(t, dir)
	r := New(Options{DB: db, Now: clock.Now, FlushInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	for _, res := range results(7, 3) {
		r.Record(ctx, res)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	r.Record(ctx, results(1, 0)[0]) // after Run, before Close: Close writes it
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	db.Close()

	db = openDB(t, dir)
	defer db.Close()
	r = New(Options{DB: db, Now: clock.Now})
	day, got, err := r.Today(context.Background(), "EXAMPLE.com")
	if err != nil || day != "2026-11-27" || len(got) != 1 {
		t.Fatalf("Today = %s, %+v, %v", day, got, err)
	}
	checkExample(t, got[0], 8, 3, 1)
	for _, res := range results(2, 1) { // not yet written: Today still sees them
		r.Record(ctx, res)
	}
	_, got, _ = r.Today(context.Background(), "")
	if len(got) != 2 || got[1].Domain != "other.example" || got[1].Policies[0].Successful != 2 {
		t.Fatalf("all domains: %+v", got)
	}
	checkExample(t, got[0], 10, 4, 2)
}

// TestRecordNeverBlocks: with nothing draining the buffer, Record returns
// at once and counts what it drops.
func TestRecordNeverBlocks(t *testing.T) {
	db := openDB(t, t.TempDir())
	defer db.Close()
	r := New(Options{DB: db, Buffer: 10})
	doneRecording := make(chan struct{})
	go func() {
		for range 1000 {
			r.Record(context.Background(), Result{PolicyDomain: "example.com", Success: true})
		}
		close(doneRecording)
	}()
	select {
	case <-doneRecording:
	case <-time.After(10 * time.Second):
		t.Fatal("Record blocked")
	}
	if r.Dropped() != 990 {
		t.Errorf("dropped %d, want 990", r.Dropped())
	}
	_, got, _ := r.Today(context.Background(), "example.com")
	if len(got) != 1 || got[0].Policies[0].Successful != 10 || got[0].Policies[0].Type != PolicyNone {
		t.Errorf("counted %+v, want the 10 buffered", got)
	}
}

// submitted is a report handed to the queue.
type submitted struct {
	from  string
	rcpts []string
	msg   []byte
}

// fakeQueue collects reports; fail makes the next submissions fail.
type fakeQueue struct {
	mu   sync.Mutex
	msgs []submitted
	fail bool
}

func (q *fakeQueue) submit(_ context.Context, from string, rcpts []string, msg []byte) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.fail {
		return "", fmt.Errorf("queue: disk full")
	}
	q.msgs = append(q.msgs, submitted{from, rcpts, msg})
	return fmt.Sprintf("Q%d", len(q.msgs)), nil
}

func (q *fakeQueue) all() []submitted {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.msgs)
}

// TestDailyReport: a day's counts become, after the next UTC midnight, one
// report per domain that asks for one, which mox's parser reads back with
// the counts; a domain without a record gets none and its counts go; a DNS
// failure keeps them for a retry an hour later.
func TestDailyReport(t *testing.T) {
	srv := dnstest.Start(t, dnstest.Zone(
		`_smtp._tls.example.com. 300 IN TXT "v=TLSRPTv1; rua=mailto:tlsrpt@reports.example.com,https://reports.example.com/v1"`,
		`_smtp._tls.later.example. 300 IN TXT "v=TLSRPTv1; rua=mailto:tls@later.example"`,
	))
	srv.SetRcode("_smtp._tls.later.example.", mdns.RcodeServerFailure)
	res, err := dns.New(dns.Options{Servers: []string{srv.Addr}, CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var logMu sync.Mutex
	clock := testclock.New(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	db := openDB(t, t.TempDir())
	defer db.Close()
	q := &fakeQueue{}
	sender := Sender{From: "postmaster@mx.sender.test", Hostname: "mx.sender.test"}
	r := New(Options{DB: db, Resolver: res, Submit: q.submit, Now: clock.Now, Delay: 5 * time.Minute,
		Settings: func() Settings { return Settings{Send: true, Sender: sender} },
		Logger:   slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))})
	ctx := context.Background()
	for _, x := range results(40, 2) {
		r.Record(ctx, x)
	}
	r.Record(ctx, Result{PolicyDomain: "later.example", PolicyType: PolicyNone, Success: true})

	r.sendDue(ctx) // the same day: nothing due
	clock.Add(14*time.Hour + 2*time.Minute)
	r.sendDue(ctx) // 00:02, before the 5 minutes' delay
	if n := len(q.all()); n != 0 {
		t.Fatalf("%d reports before the day was due", n)
	}
	clock.Add(5 * time.Minute)
	r.sendDue(ctx)
	msgs := q.all()
	if len(msgs) != 1 {
		t.Fatalf("%d reports, want 1 (example.com)", len(msgs))
	}
	m := msgs[0]
	if m.from != "postmaster@mx.sender.test" || !slices.Equal(m.rcpts, []string{"tlsrpt@reports.example.com"}) {
		t.Errorf("envelope %s → %v", m.from, m.rcpts)
	}
	// The independent reading: mox parses the whole message.
	rep, err := moxtlsrpt.ParseMessage(slog.New(slog.DiscardHandler), bytes.NewReader(m.msg))
	if err != nil {
		t.Fatalf("mox cannot read the report: %v\n%s", err, m.msg)
	}
	if rep.OrganizationName != "mx.sender.test" || rep.ContactInfo != "postmaster@mx.sender.test" ||
		rep.ReportID != "20261126.example.com@mx.sender.test" ||
		!rep.DateRange.Start.Equal(time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)) ||
		!rep.DateRange.End.Equal(time.Date(2026, 11, 26, 23, 59, 59, 0, time.UTC)) || len(rep.Policies) != 1 {
		t.Fatalf("report %+v", rep)
	}
	p := rep.Policies[0]
	if p.Policy.Type != moxtlsrpt.STS || p.Policy.Domain != "example.com" || !slices.Equal(p.Policy.String, stsPolicy) ||
		!slices.Equal(p.Policy.MXHost, []string{"mx1.example.com", "*.mx.example.com"}) ||
		p.Summary.TotalSuccessfulSessionCount != 40 || p.Summary.TotalFailureSessionCount != 3 || len(p.FailureDetails) != 2 {
		t.Fatalf("policy %+v", p)
	}
	if fd := p.FailureDetails[0]; fd.ResultType != moxtlsrpt.ResultCertificateExpired || fd.FailedSessionCount != 2 ||
		fd.ReceivingMXHostname != "mx1.example.com" || fd.ReceivingIP != "192.0.2.25" || fd.SendingMTAIP != "198.51.100.7" ||
		fd.FailureReasonCode != "x509: certificate has expired" {
		t.Errorf("failure detail %+v", fd)
	}
	for _, want := range []string{
		"\r\nTLS-Report-Domain: example.com\r\n", "\r\nTLS-Report-Submitter: mx.sender.test\r\n",
		"Subject: Report Domain: example.com Submitter: mx.sender.test Report-ID: <20261126.example.com@mx.sender.test>\r\n",
		`Content-Type: multipart/report; report-type="tlsrpt"; boundary=`,
		`Content-Type: application/tlsrpt+gzip; name="mx.sender.test!example.com!1795651200!1795737599.json.gz"`,
		`Content-Disposition: attachment; filename="mx.sender.test!example.com!1795651200!1795737599.json.gz"`,
	} {
		if !bytes.Contains(m.msg, []byte(want)) {
			t.Errorf("the message lacks %q:\n%s", want, m.msg)
		}
	}
	logMu.Lock()
	logText := logs.String()
	logMu.Unlock()
	if !strings.Contains(logText, "rua=https://reports.example.com/v1") || !strings.Contains(logText, "https reports are not posted") {
		t.Errorf("the ignored https rua is not logged:\n%s", logText)
	}

	// other.example has no record: its counts are gone. later.example's
	// DNS failed: kept, and tried again an hour later.
	if got, _ := r.st.day("2026-11-26", ""); len(got) != 1 || got[0].Domain != "later.example" {
		t.Fatalf("left after sending: %+v", got)
	}
	srv.SetRcode("_smtp._tls.later.example.", mdns.RcodeSuccess)
	clock.Add(30 * time.Minute)
	r.sendDue(ctx)
	if n := len(q.all()); n != 1 {
		t.Fatalf("retried before the hour: %d reports", n)
	}
	clock.Add(31 * time.Minute)
	r.sendDue(ctx)
	if msgs := q.all(); len(msgs) != 2 || !slices.Equal(msgs[1].rcpts, []string{"tls@later.example"}) {
		t.Fatalf("the retry sent %d reports", len(msgs))
	}
	if got, _ := r.st.day("2026-11-26", ""); len(got) != 0 {
		t.Errorf("left after the retry: %+v", got)
	}
}

// TestReportsOff: without [tlsrpt] enabled nothing is sent, and a finished
// day's counts are dropped all the same.
func TestReportsOff(t *testing.T) {
	clock := testclock.New(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	db := openDB(t, t.TempDir())
	defer db.Close()
	q := &fakeQueue{}
	r := New(Options{DB: db, Submit: q.submit, Now: clock.Now, Settings: func() Settings { return Settings{} }})
	r.Record(context.Background(), results(1, 1)[0])
	clock.Add(24 * time.Hour)
	r.SendDue(context.Background())
	if len(q.all()) != 0 {
		t.Error("a report was sent with reports off")
	}
	if days, _ := r.st.days(); len(days) != 0 {
		t.Errorf("days kept: %v", days)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
