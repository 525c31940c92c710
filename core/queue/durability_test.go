package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
)

func TestHoldReleaseRemove(t *testing.T) {
	c := newClock()
	q := openQueue(t, testOptions(t, t.TempDir(), c))
	ctx := context.Background()
	a := enqueue(t, q, "a@src.test", "x@dst.test")
	b := enqueue(t, q, "a@src.test", "y@dst.test")
	dueIDs := func() []string {
		_, es, err := q.due(10)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.id)
		}
		return ids
	}
	if got := dueIDs(); fmt.Sprint(got) != fmt.Sprint([]string{a, b}) {
		t.Fatalf("due %v, want [%s %s]", got, a, b)
	}
	if err := q.Hold(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got := dueIDs(); fmt.Sprint(got) != fmt.Sprint([]string{b}) {
		t.Errorf("due after Hold %v, want only %s", got, b)
	}
	if err := q.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if m, _ := q.Get(ctx, a); !m.Held || len(dueIDs()) != 1 {
		t.Errorf("Flush scheduled a held message (held=%v, due %v)", m.Held, dueIDs())
	}
	c.Add(1)
	if err := q.Release(ctx, a); err != nil {
		t.Fatal(err)
	}
	if got := dueIDs(); fmt.Sprint(got) != fmt.Sprint([]string{b, a}) {
		t.Errorf("due after Release %v, want [%s %s]", got, b, a)
	}
	if err := q.Remove(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Get(ctx, a); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove: %v, want ErrNotFound", err)
	}
	assertNoKeys(t, q, a)
	for name, op := range map[string]func(context.Context, string) error{"Hold": q.Hold, "Release": q.Release, "Remove": q.Remove} {
		if err := op(ctx, "NOSUCHID"); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s of unknown ID: %v, want ErrNotFound", name, err)
		}
	}
}

func TestHeldNotDelivered(t *testing.T) {
	c := newClock()
	d := &fakeDeliverer{fn: sendAll}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer = d
	q := openQueue(t, opts)
	held := enqueue(t, q, "a@src.test", "x@dst.test")
	if err := q.Hold(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	other := enqueue(t, q, "a@src.test", "y@dst.test")
	run(t, q)
	eventually(t, "other delivered", func() bool { return len(list(t, q)) == 1 })
	if calls := d.Calls(); len(calls) != 1 || calls[0].ID != other {
		t.Fatalf("calls %+v, want only %s", calls, other)
	}
	if err := q.Release(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	eventually(t, "released message delivered", func() bool { return len(list(t, q)) == 0 })
}

func TestRestartDeliversQueuedAndLeased(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	opts := testOptions(t, dir, c)
	q, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := range 3 {
		ids = append(ids, enqueue(t, q, "a@src.test", fmt.Sprintf("r%d@dst.test", i)))
	}
	// A worker of this process leases the first message and then dies.
	_, es, err := q.due(1)
	if err != nil || len(es) != 1 {
		t.Fatalf("due: %v %v", es, err)
	}
	if env, err := q.lease(es[0]); env == nil || err != nil {
		t.Fatalf("lease: %v %v", env, err)
	}
	if _, es, _ := q.due(10); len(es) != 2 {
		t.Fatalf("leased message still scheduled: %v", es)
	}
	d := restartDelivering(t, q, opts)
	got := map[string]bool{}
	for _, c := range d.Calls() {
		got[c.ID] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("%s not delivered after restart", id)
		}
	}
}

func TestConcurrentEnqueue(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	opts := testOptions(t, dir, c)
	q, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 50, 4
	ids := make(chan string, writers*each)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: fmt.Sprintf("w%d-%d@dst.test", w, i)}}}
				id, err := q.Enqueue(context.Background(), env, bytes.Repeat([]byte("x"), 10<<10))
				if err != nil {
					t.Error(err)
					return
				}
				ids <- id
			}
		})
	}
	wg.Wait()
	close(ids)
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for id := range ids {
		want[id] = true
	}
	if len(want) != writers*each {
		t.Fatalf("%d distinct IDs, want %d", len(want), writers*each)
	}

	d := &fakeDeliverer{fn: sendAll}
	opts.Deliverer = d
	q = openQueue(t, opts)
	if n := len(list(t, q)); n != writers*each {
		t.Fatalf("%d messages after reopen, want %d", n, writers*each)
	}
	run(t, q)
	eventually(t, "all delivered", func() bool { return len(list(t, q)) == 0 })
	for _, c := range d.Calls() {
		delete(want, c.ID)
	}
	if len(want) != 0 {
		t.Errorf("%d messages never delivered", len(want))
	}
}

// TestRotatedMemtablesSynced forces memtable rotations during concurrent
// enqueues and checks that, when Enqueue returns, every WAL (.mem) file
// holding the new message has been fdatasync'ed after Enqueue began; DB.Sync
// alone syncs only the active memtable.
func TestRotatedMemtablesSynced(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	opts := testOptions(t, dir, c)
	opts.memTableSize = 512 << 10
	opts.valueThreshold = 16 << 10 // 10 KiB bodies in the WAL: it fills fast
	var mu sync.Mutex
	seq := 0
	synced := map[string]int{} // file → sequence number of its last fsync
	opts.onFileSync = func(p string) {
		mu.Lock()
		seq++
		synced[filepath.Base(p)] = seq
		mu.Unlock()
	}
	q, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg      sync.Mutex
		seen    = map[string]bool{}
		inOld   int // messages found in a memtable other than the newest
		checked int
	)
	var all sync.WaitGroup
	var idsMu sync.Mutex
	var ids []string
	body := bytes.Repeat([]byte("y"), 10<<10)
	for w := range 50 {
		all.Go(func() {
			for i := range 16 {
				mu.Lock()
				start := seq
				mu.Unlock()
				env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: fmt.Sprintf("w%d-%d@dst.test", w, i)}}}
				id, err := q.Enqueue(context.Background(), env, body)
				if err != nil {
					t.Error(err)
					return
				}
				idsMu.Lock()
				ids = append(ids, id)
				idsMu.Unlock()
				holders, mems := walsHolding(t, dir, id)
				for _, w := range holders {
					mu.Lock()
					last := synced[w.name]
					mu.Unlock()
					wg.Lock()
					checked++
					if !w.newest {
						inOld++
					}
					wg.Unlock()
					if last <= start {
						t.Errorf("%s acknowledged while %s, which holds it, was not synced since", id, w.name)
					}
				}
				wg.Lock()
				for _, m := range mems {
					seen[m] = true
				}
				wg.Unlock()
			}
		})
	}
	all.Wait()
	t.Logf("%d memtables seen, %d checks, %d in a rotated memtable", len(seen), checked, inOld)
	if len(seen) < 3 || inOld == 0 {
		t.Errorf("test did not exercise rotation: %d memtables, %d messages found in rotated ones", len(seen), inOld)
	}
	reopenFinds(t, q, opts, ids)
}
