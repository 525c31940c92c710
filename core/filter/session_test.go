package filter

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// script plays a chain: act decides each hook's result and may edit the
// transaction as host functions would.
type script func(hook pluginapi.Hook, txn *Txn) Result

func (s script) Hooks() uint32 { return 1<<pluginapi.NumHooks - 1 }

func (s script) Run(ctx context.Context, hook pluginapi.Hook, txn *Txn) Result { return s(hook, txn) }

// verdictAt answers v at hook and continues elsewhere.
func verdictAt(hook pluginapi.Hook, v pluginapi.Verdict) script {
	return func(h pluginapi.Hook, txn *Txn) Result {
		if h != hook {
			return Result{}
		}
		r, _ := Decide(v, nil, "p")
		return r
	}
}

func TestApply(t *testing.T) {
	reject := mail.Reply{Code: 550, Enhanced: mail.EnhancedCode{5, 7, 1}, Text: "rejected by policy"}
	tempfail := mail.Reply{Code: 451, Enhanced: mail.EnhancedCode{4, 7, 1}, Text: "try again later"}
	closing := mail.Reply{Code: 421, Enhanced: mail.EnhancedCode{4, 7, 0}, Text: "closing connection"}
	type want struct {
		reply                      *mail.Reply
		close, drop, discard, hold bool
	}
	smtpStages := []pluginapi.Hook{pluginapi.HookConnect, pluginapi.HookHelo, pluginapi.HookMail, pluginapi.HookData}
	for _, tc := range []struct {
		verdict pluginapi.Verdict
		hooks   []pluginapi.Hook
		want    want
	}{
		{pluginapi.Continue, append(smtpStages, pluginapi.HookRcpt, pluginapi.HookDeliver), want{}},
		{pluginapi.Accept, append(smtpStages, pluginapi.HookRcpt, pluginapi.HookDeliver), want{}},
		{pluginapi.Reject, append(smtpStages, pluginapi.HookRcpt, pluginapi.HookDeliver), want{reply: &reject}},
		{pluginapi.Tempfail, append(smtpStages, pluginapi.HookRcpt, pluginapi.HookDeliver), want{reply: &tempfail}},
		{pluginapi.Disconnect, append(smtpStages, pluginapi.HookRcpt), want{reply: &closing, close: true}},
		{pluginapi.Disconnect, []pluginapi.Hook{pluginapi.HookDeliver}, want{reply: &closing}},
		{pluginapi.Discard, append(smtpStages, pluginapi.HookDeliver), want{discard: true}},
		{pluginapi.Discard, []pluginapi.Hook{pluginapi.HookRcpt}, want{drop: true}},
		{pluginapi.Quarantine, append(smtpStages, pluginapi.HookRcpt, pluginapi.HookDeliver), want{hold: true}},
	} {
		for _, hook := range tc.hooks {
			r, _ := Decide(tc.verdict, nil, "p")
			o := Apply(hook, r)
			w := tc.want
			if (o.Reply == nil) != (w.reply == nil) || o.Reply != nil && *o.Reply != *w.reply ||
				o.Close != w.close || o.Drop != w.drop || o.Discard != w.discard || o.Hold != w.hold {
				t.Errorf("%v at %v: %+v (reply %v), want %+v (reply %v)", tc.verdict, hook, o, o.Reply, w, w.reply)
			}
		}
	}
	// A Runner other than the host may hand over a reply of the wrong
	// class, or none: the verdict's default applies.
	o := Apply(pluginapi.HookRcpt, Result{Verdict: pluginapi.Reject, Reply: mail.Reply{Code: 451, Text: "x"}})
	if o.Reply == nil || o.Reply.Code != 550 {
		t.Errorf("reject with a 4xx reply: %v", o.Reply)
	}
}

