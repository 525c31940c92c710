package metrics

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/metrics/metricstest"
	"github.com/sluice-mta/sluice/pluginapi"
)

// populated returns a registry with every metric given a value, and its
// clock.
func populated(t testing.TB) (*Registry, *time.Time) {
	t.Helper()
	now := time.Date(2025, 3, 1, 12, 0, 30, 0, time.UTC)
	r := New(Options{Routes: []string{"Partner.EXAMPLE."}, TopDestinations: 2, QueueMaxAge: -1,
		Now: func() time.Time { return now }})
	r.SMTPConnection("smtp", "accepted")
	r.SMTPConnection("smtp", "refused")
	r.SMTPConnection("smtp", "evicted")
	r.SMTPStress("smtp", true)
	r.SMTPStress("smtp", false)
	r.SMTPStress("submission", true)
	r.SMTPSession("smtp", 1)
	r.SMTPSession("submission", 1)
	r.SMTPSession("submission", -1)
	for _, res := range msgResults {
		r.SMTPMessage("smtp", res)
	}
	for _, reason := range reasons {
		r.SMTPReject("smtp", "rcpt", reason)
	}
	r.SMTPTLS("submission", tls.VersionTLS13, tls.TLS_AES_128_GCM_SHA256, false)
	r.SMTPTLS("smtp", tls.VersionTLS12, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, true)
	r.SMTPTLS("smtp", tls.VersionTLS12, 0x1301+0x4000, true)
	r.SMTPTLSFailure("smtp", "version")
	r.SMTPTLSFailure("smtp", "a reason nobody listed")
	r.AuthAttempt("PLAIN", "success")
	r.AuthAttempt("CRAM-MD5", "refused")
	r.QueueCommit(3 * time.Millisecond)
	r.Delivery(Delivery{ID: "A", Rcpt: "bob@partner.example", Result: Delivered, Relay: "mx[192.0.2.1]:25", Delay: 2 * time.Second})
	r.Delivery(Delivery{ID: "B", Rcpt: "eve@far.example", Result: Deferred, Text: "451 try later"})
	r.Delivery(Delivery{ID: "C", Rcpt: "al@localhost", Result: Bounced, Relay: "local", Delay: time.Minute})
	r.DeliveryTLS("dane", "success")
	r.DeliveryTLS("mta-sts", "certificate-expired")
	r.PluginCall("greylist", pluginapi.HookRcpt, pluginapi.Tempfail, 40*time.Microsecond)
	r.PluginFailure("greylist", pluginapi.HookRcpt, pluginapi.FailTimeout, 2*time.Second)
	r.Add("ratelimit", "ratelimit_exceeded", 1)
	r.Add("odd", "spam-hits.total", 2.5)
	r.SetSources(Sources{
		Queue: func(context.Context) (QueueStats, error) {
			return QueueStats{Queued: 3, Deferred: 2, Held: 1, Oldest: now.Add(-90 * time.Second), Bytes: 4096}, nil
		},
		PluginInstances: func() map[string]int { return map[string]int{"greylist": 2} },
		CertExpiry:      func() time.Time { return time.Unix(1767225600, 0) },
	})
	return r, &now
}

