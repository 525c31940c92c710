package smtpd

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/core/mail"
)

// jsonLogger writes JSON lines, debug included, to w.
func jsonLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestSessionID(t *testing.T) {
	seen := map[string]bool{}
	for range 10000 {
		id := newSessionID()
		if len(id) != sessionIDLen || strings.Trim(id, "0123456789abcdefghijklmnopqrstuvwxyz") != "" {
			t.Fatalf("session ID %q: want %d lowercase base-36 characters", id, sessionIDLen)
		}
		if seen[id] {
			t.Fatalf("session ID %q twice", id)
		}
		seen[id] = true
	}
}

// ctxQueue is a fakeQueue that keeps the session ID its callers' contexts
// carry, for the queue's "queued" line.
type ctxQueue struct {
	fakeQueue
	mu       sync.Mutex
	sessions []string
}

func (q *ctxQueue) Enqueue(ctx context.Context, env *mail.Envelope, body []byte) (string, error) {
	q.mu.Lock()
	for _, a := range logctx.Attrs(ctx) {
		if a.Key == "session" {
			q.sessions = append(q.sessions, a.Value.String())
		}
	}
	q.mu.Unlock()
	return q.fakeQueue.Enqueue(ctx, env, body)
}

// TestSessionLogLines runs a session through TLS, a failed and a good
// login, a refused recipient, a message taken, one refused at DATA and a
// line the guard refuses, and checks the JSON log: every line carries the
// one session ID (also handed to the queue in the context), each reject
// its stage, rule and reply, and the DATA reject the queue ID.
func TestSessionLogLines(t *testing.T) {
	q := &ctxQueue{}
	logs := &testlog.Buffer{}
	opts := submissionOptions(t, q)
	opts.Logger = jsonLogger(logs)
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()
	rc.startTLS()
	rc.ehlo()
	rc.send("AUTH PLAIN " + plain("alice@local.test", "wrong") + "\r\n")
	rc.expect(535)
	rc.send("AUTH PLAIN " + plain("alice@local.test", "secret") + "\r\n")
	rc.expect(235)
	rc.send("MAIL FROM:<alice@local.test>\r\n")
	rc.expect(250)
	rc.send("RCPT TO:<a%b@local.test>\r\n")
	rc.expect(554)
	rc.send("RCPT TO:<a@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(354)
	rc.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	rc.expect(250)
	rc.send("MAIL FROM:<alice@local.test>\r\nRCPT TO:<a@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send("Subject: y\r\n\r\nbare\nLF\r\n.\r\n")
	rc.expect(550)
	rc.send("NOOP " + strings.Repeat("x", 2000) + "\r\n")
	rc.readToEOF()

	var lines []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines = lines[:0]
		done := false
		for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			m := map[string]any{}
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q: %v", l, err)
			}
			lines = append(lines, m)
			done = done || m["msg"] == "disconnect"
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no disconnect line:\n%s", logs)
		}
		time.Sleep(10 * time.Millisecond)
	}

	session, _ := lines[0]["session"].(string)
	if lines[0]["msg"] != "connect" || len(session) != sessionIDLen {
		t.Fatalf("first line %v: want connect with a session ID", lines[0])
	}
	var rejects []map[string]any
	msgs := map[string]bool{}
	for _, l := range lines {
		msgs[l["msg"].(string)] = true
		if l["session"] != session || l["client"] != "127.0.0.1" {
			t.Errorf("line without session %s and client: %v", session, l)
		}
		if l["msg"] == "reject" {
			rejects = append(rejects, l)
		}
	}
	for _, want := range []string{"connect", "tls", "auth failed", "auth", "reject", "disconnect"} {
		if !msgs[want] {
			t.Errorf("no %q line:\n%s", want, logs)
		}
	}
	// The disconnect line says how the session was secured, as its tls
	// line did.
	var tlsLine, disconnect map[string]any
	for _, l := range lines {
		switch l["msg"] {
		case "tls":
			tlsLine = l
		case "disconnect":
			disconnect = l
		}
	}
	if tlsLine == nil || disconnect == nil || disconnect["tls"] != tlsLine["version"] || disconnect["cipher"] != tlsLine["cipher"] || disconnect["tls"] == nil {
		t.Errorf("disconnect line %v, want tls and cipher as in the tls line %v", disconnect, tlsLine)
	}
	wantRejects := []map[string]any{
		{"stage": "rcpt", "rule": "address_routing", "reply": "554 5.7.1 Relay access denied: routing characters (%, !, @) in local part", "from": "alice@local.test", "rcpt": "a%b@local.test"},
		{"stage": "data", "rule": "bare_newline", "reply": "550 5.5.2 Message contains bare CR or LF, refused", "id": "FAKE2", "from": "alice@local.test"},
		{"stage": "command", "rule": "max_line_length", "reply": "500 5.4.0 Too long line, closing connection"},
	}
	if len(rejects) != len(wantRejects) {
		t.Fatalf("%d reject lines, want %d:\n%s", len(rejects), len(wantRejects), logs)
	}
	for i, want := range wantRejects {
		for k, v := range want {
			if rejects[i][k] != v {
				t.Errorf("reject %d: %s = %v, want %v", i, k, rejects[i][k], v)
			}
		}
		if _, ok := want["id"]; !ok && rejects[i]["id"] != nil {
			t.Errorf("reject %d before DATA has a queue ID: %v", i, rejects[i])
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sessions) != 1 || q.sessions[0] != session {
		t.Errorf("the queue was given sessions %v, want [%s]", q.sessions, session)
	}
}
