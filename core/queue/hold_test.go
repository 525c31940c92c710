package queue

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// envOf returns the queued envelope of id, or nil.
func envOf(t *testing.T, q *Queue, id string) *mail.Envelope {
	t.Helper()
	for _, e := range list(t, q) {
		if e.ID == id {
			return &e
		}
	}
	return nil
}

// TestHoldSemantics: a message is held the same way whoever holds it — a
// plugin before queueing, a deliver-stage plugin (a Held result), the
// administrator — with its reason stored; a release clears it; one not
// released within HoldLifetime is bounced with a DSN saying why.
func TestHoldSemantics(t *testing.T) {
	c := newClock()
	quarantine := "quarantined by plugin p: looks bad"
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		if strings.Contains(string(m.Body), "hold me") {
			var out []mail.Result
			for _, r := range rcpts {
				out = append(out, mail.HeldResult(r, "plugin p", mail.Reply{Code: 451, Enhanced: mail.EnhancedCode{4, 7, 0}, Text: quarantine}))
			}
			return out
		}
		return sendAll(m, rcpts)
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	opts.HoldLifetime = 48 * time.Hour
	q := openQueue(t, opts)
	ctx := context.Background()

	// Held when queued (a quarantine before deliver).
	held := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "x@dst.test"}}, Held: true, HoldReason: quarantine}
	heldID, err := q.Enqueue(ctx, held, []byte("Subject: s\r\n\r\nb\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Held by a deliver-stage plugin.
	dl := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "y@dst.test"}}}
	dlID, err := q.Enqueue(ctx, dl, []byte("Subject: s\r\n\r\nhold me\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Held by the administrator, then released.
	adminID := enqueue(t, q, "a@src.test", "z@dst.test")
	if err := q.Hold(ctx, adminID); err != nil {
		t.Fatal(err)
	}
	run(t, q)
	eventually(t, "the deliver-stage hold", func() bool { e := envOf(t, q, dlID); return e != nil && e.Held })
	for id, reason := range map[string]string{heldID: quarantine, dlID: quarantine, adminID: "held by the administrator"} {
		e := envOf(t, q, id)
		if e == nil || !e.Held || e.HoldReason != reason || !e.HeldAt.Equal(c.Now()) {
			t.Fatalf("%s: %+v, want held at %v for %q", id, e, c.Now(), reason)
		}
		if e.Attempts != 0 || e.Rcpts[0].Attempts != 0 {
			t.Errorf("%s: a hold counted an attempt: %+v", id, e)
		}
	}
	if err := q.Release(ctx, adminID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the released message to go", func() bool { return envOf(t, q, adminID) == nil })
	if n := callsFor(d, heldID); n != 0 {
		t.Errorf("a held message was delivered %d times", n)
	}

	// Just before the hold lifetime nothing expires; after it both go,
	// each with a DSN saying why.
	c.Add(opts.HoldLifetime - time.Minute)
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if e := envOf(t, q, heldID); e == nil || !e.Held {
		t.Fatalf("expired early: %+v", e)
	}
	c.Add(time.Minute)
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "two DSNs", func() bool { return len(reports(d, "failed")) == 2 })
	for _, id := range []string{heldID, dlID} {
		if envOf(t, q, id) != nil {
			t.Errorf("%s still queued after its hold lifetime", id)
		}
	}
	for _, b := range reports(d, "failed") {
		if !slices.Equal(b.Rcpts, []string{"a@src.test"}) {
			t.Errorf("DSN to %v, want the sender", b.Rcpts)
		}
		for _, want := range []string{"Status: 5.7.1", "held (quarantined by plugin p: looks bad) and not released within 48h0m0s"} {
			if !strings.Contains(strings.ReplaceAll(b.Body, "\r\n ", " "), want) {
				t.Errorf("DSN lacks %q:\n%s", want, b.Body)
			}
		}
	}
}