// TestExposition: every metric the issue names is exported with HELP and
// TYPE, promtool finds nothing to lint, and the values are what was
// recorded.
func TestExposition(t *testing.T) {
	r, _ := populated(t)
	var b bytes.Buffer
	if err := r.WritePrometheus(&b); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	metricstest.CheckMetrics(t, b.Bytes())
	for _, want := range []string{
		"# TYPE sluice_smtp_connections_total counter",
		`sluice_smtp_connections_total{result="refused",service="smtp"} 1`,
		`sluice_smtp_connections_total{result="evicted",service="smtp"} 1`,
		`sluice_smtp_stress{service="smtp"} 0`,
		`sluice_smtp_stress{service="submission"} 1`,
		`sluice_smtp_stress_total{service="smtp"} 1`,
		`sluice_smtp_sessions{service="smtp"} 1`,
		`sluice_smtp_sessions{service="submission"} 0`,
		`sluice_smtp_messages_total{result="held",service="smtp"} 1`,
		`sluice_smtp_rejects_total{reason="unknown_user",service="smtp",stage="rcpt"} 1`,
		`sluice_smtp_tls_total{cipher="TLS_AES_128_GCM_SHA256",client_cert="none",service="submission",version="tls1.3"} 1`,
		`sluice_smtp_tls_total{cipher="TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",client_cert="presented",service="smtp",version="tls1.2"} 1`,
		`sluice_smtp_tls_total{cipher="other",client_cert="presented",service="smtp",version="tls1.2"} 1`,
		"# TYPE sluice_smtp_tls_failures_total counter",
		`sluice_smtp_tls_failures_total{reason="version",service="smtp"} 1`,
		`sluice_smtp_tls_failures_total{reason="other",service="smtp"} 1`,
		`sluice_auth_attempts_total{mechanism="plain",result="success"} 1`,
		`sluice_auth_attempts_total{mechanism="other",result="refused"} 1`,
		`sluice_queue_messages{state="deferred"} 2`,
		"sluice_queue_oldest_seconds 90",
		"sluice_queue_bytes 4096",
		"# TYPE sluice_queue_commit_seconds histogram",
		"sluice_queue_commit_seconds_count 1",
		`sluice_delivery_attempts_total{result="delivered",transport="smtp"} 1`,
		`sluice_delivery_attempts_total{result="deferred",transport="none"} 1`,
		`sluice_delivery_attempts_total{result="bounced",transport="maildir"} 1`,
		"sluice_delivery_seconds_count 2",
		`sluice_delivery_tls_total{policy="dane",result="success"} 1`,
		`sluice_delivery_tls_total{policy="mta-sts",result="certificate-expired"} 1`,
		`sluice_delivery_destination_attempts_total{destination="partner.example",result="delivered"} 1`,
		`sluice_delivery_destination_attempts_total{destination="other",result="deferred"} 1`,
		`sluice_plugin_calls_total{hook="rcpt",plugin="greylist",verdict="tempfail"} 1`,
		`sluice_plugin_calls_total{hook="rcpt",plugin="greylist",verdict="error"} 1`,
		`sluice_plugin_call_seconds_bucket{hook="rcpt",plugin="greylist",le="5e-05"} 1`,
		`sluice_plugin_call_seconds_count{hook="rcpt",plugin="greylist"} 2`,
		`sluice_plugin_failures_total{kind="timeout",plugin="greylist"} 1`,
		`sluice_plugin_instances{plugin="greylist"} 2`,
		"# HELP sluice_plugin_metric_ratelimit_exceeded_total ",
		"# TYPE sluice_plugin_metric_ratelimit_exceeded_total counter",
		`sluice_plugin_metric_ratelimit_exceeded_total{plugin="ratelimit"} 1`,
		`sluice_plugin_metric_spam_hits_total{plugin="odd"} 2.5`,
		"sluice_tls_certificate_expiry_timestamp_seconds 1.7672256e+09",
		"# TYPE go_goroutines gauge",
		"# TYPE process_cpu_seconds_total counter",
	} {
		if !strings.Contains(text, want+"\n") && !strings.Contains(text, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	// The HTTP handler serves the same registry.
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), `sluice_queue_messages{state="queued"} 3`) {
		t.Errorf("handler output lacks the queue gauge:\n%.500s", body)
	}
	metricstest.CheckMetrics(t, body)
}

