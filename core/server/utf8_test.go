package server_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/internal/smtpsink"
	"github.com/sluice-mta/sluice/core/internal/testwait"
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

// TestSMTPUTF8Outbound: mail relayed through the real server. An
// SMTPUTF8 message to jösé at a domain whose server is Postfix's
// smtp-sink, which does not offer SMTPUTF8, is not sent (smtp-sink sees no
// MAIL) and bounces to its sender with 5.6.7; to a server that offers it,
// it goes with the SMTPUTF8 parameter. Then four messages, each sent once
// the last is delivered, ride the connection the first attempt opened:
// smtp-sink logs one connection, one EHLO, four MAIL and no RSET.
func TestSMTPUTF8Outbound(t *testing.T) {
	plain := smtpsink.Start(t)
	utf8Addr := reserveAddr(t)
	utf8 := startSink(t, utf8Addr, false, func(s *sink) { s.smtputf8 = true })
	cfg := servertest.Config(t)
	cfg.Delivery.Routes = []config.DeliveryRoute{
		{Domain: "plain.test", Relay: plain.Addr, RelayTLS: "none"},
		{Domain: "utf8.test", Relay: utf8Addr, RelayTLS: "none"},
	}
	box := localBox(t, cfg, "sender")
	s := start(t, cfg)
	probes := plain.Commands()["connect"] // smtpsink.Start's readiness probe

	sendUTF8 := func(rcpt string) {
		c := dialRaw(t, s.addr)
		c.cmdExpect("EHLO client.test", "250")
		c.cmdExpect("MAIL FROM:<sender@localhost> SMTPUTF8", "250")
		c.cmdExpect("RCPT TO:<"+rcpt+">", "250")
		c.cmdExpect("DATA", "354")
		c.cmdExpect(servertest.Message("sender@localhost", rcpt, "¡hola!", "olé\r\n")+".", "250")
		c.cmdExpect("QUIT", "221")
	}
	sendUTF8("jösé@plain.test")
	files := servertest.WaitFiles(t, box, 1, 15*time.Second)
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Status: 5.6.7", "does not support SMTPUTF8",
		"Content-Type: message/global-delivery-status", "Final-Recipient: utf-8; jösé@plain.test", "Diagnostic-Code: x-sluice;"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if n := plain.Commands()["MAIL"]; n != 0 {
		t.Errorf("smtp-sink (no SMTPUTF8) saw %d MAIL commands, want none", n)
	}

	sendUTF8("jösé@utf8.test")
	waitSink(t, utf8, 1, 15*time.Second)
	if envs := utf8.envelopes(); len(envs) != 1 || !envs[0].UTF8 || envs[0].From != "sender@localhost" || len(envs[0].Rcpts) != 1 || envs[0].Rcpts[0] != "jösé@utf8.test" {
		t.Errorf("the SMTPUTF8 server got %+v, want MAIL FROM:<sender@localhost> SMTPUTF8 and RCPT TO:<jösé@utf8.test>", envs)
	}
	waitQueueEmpty(t, s)

	for i := range 4 {
		servertest.MustSend(t, s.addr, "sender@localhost", []string{"bob@plain.test"}, servertest.Message("sender@localhost", "bob@plain.test", fmt.Sprint("reuse ", i), "x\r\n"))
		testwait.Until(t, 15*time.Second, "smtp-sink to take the message", func() bool { return plain.Commands()["."] == i+1 })
		waitQueueEmpty(t, s)
	}
	cmds := plain.Commands()
	if cmds["connect"]-probes != 1 || cmds["EHLO"] != 1 || cmds["RSET"] != 0 || cmds["MAIL"] != 4 || cmds["DATA"] != 4 {
		t.Errorf("smtp-sink saw %v (%d readiness probes), want 1 connection, 1 EHLO, 4 MAIL and DATA, no RSET:\n%s", cmds, probes, plain.Output())
	}
}

// Test8BITMIMEOutbound: to Postfix's smtp-sink started with -8 (no
// 8BITMIME), a message with an 8-bit body is not sent (RFC 6152: never
// raw) and bounces to its sender with 5.6.3, while a 7-bit one goes
// without BODY=8BITMIME; to an smtp-sink that offers 8BITMIME even the
// 7-bit message is declared BODY=8BITMIME.
func Test8BITMIMEOutbound(t *testing.T) {
	no8bit := smtpsink.Start(t, "-8")
	with8bit := smtpsink.Start(t)
	cfg := servertest.Config(t)
	cfg.Delivery.Routes = []config.DeliveryRoute{
		{Domain: "seven.test", Relay: no8bit.Addr, RelayTLS: "none"},
		{Domain: "eight.test", Relay: with8bit.Addr, RelayTLS: "none"},
	}
	box := localBox(t, cfg, "sender")
	s := start(t, cfg)

	servertest.MustSend(t, s.addr, "sender@localhost", []string{"bob@seven.test"}, servertest.Message("sender@localhost", "bob@seven.test", "8-bit", "ol\xc3\xa9\r\n"))
	files := servertest.WaitFiles(t, box, 1, 15*time.Second)
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Status: 5.6.3", "does not support 8BITMIME"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if mails := no8bit.Lines("MAIL"); len(mails) != 0 {
		t.Errorf("smtp-sink -8 got %q, want no MAIL for the 8-bit message", mails)
	}
	waitQueueEmpty(t, s)

	for _, rcpt := range []string{"bob@seven.test", "bob@eight.test"} {
		servertest.MustSend(t, s.addr, "sender@localhost", []string{rcpt}, servertest.Message("sender@localhost", rcpt, "7-bit", "plain\r\n"))
	}
	testwait.Until(t, 15*time.Second, "both smtp-sinks to take the 7-bit message", func() bool {
		return no8bit.Commands()["."] == 1 && with8bit.Commands()["."] == 1
	})
	if got := no8bit.Lines("MAIL"); len(got) != 1 || got[0] != "MAIL FROM:<sender@localhost>" {
		t.Errorf("smtp-sink -8 got %q, want MAIL FROM:<sender@localhost> without BODY=", got)
	}
	if got := with8bit.Lines("MAIL"); len(got) != 1 || got[0] != "MAIL FROM:<sender@localhost> BODY=8BITMIME" {
		t.Errorf("smtp-sink got %q, want MAIL FROM:<sender@localhost> BODY=8BITMIME", got)
	}
}