func TestFate(t *testing.T) {
	rcpts := []string{"a@x.test", "b@x.test"}
	for _, tc := range []struct {
		verdict pluginapi.Verdict
		status  mail.Status
		reply   string
	}{
		{pluginapi.Reject, mail.Bounced, "550 5.7.1 rejected by policy"},
		{pluginapi.Tempfail, mail.Deferred, "451 4.7.1 try again later"},
		{pluginapi.Disconnect, mail.Deferred, "421 4.7.0 closing connection"},
		{pluginapi.Quarantine, mail.Held, "451 4.7.0 quarantined by plugin p"},
		{pluginapi.Discard, mail.Sent, "250 2.0.0 discarded by a deliver-stage plugin"},
	} {
		r, _ := Decide(tc.verdict, nil, "p")
		fate := Apply(pluginapi.HookDeliver, r).Fate(rcpts)
		if len(fate) != 2 {
			t.Fatalf("%v: %d results", tc.verdict, len(fate))
		}
		for i, res := range fate {
			if res.Rcpt != rcpts[i] || res.Status != tc.status || res.Reply.String() != tc.reply || res.Relay != "plugin p" {
				t.Errorf("%v: %+v, want %v %q via plugin p", tc.verdict, res, tc.status, tc.reply)
			}
		}
	}
	for _, v := range []pluginapi.Verdict{pluginapi.Continue, pluginapi.Accept} {
		if fate := Apply(pluginapi.HookDeliver, Result{Verdict: v}).Fate(rcpts); fate != nil {
			t.Errorf("%v decided a fate: %+v", v, fate)
		}
	}
}

// transaction runs one transaction through s: mail, the recipients, data.
func transaction(t *testing.T, s *Session, rcpts ...string) (*mail.Envelope, []Outcome, *mail.Header) {
	t.Helper()
	ctx := context.Background()
	env := &mail.Envelope{ID: "Q", From: "s@x.test"}
	outs := []Outcome{s.Mail(ctx, env.From)}
	for _, r := range rcpts {
		var o Outcome
		env.Rcpts, o = s.Rcpt(ctx, env.Rcpts, mail.Recipient{Addr: r, Notify: []string{"NEVER"}})
		outs = append(outs, o)
	}
	h, body := mail.ParseHeader([]byte("Subject: hi\r\n\r\nbody\r\n"))
	outs = append(outs, s.Data(ctx, env, &h, body))
	return env, outs, &h
}

func addrsOf(rs []mail.Recipient) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Addr)
	}
	return out
}

func TestSessionConnectionVerdicts(t *testing.T) {
	for _, tc := range []struct {
		name          string
		chain         script
		discard, hold bool
	}{
		{"connect discard", verdictAt(pluginapi.HookConnect, pluginapi.Discard), true, false},
		{"helo discard", verdictAt(pluginapi.HookHelo, pluginapi.Discard), true, false},
		{"connect quarantine", verdictAt(pluginapi.HookConnect, pluginapi.Quarantine), false, true},
		{"helo quarantine", verdictAt(pluginapi.HookHelo, pluginapi.Quarantine), false, true},
		{"mail discard", verdictAt(pluginapi.HookMail, pluginapi.Discard), true, false},
		{"mail quarantine", verdictAt(pluginapi.HookMail, pluginapi.Quarantine), false, true},
		{"data quarantine", verdictAt(pluginapi.HookData, pluginapi.Quarantine), false, true},
	} {
		s := NewSession(tc.chain, nil, Spam{})
		s.Connect(context.Background())
		s.Helo(context.Background(), "client.test")
		// Connection-level verdicts apply to every transaction; the others
		// to their own, which here is every one too.
		for i := range 2 {
			env, outs, _ := transaction(t, s, "a@x.test")
			data := outs[len(outs)-1]
			if data.Discard != tc.discard || data.Hold != tc.hold || env.Held != tc.hold {
				t.Errorf("%s, message %d: data outcome %+v, env held %v; want discard %v hold %v",
					tc.name, i, data, env.Held, tc.discard, tc.hold)
			}
		}
	}
}

