package smtpd

import (
	"crypto/tls"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/core/tlsconf"
)

func TestStartTLSAdvertisedOnceAndReset(t *testing.T) {
	q := &fakeQueue{}
	addr := startServer(t, submissionOptions(t, q))
	rc := dialRaw(t, addr, "")
	rc.expect(220)
	caps := rc.ehlo()
	if !slices.Contains(caps, "STARTTLS") {
		t.Errorf("EHLO before TLS lacks STARTTLS: %q", caps)
	}
	st := rc.startTLS()
	if st.Version < tls.VersionTLS12 {
		t.Errorf("TLS version %x, want 1.2 or later", st.Version)
	}
	// RFC 3207 §4.2: the session starts over; MAIL before EHLO is refused.
	rc.send("MAIL FROM:<alice@local.test>\r\n")
	rc.expect(502)
	caps = rc.ehlo()
	if slices.Contains(caps, "STARTTLS") {
		t.Errorf("EHLO after TLS still offers STARTTLS: %q", caps)
	}
	if !slices.Contains(caps, "AUTH PLAIN LOGIN") {
		t.Errorf("EHLO after TLS lacks AUTH PLAIN LOGIN: %q", caps)
	}
	rc.send("STARTTLS\r\n")
	rc.expect(502)
}

// TestStartTLSInjection sends a command in the same packet as STARTTLS
// (CVE-2011-0411): it must never be answered or acted on.
func TestStartTLSInjection(t *testing.T) {
	q := &fakeQueue{}
	logs := &testlog.Buffer{}
	opts := submissionOptions(t, q)
	opts.Name, opts.Users, opts.TrustedNetworks = "smtp", nil, loopback()
	opts.Logger = logs.Logger(slog.LevelDebug)
	addr := startServer(t, opts)
	rc := dialRaw(t, addr, "")
	rc.greet()
	rc.send("STARTTLS\r\nMAIL FROM:<x@y.example>\r\n")
	rc.expect(220)
	rc.handshake()
	// The first reply after the handshake is to this EHLO, not to MAIL.
	rc.ehlo()
	rc.send("RCPT TO:<a@local.test>\r\n")
	if code, text := rc.reply(); code < 500 {
		t.Fatalf("RCPT after injected MAIL got %d %q: the injected MAIL survived STARTTLS", code, text)
	}
	rc.send("QUIT\r\n")
	rc.expect(221)
	if envs, _ := q.got(); len(envs) != 0 {
		t.Errorf("queued %d messages", len(envs))
	}
	if !strings.Contains(logs.String(), "discarded commands pipelined before the handshake") {
		t.Errorf("no log line for the discarded bytes; logs:\n%s", logs)
	}
}

func TestGuardChecksAfterSTARTTLS(t *testing.T) {
	q := &fakeQueue{}
	opts := submissionOptions(t, q)
	opts.Listener.DataTimeout = config.Duration(200 * time.Millisecond)
	addr := startServer(t, opts)

	login := func(t *testing.T) *rawConn {
		rc := dialRaw(t, addr, "")
		rc.greet()
		rc.startTLS()
		rc.ehlo()
		rc.send("AUTH PLAIN " + plain("alice@local.test", "secret") + "\r\n")
		rc.expect(235)
		return rc
	}
	t.Run("bare LF command", func(t *testing.T) {
		rc := login(t)
		rc.send("NOOP\n")
		if got := rc.readToEOF(); !strings.HasPrefix(got, "500 5.5.2") {
			t.Errorf("bare LF command got %q, want 500 5.5.2 and close", got)
		}
	})
	t.Run("bare LF in DATA", func(t *testing.T) {
		rc := login(t)
		rc.send("MAIL FROM:<alice@local.test>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\n")
		rc.expect(250)
		rc.expect(250)
		rc.expect(354)
		rc.send("Subject: x\r\n\r\nsmuggled\n.\nMAIL FROM:<evil@local.test>\r\n.\r\n")
		rc.expect(550)
	})
	t.Run("stalled DATA closes", func(t *testing.T) {
		rc := login(t)
		rc.send("MAIL FROM:<alice@local.test>\r\nRCPT TO:<x@remote.example>\r\nDATA\r\n")
		rc.expect(250)
		rc.expect(250)
		rc.expect(354)
		rc.send("Subject: stalled\r\n\r\nhalf a line")
		got := rc.readToEOF()
		if strings.Contains(got, "250") {
			t.Errorf("stalled message was accepted: %q", got)
		}
	})
	if envs, _ := q.got(); len(envs) != 0 {
		t.Errorf("queued %d messages, want none", len(envs))
	}
}

func TestImplicitTLS(t *testing.T) {
	q := &fakeQueue{}
	addr := startTLSListener(t, submissionOptions(t, q))
	conn, err := tls.Dial("tcp", addr, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered on an implicit-TLS connection")
	}
	if err := c.Auth(loginClient("bob", "hunter2")); err != nil {
		t.Fatalf("AUTH LOGIN: %v", err)
	}
	sendMail(t, c, "bob@local.test", "carol@remote.example")
	envs, bodies := q.got()
	if len(envs) != 1 || !strings.Contains(string(bodies[0]), "with ESMTPSA id") {
		t.Fatalf("queued %d, first body %q; want one with ESMTPSA", len(envs), bodies)
	}
}

func TestServeTLSNeedsConfig(t *testing.T) {
	opts := testOptions(&fakeQueue{})
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := mustListen(t)
	if err := s.ServeTLS(l); err == nil {
		t.Fatal("ServeTLS without TLSConfig returned nil")
	}
}

// TestCertificateReload replaces the certificate files and checks that
// the next handshake sees the new certificate.
func TestCertificateReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writePair := func() {
		c, k, err := tlsconf.GenerateSelfSigned(testHost, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(certFile, c, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(keyFile, k, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writePair()
	store, err := tlsconf.New(tlsconf.Options{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	opts := testOptions(&fakeQueue{})
	opts.TLSConfig = store.Config()
	addr := startServer(t, opts)
	serial := func() string {
		rc := dialRaw(t, addr, "")
		rc.greet()
		st := rc.startTLS()
		return st.PeerCertificates[0].SerialNumber.String()
	}
	first := serial()
	writePair()
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	if second := serial(); second == first {
		t.Errorf("certificate serial %s unchanged after reload", second)
	}
}
