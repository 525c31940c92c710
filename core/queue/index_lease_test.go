package queue

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// leasedFilters are the filters TestIndexLeasedAtEnqueue compares
// (compareFilters, in pages of 3), on its messages: every kind, alone and
// combined.
var leasedFilters = []ListOptions{
	{State: StateQueued}, {State: StateDeferred}, {State: StateHeld},
	{Sender: "a@src.test"}, {Sender: "<B@SRC.TEST>"}, {Sender: "<>"},
	{Domain: "d1.test"}, {Domain: "@D2.Test."}, {Domain: "nowhere.test"},
	{Rcpt: "r3@d3.test"}, {Rcpt: "R4@D1.TEST"},
	{State: StateQueued, Domain: "d0.test"}, {State: StateHeld, Sender: "a@src.test"},
	{State: StateDeferred, Domain: "d1.test"}, {Sender: "b@src.test", Domain: "d3.test"},
}

// TestIndexLeasedAtEnqueue: a message leased at enqueue has no listing
// index entries while it keeps that lease, yet every filtered listing
// shows it, once, in ID order among indexed messages, in its state; an
// administrator's hold or release while it waits, and its deferral, give
// it its entries; and once every message has left its lease the index is
// exactly what the envelopes call for.
func TestIndexLeasedAtEnqueue(t *testing.T) {
	c := newClock()
	q, b, _, _ := handingQueue(t, c, func(o *Options) { o.Workers, o.HoldLifetime = 1, 48*time.Hour })
	ctx := context.Background()

	senders := []string{"a@src.test", "b@src.test", ""}
	var ids []string
	send := func(i int) {
		ids = append(ids, enqueue(t, q, senders[i%len(senders)], fmt.Sprintf("r%d@d%d.test", i, i%4), fmt.Sprintf("r%d@d%d.test", i+1, (i+1)%4)))
	}
	send(0)
	if got := <-b.started; got != ids[0] {
		t.Fatalf("delivering %s, want %s", got, ids[0])
	}
	for i := 1; i < 20; i++ {
		send(i)
	}
	for _, id := range ids {
		if lease, sched, err := leaseState(q, id); err != nil || !lease || sched {
			t.Fatalf("%s: lease %v, schedule entry %v (%v); want leased at enqueue", id, lease, sched, err)
		}
	}
	if n := checkIndex(t, q, "leased at enqueue"); n != len(ids) {
		t.Errorf("%d messages leased at enqueue without index entries, want all %d", n, len(ids))
	}
	compareFilters(t, q, "leased at enqueue", leasedFilters, 3)
	if got, _ := pageAll(t, q, ListOptions{State: StateQueued, Limit: 7}); !slices.Equal(got, ids) {
		t.Errorf("queued: listed %v, want every message %v", got, ids)
	}

	// The administrator, on messages waiting for the worker.
	held, again, released := ids[5], ids[9], ids[13]
	for _, op := range []struct {
		fn func(context.Context, string) error
		id string
	}{{q.Hold, held}, {q.Hold, again}, {q.Release, again}, {q.Release, released}} {
		if err := op.fn(ctx, op.id); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.FlushDomain(ctx, "D2.test"); err != nil {
		t.Fatal(err)
	}
	// The two held have their entries; a release or a flush of a message
	// not held leaves it as it is.
	if n := checkIndex(t, q, "after hold and release"); n != len(ids)-2 {
		t.Errorf("%d messages without index entries after hold and release, want %d", n, len(ids)-2)
	}
	compareFilters(t, q, "after hold and release", leasedFilters, 3)
	if got, _ := pageAll(t, q, ListOptions{State: StateHeld}); !slices.Equal(got, []string{held}) {
		t.Errorf("held: listed %v, want [%s]", got, held)
	}

	// Every other message is deferred, the others delivered; the held
	// one waits for its release.
	b.finish <- true
	deferred := map[string]bool{}
	for i := 1; i < len(ids); i++ {
		if ids[i] == held {
			continue
		}
		got := <-b.started
		deferred[got] = i%2 == 0
		b.finish <- !deferred[got]
	}
	eventually(t, "no message leased", func() bool {
		for _, id := range ids {
			if lease, _, err := leaseState(q, id); err != nil || lease {
				return false
			}
		}
		return true
	})
	if n := checkIndex(t, q, "attempted"); n != 0 {
		t.Errorf("%d messages without index entries after their attempts, want none", n)
	}
	compareFilters(t, q, "attempted", leasedFilters, 3)
	var want []string
	for _, id := range ids {
		if deferred[id] {
			want = append(want, id)
		}
	}
	if got, _ := pageAll(t, q, ListOptions{State: StateDeferred, Limit: 4}); len(want) == 0 || !slices.Equal(got, want) {
		t.Errorf("deferred: listed %v, want %v", got, want)
	}
}

// TestIndexLeasedAtEnqueueRebuilt: a rebuild of the index (a database
// from an older Sluice) while messages are leased at enqueue leaves them
// without entries, and lists them all the same.
func TestIndexLeasedAtEnqueueRebuilt(t *testing.T) {
	q, b, _, _ := handingQueue(t, newClock(), func(o *Options) { o.Workers = 1 })
	first := enqueue(t, q, "a@src.test", "first@d1.test")
	<-b.started
	waiting := []string{first, enqueue(t, q, "a@src.test", "w1@d1.test"), enqueue(t, q, "b@src.test", "w2@d1.test")}
	q.indexed.Store(false)
	if err := q.rebuildIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := checkIndex(t, q, "rebuilt"); n != len(waiting) {
		t.Errorf("%d messages without index entries after the rebuild, want %d", n, len(waiting))
	}
	if got, _ := pageAll(t, q, ListOptions{Domain: "d1.test", Limit: 2}); !slices.Equal(got, waiting) {
		t.Errorf("d1.test: listed %v, want %v", got, waiting)
	}
}

// checkRecovered fails unless the queue in opts.Dir, opened after a crash
// with ids leased at enqueue, lists each of them (queued, for dst.test)
// and has their index entries.
func checkRecovered(t *testing.T, opts Options, ids []string) {
	t.Helper()
	q := openQueue(t, opts)
	if n := checkIndex(t, q, "recovered"); n != 0 {
		t.Errorf("%d messages without index entries after recovering their leases", n)
	}
	for _, o := range []ListOptions{{Domain: "dst.test"}, {State: StateQueued}, {Sender: "a@src.test"}} {
		if got, _ := pageAll(t, q, o); !slices.Equal(got, ids) {
			t.Errorf("after the restart, %+v listed %v, want %v", o, got, ids)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
}