func TestSessionRcpt(t *testing.T) {
	// The chain edits recipients through the host functions, whose edits
	// never reach the caller's slice behind its back.
	chain := script(func(hook pluginapi.Hook, txn *Txn) Result {
		if hook != pluginapi.HookRcpt {
			return Result{}
		}
		e := NewEnv(context.Background(), hook, txn, &EnvSpec{Plugin: "p"})
		switch local, _, _ := mail.Split(txn.Rcpt); local {
		case "discard":
			return Result{Verdict: pluginapi.Discard}
		case "quarantine":
			return Result{Verdict: pluginapi.Quarantine}
		case "deleted":
			e.DelRcpt(txn.Rcpt)
		case "old":
			e.RewriteRcpt(txn.Rcpt, "new@x.test")
		case "refused":
			// Edits of a refusing stage are not kept.
			e.AddRcpt("sneaked@x.test")
			e.RewriteRcpt("a@x.test", "changed@x.test")
			e.DelRcpt("quarantine@x.test")
			return Result{Verdict: pluginapi.Reject}
		case "adder":
			e.AddRcpt("added@x.test")
		}
		return Result{}
	})
	s := NewSession(chain, nil, Spam{})
	env, outs, _ := transaction(t, s, "a@x.test", "discard@x.test", "quarantine@x.test", "deleted@x.test",
		"old@x.test", "refused@x.test", "adder@x.test")
	want := []string{"a@x.test", "quarantine@x.test", "new@x.test", "added@x.test", "adder@x.test"}
	if got := addrsOf(env.Rcpts); !slices.Equal(got, want) {
		t.Errorf("recipients %q, want %q", got, want)
	}
	if env.Rcpts[2].Notify[0] != "NEVER" {
		t.Errorf("the rewritten recipient lost its DSN parameters: %+v", env.Rcpts[2])
	}
	for i, w := range []struct{ drop, reply bool }{{}, {}, {drop: true}, {}, {drop: true}, {}, {reply: true}, {}} {
		if outs[i].Drop != w.drop || (outs[i].Reply != nil) != w.reply {
			t.Errorf("outcome %d: %+v, want drop %v reply %v", i, outs[i], w.drop, w.reply)
		}
	}
	data := outs[len(outs)-1]
	if !env.Held || !data.Hold || data.Discard {
		t.Errorf("a rcpt-stage quarantine must keep the message, held: %+v, held %v", data, env.Held)
	}
}

func TestSessionNotesAndScores(t *testing.T) {
	chain := script(func(hook pluginapi.Hook, txn *Txn) Result {
		switch hook {
		case pluginapi.HookConnect:
			txn.Notes["conn"] = "yes"
			txn.Symbols = append(txn.Symbols, Symbol{Name: "LISTED", Score: 3})
			txn.Score += 3
		case pluginapi.HookMail:
			if txn.Notes["txn"] != "" || txn.Rcpt != "" {
				return Result{Verdict: pluginapi.Reject} // a transaction's state leaked into the next
			}
		case pluginapi.HookRcpt:
			txn.Notes["txn"] = txn.Rcpt
		case pluginapi.HookData:
			if txn.Rcpt != "" {
				return Result{Verdict: pluginapi.Reject} // the rcpt under consideration is rcpt's only
			}
			txn.Symbols = append(txn.Symbols, Symbol{Name: "BODY", Score: 3})
			txn.Score += 3
		}
		return Result{}
	})
	s := NewSession(chain, nil, Spam{AddHeader: 5, Quarantine: 100, Reject: 100})
	s.Connect(context.Background())
	s.Helo(context.Background(), "c")
	for i := range 2 {
		env, outs, h := transaction(t, s, "a@x.test")
		for _, o := range outs {
			if o.Reply != nil {
				t.Fatalf("message %d refused: %v", i, o.Reply)
			}
		}
		if env.Notes["conn"] != "yes" || env.Notes["txn"] != "a@x.test" {
			t.Errorf("message %d: notes %v", i, env.Notes)
		}
		if v := h.Values("X-Spam-Status"); len(v) != 1 || v[0] != "Yes, score=6.0 symbols=LISTED(3),BODY(3)" {
			t.Errorf("message %d: X-Spam-Status %q", i, v)
		}
	}
}

func TestSessionSpamThresholds(t *testing.T) {
	for _, tc := range []struct {
		score      float64
		header     bool
		hold       bool
		reply      string
		discardAll bool
	}{
		{1, false, false, "", false},
		{5, true, false, "", false},
		{10, true, true, "", false},
		{15, false, false, "550 5.7.1 Message rejected as spam (score 15.0)", false},
	} {
		chain := script(func(hook pluginapi.Hook, txn *Txn) Result {
			if hook == pluginapi.HookData {
				txn.Symbols = append(txn.Symbols, Symbol{Name: "T", Score: tc.score})
				txn.Score += tc.score
			}
			return Result{}
		})
		s := NewSession(chain, nil, Spam{AddHeader: 5, Quarantine: 10, Reject: 15})
		env, outs, h := transaction(t, s, "a@x.test")
		o := outs[len(outs)-1]
		if got := h.Count("X-Spam-Status") == 1; got != tc.header {
			t.Errorf("score %v: header %v, want %v", tc.score, got, tc.header)
		}
		if o.Hold != tc.hold || env.Held != tc.hold {
			t.Errorf("score %v: hold %v/%v, want %v", tc.score, o.Hold, env.Held, tc.hold)
		}
		if reply := o.Reply; (reply == nil) != (tc.reply == "") || reply != nil && (reply.String() != tc.reply || !o.Spam) {
			t.Errorf("score %v: reply %v (spam %v), want %q", tc.score, reply, o.Spam, tc.reply)
		}
	}
}

