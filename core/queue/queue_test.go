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

func TestDeliveredAndRemoved(t *testing.T) {
	c := newClock()
	d := &fakeDeliverer{fn: sendAll}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	q := openQueue(t, opts)
	id := enqueue(t, q, "a@src.test", "x@dst.test", "y@dst.test")
	if len(id) != 16 || strings.Trim(id, "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
		t.Errorf("ID %q: want 16 characters of [0-9A-Z]", id)
	}
	run(t, q)
	eventually(t, "queue to empty", func() bool { return len(list(t, q)) == 0 })
	calls := d.Calls()
	if len(calls) != 1 || calls[0].ID != id || !slices.Equal(calls[0].Rcpts, []string{"x@dst.test", "y@dst.test"}) {
		t.Fatalf("calls = %+v", calls)
	}
	if !strings.Contains(calls[0].Body, "hello") {
		t.Errorf("body not handed over: %q", calls[0].Body)
	}
	if _, err := q.Get(context.Background(), id); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after delivery: %v, want ErrNotFound", err)
	}
	assertNoKeys(t, q, id)
}

// assertNoKeys fails if any record of id is left.
func assertNoKeys(t *testing.T, q *Queue, id string) {
	t.Helper()
	q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if strings.HasSuffix(string(it.Item().Key()), id) {
				t.Errorf("key %q left behind", it.Item().Key())
			}
		}
		return nil
	})
}

func TestIDsOrdered(t *testing.T) {
	c := newClock() // frozen clock: IDs must still be unique and ordered
	q := openQueue(t, testOptions(t, t.TempDir(), c))
	var ids []string
	for range 20 {
		ids = append(ids, enqueue(t, q, "a@src.test", "x@dst.test"))
	}
	envs := list(t, q)
	var got []string
	for _, e := range envs {
		got = append(got, e.ID)
	}
	if !slices.Equal(got, ids) || !slices.IsSorted(ids) {
		t.Errorf("List IDs %v, enqueued %v: want both equal and sorted", got, ids)
	}
}

func TestDeferredThenSent(t *testing.T) {
	c := newClock()
	attempt := 0
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		attempt++
		if attempt == 1 {
			return []mail.Result{{Rcpt: rcpts[0], Status: mail.Deferred, Reply: mail.Reply{Code: 451, Enhanced: mail.MustEnhanced("4.3.0"), Text: "try later"}, Relay: "mx.dst.test[192.0.2.1]:25"}}
		}
		return sendAll(m, rcpts)
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	q := openQueue(t, opts)
	id := enqueue(t, q, "a@src.test", "x@dst.test")
	run(t, q)
	eventually(t, "first attempt recorded", func() bool {
		m, err := q.Get(context.Background(), id)
		return err == nil && m.Attempts == 1
	})
	m, _ := q.Get(context.Background(), id)
	r := m.Rcpts[0]
	if r.State != mail.Pending || r.Attempts != 1 || r.DSNCode != "4.3.0" || r.LastError != "try later" || r.Relay != "mx.dst.test[192.0.2.1]:25" {
		t.Errorf("recipient after deferral = %+v", r)
	}
	if wait := m.NextAttempt.Sub(c.Now()); wait < opts.MinBackoff*9/10 || wait > opts.MinBackoff*11/10 {
		t.Errorf("next attempt in %v, want about %v", wait, opts.MinBackoff)
	}
	if n := len(d.Calls()); n != 1 {
		t.Fatalf("%d attempts before the backoff passed, want 1", n)
	}
	c.Add(opts.MinBackoff * 2)
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "delivery after backoff", func() bool { return len(list(t, q)) == 0 })
	if n := len(d.Calls()); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}
}

func TestBackoff(t *testing.T) {
	q := &Queue{opts: Options{MinBackoff: 5 * 60e9, MaxBackoff: 60 * 60e9, MaxLifetime: 1e18}}
	now := newClock().Now()
	for _, tc := range []struct {
		attempts int
		want     float64 // minutes
	}{{1, 5}, {2, 10}, {3, 20}, {4, 40}, {5, 60}, {30, 60}} {
		env := &mail.Envelope{Attempts: tc.attempts, Received: now}
		got := q.nextAttempt(env, now).Sub(now).Minutes()
		if got < tc.want*0.94 || got > tc.want*1.06 {
			t.Errorf("attempts %d: backoff %.1f min, want %.0f ±5%%", tc.attempts, got, tc.want)
		}
	}
}

// bounces returns the deliveries of null-sender messages.
func bounces(d *fakeDeliverer) []call {
	var out []call
	for _, c := range d.Calls() {
		if c.From == "" {
			out = append(out, c)
		}
	}
	return out
}

