package queue

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/core/mail"
)

// captureLog points opts' logger at a new log buffer.
func captureLog(t *testing.T, opts *Options) *testlog.Buffer {
	l := testlog.New(t)
	opts.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return l
}

// reports returns the deliveries of null-sender messages whose body has
// the given Action field.
func reports(d *fakeDeliverer, action string) []call {
	var out []call
	for _, c := range d.Calls() {
		if isReport(c.Body) && strings.Contains(c.Body, "Action: "+action+"\r\n") {
			out = append(out, c)
		}
	}
	return out
}

// isReport tells DSNs from other (null-sender test) messages.
func isReport(body string) bool { return strings.Contains(body, "report-type=delivery-status") }

// deferAll defers every recipient of ordinary messages and delivers
// reports.
func deferAll(m *mail.Message, rcpts []string) []mail.Result {
	if isReport(string(m.Body)) {
		return sendAll(m, rcpts)
	}
	var out []mail.Result
	for _, r := range rcpts {
		out = append(out, mail.Result{Rcpt: r, Status: mail.Deferred, Reply: mail.Reply{Code: 451, Enhanced: mail.MustEnhanced("4.4.1"), Text: "4.4.1 no answer from " + r}, Relay: "mx.dst.test[192.0.2.1]:25"})
	}
	return out
}

// TestDSNParameters: RET, ENVID and ORCPT reach the failure report.
func TestDSNParameters(t *testing.T) {
	for _, ret := range []string{"", "FULL", "HDRS"} {
		t.Run("RET="+ret, func(t *testing.T) {
			c := newClock()
			d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
				if m.From == "" {
					return sendAll(m, rcpts)
				}
				return []mail.Result{{Rcpt: rcpts[0], Status: mail.Bounced, Reply: mail.Reply{Code: 550, Enhanced: mail.MustEnhanced("5.1.1"), Text: "5.1.1 no such user"}, Relay: "mx.dst.test[192.0.2.1]:25"}}
			}}
			opts := testOptions(t, t.TempDir(), c)
			opts.Deliverer = d
			q := openQueue(t, opts)
			env := &mail.Envelope{From: "a@src.test", Ret: ret, EnvID: "env-42",
				Rcpts: []mail.Recipient{{Addr: "x@dst.test", ORCPT: "rfc822;Orig@Dst.Test"}}}
			if _, err := q.Enqueue(context.Background(), env, []byte("Subject: secret\r\n\r\nthe body text\r\n")); err != nil {
				t.Fatal(err)
			}
			run(t, q)
			eventually(t, "bounce delivered", func() bool { return len(bounces(d)) == 1 })
			b := bounces(d)[0].Body
			for _, want := range []string{"Original-Envelope-Id: env-42\r\n", "Original-Recipient: rfc822; Orig@Dst.Test\r\n",
				"Final-Recipient: rfc822; x@dst.test\r\n", "Action: failed\r\n", "Status: 5.1.1\r\n",
				"Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n", "Remote-MTA: dns; mx.dst.test\r\n", "Subject: secret\r\n"} {
				if !strings.Contains(b, want) {
					t.Errorf("report lacks %q:\n%s", want, b)
				}
			}
			if got, want := strings.Contains(b, "the body text"), ret != "HDRS"; got != want {
				t.Errorf("original body returned: %v, want %v", got, want)
			}
		})
	}
}

// TestOneBounceListsAll: one failure event makes one DSN naming every
// failed recipient with its own remote reply.
func TestOneBounceListsAll(t *testing.T) {
	c := newClock()
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		if m.From == "" {
			return sendAll(m, rcpts)
		}
		var out []mail.Result
		for _, r := range rcpts {
			out = append(out, mail.Result{Rcpt: r, Status: mail.Bounced, Reply: mail.Reply{Code: 550, Enhanced: mail.MustEnhanced("5.1.1"), Text: "5.1.1 unknown user " + r}, Relay: "mx[192.0.2.1]:25"})
		}
		return out
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	q := openQueue(t, opts)
	rcpts := []string{"x@dst.test", "y@dst.test", "z@other.test"}
	enqueue(t, q, "a@src.test", rcpts...)
	run(t, q)
	eventually(t, "queue to empty", func() bool { return len(list(t, q)) == 0 && len(bounces(d)) > 0 })
	bs := bounces(d)
	if len(bs) != 1 {
		t.Fatalf("%d DSNs, want 1", len(bs))
	}
	for _, r := range rcpts {
		if !strings.Contains(bs[0].Body, "Diagnostic-Code: smtp; 550 5.1.1 unknown user "+r+"\r\n") {
			t.Errorf("DSN lacks %s with its reply:\n%s", r, bs[0].Body)
		}
	}
}

