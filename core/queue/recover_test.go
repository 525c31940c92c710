package queue

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/core/mail"
)

// TestRecoverLeaseLog: at start, a lease left by a crash is logged with
// what became of its message — due now, or still held (an administrator
// held it while it was leased) — and a held one stays held.
func TestRecoverLeaseLog(t *testing.T) {
	c := newClock()
	opts := testOptions(t, t.TempDir(), c)
	q := openQueue(t, opts)
	ctx := context.Background()
	body := []byte("Subject: s\r\n\r\nb\r\n")
	due, err := q.Enqueue(ctx, &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "x@dst.test"}}}, body)
	if err != nil {
		t.Fatal(err)
	}
	held, err := q.Enqueue(ctx, &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: "y@dst.test"}}}, body)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Hold(ctx, held); err != nil {
		t.Fatal(err)
	}
	// What a crash during delivery leaves: a lease on each.
	if err := q.db.Update(func(txn *badger.Txn) error {
		for _, id := range []string{due, held} {
			b, _ := c.Now().MarshalText()
			if err := txn.Set(leaseKey(id), b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	logs := testlog.New(t)
	opts.Logger = logs.Logger(slog.LevelInfo)
	q = openQueue(t, opts)
	for id, want := range map[string]string{due: "lease recovered, due now", held: "lease recovered, still held"} {
		if !strings.Contains(logs.String(), `msg="`+want+`" id=`+id) {
			t.Errorf("log lacks %q for %s:\n%s", want, id, logs.String())
		}
	}
	if env := envOf(t, q, held); State(env) != StateHeld {
		t.Errorf("held message after the recovery: %+v, want still held", env)
	}
	if env := envOf(t, q, due); State(env) == StateHeld {
		t.Errorf("due message after the recovery: %+v, want not held", env)
	}
}