func TestMixedResults(t *testing.T) {
	c := newClock()
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		if m.From == "" {
			return sendAll(m, rcpts)
		}
		var out []mail.Result
		for _, r := range rcpts {
			switch r {
			case "ok@dst.test":
				out = append(out, mail.Result{Rcpt: r, Status: mail.Sent, Reply: mail.Reply{Enhanced: mail.MustEnhanced("2.0.0"), Text: "ok"}, Relay: "local"})
			case "bad@dst.test":
				out = append(out, mail.Result{Rcpt: r, Status: mail.Bounced, Reply: mail.Reply{Code: 550, Enhanced: mail.MustEnhanced("5.1.1"), Text: "no such user"}, Relay: "mx[192.0.2.1]:25"})
			}
			// later@dst.test: no result at all, so deferred
		}
		return out
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	q := openQueue(t, opts)
	id := enqueue(t, q, "a@src.test", "ok@dst.test", "bad@dst.test", "later@dst.test")
	run(t, q)
	eventually(t, "bounce delivered", func() bool { return len(bounces(d)) == 1 })
	m, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]mail.RcptState{"ok@dst.test": mail.Delivered, "bad@dst.test": mail.Failed, "later@dst.test": mail.Pending}
	for _, r := range m.Rcpts {
		if r.State != want[r.Addr] {
			t.Errorf("%s: state %v, want %v", r.Addr, r.State, want[r.Addr])
		}
		if r.Addr == "later@dst.test" && (r.Attempts != 1 || r.LastError == "") {
			t.Errorf("deferred recipient = %+v, want 1 attempt and an error", r)
		}
		// The delivered and the bounced recipient were tried once too:
		// `queue ls` must not show them as never attempted.
		if r.Attempts != 1 {
			t.Errorf("%s: %d attempts, want 1", r.Addr, r.Attempts)
		}
	}
	b := bounces(d)[0]
	if !slices.Equal(b.Rcpts, []string{"a@src.test"}) {
		t.Errorf("bounce went to %v, want the sender", b.Rcpts)
	}
	if !strings.Contains(b.Body, "bad@dst.test") || strings.Contains(b.Body, "later@dst.test") || strings.Contains(b.Body, "rfc822;ok@") {
		t.Errorf("bounce should name only bad@dst.test:\n%s", b.Body)
	}
}

func TestExpiryBounces(t *testing.T) {
	c := newClock()
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		if m.From == "" {
			return sendAll(m, rcpts)
		}
		return []mail.Result{{Rcpt: rcpts[0], Status: mail.Deferred, Reply: mail.Reply{Code: 421, Enhanced: mail.MustEnhanced("4.4.2"), Text: "timeout"}, Relay: "mx[192.0.2.1]:25"}}
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	q := openQueue(t, opts)
	id := enqueue(t, q, "a@src.test", "x@dst.test")
	run(t, q)
	eventually(t, "first attempt", func() bool { return len(d.Calls()) == 1 })
	c.Add(opts.MaxLifetime + opts.MaxBackoff)
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bounce delivered", func() bool { return len(bounces(d)) == 1 })
	eventually(t, "queue to empty", func() bool { return len(list(t, q)) == 0 })
	b := bounces(d)[0]
	if !slices.Equal(b.Rcpts, []string{"a@src.test"}) || b.ID == id {
		t.Errorf("bounce %+v: want a new message to the sender", b)
	}
	if !strings.Contains(b.Body, "4.4.7") || !strings.Contains(b.Body, "x@dst.test") {
		t.Errorf("bounce lacks 4.4.7 for x@dst.test:\n%s", b.Body)
	}
}

func TestNoBounceOfBounce(t *testing.T) {
	c := newClock()
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		return []mail.Result{{Rcpt: rcpts[0], Status: mail.Bounced, Reply: mail.Reply{Code: 550, Enhanced: mail.MustEnhanced("5.1.1"), Text: "no such user"}}}
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	q := openQueue(t, opts)
	enqueue(t, q, "", "x@dst.test")
	run(t, q)
	eventually(t, "queue to empty", func() bool { return len(d.Calls()) == 1 && len(list(t, q)) == 0 })
	if n := len(d.Calls()); n != 1 {
		t.Errorf("%d deliveries, want 1 (no bounce of a bounce)", n)
	}
}

func TestNotify(t *testing.T) {
	for _, tc := range []struct {
		name   string
		notify map[string][]string
		want   []string // recipients named in the bounce; nil = no bounce
	}{
		{"default", nil, []string{"x@dst.test", "y@dst.test"}},
		{"one never", map[string][]string{"x@dst.test": {"NEVER"}}, []string{"y@dst.test"}},
		{"all never", map[string][]string{"x@dst.test": {"NEVER"}, "y@dst.test": {"NEVER"}}, nil},
		{"delay only", map[string][]string{"x@dst.test": {"DELAY"}, "y@dst.test": {"SUCCESS", "FAILURE"}}, []string{"y@dst.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
				if m.From == "" {
					return sendAll(m, rcpts)
				}
				var out []mail.Result
				for _, r := range rcpts {
					out = append(out, mail.Result{Rcpt: r, Status: mail.Bounced, Reply: mail.Reply{Code: 550, Enhanced: mail.MustEnhanced("5.1.1"), Text: "no such user"}})
				}
				return out
			}}
			opts := testOptions(t, t.TempDir(), c)
			opts.Deliverer = d
			q := openQueue(t, opts)
			env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{
				{Addr: "x@dst.test", Notify: tc.notify["x@dst.test"]},
				{Addr: "y@dst.test", Notify: tc.notify["y@dst.test"]},
			}}
			if _, err := q.Enqueue(context.Background(), env, []byte("hi\r\n")); err != nil {
				t.Fatal(err)
			}
			run(t, q)
			eventually(t, "queue to empty", func() bool {
				return len(list(t, q)) == 0 && len(d.Calls()) == 1+min(len(tc.want), 1)
			})
			bs := bounces(d)
			if tc.want == nil {
				if len(bs) != 0 {
					t.Fatalf("got bounce %+v, want none", bs)
				}
				return
			}
			if len(bs) != 1 {
				t.Fatalf("got %d bounces, want 1", len(bs))
			}
			for _, r := range []string{"x@dst.test", "y@dst.test"} {
				if got, want := strings.Contains(bs[0].Body, r), slices.Contains(tc.want, r); got != want {
					t.Errorf("bounce names %s: %v, want %v\n%s", r, got, want, bs[0].Body)
				}
			}
		})
	}
}