// TestFixedLabels: values outside a label's set never become labels.
func TestFixedLabels(t *testing.T) {
	r := New(Options{})
	r.SMTPConnection("weird", "whatever")
	r.SMTPReject("smtp", "bdat", "free text from a client")
	r.SMTPMessage("smtp", "???")
	r.PluginFailure("p", pluginapi.HookInit, "oops", 0)
	r.Delivery(Delivery{Rcpt: "x@y.example", Result: "nonsense"})
	r.DeliveryTLS("made-up", "free text")
	for _, c := range []struct {
		name, labels string
	}{
		{"sluice_smtp_connections_total", `result="refused",service="other"`},
		{"sluice_smtp_rejects_total", `reason="other",service="smtp",stage="other"`},
		{"sluice_smtp_messages_total", `result="rejected",service="smtp"`},
		{"sluice_plugin_failures_total", `kind="trap",plugin="p"`},
		{"sluice_delivery_attempts_total", `result="deferred",transport="none"`},
		{"sluice_delivery_tls_total", `policy="opportunistic",result="validation-failure"`},
	} {
		want := fmt.Sprintf("%s{%s} 1", c.name, c.labels)
		var b bytes.Buffer
		if err := r.WritePrometheus(&b); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(b.String(), want) {
			t.Errorf("want %s in the output", want)
		}
	}
}

// TestDestinations: routes always have a label, at most n others are
// admitted and only after admitAttempts attempts, the rest is "other".
func TestDestinations(t *testing.T) {
	d := newDestinations([]string{"route.example"}, 2)
	if got := d.label("ROUTE.example."); got != "route.example" {
		t.Errorf("route label = %q", got)
	}
	for i := 1; i < admitAttempts; i++ {
		if got := d.label("busy.example"); got != OtherDestination {
			t.Fatalf("attempt %d of busy.example labelled %q before admission", i, got)
		}
	}
	if got := d.label("busy.example"); got != "busy.example" {
		t.Fatalf("busy.example not admitted after %d attempts: %q", admitAttempts, got)
	}
	// Many one-off domains churn through the sketch without a label and
	// without growing it past its bound.
	for i := range 1000 {
		if got := d.label(fmt.Sprintf("d%d.example", i)); got != OtherDestination {
			t.Fatalf("one-off domain got label %q", got)
		}
	}
	if len(d.sketch) > 8*d.n {
		t.Errorf("sketch holds %d candidates, bound %d", len(d.sketch), 8*d.n)
	}
	for range admitAttempts {
		d.label("second.example")
	}
	for range 5 * admitAttempts {
		if got := d.label("third.example"); got != OtherDestination {
			t.Fatalf("third domain admitted past the bound: %q", got)
		}
	}
	routes, admitted := d.labeled()
	if len(routes) != 1 || len(admitted) != 2 {
		t.Errorf("labelled routes %v, admitted %v", routes, admitted)
	}
}

// TestActivity: per-minute counts land in their minute, the window is the
// last hour, and the recent results are newest first and bounded.
func TestActivity(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a := newActivity(func() time.Time { return now })
	a.count(seriesAccepted)
	a.delivery(Delivery{ID: "1", Result: Delivered, Time: now})
	now = now.Add(2 * time.Minute)
	a.delivery(Delivery{ID: "2", Result: Bounced, Time: now})
	a.delivery(Delivery{ID: "3", Result: Deferred, Time: now})
	ms := a.Minutes()
	if len(ms) != historyMinutes || !ms[len(ms)-1].Start.Equal(now) {
		t.Fatalf("minutes: %d ending %v", len(ms), ms[len(ms)-1].Start)
	}
	if got := ms[len(ms)-3].Counts; got != [numSeries]int{1, 1, 0, 0} {
		t.Errorf("minute -2: %v", got)
	}
	if got := ms[len(ms)-1].Counts; got != [numSeries]int{0, 0, 1, 1} {
		t.Errorf("minute 0: %v", got)
	}
	// An hour later the old minutes are gone, not added to.
	now = now.Add(time.Hour)
	for _, m := range a.Minutes() {
		if m.Counts != [numSeries]int{} {
			t.Errorf("minute %v still counts %v an hour later", m.Start, m.Counts)
		}
	}
	if rs := a.Recent(); len(rs) != 3 || rs[0].ID != "3" || rs[2].ID != "1" {
		t.Errorf("recent: %+v", rs)
	}
	for i := range RecentDeliveries + 10 {
		a.delivery(Delivery{ID: fmt.Sprint(i), Result: Delivered, Time: now})
	}
	rs := a.Recent()
	if len(rs) != RecentDeliveries || rs[0].ID != fmt.Sprint(RecentDeliveries+9) {
		t.Errorf("recent after wrap: %d, newest %q", len(rs), rs[0].ID)
	}
}

