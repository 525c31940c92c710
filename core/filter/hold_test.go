package filter

import (
	"context"
	"net/netip"
	"testing"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// quarantineAt quarantines at hook with a reply whose text is the reason.
func quarantineAt(hook pluginapi.Hook, reason string) script {
	return func(h pluginapi.Hook, txn *Txn) Result {
		if h != hook {
			return Result{}
		}
		r, _ := Decide(pluginapi.Quarantine, &mail.Reply{Code: 550, Text: reason}, "p")
		return r
	}
}

// TestHoldReason: a quarantine holds the message with the plugin's reason
// at every stage: a connect or helo quarantine in every transaction of the
// connection, a later one in its own, the spam threshold with the score;
// at deliver the queued message is held (mail.Held) with the reason.
func TestHoldReason(t *testing.T) {
	for _, tc := range []struct {
		name   string
		chain  script
		spam   Spam
		reason string
		all    bool // every transaction of the connection
	}{
		{"connect", quarantineAt(pluginapi.HookConnect, "listed"), Spam{}, "quarantined by plugin p: listed", true},
		{"helo", quarantineAt(pluginapi.HookHelo, "bad helo"), Spam{}, "quarantined by plugin p: bad helo", true},
		{"rcpt", quarantineAt(pluginapi.HookRcpt, "trap"), Spam{}, "quarantined by plugin p: trap", false},
		{"data no text", verdictAt(pluginapi.HookData, pluginapi.Quarantine), Spam{}, "quarantined by plugin p", false},
		{"spam", func(h pluginapi.Hook, txn *Txn) Result {
			if h == pluginapi.HookData {
				txn.Symbols = append(txn.Symbols, Symbol{Plugin: "p", Name: "BAD", Score: 12})
				txn.Score += 12
			}
			return Result{}
		}, Spam{Quarantine: 10}, "spam score 12.0 at or over the quarantine threshold 10.0 (symbols BAD(12))", false},
	} {
		s := NewSession(tc.chain, nil, tc.spam)
		s.Connect(context.Background())
		s.Helo(context.Background(), "client.test")
		for i := range 2 {
			env, outs, _ := transaction(t, s, "a@x.test")
			data := outs[len(outs)-1]
			if !env.Held || env.HoldReason != tc.reason || data.HoldReason != tc.reason {
				t.Errorf("%s, message %d: held %v reason %q (outcome %q), want %q", tc.name, i, env.Held, env.HoldReason, data.HoldReason, tc.reason)
			}
			if !tc.all {
				break // the next transaction would run the stage again
			}
		}
	}

	m := &mail.Message{Envelope: mail.Envelope{ID: "Q", From: "s@x.test", Rcpts: []mail.Recipient{{Addr: "a@y.test"}}},
		Body: []byte("Subject: s\r\n\r\nb")}
	out, o := Deliver(context.Background(), quarantineAt(pluginapi.HookDeliver, "looks bad"), m, "y.test", []string{"a@y.test"})
	fate := o.Fate([]string{"a@y.test"})
	if out != nil || len(fate) != 1 || fate[0].Status != mail.Held || fate[0].Reply.Text != "quarantined by plugin p: looks bad" {
		t.Errorf("deliver quarantine: %v, %+v", out, fate)
	}
}

// TestDeliverProps: what plugins read of the connection at the SMTP
// stages, the deliver stage reads too, from the envelope (the issue:
// get_prop returned "" there for AuthUser, TLS, Listener, AuthResults).
func TestDeliverProps(t *testing.T) {
	conn := &Conn{ClientIP: netip.MustParseAddr("192.0.2.7"), ClientPort: 40001, RDNS: "c.example", Helo: "c.example",
		TLS: "TLS1.3 TLS_AES_128_GCM_SHA256", AuthUser: "alice", Listener: "submission",
		LocalIP: netip.MustParseAddr("198.51.100.1"), AuthResults: "mx.test; spf=pass"}
	props := []pluginapi.Prop{pluginapi.PropClientIP, pluginapi.PropClientPort, pluginapi.PropClientRDNS, pluginapi.PropHelo,
		pluginapi.PropTLS, pluginapi.PropAuthUser, pluginapi.PropListener, pluginapi.PropLocalIP, pluginapi.PropAuthResults}
	read := func(txn *Txn, hook pluginapi.Hook) map[pluginapi.Prop]string {
		e := NewEnv(context.Background(), hook, txn, &EnvSpec{Plugin: "p"})
		out := map[pluginapi.Prop]string{}
		for _, p := range props {
			v, st := e.Prop(p)
			if st != pluginapi.StatusOK {
				t.Fatalf("get_prop %v at %v: %v", p, hook, st)
			}
			out[p] = v
		}
		return out
	}
	var atData map[pluginapi.Prop]string
	s := NewSession(script(func(h pluginapi.Hook, txn *Txn) Result {
		if h == pluginapi.HookData {
			atData = read(txn, h)
		}
		return Result{}
	}), conn, Spam{})
	s.Connect(context.Background())
	s.Helo(context.Background(), "c.example")
	env, _, _ := transaction(t, s, "a@y.test")
	env.ClientIP, env.Helo = "192.0.2.7", "c.example" // smtpd sets these at MAIL

	var atDeliver map[pluginapi.Prop]string
	m := &mail.Message{Envelope: *env, Body: []byte("Subject: s\r\n\r\nb")}
	Deliver(context.Background(), script(func(h pluginapi.Hook, txn *Txn) Result {
		atDeliver = read(txn, h)
		return Result{}
	}), m, "y.test", []string{"a@y.test"})
	for _, p := range props {
		if atData[p] == "" || atDeliver[p] != atData[p] {
			t.Errorf("prop %v: %q at data, %q at deliver", p, atData[p], atDeliver[p])
		}
	}
}