// TestSuccessNotice: recipients with NOTIFY=SUCCESS get one "delivered"
// DSN per delivery event, all of them in it; others none.
func TestSuccessNotice(t *testing.T) {
	for _, tc := range []struct {
		name string
		from string
		want []string // named in the notice; nil = no notice
	}{
		{"sender", "a@src.test", []string{"x@dst.test", "y@dst.test"}},
		{"null sender", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			d := &fakeDeliverer{fn: sendAll}
			opts := testOptions(t, t.TempDir(), c)
			opts.Deliverer = d
			q := openQueue(t, opts)
			env := &mail.Envelope{From: tc.from, Rcpts: []mail.Recipient{
				{Addr: "x@dst.test", Notify: []string{"SUCCESS", "FAILURE"}},
				{Addr: "y@dst.test", Notify: []string{"success"}, ORCPT: "rfc822;y@orig.test"},
				{Addr: "z@dst.test"},
				{Addr: "n@dst.test", Notify: []string{"NEVER"}},
			}}
			id, err := q.Enqueue(context.Background(), env, []byte("Subject: s\r\n\r\nbody\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			run(t, q)
			n := 1
			if tc.want != nil {
				n = 2
			}
			eventually(t, "queue to empty", func() bool { return len(list(t, q)) == 0 && len(d.Calls()) == n })
			got := reports(d, "delivered")
			if tc.want == nil {
				if len(got) != 0 {
					t.Fatalf("got %d success notices, want none", len(got))
				}
				return
			}
			if len(got) != 1 || !slices.Equal(got[0].Rcpts, []string{tc.from}) {
				t.Fatalf("success notices %+v, want one to %s", got, tc.from)
			}
			b := got[0].Body
			for _, r := range []string{"x@dst.test", "y@dst.test", "z@dst.test", "n@dst.test"} {
				if has, want := strings.Contains(b, "Final-Recipient: rfc822; "+r), slices.Contains(tc.want, r); has != want {
					t.Errorf("notice names %s: %v, want %v\n%s", r, has, want, b)
				}
			}
			for _, want := range []string{"Status: 2.0.0", "Original-Recipient: rfc822; y@orig.test", "X-Sluice-Queue-ID: " + id, "Subject: s\r\n"} {
				if !strings.Contains(b, want) {
					t.Errorf("notice lacks %q:\n%s", want, b)
				}
			}
			if strings.Contains(b, "\r\nbody\r\n") {
				t.Errorf("success notice returns the body; want headers only:\n%s", b)
			}
		})
	}
}

// TestDelayWarning: after delay_warning, one "delayed" DSN per message for
// the pending recipients whose NOTIFY allows it; none when off or for the
// null sender.
func TestDelayWarning(t *testing.T) {
	for _, tc := range []struct {
		name  string
		from  string
		after time.Duration
		want  []string // named in the warning; nil = no warning
	}{
		{"on", "a@src.test", 2 * time.Hour, []string{"x@dst.test", "z@dst.test"}},
		{"off", "a@src.test", 0, nil},
		{"null sender", "", 2 * time.Hour, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			d := &fakeDeliverer{fn: deferAll}
			opts := testOptions(t, t.TempDir(), c)
			opts.Deliverer, opts.DelayWarning = d, tc.after
			q := openQueue(t, opts)
			env := &mail.Envelope{From: tc.from, EnvID: "E1", Rcpts: []mail.Recipient{
				{Addr: "x@dst.test"},
				{Addr: "y@dst.test", Notify: []string{"FAILURE"}},
				{Addr: "z@dst.test", Notify: []string{"DELAY"}},
			}}
			id, err := q.Enqueue(context.Background(), env, []byte("Subject: s\r\n\r\nbody\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			run(t, q)
			attempts := func(n int) func() bool {
				return func() bool {
					m, err := q.Get(context.Background(), id)
					return err == nil && m.Attempts == n
				}
			}
			eventually(t, "first attempt", attempts(1))
			if n := len(reports(d, "delayed")); n != 0 {
				t.Fatalf("%d delay warnings before delay_warning passed", n)
			}
			for i := 2; i <= 4; i++ {
				c.Add(3 * time.Hour)
				if err := q.Flush(context.Background()); err != nil {
					t.Fatal(err)
				}
				eventually(t, "next attempt", attempts(i))
			}
			m, err := q.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if n := len(reports(d, "delayed")); n != 0 || m.DelayWarned {
					t.Fatalf("%d delay warnings (recorded %v), want none", n, m.DelayWarned)
				}
				return
			}
			eventually(t, "warning delivered", func() bool { return len(reports(d, "delayed")) >= 1 })
			ws := reports(d, "delayed")
			if len(ws) != 1 || !m.DelayWarned {
				t.Fatalf("%d delay warnings (recorded %v), want 1", len(ws), m.DelayWarned)
			}
			b := ws[0].Body
			for _, r := range []string{"x@dst.test", "y@dst.test", "z@dst.test"} {
				if has, want := strings.Contains(b, "Final-Recipient: rfc822; "+r), slices.Contains(tc.want, r); has != want {
					t.Errorf("warning names %s: %v, want %v\n%s", r, has, want, b)
				}
			}
			until := m.Received.Add(opts.MaxLifetime).Format("Mon, 02 Jan 2006 15:04:05 -0700")
			for _, want := range []string{"Status: 4.4.1", "Will-Retry-Until: " + until, "Original-Envelope-Id: E1", "no answer from z@dst.test"} {
				if !strings.Contains(b, want) {
					t.Errorf("warning lacks %q:\n%s", want, b)
				}
			}
		})
	}
}

// TestReportRcptDiagnostic: a reply becomes "smtp; code text" once, also
// when the transport's text is the whole reply line (the remote transport
// reports "550 5.1.1 …"); our own words are "x-sluice;".
func TestReportRcptDiagnostic(t *testing.T) {
	tests := []struct {
		code       int
		text, want string
	}{
		{550, "5.1.1 no such user", "smtp; 550 5.1.1 no such user"},
		{550, "550 5.1.1 no such user", "smtp; 550 5.1.1 no such user"},
		{250, "250 2.0.0 Ok: queued as 4ABC", "smtp; 250 2.0.0 Ok: queued as 4ABC"},
		{550, "550", "smtp; 550"},
		{550, "5500 mailboxes are full", "smtp; 550 5500 mailboxes are full"},
		{0, "delivery time expired", "x-sluice; delivery time expired"},
		{0, "", ""},
	}
	for _, tt := range tests {
		r := &mail.Recipient{Addr: "x@dst.test", DSNCode: "5.1.1"}
		if got := reportRcpt(r, "failed", tt.code, tt.text).Diagnostic; got != tt.want {
			t.Errorf("reportRcpt(%d, %q) diagnostic %q, want %q", tt.code, tt.text, got, tt.want)
		}
	}
}

// TestOurRefusalInReport: a refusal Sluice decided itself (Result.Ours: a
// relay without SMTPUTF8) is reported as an x-sluice diagnostic, not as
// an SMTP reply the remote server sent; the relay stays the Remote-MTA.
func TestOurRefusalInReport(t *testing.T) {
	c := newClock()
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		if m.From == "" {
			return sendAll(m, rcpts)
		}
		return []mail.Result{{Rcpt: rcpts[0], Status: mail.Bounced, Ours: true, Relay: "mx.dst.test[192.0.2.1]:25",
			Reply: mail.Reply{Code: 553, Enhanced: mail.MustEnhanced("5.6.7"), Text: "mx.dst.test does not support SMTPUTF8; not sent"}}}
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	q := openQueue(t, opts)
	env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "x@dst.test"}}}
	if _, err := q.Enqueue(context.Background(), env, []byte("Subject: s\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	run(t, q)
	eventually(t, "bounce delivered", func() bool { return len(bounces(d)) == 1 })
	b := bounces(d)[0].Body
	for _, want := range []string{"Status: 5.6.7\r\n", "Diagnostic-Code: x-sluice; mx.dst.test does not support SMTPUTF8; not sent\r\n",
		"Remote-MTA: dns; mx.dst.test\r\n"} {
		if !strings.Contains(b, want) {
			t.Errorf("report lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "smtp; 553") {
		t.Errorf("our own refusal reported as the server's SMTP reply:\n%s", b)
	}
}