// TestQueueStatsCache: a scan is reused within QueueMaxAge, and an error
// leaves the queue gauges out of the scrape without failing the rest.
func TestQueueStatsCache(t *testing.T) {
	now := time.Unix(1000, 0)
	r := New(Options{QueueMaxAge: 5 * time.Second, Now: func() time.Time { return now }})
	if _, ok, _ := r.QueueStats(context.Background()); ok {
		t.Fatal("QueueStats ok without a source")
	}
	scans := 0
	var fail error
	r.SetSources(Sources{Queue: func(context.Context) (QueueStats, error) {
		scans++
		return QueueStats{Queued: scans}, fail
	}})
	for range 3 {
		if qs, _, _ := r.QueueStats(context.Background()); qs.Queued != 1 {
			t.Fatalf("queued = %d, want the first scan's 1", qs.Queued)
		}
	}
	now = now.Add(6 * time.Second)
	fail = errors.New("disk on fire")
	var b bytes.Buffer
	if err := r.WritePrometheus(&b); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("WritePrometheus error = %v, want the scan's", err)
	}
	if strings.Contains(b.String(), "sluice_queue_messages{") {
		t.Errorf("a failed scan exported queue series:\n%s", b.String())
	}
	if !strings.Contains(b.String(), "go_goroutines") {
		t.Errorf("the rest of the scrape is missing:\n%.300s", b.String())
	}
}

// TestQueueStatsSlowScan: a scan that takes 3 s is reused for ten times
// that, 30 s, though QueueMaxAge is 5 s, so that a deep queue is not
// rescanned at every scrape.
func TestQueueStatsSlowScan(t *testing.T) {
	now := time.Unix(1000, 0)
	r := New(Options{QueueMaxAge: 5 * time.Second, Now: func() time.Time { return now }})
	scans := 0
	r.SetSources(Sources{Queue: func(context.Context) (QueueStats, error) {
		scans++
		now = now.Add(3 * time.Second) // the scan's own time
		return QueueStats{Queued: scans}, nil
	}})
	for _, step := range []struct {
		after time.Duration
		want  int
	}{{0, 1}, {10 * time.Second, 1}, {16 * time.Second, 1}, {5 * time.Second, 2}} {
		now = now.Add(step.after)
		if qs, _, _ := r.QueueStats(context.Background()); qs.Queued != step.want {
			t.Fatalf("%v later: scan %d, want %d", step.after, qs.Queued, step.want)
		}
	}
}

// TestPluginCounters: concurrent adds sum up; counters never go down.
func TestPluginCounters(t *testing.T) {
	r := New(Options{})
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 100 {
				r.Add("ratelimit", "over-limit", 1)
			}
		}()
	}
	wg.Wait()
	for _, d := range []float64{-1, math.NaN(), math.Inf(1)} {
		r.Add("ratelimit", "over-limit", d)
	}
	if got := r.PluginCounter("ratelimit", "over-limit"); got != 2000 {
		t.Errorf("counter = %v, want 2000", got)
	}
	if got := r.PluginCounter("ratelimit", "over_limit_total"); got != 2000 {
		t.Errorf("same counter by its exported spelling = %v, want 2000", got)
	}
}

func TestTransport(t *testing.T) {
	for relay, want := range map[string]string{
		"": "none", "local": "maildir", "lmtp[127.0.0.1]:24": "lmtp", "lmtp[unix:/run/lmtp]": "lmtp",
		"mx.example[192.0.2.1]:25": "smtp",
	} {
		if got := Transport(relay); got != want {
			t.Errorf("Transport(%q) = %q, want %q", relay, got, want)
		}
	}
}
