package queue

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// logCapture is a slog.Handler that keeps every record.
type logCapture struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *logCapture) WithGroup(string) slog.Handler            { return c }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, r.Clone())
	return nil
}

// lines returns the attributes of every record with message msg.
func (c *logCapture) lines(msg string) []map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]string
	for _, r := range c.recs {
		if r.Message != msg {
			continue
		}
		attrs := map[string]string{}
		r.Attrs(func(a slog.Attr) bool {
			attrs[a.Key] = a.Value.String()
			return true
		})
		out = append(out, attrs)
	}
	return out
}

// TestRecordConflictLogsOnce: when the transaction recording an attempt
// conflicts with another writer and is run again, the delivery line, the
// bounce and its "queued" line and the "removed" line are each logged once,
// after the commit, and the bounce logged is the one stored.
func TestRecordConflictLogsOnce(t *testing.T) {
	c := newClock()
	logs := &logCapture{}
	opts := testOptions(t, t.TempDir(), c)
	opts.Logger = slog.New(logs)
	conflicts := 0
	var q *Queue
	opts.inRecord = func(id string) {
		if conflicts > 0 {
			return
		}
		conflicts++
		// Another writer rewrites the envelope the recording read: its
		// commit then conflicts and is run again.
		err := q.db.Update(func(txn *badger.Txn) error {
			env, err := getEnvelope(txn, id)
			if err != nil {
				return err
			}
			return putEnvelope(txn, ixEntries(env), env)
		})
		if err != nil {
			t.Errorf("conflicting write: %v", err)
		}
	}
	q = openQueue(t, opts)
	id := enqueue(t, q, "a@src.test", "x@dst.test")
	bounce := mail.DelivererFunc(func(_ context.Context, _ *mail.Message, rcpts []string) []mail.Result {
		return []mail.Result{mail.BouncedResult(rcpts[0], "mx[192.0.2.1]:25", mail.Reply{Code: 550, Enhanced: mail.EnhancedCode{5, 1, 1}, Text: "no such user"})}
	})
	m, err := q.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	q.deliver(context.Background(), bounce, job{env: &m.Envelope})
	if conflicts != 1 {
		t.Fatalf("%d conflicts forced, want 1", conflicts)
	}

	if got := logs.lines("delivery"); len(got) != 1 {
		t.Errorf("%d delivery lines, want 1: %v", len(got), got)
	}
	if got := logs.lines("removed"); len(got) != 1 {
		t.Errorf("%d removed lines, want 1: %v", len(got), got)
	}
	bounced := logs.lines("bounce queued")
	if len(bounced) != 1 {
		t.Fatalf("%d bounce lines, want 1: %v", len(bounced), bounced)
	}
	envs := list(t, q)
	if len(envs) != 1 || envs[0].ID != bounced[0]["dsn_id"] {
		t.Errorf("queue holds %v; the bounce logged is %s", envs, bounced[0]["dsn_id"])
	}
	var queued []string
	for _, l := range logs.lines("queued") {
		queued = append(queued, l["id"])
		// The one "queued" line per message, with smtpd's former keys.
		if l["rcpts"] != "1" || l["size"] == "" || l["nrcpt"] != "" {
			t.Errorf("queued line %v, want id, from, rcpts=1 and size", l)
		}
	}
	if len(queued) != 2 || queued[0] != id || queued[1] != bounced[0]["dsn_id"] {
		t.Errorf("queued lines for %v, want %s and the bounce %s", queued, id, bounced[0]["dsn_id"])
	}
}

// TestResultsByRcpt: results are matched to recipients by mail.Key, each
// used once, in order for an address given twice.
func TestResultsByRcpt(t *testing.T) {
	sent := func(rcpt, text string) mail.Result {
		return mail.SentResult(rcpt, "local", mail.Reply{Code: 250, Text: text})
	}
	tests := []struct {
		name    string
		results []mail.Result
		takes   []string
		want    []string // text of each take, "-" for none
	}{
		{"exact", []mail.Result{sent("a@x.test", "1")}, []string{"a@x.test"}, []string{"1"}},
		{"case and final dot", []mail.Result{sent("A@X.Test.", "1")}, []string{"a@x.test"}, []string{"1"}},
		{"used once", []mail.Result{sent("a@x.test", "1")}, []string{"a@x.test", "a@x.test"}, []string{"1", "-"}},
		{"duplicates in order", []mail.Result{sent("a@x.test", "1"), sent("b@x.test", "2"), sent("a@x.test", "3")},
			[]string{"a@x.test", "b@x.test", "a@x.test"}, []string{"1", "2", "3"}},
		{"missing", []mail.Result{sent("a@x.test", "1")}, []string{"b@x.test"}, []string{"-"}},
		{"no domain", []mail.Result{sent("Postmaster", "1")}, []string{"postmaster"}, []string{"1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			take := resultsByRcpt(tt.results)
			for i, addr := range tt.takes {
				got := "-"
				if r, ok := take(addr); ok {
					got = r.Reply.Text
				}
				if got != tt.want[i] {
					t.Errorf("take %d (%s) = %s, want %s", i, addr, got, tt.want[i])
				}
			}
		})
	}
}
