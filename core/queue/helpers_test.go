package queue

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/testclock"
)

// fakeDeliverer answers with a function and records every call.
type fakeDeliverer struct {
	mu    sync.Mutex
	fn    func(m *mail.Message, rcpts []string) []mail.Result
	calls []call
}

type call struct {
	ID    string
	From  string
	Rcpts []string
	Body  string
}

func (f *fakeDeliverer) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	f.mu.Lock()
	f.calls = append(f.calls, call{m.ID, m.From, append([]string(nil), rcpts...), string(m.Body)})
	fn := f.fn
	f.mu.Unlock()
	return fn(m, rcpts)
}

func (f *fakeDeliverer) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

// sendAll delivers every recipient.
func sendAll(m *mail.Message, rcpts []string) []mail.Result {
	var out []mail.Result
	for _, r := range rcpts {
		out = append(out, mail.Result{Rcpt: r, Status: mail.Sent, Reply: mail.Reply{Code: 250, Enhanced: mail.MustEnhanced("2.0.0"), Text: "ok"}, Relay: "local"})
	}
	return out
}

func testOptions(t *testing.T, dir string, c *testclock.Clock) Options {
	t.Helper()
	return Options{
		Dir:         dir,
		Hostname:    "mx.test",
		MinBackoff:  time.Minute,
		MaxBackoff:  time.Hour,
		MaxLifetime: 24 * time.Hour,
		Workers:     4,
		GCInterval:  time.Hour,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo})),
		Now:         c.Now,
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func openQueue(t *testing.T, opts Options) *Queue {
	t.Helper()
	q, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

// run starts q.Run and stops it at cleanup.
func run(t *testing.T, q *Queue) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// restartDelivering closes q (nil: closed already), opens the queue of
// opts again with a deliverer that delivers every recipient, runs it until
// the queue is empty and returns that deliverer.
func restartDelivering(t *testing.T, q *Queue, opts Options) *fakeDeliverer {
	t.Helper()
	if q != nil {
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
	d := &fakeDeliverer{fn: sendAll}
	opts.Deliverer = d
	q = openQueue(t, opts)
	run(t, q)
	eventually(t, "every message delivered after the restart", func() bool { return len(list(t, q)) == 0 })
	return d
}

// eventually waits for cond; the deadline only guards against a hang.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func list(t *testing.T, q *Queue) []mail.Envelope {
	t.Helper()
	envs, err := q.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return envs
}

func enqueue(t *testing.T, q *Queue, from string, rcpts ...string) string {
	t.Helper()
	env := &mail.Envelope{From: from}
	for _, r := range rcpts {
		env.Rcpts = append(env.Rcpts, mail.Recipient{Addr: r})
	}
	id, err := q.Enqueue(context.Background(), env, []byte("Subject: test\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func memFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".mem") {
			out = append(out, e.Name())
		}
	}
	return out
}

// newClock is the clock these tests start from.
func newClock() *testclock.Clock { return testclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) }
