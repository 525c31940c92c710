package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
)

// TestRelayDenied: a client outside trusted_networks may only send to local
// domains, and no address trick turns a local recipient into a relay.
func TestRelayDenied(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")} // not us
	s := start(t, cfg)

	denied := []string{
		"victim@remote.example",
		"victim%remote.example@localhost",       // percent hack
		"remote.example!victim@localhost",       // bang path
		`"victim@remote.example"@localhost`,     // quoted local part
		"@localhost:victim@remote.example",      // source route
		"victim@remote.example@localhost",       // two at-signs
		"victim@[192.0.2.1]",                    // address literal
		"victim@localhost.remote.example",       // suffix tricks
		"victim@remote.example.",                // trailing dot
		"../../etc/passwd@localhost",            // path escape
		"victim@remote.example\r\nRCPT TO:<x@y", // CRLF injection (rejected as a line)
	}
	for _, rcpt := range denied {
		t.Run(rcpt, func(t *testing.T) {
			c := dialRaw(t, s.addr)
			c.cmdExpect("EHLO client.test", "250")
			c.cmdExpect("MAIL FROM:<spammer@remote.example>", "250")
			line := c.cmdExpect("RCPT TO:<"+rcpt+">", "5")
			if rcpt == "victim@remote.example" && !strings.HasPrefix(line, "554 5.7.1") {
				t.Errorf("relay attempt got %q, want 554 5.7.1", line)
			}
		})
	}
	// A local recipient is still accepted from the same untrusted client.
	servertest.MustSend(t, s.addr, "someone@remote.example", []string{"alice@localhost"}, servertest.Message("someone@remote.example", "alice@localhost", "inbound", "ok\r\n"))
	servertest.WaitFiles(t, filepath.Join(cfg.DataDir, "mail", "localhost", "alice"), 1, 10*time.Second)
	envs, _ := s.srv.Queue().List(context.Background())
	for _, e := range envs {
		for _, r := range e.Rcpts {
			if !strings.HasSuffix(r.Addr, "@localhost") {
				t.Errorf("queue holds a relayed recipient %q", r.Addr)
			}
		}
	}
}

// TestRelayTrusted: a client in trusted_networks may send anywhere.
func TestRelayTrusted(t *testing.T) {
	cfg := servertest.Config(t)
	// remote.example goes to a closed port, so the message stays deferred
	// in the queue to be looked at (an MX lookup could bounce it first).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	cfg.Delivery.Routes = append(cfg.Delivery.Routes, config.DeliveryRoute{Domain: "remote.example", Relay: closed})
	s := start(t, cfg) // default trusted_networks include 127.0.0.0/8
	id := servertest.MustSend(t, s.addr, "me@localhost", []string{"friend@remote.example"}, servertest.Message("me@localhost", "friend@remote.example", "out", "hi\r\n"))
	m, err := s.srv.Queue().Get(context.Background(), id)
	if err != nil {
		t.Fatalf("relayed message %s not in the queue: %v", id, err)
	}
	if len(m.Rcpts) != 1 || m.Rcpts[0].Addr != "friend@remote.example" {
		t.Errorf("queued recipients %+v", m.Rcpts)
	}
}

// TestBareNewlines: every bare CR / bare LF form, including the SMTP
// smuggling end-of-data variants, is refused and nothing is queued; the
// hidden second message is never accepted.
func TestBareNewlines(t *testing.T) {
	cfg := servertest.Config(t)
	s := start(t, cfg)
	hidden := "MAIL FROM:<smuggler@remote.example>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\nhidden\r\n"
	forms := map[string]string{
		"LF.LF":       "\n.\n",
		"CR.CR":       "\r.\r",
		"CRLF.LF":     "\r\n.\n",
		"LF.CRLF":     "\n.\r\n",
		"CR.CRLF":     "\r.\r\n",
		"CRLF.CR":     "\r\n.\r",
		"bare LF":     "\nline\r\n",
		"bare CR":     "\rline\r\n",
		"CRLF.CRCRLF": "\r\n.\r\r\n",
	}
	for name, form := range forms {
		t.Run(name, func(t *testing.T) {
			c := dialRaw(t, s.addr)
			c.cmdExpect("EHLO client.test", "250")
			c.cmdExpect("MAIL FROM:<sender@localhost>", "250")
			c.cmdExpect("RCPT TO:<alice@localhost>", "250")
			c.cmdExpect("DATA", "354")
			c.write("Subject: outer\r\n\r\nbody" + form + hidden + "\r\n.\r\n")
			c.expect("550 5.5.2")
			// The session goes on normally: the hidden part was data, not commands.
			c.cmdExpect("NOOP", "250")
			c.cmdExpect("QUIT", "221")
		})
	}
	if envs, _ := s.srv.Queue().List(context.Background()); len(envs) != 0 {
		t.Errorf("queue holds %d servertest.Message(s) after refused bare newlines", len(envs))
	}
	if files := servertest.MaildirFiles(filepath.Join(cfg.DataDir, "mail", "localhost", "alice")); len(files) != 0 {
		t.Errorf("alice received %d servertest.Message(s), want none", len(files))
	}
}

