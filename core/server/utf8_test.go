package server_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
)

// TestSMTPUTF8Inbound: a non-ASCII recipient without SMTPUTF8 on MAIL is
// refused with 553 5.6.7 and nothing is delivered; with SMTPUTF8 it is
// delivered to that recipient's own mailbox.
func TestSMTPUTF8Inbound(t *testing.T) {
	cfg := servertest.Config(t)
	s := start(t, cfg)
	c := dialRaw(t, s.addr)
	c.cmdExpect("EHLO client.test", "250")
	c.cmdExpect("MAIL FROM:<someone@example.org>", "250")
	c.cmdExpect("RCPT TO:<jösé@localhost>", "553 5.6.7")
	c.cmdExpect("RSET", "250")
	c.cmdExpect("MAIL FROM:<someone@example.org> SMTPUTF8", "250")
	c.cmdExpect("RCPT TO:<jösé@localhost>", "250")
	c.cmdExpect("DATA", "354")
	c.cmdExpect(servertest.Message("someone@example.org", "jösé@localhost", "utf8", "hola\r\n")+".", "250")
	c.cmdExpect("QUIT", "221")
	files := servertest.WaitFiles(t, filepath.Join(cfg.DataDir, "mail", "localhost", "jösé"), 1, 15*time.Second)
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "Delivered-To: jösé@localhost\n") || !strings.Contains(string(b), "Subject: utf8\n") {
		t.Errorf("jösé's mailbox holds:\n%s", b)
	}
	if n := len(servertest.MaildirFiles(filepath.Join(cfg.DataDir, "mail", "localhost", "jösé"))); n != 1 {
		t.Errorf("jösé's mailbox holds %d messages, want 1 (the refused one must not arrive)", n)
	}
}
