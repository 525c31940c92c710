package queue

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/internal/testwait"
	"github.com/sluice-mta/sluice/core/mail"
)

// checkIndex fails unless the stored index entries are exactly those the
// stored envelopes call for (ixEntries), keys and (empty) values, but for
// the messages leased at enqueue and not indexed (a lease without value),
// which must have none. It returns how many of those there are.
func checkIndex(t *testing.T, q *Queue, when string) (unindexed int) {
	t.Helper()
	want := map[string][]byte{}
	got := map[string][]byte{}
	err := q.db.View(func(txn *badger.Txn) error {
		// One snapshot for the envelopes, the leases and the entries.
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixMsg)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			var env mail.Envelope
			if err := it.Item().Value(func(v []byte) error { return decodeEnvelope(v, &env) }); err != nil {
				return err
			}
			if _, lk, err := storedEntries(txn, &env); err != nil {
				return err
			} else if lk == leasedUnindexed {
				unindexed++
				continue
			}
			for _, e := range ixEntries(&env) {
				want[string(e.key)] = nil // entries have no value
			}
		}
		ix := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixIndex)})
		defer ix.Close()
		for ix.Rewind(); ix.Valid(); ix.Next() {
			k := ix.Item().KeyCopy(nil)
			if bytes.Equal(k, indexDoneKey) {
				continue
			}
			v, err := ix.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			got[string(k)] = v
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	bad := 0
	for k, v := range want {
		if g, ok := got[k]; !ok || !bytes.Equal(g, v) {
			if bad++; bad <= 5 {
				kind, field, id, _ := parseIxKey([]byte(k))
				t.Errorf("%s: index entry %c %q %s: stored %q (present %v), want %q", when, kind, field, id, g, ok, v)
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			if bad++; bad <= 5 {
				kind, field, id, _ := parseIxKey([]byte(k))
				t.Errorf("%s: stale index entry %c %q %s", when, kind, field, id)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d index entries out of step (%d envelopes' worth)", when, bad, len(want))
	}
	t.Logf("%s: %d index entries in step, %d messages leased at enqueue without", when, len(want), unindexed)
	return unindexed
}

// pageAll pages through q with o (Limit as given) and returns the IDs.
func pageAll(t *testing.T, q *Queue, o ListOptions) (ids []string, pages int) {
	t.Helper()
	for {
		p, err := q.Page(context.Background(), o)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, env := range p.Messages {
			ids = append(ids, env.ID)
		}
		if p.Next == "" {
			return ids, pages
		}
		if p.Next <= o.After {
			t.Fatalf("%+v: page %d's Next %q does not move past %q", o, pages, p.Next, o.After)
		}
		o.After = p.Next
	}
}

// listFilters are the filters the tests compare: every kind, in odd
// spellings, matching many, few and none, and combined.
var listFilters = []ListOptions{
	{State: StateQueued}, {State: StateDeferred}, {State: StateHeld},
	{Sender: "a@src.test"}, {Sender: "<A@SRC.TEST>"}, {Sender: "<>"}, {Sender: "c@other.test"}, {Sender: "nobody@nowhere.test"},
	{Rcpt: "later1@d1.test"}, {Rcpt: "LATER7@D7.Test."}, {Rcpt: "ok3@d3.test"}, {Rcpt: "a@src.test"}, {Rcpt: "nobody@d1.test"},
	{Domain: "d0.test"}, {Domain: "@D4.TEST."}, {Domain: "mixed.case.test"}, {Domain: "src.test"}, {Domain: "nowhere.test"},
	{State: StateDeferred, Domain: "d2.test"}, {State: StateHeld, Sender: "a@src.test"},
	{Sender: "b@src.test", Rcpt: "later5@d5.test"}, {Rcpt: "later1@d1.test", Domain: "d2.test"},
	{State: StateQueued, Sender: "<>", Domain: "src.test"},
	{Rcpt: "<Later7@mixed.case.test>"}, {State: StateDeferred, Rcpt: "later3@d3.test"}, {State: StateHeld, Rcpt: "later1@d1.test"},
	{Sender: "<>", Rcpt: "later2@d2.test"}, {Rcpt: "later4@d4.test", Domain: "D4.test"}, {State: StateQueued, Sender: "c@other.test", Rcpt: "hold6@d6.test"},
}

// compareListings fails unless every filter of listFilters lists the
// same messages, page by page, seeking the index as reading every
// envelope, and as the envelopes themselves say.
func compareListings(t *testing.T, q *Queue, when string) {
	t.Helper()
	compareFilters(t, q, when, listFilters, 7)
}

// compareFilters is compareListings for filters, in pages of limit.
func compareFilters(t *testing.T, q *Queue, when string, filters []ListOptions, limit int) {
	t.Helper()
	all := list(t, q)
	for _, o := range filters {
		f := newFilter(o)
		var want []string
		for _, env := range all {
			if f.ok(&env) {
				want = append(want, env.ID)
			}
		}
		o.Limit = limit
		got, _ := pageAll(t, q, o)
		q.opts.listScan = true
		scanned, _ := pageAll(t, q, o)
		q.opts.listScan = false
		if !slices.Equal(got, want) || !slices.Equal(scanned, want) {
			t.Errorf("%s: %+v: index listed %d %v…, scan %d, want %d %v…", when, o, len(got), got[:min(3, len(got))], len(scanned), len(want), want[:min(3, len(want))])
		}
	}
}

// quiet waits until q has no lease and nothing due at the test clock's now.
func quiet(t *testing.T, q *Queue, now func() time.Time) {
	t.Helper()
	// The deadline is only against a hang: 2,000 attempts under -race on a busy box.
	testwait.Until(t, 3*time.Minute, "the queue to settle", func() bool {
		busy := false
		err := q.db.View(func(txn *badger.Txn) error {
			for _, p := range []string{prefixLease, prefixSched} {
				it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(p)})
				for it.Rewind(); it.Valid(); it.Next() {
					if p == prefixLease {
						busy = true
						break
					}
					if due, _, ok := parseSchedKey(it.Item().Key()); ok && !due.After(now()) {
						busy = true
						break
					}
				}
				it.Close()
			}
			return nil
		})
		return err == nil && !busy
	})
}

// TestIndexInStep: the listing index stays exactly in step with the
// envelopes through enqueue (held or not), delivery (delivered, bounced
// with a DSN, deferred, held by a deliver-stage plugin), hold, release,
// remove, bounce, flush, hold expiry and restarts; and every filter lists
// the same messages by the index as by reading every envelope, in pages
// that resume after each other.
func TestIndexInStep(t *testing.T) {
	c := newClock()
	// A recipient's local part says what its delivery does.
	var attempts atomic.Int64
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		attempts.Add(1)
		var out []mail.Result
		for _, r := range rcpts {
			switch local, _, _ := mail.Split(r); {
			case strings.HasPrefix(local, "ok"):
				out = append(out, mail.Result{Rcpt: r, Status: mail.Sent, Reply: mail.Reply{Code: 250, Enhanced: mail.MustEnhanced("2.0.0"), Text: "ok"}})
			case strings.HasPrefix(local, "no"):
				out = append(out, mail.BouncedResult(r, "mx:25", mail.Reply{Code: 550, Enhanced: mail.MustEnhanced("5.1.1"), Text: "no such user"}))
			case strings.HasPrefix(local, "hold"):
				out = append(out, mail.HeldResult(r, "plugin p", mail.Reply{Code: 451, Enhanced: mail.MustEnhanced("4.7.0"), Text: "quarantined"}))
			default:
				out = append(out, mail.DeferredResult(r, "mx:25", mail.Reply{Code: 451, Enhanced: mail.MustEnhanced("4.4.1"), Text: "try later"}))
			}
		}
		return out
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	opts.HoldLifetime = 48 * time.Hour
	opts.MaxLifetime = 30 * 24 * time.Hour
	opts.scanBudget = 40
	opts.Logger = nil // thousands of lines
	q := openQueue(t, opts)
	ctx := context.Background()

	senders := []string{"a@src.test", "A@Src.Test", "", "c@other.test", "b@src.test"}
	kinds := []string{"later", "later", "later", "ok", "no", "hold"}
	var ids []string
	for i := range 2000 {
		env := &mail.Envelope{From: senders[i%len(senders)]}
		for j := range 1 + i%3 {
			dom := fmt.Sprintf("d%d.test", (i+j)%10)
			if (i+j)%97 == 0 {
				dom = "Mixed.Case.TEST."
			}
			env.Rcpts = append(env.Rcpts, mail.Recipient{Addr: fmt.Sprintf("%s%d@%s", kinds[(i*7+j)%len(kinds)], (i+j)%10, dom)})
		}
		env.Held = i%50 == 0
		id, err := q.Enqueue(ctx, env, []byte("Subject: t\r\n\r\nb\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	checkIndex(t, q, "enqueued")
	compareListings(t, q, "enqueued")

	// Every message not held is attempted once.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- q.Run(runCtx) }()
	quiet(t, q, c.Now)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d attempts", attempts.Load())
	checkIndex(t, q, "attempted")
	compareListings(t, q, "attempted")

	// The administrator's commands, on messages in every state.
	var held []string
	for i, env := range list(t, q) {
		var err error
		switch i % 9 {
		case 0:
			err = q.Hold(ctx, env.ID)
			held = append(held, env.ID)
		case 1:
			err = q.Release(ctx, env.ID)
		case 2:
			err = q.Remove(ctx, env.ID)
		case 3:
			err = q.Bounce(ctx, env.ID)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := q.FlushDomain(ctx, "D3.test"); err != nil {
		t.Fatal(err)
	}
	checkIndex(t, q, "after hold, release, remove, bounce, flush")
	compareListings(t, q, "after hold, release, remove, bounce, flush")

	// A restart: the index is kept, not rebuilt.
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, opts)
	if !q.indexReady() {
		t.Fatal("the index is not ready at once after a restart")
	}
	checkIndex(t, q, "restarted")

	// Two days on: retries are due, holds expire (bounced, removed).
	c.Add(49 * time.Hour)
	runCtx, stop = context.WithCancel(ctx)
	go func() { done <- q.Run(runCtx) }()
	quiet(t, q, c.Now)
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, id := range held {
		if envOf(t, q, id) != nil {
			t.Errorf("%s held past its lifetime and still queued", id)
		}
	}
	checkIndex(t, q, "after retries and hold expiry")
	compareListings(t, q, "after retries and hold expiry")
}

// TestIndexRebuilt: a queue written without the index (as by an older
// Sluice) is indexed in the background when it opens, listing correctly
// meanwhile, and is in step once done.
func TestIndexRebuilt(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	opts.Logger = nil
	q := openQueue(t, opts)
	for i := range 1500 {
		enqueue(t, q, fmt.Sprintf("s%d@src.test", i%3), fmt.Sprintf("u%d@d%d.test", i, i%7))
	}
	if err := q.db.DropPrefix([]byte(prefixIndex)); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, opts)
	// Whether or not the rebuild is done, the listing is right.
	if ids, _ := pageAll(t, q, ListOptions{Domain: "d3.test", Limit: 1000}); len(ids) != 214 {
		t.Errorf("while indexing: %d messages for d3.test, want 214", len(ids))
	}
	eventually(t, "the index to be rebuilt", q.indexReady)
	checkIndex(t, q, "rebuilt")
	compareListings(t, q, "rebuilt")
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, opts)
	if !q.indexReady() {
		t.Error("the rebuilt index is not ready at once after a restart")
	}
}

// TestPageRareFilterIndexed: with the index, a filter that passes one
// message in thousands (or none) answers in one page, whatever the budget.
func TestPageRareFilterIndexed(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	opts.scanBudget = 50
	opts.Logger = nil
	q := openQueue(t, opts)
	want := enqueueRare(t, q)
	for _, o := range []ListOptions{{Domain: "rare.test"}, {Rcpt: "needle@rare.test"}, {Rcpt: "user1235@dead5.test"}} {
		ids, pages := pageAll(t, q, o)
		if len(ids) != 1 || (o.Rcpt != "user1235@dead5.test" && ids[0] != want) || pages != 1 {
			t.Errorf("%+v: found %v in %d pages, want one message in one page", o, ids, pages)
		}
	}
	for _, o := range []ListOptions{{Domain: "nowhere.test"}, {State: StateHeld}, {Sender: "nobody@nowhere.test"}, {Rcpt: "nobody@dead3.test"}} {
		if ids, pages := pageAll(t, q, o); len(ids) != 0 || pages != 1 {
			t.Errorf("%+v: found %v in %d pages, want none in one page", o, ids, pages)
		}
	}
}

// TestIxEntriesSorted: the entries of an envelope are sorted by key, one
// per domain and one per address of its pending recipients, none with a
// value, as writeIndex needs.
func TestIxEntriesSorted(t *testing.T) {
	env := &mail.Envelope{ID: "D84WVHER12ABNX31", From: "S@Src.Test", Attempts: 1, Rcpts: []mail.Recipient{
		{Addr: "z@b.test"}, {Addr: "Y@A.Test."}, {Addr: "done@a.test", State: mail.Delivered}, {Addr: "x@b.test"},
		{Addr: "w@c.test.."}, {Addr: "Z@B.TEST"}, {Addr: "s@src.test"},
	}}
	got := ixEntries(env)
	if !slices.IsSortedFunc(got, func(a, b ixEntry) int { return bytes.Compare(a.key, b.key) }) {
		t.Errorf("entries not sorted: %q", got)
	}
	var want []string
	for _, d := range []string{"a.test", "b.test", "c.test.", "src.test"} {
		want = append(want, string(ixKey(ixDomain, d, env.ID)))
	}
	want = append(want, string(ixKey(ixSender, "s@src.test", env.ID)))
	for _, r := range []string{"s@src.test", "w@c.test.", "x@b.test", "y@a.test", "z@b.test"} {
		want = append(want, string(ixKey(ixRcpt, r, env.ID)))
	}
	want = append(want, string(ixKey(ixState, StateDeferred, env.ID)))
	slices.Sort(want)
	var keys []string
	for _, e := range got {
		keys = append(keys, string(e.key))
	}
	if !slices.Equal(keys, want) {
		t.Errorf("entries\n%q\nwant\n%q", keys, want)
	}
}