func TestSessionDataEdits(t *testing.T) {
	chain := script(func(hook pluginapi.Hook, txn *Txn) Result {
		if hook == pluginapi.HookData {
			e := NewEnv(context.Background(), hook, txn, &EnvSpec{Plugin: "p"})
			e.AddHeader("X-Seen", "yes")
			e.DelRcpt(txn.Rcpts[0].Addr)
			if len(txn.Rcpts) > 0 && strings.HasPrefix(txn.Rcpts[0].Addr, "refuse") {
				return Result{Verdict: pluginapi.Tempfail}
			}
		}
		return Result{}
	})
	s := NewSession(chain, nil, Spam{})
	env, outs, h := transaction(t, s, "gone@x.test", "kept@x.test")
	if o := outs[len(outs)-1]; o.Reply != nil || o.Discard || !h.Edited() || h.Count("X-Seen") != 1 {
		t.Errorf("data outcome %+v, header %q", o, h.Bytes())
	}
	if got := addrsOf(env.Rcpts); !slices.Equal(got, []string{"kept@x.test"}) {
		t.Errorf("recipients %q", got)
	}
	env, outs, _ = transaction(t, s, "gone@x.test", "refuse@x.test")
	if o := outs[len(outs)-1]; o.Reply == nil || o.Reply.Code != 451 || len(env.Rcpts) != 2 {
		t.Errorf("refused data: %+v, recipients %q", o, addrsOf(env.Rcpts))
	}
	// A data stage that leaves no recipient discards the message.
	env, outs, _ = transaction(t, s, "gone@x.test")
	if o := outs[len(outs)-1]; !o.Discard || len(env.Rcpts) != 0 {
		t.Errorf("no recipient left: %+v", o)
	}
}

func TestDeliver(t *testing.T) {
	m := &mail.Message{
		Envelope: mail.Envelope{ID: "Q1", From: "s@x.test", ClientIP: "192.0.2.1", Helo: "c.test",
			Notes: map[string]string{"n": "v"}, Rcpts: []mail.Recipient{{Addr: "a@y.test", Attempts: 2}}},
		Body: []byte("Subject: hi\r\n\r\nbody\r\n"),
	}
	var seen *Txn
	edit := script(func(hook pluginapi.Hook, txn *Txn) Result {
		seen = txn
		txn.Header.Add("X-Dest", txn.Destination)
		txn.Route = "relay.test:25"
		txn.Notes["n"] = "changed"
		return Result{}
	})
	out, o := Deliver(context.Background(), edit, m, "y.test", []string{"a@y.test"})
	if out == nil || o.Reply != nil || o.Fate([]string{"a@y.test"}) != nil {
		t.Fatalf("Deliver = %v, %+v", out, o)
	}
	if string(out.Body) != "X-Dest: y.test\r\nSubject: hi\r\n\r\nbody\r\n" || out.Route != "relay.test:25" {
		t.Errorf("delivered %q via %q", out.Body, out.Route)
	}
	if string(m.Body) != "Subject: hi\r\n\r\nbody\r\n" || m.Route != "" || m.Notes["n"] != "v" {
		t.Errorf("the queued message changed: %q %q %v", m.Body, m.Route, m.Notes)
	}
	if seen.Attempt != 3 || seen.Conn.ClientIP.String() != "192.0.2.1" || seen.Conn.Helo != "c.test" ||
		seen.QueueID != "Q1" || len(seen.Rcpts) != 1 || seen.Rcpts[0].Addr != "a@y.test" {
		t.Errorf("deliver stage saw %+v", seen)
	}
	// Untouched, the message goes on as it was queued.
	out, _ = Deliver(context.Background(), script(func(pluginapi.Hook, *Txn) Result { return Result{} }), m, "y.test", []string{"a@y.test"})
	if out == nil || &out.Body[0] != &m.Body[0] {
		t.Errorf("an unedited message was copied")
	}
	out, o = Deliver(context.Background(), verdictAt(pluginapi.HookDeliver, pluginapi.Reject), m, "y.test", []string{"a@y.test"})
	if fate := o.Fate([]string{"a@y.test"}); out != nil || len(fate) != 1 || fate[0].Status != mail.Bounced {
		t.Errorf("rejected: %v, %+v", out, fate)
	}
}
