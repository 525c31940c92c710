package admin

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/queue"
	"github.com/sluice-mta/sluice/core/testclock"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// setup opens a queue in a temporary directory (not running: nothing is
// delivered, so the test sees exactly what the admin calls did), serves
// the admin API for it on a unix socket and returns a client for it.
func setup(t *testing.T) (*queue.Queue, *Client, *testclock.Clock) {
	t.Helper()
	dir := t.TempDir()
	c := testclock.New(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	q, err := queue.Open(context.Background(), queue.Options{Dir: filepath.Join(dir, "queue"), Hostname: "mx.test", Now: c.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q, serveBackend(t, Backend{Queue: q}), c
}

func enqueue(t testing.TB, q *queue.Queue, from string, rcpts ...string) string {
	t.Helper()
	env := &mail.Envelope{From: from}
	for _, r := range rcpts {
		env.Rcpts = append(env.Rcpts, mail.Recipient{Addr: r})
	}
	id, err := q.Enqueue(context.Background(), env, []byte("Subject: hello\r\n\r\nbody\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// nextAttempts maps each queued message to its next attempt.
func nextAttempts(t *testing.T, cl *Client) map[string]time.Time {
	t.Helper()
	envs, err := cl.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]time.Time{}
	for _, e := range envs {
		out[e.ID] = e.NextAttempt
	}
	return out
}

func TestFlushRoundTrip(t *testing.T) {
	ctx := context.Background()
	q, cl, c := setup(t)
	a := enqueue(t, q, "s@src.test", "x@a.test")
	b := enqueue(t, q, "s@src.test", "x@a.test", "Y@B.Test")
	// Turning the clock back makes both messages due in the future, as if
	// they had been deferred.
	t0 := c.Now()
	c.Add(-2 * time.Hour)
	if err := cl.FlushDomain(ctx, "b.TEST"); err != nil {
		t.Fatal(err)
	}
	got := nextAttempts(t, cl)
	if !got[a].Equal(t0) || !got[b].Equal(c.Now()) {
		t.Errorf("after flush of b.test: next attempts %v, want %s unchanged and %s now", got, a, b)
	}
	c.Add(-time.Hour)
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got = nextAttempts(t, cl)
	if !got[a].Equal(c.Now()) || !got[b].Equal(c.Now()) {
		t.Errorf("after flush: next attempts %v, want both now (%s)", got, c.Now())
	}
}

func TestBounceRoundTrip(t *testing.T) {
	ctx := context.Background()
	q, cl, _ := setup(t)
	id := enqueue(t, q, "s@src.test", "x@a.test", "y@b.test")
	keep := enqueue(t, q, "s@src.test", "z@a.test")
	if err := cl.Bounce(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.Show(ctx, id); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Show after Bounce: %v, want not found", err)
	}
	envs, err := cl.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var dsnID string
	for _, e := range envs {
		if e.From == "" && len(e.Rcpts) == 1 && e.Rcpts[0].Addr == "s@src.test" {
			dsnID = e.ID
		}
	}
	if len(envs) != 2 || dsnID == "" {
		t.Fatalf("queue after bounce: %+v, want %s and one DSN to s@src.test", envs, keep)
	}
	m, err := q.Get(ctx, dsnID)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Final-Recipient: rfc822; x@a.test", "Final-Recipient: rfc822; y@b.test", "Status: 5.0.0", "bounced by the administrator"} {
		if !bytes.Contains(m.Body, []byte(want)) {
			t.Errorf("DSN lacks %q:\n%s", want, m.Body)
		}
	}
	if err := cl.Bounce(ctx, "NOSUCHID"); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("Bounce of an unknown ID: %v, want not found", err)
	}
}

func TestClientNoServer(t *testing.T) {
	cl := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	err := cl.Flush(context.Background())
	if err == nil || !strings.Contains(err.Error(), "sluice serve") {
		t.Errorf("Flush without a server: %v, want a hint to start sluice serve", err)
	}
}

func TestWriteListGolden(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.Local)
	envs := []mail.Envelope{
		{ID: "0000AAAAAAAA0001", From: "s@src.test", Size: 1234, Received: now.Add(-2 * time.Hour),
			NextAttempt: now.Add(10 * time.Minute), Attempts: 3, DelayWarned: true,
			Rcpts: []mail.Recipient{
				{Addr: "x@a.test", State: mail.Delivered, Attempts: 1, Relay: "mx.a.test[192.0.2.1]:25"},
				{Addr: "y@b.test", State: mail.Pending, Attempts: 3, Relay: "mx.b.test[192.0.2.2]:25", DSNCode: "4.7.1", LastError: "451 4.7.1 greylisted,\r\n try later"},
				{Addr: "z@c.test", State: mail.Pending},
			}},
		{ID: "0000AAAAAAAA0002", From: "", Size: 99, Received: now, NextAttempt: now, Held: true,
			Rcpts: []mail.Recipient{{Addr: "s@src.test"}}},
		{ID: "0000AAAAAAAA0003", From: "t@src.test", Size: 500, Received: now.Add(-time.Hour), Held: true,
			HoldReason: "quarantined by plugin spamscore: score 12", HeldAt: now.Add(-time.Hour), NextAttempt: now.Add(47 * time.Hour),
			Rcpts: []mail.Recipient{{Addr: "u@d.test"}}},
	}
	var b bytes.Buffer
	if err := WriteList(&b, envs, now); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "list.golden")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Errorf("WriteList differs from %s:\n%s", golden, b.Bytes())
	}
}
