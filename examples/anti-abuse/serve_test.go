package antiabuse

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// TestServe runs `sluice serve` on sluice.toml itself, as a provider would
// start it, with only what cannot be used on a test machine swapped in a
// copy (each replaced line must be found, so the test follows the file):
// free ports instead of 25, 587 and 465 (both the 0.0.0.0 and the [::]
// address of each are kept), a temporary data_dir, an LMTP sink for
// Dovecot's socket (knowing a few users), a self-signed certificate, a
// test DNS server, the maps of addressing/ for /etc/sluice. The seven
// plugins are built and installed with plugins/NAME.toml. Mail then goes
// through: inbound over IPv4 and IPv6, a customer's authenticated
// submission, a role address through the aliases file; the messages reach
// the mailbox server, the inbound one from 127.0.0.1 with the client's
// forward-confirmed reverse DNS name in its Received header. Mail to an
// unknown user is refused at RCPT with the mailbox server's own reply.
// A customer's mail to another provider whose signed zone publishes DANE
// goes over TLS its TLSA record verified, as the delivery line says.
func TestServe(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	lmtpSock := filepath.Join(dir, "lmtp.sock")
	sink := startLMTPSink(t, lmtpSock)
	maps := mapsDir(t)
	mx := startDANEMX(t)
	dns := dnstest.Start(t, dnstest.Zone(
		"1.0.0.127.in-addr.arpa. 300 IN PTR client.test.",
		"client.test. 300 IN A 127.0.0.1",
		"partner.example. 300 IN MX 10 mx.partner.example.",
		"mx.partner.example. 300 IN A 127.0.0.1",
		mx.tlsa,
	))
	// The test DNS server sets the AD bit for partner.example, as the
	// validating resolver the file trusts would for a signed zone.
	dns.SetSigned("partner.example", true)
	smtpPort, subPort, tlsPort := freePort(t), freePort(t), freePort(t)

	conf, err := os.ReadFile("sluice.toml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(conf)
	for _, r := range []struct{ old, new string }{
		{`data_dir = "/var/lib/sluice"`, strconv.Quote(data)},
		{`listen = ["0.0.0.0:25", "[::]:25"]`, `listen = ["0.0.0.0:` + smtpPort + `", "[::]:` + smtpPort + `"]`},
		{`listen = ["0.0.0.0:587", "[::]:587"]`, `listen = ["0.0.0.0:` + subPort + `", "[::]:` + subPort + `"]`},
		{`tls_listen = ["0.0.0.0:465", "[::]:465"]`, `tls_listen = ["0.0.0.0:` + tlsPort + `", "[::]:` + tlsPort + `"]`},
		{`lmtp = "unix:/run/dovecot/lmtp"`, `lmtp = "unix:` + lmtpSock + `"`},
		{`cert = "/etc/letsencrypt/live/mx1.hosting.example/fullchain.pem"`, `cert = ""`},
		{`key = "/etc/letsencrypt/live/mx1.hosting.example/privkey.pem"`, `key = ""`},
		{`trusted_servers = ["127.0.0.1:53"]`, `trusted_servers = ["` + dns.Addr + `"]`},
		{`servers = ["127.0.0.1:53"]`, `servers = ["` + dns.Addr + `"]`},
		{`domains = "/etc/sluice/domains"`, `domains = "` + maps + `/domains"`},
		{`aliases = "/etc/sluice/aliases"`, `aliases = "` + maps + `/aliases"`},
		{`srs_secret_file = "/etc/sluice/srs.secret"`, `srs_secret_file = "` + maps + `/srs.secret"`},
		// Mail exchangers are connected to on the test MX's port.
		{`dane = true`, "dane = true\nport = " + port(mx.addr)},
	} {
		if n := strings.Count(text, r.old); n != 1 {
			t.Fatalf("sluice.toml has %d lines %s, want 1: update this test with the file", n, r.old)
		}
		if strings.HasPrefix(r.old, "data_dir") {
			r.new = "data_dir = " + r.new
		}
		text = strings.Replace(text, r.old, r.new, 1)
	}
	cfgPath := filepath.Join(dir, "sluice.toml")
	if err := os.WriteFile(cfgPath, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	plugins := filepath.Join(data, "plugins")
	if err := os.MkdirAll(plugins, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, p := range order {
		toml, err := os.ReadFile(filepath.Join("plugins", p.name+".toml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(plugins, p.name+".toml"), toml, 0o600); err != nil {
			t.Fatal(err)
		}
		wasm := sdktest.Build(t, filepath.Join("..", "..", "plugins", "firstparty")) // one module, every first-party plugin
		if err := os.WriteFile(filepath.Join(plugins, p.name+".wasm"), wasm, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	bin := sluiceBin
	cli := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sluice %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	cli("customer-password\n", "user", "add", "alice", "--config", cfgPath) // a customer, as in sender-policy.toml

	serve := exec.Command(bin, "serve", "--config", cfgPath)
	var log lockedBuffer
	serve.Stdout, serve.Stderr = &log, &log
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- serve.Wait() }()
	defer func() {
		_ = serve.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = serve.Process.Kill()
			t.Error("sluice serve did not stop within 30s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	}()
	waitFor(t, exited, &log, "all seven plugins loaded", func() bool {
		out, err := exec.Command(bin, "plugin", "ls", "--config", cfgPath).CombinedOutput()
		if err != nil {
			return false
		}
		for _, p := range order {
			if !strings.Contains(string(out), p.name) {
				return false
			}
		}
		return true
	})

	v6 := haveIPv6Loopback()
	inbound := []string{"127.0.0.1"}
	if v6 {
		inbound = append(inbound, "::1")
	} else {
		t.Log("no IPv6 loopback on this machine: inbound over IPv4 only")
	}
	want := 0
	for _, host := range inbound {
		addr := net.JoinHostPort(host, smtpPort)
		servertest.MustSend(t, addr, "someone@sender.example", []string{"postmaster@hosting.example"},
			servertest.Message("someone@sender.example", "postmaster@hosting.example", "inbound over "+host, "hello\r\n"))
		want++
	}
	login := servertest.Login{User: "alice", Password: "customer-password", StartTLS: true}
	if _, err := servertest.SendAs(net.JoinHostPort("127.0.0.1", subPort), login, "alice@hosting.example", []string{"orders@customer-shop.example"},
		servertest.Message("alice@hosting.example", "orders@customer-shop.example", "submitted by alice", "an order\r\n")); err != nil {
		t.Fatalf("alice's submission: %v", err)
	}
	want++

	// Outbound: alice's mail to another provider, whose DNSSEC-signed zone
	// publishes a DANE TLSA record for its MX's self-signed certificate,
	// goes over TLS that DANE verified ([delivery] dane = true, and the
	// AD bit of [dns] trusted_servers believed).
	if _, err := servertest.SendAs(net.JoinHostPort("127.0.0.1", subPort), login, "alice@hosting.example", []string{"bob@partner.example"},
		servertest.Message("alice@hosting.example", "bob@partner.example", "to a DANE domain", "hello\r\n")); err != nil {
		t.Fatalf("alice's mail to partner.example: %v", err)
	}

	// [addressing]: an unknown user is refused at RCPT with the mailbox
	// server's own words; a role address of a domain from the domains
	// file reaches the team's mailbox through the aliases file.
	smtpAddr := net.JoinHostPort("127.0.0.1", smtpPort)
	_, err = servertest.Send(smtpAddr, "someone@sender.example", []string{"nobody@hosting.example"},
		servertest.Message("someone@sender.example", "nobody@hosting.example", "to nobody", "hello\r\n"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) || se.Message != "<nobody@hosting.example> User doesn't exist: nobody@hosting.example" {
		t.Errorf("mail to an unknown user: %v, want the mailbox server's 550 5.1.1 at RCPT", err)
	}
	servertest.MustSend(t, smtpAddr, "someone@sender.example", []string{"abuse@customer-bakery.example"},
		servertest.Message("someone@sender.example", "abuse@customer-bakery.example", "abuse report", "spam from you\r\n"))
	want++

	waitFor(t, exited, &log, strconv.Itoa(want)+" messages at the mailbox server", func() bool { return sink.count() >= want })
	got := strings.Join(sink.subjects(), "\n")
	if n := sink.count(); n != want {
		t.Errorf("the mailbox server got %d messages, want %d", n, want)
	}
	if msg := sink.message("inbound over 127.0.0.1"); !strings.Contains(msg, "Received: from client.test (client.test [127.0.0.1])\r\n") {
		t.Errorf("the message from 127.0.0.1 does not name its reverse DNS in Received:\n%s", msg)
	}
	if rcpts := sink.rcptsOf("abuse report"); len(rcpts) != 1 || rcpts[0] != "postmaster@hosting.example" {
		t.Errorf("the abuse report went to %v, want postmaster@hosting.example (aliases)", rcpts)
	}
	for _, s := range append(inbound, "submitted by alice", "abuse report") {
		if !strings.Contains(got, s) {
			t.Errorf("the mailbox server got no message with %q in its subject; it got:\n%s", s, got)
		}
	}
	waitFor(t, exited, &log, "the message at partner.example's MX", func() bool { rcpts, _ := mx.got(); return len(rcpts) == 1 })
	if rcpts, overTLS := mx.got(); len(rcpts) != 1 || !slices.Equal(rcpts[0], []string{"bob@partner.example"}) || !overTLS[0] {
		t.Errorf("partner.example's MX got %v (over TLS: %v); want bob@partner.example over TLS", rcpts, overTLS)
	}
	waitFor(t, exited, &log, "the delivery line for bob@partner.example", func() bool {
		return strings.Contains(log.String(), "to=bob@partner.example relay=mx.partner.example[127.0.0.1]:"+port(mx.addr))
	})
	if line := lineWith(log.String(), "to=bob@partner.example"); !strings.Contains(line, "status=sent tls=TLSv1.3 verified=dane tls_policy=dane") {
		t.Errorf("the delivery line does not say DANE verified the session: %s", line)
	}
	if ls := cli("", "queue", "ls", "--config", cfgPath); strings.Contains(ls, "@") {
		t.Errorf("the queue is not empty after delivery:\n%s", ls)
	}
}

// port is the port of a "host:port".
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// lineWith is the first line of text that holds s, or "".
func lineWith(text, s string) string {
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// waitFor polls cond until it holds, failing the test after 180s (seven
// plugins compile before the server serves: a minute on a busy 2-core
// machine) or if the server exits.
func waitFor(t *testing.T, exited chan error, log *lockedBuffer, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(180 * time.Second)
	for !cond() {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("sluice serve exited (%v) while waiting for %s", err, what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 180s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a TCP port free over IPv4 and IPv6.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// haveIPv6Loopback reports whether ::1 can be bound here.
func haveIPv6Loopback() bool {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lmtpSink plays Dovecot's LMTP socket: it knows the users in lmtpUsers
// (at any domain), refuses others as Dovecot does, and keeps the messages
// with their recipients.
type lmtpSink struct {
	mu    sync.Mutex
	msgs  [][]byte
	rcpts [][]string
}

// lmtpUsers are the mailboxes the test's Dovecot knows.
var lmtpUsers = []string{"postmaster", "orders", "anna", "ben", "owner", "office"}

// mapsDir copies the example map files of addressing/ into a directory
// of the test's, with an SRS secret, for the /etc/sluice of sluice.toml.
func mapsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"domains", "aliases"} {
		b, err := os.ReadFile(filepath.Join("addressing", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "srs.secret"), []byte("a-test-secret-of-enough-length\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startLMTPSink serves LMTP on the unix socket path until the test ends.
func startLMTPSink(t *testing.T, path string) *lmtpSink {
	t.Helper()
	s := &lmtpSink{}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &lmtpSession{sink: s}, nil }))
	srv.LMTP = true
	srv.Domain = "dovecot.test"
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	return s
}

func (s *lmtpSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// subjects returns the Subject line of every message received.
func (s *lmtpSink) subjects() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, m := range s.msgs {
		for _, line := range strings.Split(string(m), "\r\n") {
			if strings.HasPrefix(line, "Subject: ") {
				out = append(out, line)
			}
		}
	}
	return out
}

// message returns the message with the given subject, "" if none came.
func (s *lmtpSink) message(subject string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.msgs {
		if strings.Contains(string(m), "Subject: "+subject+"\r\n") {
			return string(m)
		}
	}
	return ""
}

// rcptsOf returns the recipients of the message whose Subject holds s.
func (s *lmtpSink) rcptsOf(subject string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, m := range s.msgs {
		if strings.Contains(string(m), "Subject: "+subject+"\r\n") {
			return s.rcpts[i]
		}
	}
	return nil
}

type lmtpSession struct {
	sink  *lmtpSink
	rcpts []string
}

func (ss *lmtpSession) Reset()                               { ss.rcpts = nil }
func (*lmtpSession) Logout() error                           { return nil }
func (ss *lmtpSession) Mail(string, *smtp.MailOptions) error { ss.rcpts = nil; return nil }

// Rcpt refuses an unknown user with Dovecot's reply.
func (ss *lmtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	local, _, _ := strings.Cut(to, "@")
	if !slices.Contains(lmtpUsers, local) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + to + "> User doesn't exist: " + to}
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

func (ss *lmtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.mu.Lock()
	ss.sink.msgs = append(ss.sink.msgs, b)
	ss.sink.rcpts = append(ss.sink.rcpts, ss.rcpts)
	ss.sink.mu.Unlock()
	return nil
}

// sluiceBin is the real binary, built once by TestMain.
var sluiceBin string

func TestMain(m *testing.M) { os.Exit(servertest.RunWithBinary(m, &sluiceBin)) }