// TestStalledData: a client that stalls inside DATA gets 421 4.4.2 no
// sooner than the data timeout after its last byte and is disconnected
// (so nothing it sends later is read as commands); the half message is
// not queued. core/smtpd's TestStalledData checks the details.
func TestStalledData(t *testing.T) {
	const timeout = 500 * time.Millisecond
	cfg := servertest.Config(t)
	cfg.SMTP.DataTimeout = cfgDuration(timeout)
	s := start(t, cfg)
	c := dialRaw(t, s.addr)
	c.cmdExpect("EHLO client.test", "250")
	c.cmdExpect("MAIL FROM:<sender@localhost>", "250")
	c.cmdExpect("RCPT TO:<alice@localhost>", "250")
	c.cmdExpect("DATA", "354")
	c.write("Subject: stall\r\n\r\nhalf a message")
	sent := time.Now()
	c.expect("421 4.4.2 ")
	if waited := time.Since(sent); waited < timeout {
		t.Errorf("421 after %v, before the data timeout of %v", waited, timeout)
	}
	if line, err := c.reply(); err != io.EOF {
		t.Errorf("after 421 got %q, %v; want the connection closed", line, err)
	}
	if envs, _ := s.srv.Queue().List(context.Background()); len(envs) != 0 {
		t.Errorf("queue holds %d messages after a stalled DATA", len(envs))
	}
}

// TestLimits: message size at MAIL and at end of data, recipient count.
func TestLimits(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.SMTP.MaxMessageSize = 1024
	cfg.SMTP.MaxRecipients = 2
	s := start(t, cfg)

	c := dialRaw(t, s.addr)
	c.cmdExpect("EHLO client.test", "250")
	c.cmdExpect("MAIL FROM:<sender@localhost> SIZE=4096", "552 5.3.4")
	c.cmdExpect("MAIL FROM:<sender@localhost>", "250")
	c.cmdExpect("RCPT TO:<a@localhost>", "250")
	c.cmdExpect("RCPT TO:<b@localhost>", "250")
	c.cmdExpect("RCPT TO:<c@localhost>", "452 4.5.3")
	c.cmdExpect("DATA", "354")
	c.write("Subject: big\r\n\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef\r\n", 64) + ".\r\n")
	c.expect("552 5.3.4")
	c.cmdExpect("QUIT", "221")

	_, err := servertest.Send(s.addr, "sender@localhost", []string{"a@localhost"}, servertest.Message("sender@localhost", "a@localhost", "small", "fits\r\n"))
	if err != nil {
		t.Errorf("a message under the limit was refused: %v", err)
	}
	if _, err := servertest.Send(s.addr, "sender@localhost", []string{"a@localhost"}, strings.Repeat("0123456789abcdef\r\n", 128)); servertest.Code(err) != 552 {
		t.Errorf("oversized message: got %v, want 552", err)
	}
}

// TestConnectionLimitPerIP: past the per-IP cap a client gets 421, and the
// sessions it already has keep working.
func TestConnectionLimitPerIP(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.SMTP.MaxConnectionsPerIP = 3
	s := start(t, cfg)
	var held []*rawSession
	for i := 0; i < 3; i++ {
		held = append(held, dialRaw(t, s.addr))
	}
	c, err := dialRawNoGreeting(s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 512)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := c.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421 4.7.0") {
		t.Errorf("fourth connection got %q, want 421 4.7.0", buf[:n])
	}
	held[0].cmdExpect("NOOP", "250")
	held[0].cmdExpect("QUIT", "221")
	// A freed slot is usable again.
	time.Sleep(200 * time.Millisecond)
	dialRaw(t, s.addr).cmdExpect("NOOP", "250")
}

// TestStartupErrorIsReported: a port already in use fails server.New with
// an error naming it, and leaves nothing open (the data directory can be
// used again at once).
func TestStartupErrorIsReported(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := servertest.Config(t)
	cfg.SMTP.Listen = []string{busy.Addr().String()}
	if _, err := server.New(context.Background(), cfg, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Fatalf("server.New on a busy port: %v", err)
	}
	cfg.SMTP.Listen = []string{"127.0.0.1:0"}
	start(t, cfg) // the queue and admin socket were released
}
