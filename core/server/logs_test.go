package server_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// loggingRules make the policy plugin log a line at every hook, refuse a
// recipient at RCPT and a message at DATA.
var loggingRules = `
[config]
rules = [
  {hook = "connect", match = "", log = "plugin saw connect"},
  {hook = "helo", match = "", log = "plugin saw helo"},
  {hook = "mail", match = "", log = "plugin saw mail"},
  {hook = "rcpt", match = "", log = "plugin saw rcpt"},
  {hook = "rcpt", match = "blocked@", verdict = "reject", code = 550, enh = "5.7.1", text = "blocked"},
  {hook = "data", match = "", log = "plugin saw data"},
  {hook = "data", match = "REJECTME", verdict = "reject", code = 550, enh = "5.7.1", text = "no thanks"},
  {hook = "deliver", match = "", log = "plugin saw deliver"},
]
`

// logLine is one JSON log record.
type logLine map[string]any

func (l logLine) str(k string) string { s, _ := l[k].(string); return s }

// TestLogsFollowSessionAndMessage runs one session against the real
// server with a JSON log: a plugin refuses a recipient, the guard a
// malformed one, a message is taken and delivered, a second one refused
// at DATA by the plugin, which logs at every hook. Every line of the
// session carries the one session ID (the plugin's included), every line
// about a message its queue ID, the queue writes one "queued" line per
// message taken, and the delivery line is Postfix's.
func TestLogsFollowSessionAndMessage(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.LogFormat = "json"
	servertest.Install(t, cfg, "policy", sdktest.Build(t, "testdata/policy"), loggingRules)
	srv := servertest.Start(t, cfg)

	c := dialRaw(t, srv.Addr)
	c.cmdExpect("EHLO client.test", "250")
	c.cmdExpect("MAIL FROM:<a@remote.test>", "250")
	c.cmdExpect("RCPT TO:<blocked@localhost>", "550 5.7.1 blocked")
	c.cmdExpect("RCPT TO:<a%b@localhost>", "554 5.7.1")
	c.cmdExpect("RCPT TO:<alice@localhost>", "250")
	c.cmdExpect("DATA", "354")
	reply := c.cmdExpect(servertest.Message("a@remote.test", "alice@localhost", "hello", "hi\r\n")+".", "250")
	taken := reply[strings.LastIndex(reply, " ")+1:]
	c.cmdExpect("MAIL FROM:<a@remote.test>", "250")
	c.cmdExpect("RCPT TO:<alice@localhost>", "250")
	c.cmdExpect("DATA", "354")
	c.cmdExpect(servertest.Message("a@remote.test", "alice@localhost", "REJECTME", "hi\r\n")+".", "550 5.7.1 no thanks")
	c.cmdExpect("QUIT", "221")
	servertest.WaitFiles(t, filepath.Join(cfg.DataDir, "mail", "localhost", "alice"), 1, 10*time.Second)

	// Wait for the session's end and the delivery line.
	var lines []logLine
	deadline := time.Now().Add(10 * time.Second)
	for {
		lines = lines[:0]
		var disconnected, delivered bool
		for _, l := range srv.Logs() {
			var m logLine
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("log line %q is not JSON: %v", l, err)
			}
			lines = append(lines, m)
			disconnected = disconnected || m.str("msg") == "disconnect"
			delivered = delivered || m.str("msg") == "delivery" && m.str("id") == taken
		}
		if disconnected && delivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no disconnect and delivery lines for %s in:\n%s", taken, strings.Join(srv.Logs(), "\n"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	dump := func() string { return strings.Join(srv.Logs(), "\n") }

	var session, refused string
	for _, l := range lines {
		if l.str("msg") == "connect" {
			if session != "" {
				t.Fatalf("two connect lines:\n%s", dump())
			}
			session = l.str("session")
		}
		if l.str("msg") == "reject" && l.str("stage") == "data" {
			refused = l.str("id")
		}
	}
	if len(session) != 12 || refused == "" || refused == taken {
		t.Fatalf("session %q, queue IDs %q (taken) and %q (refused at DATA): want a session ID and two queue IDs:\n%s", session, taken, refused, dump())
	}

	sessionHooks := map[string]bool{"connect": true, "helo": true, "mail": true, "rcpt": true, "data": true}
	count := map[string]int{}
	for _, l := range lines {
		msg, id := l.str("msg"), l.str("id")
		count[msg]++
		// A line of the session: the connection's, the SMTP stages', and
		// the plugin host's during the session's hooks.
		ofSession := l["client"] != nil || l.str("service") == "smtp" && msg != "listening" ||
			l["plugin"] != nil && sessionHooks[l.str("hook")] || msg == "queued"
		if ofSession && l.str("session") != session {
			t.Errorf("a line of the session without its ID %s: %v", session, l)
		}
		if !ofSession && l["session"] != nil {
			t.Errorf("a line outside the session with a session ID: %v", l)
		}
		// A line about a message: from DATA on.
		aboutMessage := msg == "queued" || msg == "delivery" || l.str("hook") == "data" || l.str("hook") == "deliver" ||
			msg == "reject" && l.str("stage") == "data"
		if aboutMessage && id != taken && id != refused {
			t.Errorf("a line about a message without its queue ID: %v", l)
		}
		if !aboutMessage && id != "" && l["session"] != nil {
			t.Errorf("a session line before DATA with a queue ID: %v", l)
		}
		switch {
		case msg == "queued" && id != taken:
			t.Errorf("queued line for a message not taken: %v", l)
		case msg == "plugin saw deliver" && id != taken:
			t.Errorf("deliver-stage plugin line for %s, want %s: %v", id, taken, l)
		case msg == "delivery":
			for _, k := range []string{"to", "relay", "delay", "dsn", "status"} {
				if l[k] == nil {
					t.Errorf("delivery line without %s: %v", k, l)
				}
			}
		}
	}
	if count["queued"] != 1 {
		t.Errorf("%d queued lines, want 1 (for %s):\n%s", count["queued"], taken, dump())
	}
	for _, hook := range []string{"connect", "helo", "mail", "rcpt", "data", "deliver"} {
		if count["plugin saw "+hook] == 0 {
			t.Errorf("no plugin line at %s:\n%s", hook, dump())
		}
	}

	// The rejects: stage, reply, plugin or rule, the queue ID at DATA.
	want := []string{
		"rcpt 550 5.7.1 blocked plugin=policy id= rcpt=blocked@localhost",
		"rcpt 554 5.7.1 Relay access denied: routing characters (%, !, @) in local part rule=address_routing id= rcpt=a%b@localhost",
		"data 550 5.7.1 no thanks plugin=policy id=" + refused + " rcpt=",
	}
	var got []string
	for _, l := range lines {
		if l.str("msg") == "reject" {
			by := "plugin=" + l.str("plugin")
			if l.str("rule") != "" {
				by = "rule=" + l.str("rule")
			}
			got = append(got, fmt.Sprintf("%s %s %s id=%s rcpt=%s", l.str("stage"), l.str("reply"), by, l.str("id"), l.str("rcpt")))
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("reject lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
