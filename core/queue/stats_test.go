package queue

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu      sync.Mutex
	commits []time.Duration
	seen    []Delivery
}

func (r *recorder) Committed(d time.Duration) {
	r.mu.Lock()
	r.commits = append(r.commits, d)
	r.mu.Unlock()
}

func (r *recorder) Recorded(d Delivery) {
	r.mu.Lock()
	r.seen = append(r.seen, d)
	r.mu.Unlock()
}

func (r *recorder) deliveries() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.seen...)
}

// TestStatsAndObserver: Stats counts messages by state with the oldest
// and the bytes, lists the deferring destinations with their last error,
// and the observer hears of each commit and each recipient's outcome once.
func TestStatsAndObserver(t *testing.T) {
	c := newClock()
	rec := &recorder{}
	d := &fakeDeliverer{fn: func(m *mail.Message, rcpts []string) []mail.Result {
		var out []mail.Result
		for _, r := range rcpts {
			if strings.HasSuffix(r, "@slow.test") {
				out = append(out, mail.DeferredResult(r, "mx.slow.test[192.0.2.7]:25",
					mail.Reply{Code: 451, Enhanced: mail.MustEnhanced("4.7.1"), Text: "451 4.7.1 greylisted"}))
				continue
			}
			out = append(out, mail.SentResult(r, "local", mail.Reply{Code: 250, Text: "ok"}))
		}
		return out
	}}
	opts := testOptions(t, t.TempDir(), c)
	opts.Deliverer, opts.Observer = d, rec
	q := openQueue(t, opts)
	ctx := context.Background()

	empty, err := q.Stats(ctx)
	if err != nil || empty.Queued+empty.Deferred+empty.Held != 0 || !empty.Oldest.IsZero() {
		t.Fatalf("empty queue stats %+v, %v", empty, err)
	}
	first := enqueue(t, q, "a@src.test", "x@slow.test", "y@here.test")
	c.Add(time.Minute)
	enqueue(t, q, "a@src.test", "z@slow.test")
	c.Add(time.Minute)
	held := enqueue(t, q, "a@src.test", "w@here.test")
	if err := q.Hold(ctx, held); err != nil {
		t.Fatal(err)
	}
	st, err := q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued != 2 || st.Deferred != 0 || st.Held != 1 {
		t.Errorf("before delivery: %+v", st)
	}
	if want := c.Now().Add(-2 * time.Minute); !st.Oldest.Equal(want) {
		t.Errorf("oldest %v, want %v (the first message)", st.Oldest, want)
	}
	if st.Bytes != 3*int64(len("Subject: test\r\n\r\nhello\r\n")) {
		t.Errorf("bytes %d", st.Bytes)
	}

	run(t, q)
	eventually(t, "three recipient outcomes", func() bool { return len(rec.deliveries()) == 3 })
	st, err = q.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Queued != 0 || st.Deferred != 2 || st.Held != 1 {
		t.Errorf("after one attempt: %+v", st)
	}
	if len(st.Destinations) != 1 || st.Destinations[0].Domain != "slow.test" || st.Destinations[0].Recipients != 2 ||
		st.Destinations[0].LastError != "451 4.7.1 greylisted" {
		t.Errorf("destinations %+v", st.Destinations)
	}
	if len(rec.commits) != 3 {
		t.Errorf("%d commits observed, want 3", len(rec.commits))
	}
	var sent, deferred int
	for _, dl := range rec.deliveries() {
		switch dl.Status {
		case mail.Sent:
			sent++
			if dl.ID != first || dl.Rcpt != "y@here.test" || dl.Relay != "local" || dl.Delay != 2*time.Minute {
				t.Errorf("sent: %+v", dl)
			}
		case mail.Deferred:
			deferred++
			if dl.DSN != "4.7.1" || dl.Relay != "mx.slow.test[192.0.2.7]:25" {
				t.Errorf("deferred: %+v", dl)
			}
		}
	}
	if sent != 1 || deferred != 2 {
		t.Errorf("observed %d sent, %d deferred; want 1, 2", sent, deferred)
	}
}
