package queue

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// deferFirst defers every message's first attempt and sends the rest;
// addresses at sent.test are sent at once.
func deferFirst() *fakeDeliverer {
	var mu sync.Mutex
	seen := map[string]bool{}
	return &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		mu.Lock()
		again := seen[m.ID]
		seen[m.ID] = true
		mu.Unlock()
		if again || strings.HasSuffix(rcpts[0], "@sent.test") {
			return sendAll(m, rcpts)
		}
		return []mail.Result{mail.DeferredResult(rcpts[0], "127.0.0.1:9", mail.Reply{Code: 451, Enhanced: mail.MustEnhanced("4.4.1"), Text: "connection refused"})}
	}}
}

// attempts counts the deliverer's calls per message.
func attempts(d *fakeDeliverer) map[string]int {
	out := map[string]int{}
	for _, c := range d.Calls() {
		out[c.ID]++
	}
	return out
}

// recorded reports whether the queue holds n messages, each with its
// first attempt's outcome committed.
func recorded(t *testing.T, q *Queue, n int) bool {
	envs := list(t, q)
	if len(envs) != n {
		return false
	}
	for _, e := range envs {
		if e.Attempts < 1 {
			return false
		}
	}
	return true
}

// TestScheduleIndexDue: with hundreds of leased (deleted) schedule
// entries before them, deferred messages are retried when they are due
// and not before, in this process and after a restart.
func TestScheduleIndexDue(t *testing.T) {
	c := newClock()
	dir := t.TempDir()
	opts := testOptions(t, dir, c)
	opts.MinBackoff, opts.MaxBackoff = time.Hour, time.Hour
	d := deferFirst()
	opts.Deliverer = d
	q, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()

	// 300 messages delivered at once leave their entries' tombstones at
	// the start of the index.
	for i := range 300 {
		enqueue(t, q, "a@src.test", fmt.Sprintf("r%d@sent.test", i))
	}
	var early, late []string
	for i := range 5 {
		early = append(early, enqueue(t, q, "a@src.test", fmt.Sprintf("e%d@dead.test", i)))
	}
	// Each wait is for the outcome the queue recorded, not only for the
	// deliverer's call: a retry is scheduled from the clock when the
	// outcome is committed, which must be before the clock moves on.
	eventually(t, "first attempts of the first ones", func() bool { return len(attempts(d)) == 305 && recorded(t, q, 5) })
	c.Add(30 * time.Minute)
	for i := range 5 {
		late = append(late, enqueue(t, q, "a@src.test", fmt.Sprintf("l%d@dead.test", i)))
	}
	eventually(t, "first attempts", func() bool { return len(attempts(d)) == 310 && recorded(t, q, 10) })

	// 70 minutes after the first ones: they are due (1 h ± 5 %), the
	// later ones (due at 90 ± 3 minutes) not.
	c.Add(40 * time.Minute)
	q.kick()
	eventually(t, "early ones retried", func() bool { return len(list(t, q)) == 5 })
	n := attempts(d)
	for _, id := range early {
		if n[id] != 2 {
			t.Errorf("due message %s attempted %d times, want 2", id, n[id])
		}
	}
	for _, id := range late {
		if n[id] != 1 {
			t.Errorf("message %s not due yet attempted %d times, want 1", id, n[id])
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// After a restart the index still knows: nothing due now, the next
	// due at the later messages' retry.
	q = openQueue(t, opts)
	next, es, err := q.due(10)
	if err != nil || len(es) != 0 {
		t.Fatalf("after restart, due %v, %v; want none", es, err)
	}
	if want := c.Now().Add(20 * time.Minute); next.Before(want.Add(-4*time.Minute)) || next.After(want.Add(4*time.Minute)) {
		t.Errorf("after restart, next due %s, want about %s", next, want)
	}
	c.Add(30 * time.Minute)
	run(t, q)
	eventually(t, "late ones retried after restart", func() bool { return len(list(t, q)) == 0 })
	n = attempts(d)
	for _, id := range late {
		if n[id] != 2 {
			t.Errorf("message %s attempted %d times, want 2", id, n[id])
		}
	}
}

// TestScheduleIndexConcurrentWrites: entries written due now while the
// scheduler scans (releases from several goroutines, even with the clock
// stepped back behind entries already scanned) are all found.
func TestScheduleIndexConcurrentWrites(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	d := &fakeDeliverer{fn: sendAll}
	opts.Deliverer = d
	q := openQueue(t, opts)
	ctx := context.Background()
	var ids []string
	for i := range 200 {
		id := enqueue(t, q, "a@src.test", fmt.Sprintf("r%d@dst.test", i))
		if err := q.Hold(ctx, id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	run(t, q)
	// A few fresh messages get the scheduler scanning and advancing its
	// start while the releases come in.
	for i := range 20 {
		enqueue(t, q, "a@src.test", fmt.Sprintf("f%d@dst.test", i))
	}
	c.Add(-time.Hour) // released entries land before what was scanned
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < len(ids); i += 4 {
				if err := q.Release(ctx, ids[i]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	eventually(t, "every released message delivered", func() bool { return len(list(t, q)) == 0 })
}

// TestDeferralScansNothing: a deferred attempt tells the scheduler when
// the retry is due instead of asking it to scan the schedule index at
// once (a scan whose cost grows with a deep queue's LSM levels), and the
// retry still comes when it is due, with nothing else waking the
// scheduler.
func TestDeferralScansNothing(t *testing.T) {
	const backoff = time.Second
	opts := testOptions(t, t.TempDir(), nil)
	opts.Now = time.Now // the real clock: the retry waits on the scheduler's timer
	opts.MinBackoff, opts.MaxBackoff = backoff, backoff
	var scans atomic.Int64
	opts.onScan = func() { scans.Add(1) }
	d := deferFirst()
	opts.Deliverer = d
	q := openQueue(t, opts)
	run(t, q)
	eventually(t, "the scheduler's first scan", func() bool { return scans.Load() > 0 })

	const n = 40
	t0 := time.Now()
	var ids []string
	for i := range n {
		ids = append(ids, enqueue(t, q, "a@src.test", fmt.Sprintf("r%d@dead.test", i)))
	}
	eventually(t, "every first attempt recorded", func() bool { return recorded(t, q, n) })
	// Fresh messages are handed to the scheduler without a scan, and a
	// deferral only says when its retry is due: the first scan was the
	// one at the start. (Unless this machine took so long that retries
	// were due already.)
	if got := scans.Load(); got != 1 && time.Since(t0) < backoff*9/10 {
		t.Errorf("%d scans of the schedule index for %d fresh messages deferred once, want only the first", got, n)
	}
	eventually(t, "every retry delivered", func() bool { return len(list(t, q)) == 0 })
	if took := time.Since(t0); took < backoff*95/100 {
		t.Errorf("retries delivered after %v, before their %v (±5 %%) backoff", took, backoff)
	}
	got := attempts(d)
	for _, id := range ids {
		if got[id] != 2 {
			t.Errorf("message %s attempted %d times, want 2", id, got[id])
		}
	}
}
