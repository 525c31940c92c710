package queue

import (
	"context"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// blockingDeliverer signals each call on started and then waits for a
// value on finish (true: deliver; false: defer) or for its context to
// end (then every recipient gets a deferral, as a transport cancelled
// mid-way answers).
type blockingDeliverer struct {
	started chan string
	finish  chan bool
}

func (b *blockingDeliverer) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	b.started <- m.ID
	select {
	case ok := <-b.finish:
		if ok {
			return sendAll(m, rcpts)
		}
	case <-ctx.Done():
	}
	var out []mail.Result
	for _, r := range rcpts {
		out = append(out, mail.DeferredResult(r, "", mail.Reply{Code: 451, Enhanced: mail.MustEnhanced("4.4.1"), Text: "cancelled"}))
	}
	return out
}

func startRun(t *testing.T, q *Queue) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- q.Run(context.Background()) }()
	return done
}

func drainAsync(q *Queue, timeout time.Duration) <-chan DrainStats {
	out := make(chan DrainStats, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out <- q.Drain(ctx)
	}()
	return out
}

func leased(t *testing.T, q *Queue, id string) bool {
	t.Helper()
	m, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	_, es, err := q.due(100)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if e.id == m.ID {
			return false
		}
	}
	return true
}

// TestDrainFinishes: a delivery in flight when the drain begins runs to
// its end; a message queued during the drain is not leased.
func TestDrainFinishes(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	b := &blockingDeliverer{started: make(chan string, 4), finish: make(chan bool)}
	opts.Deliverer = b
	q := openQueue(t, opts)
	done := startRun(t, q)
	id := enqueue(t, q, "a@src.test", "r@dst.test")
	if got := <-b.started; got != id {
		t.Fatalf("delivering %s, want %s", got, id)
	}
	ch := drainAsync(q, time.Minute)
	eventually(t, "leasing stopped", q.leasingStopped.Load)
	late := enqueue(t, q, "a@src.test", "s@dst.test")
	select {
	case got := <-b.started:
		t.Fatalf("%s leased during the drain", got)
	case st := <-ch:
		t.Fatalf("Drain returned %+v with a delivery in flight", st)
	case <-time.After(100 * time.Millisecond):
	}
	b.finish <- true
	st := <-ch
	if st != (DrainStats{Finished: 1}) {
		t.Errorf("DrainStats %+v, want 1 finished", st)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	envs := list(t, q)
	if len(envs) != 1 || envs[0].ID != late {
		t.Errorf("queue after the drain %v, want only %s", envs, late)
	}
	if leased(t, q, late) {
		t.Errorf("%s leased", late)
	}
}

// TestDrainReleases: a delivery still running at the drain's deadline is
// cancelled; its message is due at once again, not leased, with no
// attempt counted, and the next Run delivers it.
func TestDrainReleases(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	b := &blockingDeliverer{started: make(chan string, 4), finish: make(chan bool)}
	opts.Deliverer = b
	q := openQueue(t, opts)
	done := startRun(t, q)
	id := enqueue(t, q, "a@src.test", "r@dst.test")
	<-b.started
	st := <-drainAsync(q, 50*time.Millisecond)
	if st != (DrainStats{Released: 1}) {
		t.Errorf("DrainStats %+v, want 1 released", st)
	}
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	m, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if m.Rcpts[0].Attempts != 0 || m.Rcpts[0].State != mail.Pending || !m.NextAttempt.Equal(c.Now()) {
		t.Errorf("released recipient %+v, next attempt %v; want pending, no attempt, due now (%v)", m.Rcpts[0], m.NextAttempt, c.Now())
	}
	if leased(t, q, id) {
		t.Errorf("%s still leased after the drain", id)
	}

	// The next start delivers it.
	d := restartDelivering(t, q, opts)
	if calls := d.Calls(); len(calls) != 1 || calls[0].ID != id {
		t.Errorf("calls after restart %v, want one for %s", calls, id)
	}
}

// TestSetDelivererWhileRunning: a deliverer set while Run runs takes the
// deliveries that start afterwards.
func TestSetDelivererWhileRunning(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	first := &fakeDeliverer{fn: sendAll}
	opts.Deliverer = first
	q := openQueue(t, opts)
	run(t, q)
	enqueue(t, q, "a@src.test", "r@dst.test")
	eventually(t, "first delivered", func() bool { return len(list(t, q)) == 0 })
	second := &fakeDeliverer{fn: sendAll}
	q.SetDeliverer(second)
	id := enqueue(t, q, "a@src.test", "r@dst.test")
	eventually(t, "second delivered", func() bool { return len(list(t, q)) == 0 })
	if calls := second.Calls(); len(calls) != 1 || calls[0].ID != id {
		t.Errorf("new deliverer calls %v, want one for %s", calls, id)
	}
	if n := len(first.Calls()); n != 1 {
		t.Errorf("old deliverer called %d times, want 1", n)
	}
}
