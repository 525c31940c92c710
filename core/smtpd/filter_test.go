package smtpd

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// scriptedFilters plays a plugin chain: it records each hook and acts on
// the transaction the way host functions would.
type scriptedFilters struct {
	mu    sync.Mutex
	calls []string
	act   func(hook pluginapi.Hook, txn *filter.Txn) filter.Result
}

func (f *scriptedFilters) Hooks() uint32 { return 1<<pluginapi.NumHooks - 1 }

func (f *scriptedFilters) Run(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result {
	f.mu.Lock()
	f.calls = append(f.calls, hook.String())
	f.mu.Unlock()
	if f.act == nil {
		return filter.Result{}
	}
	return f.act(hook, txn)
}

func TestFilterStagesAndEdits(t *testing.T) {
	q := &fakeQueue{}
	f := &scriptedFilters{act: func(hook pluginapi.Hook, txn *filter.Txn) filter.Result {
		switch hook {
		case pluginapi.HookConnect:
			txn.Notes["seen-at"] = "connect"
		case pluginapi.HookRcpt:
			switch txn.Rcpt {
			case "no@local.test":
				return filter.Result{Verdict: pluginapi.Reject, Reply: *mail.NewReply(550, "5.7.1", "Not wanted"), Plugin: "p"}
			case "later@local.test":
				return filter.Result{Verdict: pluginapi.Tempfail, Reply: *mail.NewReply(451, "4.7.1", "Later"), Plugin: "p"}
			case "drop@local.test":
				return filter.Result{Verdict: pluginapi.Discard}
			case "old@local.test":
				txn.Rcpt = "new@local.test"
			}
		case pluginapi.HookData:
			if txn.Notes["seen-at"] != "connect" {
				return filter.Result{Verdict: pluginapi.Reject, Reply: mail.Reply{Code: 550, Text: "lost note"}}
			}
			txn.Header.Add("X-Filtered", "yes")
			txn.Rcpts = append(txn.Rcpts, mail.Recipient{Addr: "added@local.test"})
			txn.Notes["verdict"] = "clean"
		}
		return filter.Result{}
	}}
	opts := testOptions(q)
	opts.Filters = f
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()
	rc.send("MAIL FROM:<s@example.org>\r\n")
	rc.expect(250)
	for _, c := range []struct {
		rcpt string
		code int
	}{{"no@local.test", 550}, {"later@local.test", 451}, {"drop@local.test", 250}, {"old@local.test", 250}, {"yes@local.test", 250}} {
		rc.send("RCPT TO:<" + c.rcpt + ">\r\n")
		rc.expect(c.code)
	}
	rc.send("DATA\r\n")
	rc.expect(354)
	rc.send("Subject: x\r\n\r\nbody\r\n.\r\n")
	rc.expect(250)

	envs, bodies := q.got()
	if len(envs) != 1 {
		t.Fatalf("queued %d messages", len(envs))
	}
	var got []string
	for _, r := range envs[0].Rcpts {
		got = append(got, r.Addr)
	}
	if want := []string{"new@local.test", "yes@local.test", "added@local.test"}; !slices.Equal(got, want) {
		t.Errorf("recipients %q, want %q", got, want)
	}
	if !bytes.HasPrefix(bodies[0], []byte("X-Filtered: yes\r\nReceived: ")) || !bytes.HasSuffix(bodies[0], []byte("Subject: x\r\n\r\nbody\r\n")) {
		t.Errorf("queued message %q", bodies[0])
	}
	if envs[0].Notes["verdict"] != "clean" || envs[0].Notes["seen-at"] != "connect" {
		t.Errorf("notes stored with the message: %v", envs[0].Notes)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	want := []string{"connect", "helo", "mail", "rcpt", "rcpt", "rcpt", "rcpt", "rcpt", "data"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("hooks %q, want %q", f.calls, want)
	}
}

func TestFilterSpamThresholds(t *testing.T) {
	for _, c := range []struct {
		score    float64
		code     int
		held     bool
		header   bool
		enqueued bool
	}{
		{1, 250, false, false, true},
		{5, 250, false, true, true},
		{10, 250, true, true, true},
		{15, 550, false, false, false},
	} {
		q := &fakeQueue{}
		opts := testOptions(q)
		opts.Spam = filter.Spam{AddHeader: 5, Quarantine: 10, Reject: 15}
		opts.Filters = &scriptedFilters{act: func(hook pluginapi.Hook, txn *filter.Txn) filter.Result {
			if hook == pluginapi.HookData {
				txn.Symbols = append(txn.Symbols, filter.Symbol{Name: "TEST", Score: c.score})
				txn.Score += c.score
			}
			return filter.Result{}
		}}
		rc := dialRaw(t, startServer(t, opts), "")
		rc.greet()
		rc.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@local.test>\r\nDATA\r\n")
		rc.expect(250)
		rc.expect(250)
		rc.expect(354)
		rc.send("Subject: x\r\n\r\nbody\r\n.\r\n")
		rc.expect(c.code)
		envs, bodies := q.got()
		if (len(envs) == 1) != c.enqueued {
			t.Fatalf("score %v: enqueued %d, want %v", c.score, len(envs), c.enqueued)
		}
		if !c.enqueued {
			continue
		}
		if envs[0].Held != c.held {
			t.Errorf("score %v: held %v, want %v", c.score, envs[0].Held, c.held)
		}
		if has := bytes.Contains(bodies[0], []byte("X-Spam-Status: Yes, score=")); has != c.header {
			t.Errorf("score %v: spam header %v, want %v", c.score, has, c.header)
		}
	}
}

func TestFilterDisconnectAndDiscard(t *testing.T) {
	q := &fakeQueue{}
	opts := testOptions(q)
	opts.Filters = &scriptedFilters{act: func(hook pluginapi.Hook, txn *filter.Txn) filter.Result {
		switch {
		case hook == pluginapi.HookMail && txn.From == "bye@example.org":
			return filter.Result{Verdict: pluginapi.Disconnect, Reply: *mail.NewReply(421, "4.7.0", "Go away")}
		case hook == pluginapi.HookData && strings.Contains(string(txn.Body), "drop me"):
			return filter.Result{Verdict: pluginapi.Discard}
		}
		return filter.Result{}
	}}
	addr := startServer(t, opts)
	rc := dialRaw(t, addr, "")
	rc.greet()
	rc.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send("Subject: x\r\n\r\ndrop me\r\n.\r\n")
	rc.expect(250) // looks accepted…
	if envs, _ := q.got(); len(envs) != 0 {
		t.Errorf("a discarded message was queued")
	}
	rc.send("MAIL FROM:<bye@example.org>\r\n")
	rc.expect(421)
	if rest := rc.readToEOF(); rest != "" {
		t.Errorf("after 421 the server said %q", rest)
	}
}

// TestFilterConnectScoreCounts: a score added at connect (a DNSBL hit, say)
// counts in every message of the connection.
func TestFilterConnectScoreCounts(t *testing.T) {
	q := &fakeQueue{}
	opts := testOptions(q)
	opts.Spam = filter.Spam{AddHeader: 5, Reject: 15}
	opts.Filters = &scriptedFilters{act: func(hook pluginapi.Hook, txn *filter.Txn) filter.Result {
		if hook == pluginapi.HookConnect {
			txn.Symbols = append(txn.Symbols, filter.Symbol{Name: "LISTED", Score: 6})
			txn.Score += 6
		}
		return filter.Result{}
	}}
	rc := dialRaw(t, startServer(t, opts), "")
	rc.greet()
	for i := 0; i < 2; i++ {
		rc.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@local.test>\r\nDATA\r\n")
		rc.expect(250)
		rc.expect(250)
		rc.expect(354)
		rc.send("Subject: x\r\n\r\nbody\r\n.\r\n")
		rc.expect(250)
	}
	_, bodies := q.got()
	for i, b := range bodies {
		if !bytes.Contains(b, []byte("X-Spam-Status: Yes, score=6.0 symbols=LISTED(6)")) {
			t.Errorf("message %d lacks the connect-stage score:\n%s", i, b)
		}
	}
}

// TestFilterConnectionQuarantine: a Quarantine at connect or helo holds
// every message of the connection, as one at mail holds its transaction's
// (it was forgotten at the next MAIL).
func TestFilterConnectionQuarantine(t *testing.T) {
	for _, hook := range []pluginapi.Hook{pluginapi.HookConnect, pluginapi.HookHelo} {
		q := &fakeQueue{}
		opts := testOptions(q)
		opts.Filters = &scriptedFilters{act: func(h pluginapi.Hook, txn *filter.Txn) filter.Result {
			if h == hook {
				return filter.Result{Verdict: pluginapi.Quarantine}
			}
			return filter.Result{}
		}}
		rc := dialRaw(t, startServer(t, opts), "")
		rc.greet()
		for range 2 {
			rc.send("MAIL FROM:<s@example.org>\r\nRCPT TO:<a@local.test>\r\nDATA\r\n")
			rc.expect(250)
			rc.expect(250)
			rc.expect(354)
			rc.send("Subject: x\r\n\r\nbody\r\n.\r\n")
			rc.expect(250)
		}
		envs, _ := q.got()
		if len(envs) != 2 || !envs[0].Held || !envs[1].Held {
			t.Errorf("quarantine at %v: queued %d, held %v", hook, len(envs), func() (h []bool) {
				for _, e := range envs {
					h = append(h, e.Held)
				}
				return h
			}())
		}
	}
}
