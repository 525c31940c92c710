package server_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/dovecot"
	"github.com/sluice-mta/sluice/core/servertest"
)

// TestLocalDeliveryMaildir sends a message over SMTP and finds it in the
// recipient's Maildir: the bytes sent, after our trace headers, with LF
// line endings and no CR anywhere in the file.
func TestLocalDeliveryMaildir(t *testing.T) {
	cfg := servertest.Config(t)
	s := start(t, cfg)
	msg := servertest.Message("sender@localhost", "alice@localhost", "hello", "Hi Alice,\r\n.leading dot survives\r\nbye\r\n")
	id := servertest.MustSend(t, s.addr, "sender@localhost", []string{"alice@localhost"}, msg)

	files := servertest.WaitFiles(t, filepath.Join(cfg.DataDir, "mail", "localhost", "alice"), 1, 10*time.Second)
	got, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if i := bytes.IndexByte(got, '\r'); i >= 0 {
		t.Errorf("the Maildir file has a CR at byte %d (Maildir files have LF line endings):\n%q", i, got)
	}
	msg = strings.ReplaceAll(msg, "\r\n", "\n")
	if !bytes.HasSuffix(got, []byte(msg)) {
		t.Errorf("mailbox bytes do not end with the message sent:\n%q\nwant suffix\n%q", got, msg)
	}
	trace := string(got[:len(got)-len(msg)])
	for _, want := range []string{"Delivered-To: alice@localhost\n", "Received: from client.test", "by " + cfg.Hostname, id} {
		if !strings.Contains(trace, want) {
			t.Errorf("trace headers %q lack %q", trace, want)
		}
	}
	waitQueueEmpty(t, s)
}

// TestLMTPThroughDovecot delivers through a real Dovecot LMTP server, and an
// unknown user there bounces to the sender, also through Dovecot.
func TestLMTPThroughDovecot(t *testing.T) {
	dc := dovecot.Start(t)
	cfg := servertest.Config(t)
	cfg.Local.Transport = "lmtp"
	cfg.Local.LMTP = dc.Addr
	s := start(t, cfg)

	msg := servertest.Message("bob@localhost", "alice@localhost", "via-lmtp", "through dovecot\r\n")
	servertest.MustSend(t, s.addr, "bob@localhost", []string{"alice@localhost", "nosuchuser@localhost"}, msg)

	files := servertest.WaitFiles(t, dc.Maildir("alice"), 1, 15*time.Second)
	got, _ := os.ReadFile(files[0])
	if !bytes.Contains(got, []byte("Subject: via-lmtp\r\n")) && !bytes.Contains(got, []byte("Subject: via-lmtp\n")) {
		t.Errorf("alice's message lacks the subject:\n%s", got)
	}
	if !bytes.Contains(got, []byte("through dovecot")) {
		t.Errorf("alice's message lacks the body:\n%s", got)
	}

	bounces := servertest.WaitFiles(t, dc.Maildir("bob"), 1, 15*time.Second)
	b, _ := os.ReadFile(bounces[0])
	for _, want := range []string{"multipart/report", "nosuchuser@localhost", "5.1.1"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("bounce to bob lacks %q:\n%s", want, b)
		}
	}
	waitQueueEmpty(t, s)
}

// TestBounceUnknownLocalUser: with mailboxes not created on demand, mail to
// a user without a Maildir is bounced to the sender's mailbox at once.
func TestBounceUnknownLocalUser(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.Local.CreateMailboxes = false
	senderBox := filepath.Join(cfg.DataDir, "mail", "localhost", "sender")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(senderBox, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s := start(t, cfg)
	id := servertest.MustSend(t, s.addr, "sender@localhost", []string{"ghost@localhost"}, servertest.Message("sender@localhost", "ghost@localhost", "to-a-ghost", "boo\r\n"))

	files := servertest.WaitFiles(t, senderBox, 1, 10*time.Second)
	b, _ := os.ReadFile(files[0])
	for _, want := range []string{"multipart/report", "report-type=delivery-status", "ghost@localhost", "5.1.1", "Subject: to-a-ghost"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("bounce for %s lacks %q:\n%s", id, want, b)
		}
	}
	if !bytes.Contains(b, []byte("Return-Path: <>")) && !bytes.Contains(b, []byte("From: ")) {
		t.Errorf("bounce has no sender headers:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "mail", "localhost", "ghost")); err == nil {
		t.Errorf("a Maildir was created for the unknown user")
	}
	waitQueueEmpty(t, s)
}

// waitQueueEmpty waits until every message has left the queue.
func waitQueueEmpty(t *testing.T, s *running) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		envs, err := s.srv.Queue().List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(envs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue still holds %d servertest.Message(s): first %+v", len(envs), envs[0])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
