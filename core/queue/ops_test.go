package queue

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// callsFor counts the delivery attempts of message id.
func callsFor(d *fakeDeliverer, id string) int {
	n := 0
	for _, c := range d.Calls() {
		if c.ID == id {
			n++
		}
	}
	return n
}

// idle reports whether no message is due or leased: every delivery that a
// flush caused has been made and recorded.
func idle(t *testing.T, q *Queue) bool {
	_, due, err := q.due(1)
	if err != nil {
		t.Fatal(err)
	}
	leased := false
	q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLease)})
		defer it.Close()
		it.Rewind()
		leased = it.Valid()
		return nil
	})
	return len(due) == 0 && !leased
}

func TestFlushDomain(t *testing.T) {
	c := newClock() // frozen: only a flush makes a deferred message due
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		var out []mail.Result
		for _, r := range rcpts {
			if r == "done@a.test" {
				out = append(out, mail.Result{Rcpt: r, Status: mail.Sent, Reply: mail.Reply{Enhanced: mail.MustEnhanced("2.0.0"), Text: "ok"}, Relay: "local"})
			}
		}
		return append(out, deferAll(m, slices.DeleteFunc(rcpts, func(r string) bool { return r == "done@a.test" }))...)
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	q := openQueue(t, opts)
	ids := map[string]string{
		"lower":      enqueue(t, q, "s@src.test", "x@a.test"),
		"upper":      enqueue(t, q, "s@src.test", "other@b.test", "Y@A.TEST"),
		"otherdom":   enqueue(t, q, "s@src.test", "y@b.test"),
		"subdomain":  enqueue(t, q, "s@src.test", "y@mx.a.test"),
		"donethere":  enqueue(t, q, "s@src.test", "done@a.test", "z@b.test"),
		"heldinside": enqueue(t, q, "s@src.test", "h@a.test"),
	}
	run(t, q)
	eventually(t, "first attempts", func() bool {
		for _, id := range ids {
			if callsFor(d, id) != 1 {
				return false
			}
		}
		return true
	})
	if err := q.Hold(context.Background(), ids["heldinside"]); err != nil {
		t.Fatal(err)
	}
	if err := q.FlushDomain(context.Background(), "A.Test."); err != nil {
		t.Fatal(err)
	}
	eventually(t, "flushed messages retried", func() bool {
		return callsFor(d, ids["lower"]) == 2 && callsFor(d, ids["upper"]) == 2
	})
	eventually(t, "queue idle", func() bool { return idle(t, q) })
	for _, name := range []string{"otherdom", "subdomain", "donethere", "heldinside"} {
		if n := callsFor(d, ids[name]); n != 1 {
			t.Errorf("%s: %d attempts, want 1 (not flushed)", name, n)
		}
	}
}

func TestAdminBounce(t *testing.T) {
	for _, tc := range []struct {
		name string
		from string
	}{{"sender", "a@src.test"}, {"null sender", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			d := &fakeDeliverer{fn: deferAll}
			opts := testOptions(t, t.TempDir(), c)
			opts.Deliverer = d
			logs := captureLog(t, &opts)
			q := openQueue(t, opts)
			env := &mail.Envelope{From: tc.from, Rcpts: []mail.Recipient{
				{Addr: "x@dst.test"}, {Addr: "y@dst.test", ORCPT: "rfc822;y@orig.test"}, {Addr: "n@dst.test", Notify: []string{"NEVER"}},
			}}
			id, err := q.Enqueue(context.Background(), env, []byte("Subject: s\r\n\r\nbody\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			run(t, q)
			eventually(t, "first attempt", func() bool { return callsFor(d, id) == 1 })
			if err := q.Bounce(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			if _, err := q.Get(context.Background(), id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Bounce: %v, want ErrNotFound", err)
			}
			for _, r := range []string{"x@dst.test", "y@dst.test", "n@dst.test"} {
				want := "msg=delivery id=" + id + " to=" + r + " relay=mx.dst.test[192.0.2.1]:25 delay=0s dsn=5.0.0 status=bounced"
				if !strings.Contains(logs.String(), want) {
					t.Errorf("log lacks %q", want)
				}
			}
			if tc.from == "" {
				eventually(t, "queue to empty", func() bool { return len(list(t, q)) == 0 })
				if n := len(reports(d, "failed")); n != 0 {
					t.Fatalf("%d DSNs for a null-sender message, want none", n)
				}
				return
			}
			eventually(t, "DSN delivered", func() bool { return len(reports(d, "failed")) == 1 })
			b := reports(d, "failed")[0]
			if !slices.Equal(b.Rcpts, []string{tc.from}) {
				t.Errorf("DSN to %v, want the sender", b.Rcpts)
			}
			for _, want := range []string{"Final-Recipient: rfc822; x@dst.test", "Final-Recipient: rfc822; y@dst.test",
				"Original-Recipient: rfc822; y@orig.test", "Status: 5.0.0", "bounced by the administrator"} {
				if !strings.Contains(b.Body, want) {
					t.Errorf("DSN lacks %q:\n%s", want, b.Body)
				}
			}
			if strings.Contains(b.Body, "n@dst.test") {
				t.Errorf("DSN names n@dst.test, which asked for NEVER")
			}
			if err := q.Bounce(context.Background(), id); !errors.Is(err, ErrNotFound) {
				t.Errorf("second Bounce: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestExpiryLogsBounced: an expired recipient is logged as bounced.
func TestExpiryLogsBounced(t *testing.T) {
	c := newClock()
	d := &fakeDeliverer{fn: deferAll}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	logs := captureLog(t, &opts)
	q := openQueue(t, opts)
	id := enqueue(t, q, "a@src.test", "x@dst.test")
	run(t, q)
	eventually(t, "first attempt", func() bool { return callsFor(d, id) == 1 })
	c.Add(opts.MaxLifetime + opts.MaxBackoff)
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "queue to empty", func() bool { return len(list(t, q)) == 0 })
	if want := "to=x@dst.test relay=mx.dst.test[192.0.2.1]:25 delay=25h0m0s dsn=4.4.7 status=bounced"; !strings.Contains(logs.String(), want) {
		t.Errorf("log lacks %q", want)
	}
}
