package local

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/internal/dovecot"
	"github.com/sluice-mta/sluice/core/mail"
)

// forged is a message that brings Return-Path fields of its own, one of
// them folded; final delivery must not keep them.
const forged = "Return-Path: <forged@attacker.example>\r\n" +
	"From: <a@example.org>\r\n" +
	"Return-Path:\r\n <forged2@attacker.example>\r\n" +
	"Subject: return path\r\n" +
	"\r\n" +
	"Return-Path: <in-the-body@example.org> stays\r\n"

// returnPaths returns the Return-Path values of the header of msg.
func returnPaths(msg []byte) []string {
	h, _ := mail.ParseHeader(msg)
	return h.Values("Return-Path")
}

// checkReturnPath fails unless msg starts with exactly one Return-Path,
// naming sender, and keeps the rest of forged but its Return-Path fields,
// its lines ending in eol.
func checkReturnPath(t *testing.T, who string, msg []byte, sender, eol string) {
	t.Helper()
	want := "Return-Path: <" + sender + ">" + eol
	if !bytes.HasPrefix(msg, []byte(want)) {
		t.Errorf("%s: stored message does not start with %q:\n%s", who, want, msg)
	}
	if got := returnPaths(msg); len(got) != 1 {
		t.Errorf("%s: %d Return-Path fields %q, want exactly one:\n%s", who, len(got), got, msg)
	}
	for _, keep := range []string{"Subject: return path\r\n", "\r\n\r\nReturn-Path: <in-the-body@example.org> stays\r\n"} {
		keep = strings.ReplaceAll(keep, "\r\n", eol)
		if !bytes.Contains(msg, []byte(keep)) {
			t.Errorf("%s: stored message lost %q:\n%s", who, keep, msg)
		}
	}
}

func TestMaildirReturnPath(t *testing.T) {
	for _, sender := range []string{"sender@example.org", ""} {
		root := t.TempDir()
		d := NewMaildir(MaildirOptions{Template: root + "/{domain}/{user}", Create: true})
		m := newMessage([]byte(forged))
		m.From = sender
		res := d.Deliver(context.Background(), m, []string{"alice@example.com"})
		if len(res) != 1 || res[0].Status != mail.Sent {
			t.Fatalf("sender %q: results %+v, want sent", sender, res)
		}
		got := stored(t, filepath.Join(root, "example.com", "alice"))
		checkReturnPath(t, "sender <"+sender+">", got, sender, "\n")
		if !bytes.HasPrefix(got, []byte("Return-Path: <"+sender+">\nDelivered-To: alice@example.com\n")) {
			t.Errorf("sender %q: Delivered-To is not second:\n%s", sender, got)
		}
	}
}

// TestLMTPReturnPathDovecot: through Dovecot's LMTP, which writes the
// Return-Path from MAIL FROM itself, the stored message has exactly one,
// for a sender and for the null sender of a bounce.
func TestLMTPReturnPathDovecot(t *testing.T) {
	s := dovecot.Start(t)
	l := NewLMTP(LMTPOptions{Addr: s.Addr, Hostname: "mx.test.example"})
	for _, tc := range []struct{ user, sender string }{{"alice", "sender@example.org"}, {"bob", ""}} {
		m := newMessage([]byte(forged))
		m.From = tc.sender
		res := l.Deliver(context.Background(), m, []string{tc.user + "@example.com"})
		if len(res) != 1 || res[0].Status != mail.Sent {
			t.Fatalf("sender %q: results %+v, want sent", tc.sender, res)
		}
		checkReturnPath(t, "sender <"+tc.sender+">", stored(t, s.Maildir(tc.user)), tc.sender, "\r\n")
	}
}
