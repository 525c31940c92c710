package server_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/servertest"
)

// outboundConfig points delivery at a loopback DNS server whose zone makes
// remote.test's MX a sink on 127.0.0.1, on the sink's port.
func outboundConfig(t *testing.T, sinkAddr string, records ...string) *config.Config {
	t.Helper()
	_, port, _ := net.SplitHostPort(sinkAddr)
	zone := append([]string{
		"remote.test. 300 IN MX 10 mx.remote.test.",
		"mx.remote.test. 300 IN A 127.0.0.1",
	}, records...)
	dnsSrv := dnstest.Start(t, dnstest.Zone(zone...))
	cfg := servertest.Config(t)
	cfg.DNS.Servers = []string{dnsSrv.Addr}
	fmt.Sscan(port, &cfg.Delivery.Port)
	cfg.Queue.MinBackoff = cfgDuration(time.Second)
	cfg.Queue.MaxBackoff = cfgDuration(2 * time.Second)
	return cfg
}

// localBox makes a Maildir for a local user and returns its path.
func localBox(t *testing.T, cfg *config.Config, user string) string {
	t.Helper()
	box := filepath.Join(cfg.DataDir, "mail", "localhost", user)
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(box, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return box
}

// waitSink waits until the sink holds n messages.
func waitSink(t *testing.T, s *sink, n int, within time.Duration) [][]byte {
	t.Helper()
	deadline := time.Now().Add(within)
	for s.count() < n {
		if time.Now().After(deadline) {
			t.Fatalf("the remote MX got %d servertest.Message(s) in %v, want %d", s.count(), within, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s.all()
}

// TestOutboundToMX: mail from a trusted client to another domain goes to
// that domain's MX, found in DNS, with our trace header; a recipient the
// MX refuses bounces to the sender's mailbox with the remote reply.
func TestOutboundToMX(t *testing.T) {
	addr := reserveAddr(t)
	mx := startSink(t, addr, false, func(s *sink) {
		s.refuse["nobody@remote.test"] = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "nobody here by that name"}
	})
	cfg := outboundConfig(t, addr)
	box := localBox(t, cfg, "sender")
	s := start(t, cfg)

	msg := servertest.Message("sender@localhost", "bob@remote.test", "outbound", "to the world\r\n")
	id := servertest.MustSend(t, s.addr, "sender@localhost", []string{"bob@remote.test", "nobody@remote.test"}, msg)
	got := waitSink(t, mx, 1, 15*time.Second)
	if !bytes.HasSuffix(got[0], []byte(msg)) || !bytes.Contains(got[0], []byte("id "+id)) {
		t.Errorf("the MX got:\n%s", got[0])
	}
	bounces := servertest.WaitFiles(t, box, 1, 15*time.Second)
	b, _ := os.ReadFile(bounces[0])
	for _, want := range []string{"nobody@remote.test", "5.1.1", "nobody here by that name", "mx.remote.test"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if bytes.Contains(b, []byte("Final-Recipient: rfc822; bob@remote.test")) {
		t.Errorf("the delivered recipient is listed in the bounce:\n%s", b)
	}
	waitQueueEmpty(t, s)
}

// TestOutboundMailLoop: an MX that resolves to this very server is a loop,
// bounced at once rather than delivered to ourselves.
func TestOutboundMailLoop(t *testing.T) {
	cfg := outboundConfig(t, "127.0.0.1:1", "loop.test. 300 IN MX 10 mx.loop.test.", "mx.loop.test. 300 IN A 127.0.0.1")
	box := localBox(t, cfg, "sender")
	ourAddr := reserveAddr(t)
	cfg.SMTP.Listen = []string{ourAddr}
	_, port, _ := net.SplitHostPort(ourAddr)
	fmt.Sscan(port, &cfg.Delivery.Port)
	s := start(t, cfg)
	servertest.MustSend(t, s.addr, "sender@localhost", []string{"someone@loop.test"}, servertest.Message("sender@localhost", "someone@loop.test", "looping", "x\r\n"))
	bounces := servertest.WaitFiles(t, box, 1, 15*time.Second)
	b, _ := os.ReadFile(bounces[0])
	if !bytes.Contains(b, []byte("5.4.6")) || !bytes.Contains(b, []byte("loops back to myself")) {
		t.Errorf("loop bounce:\n%s", b)
	}
	waitQueueEmpty(t, s)
}

// TestCrashDuringDelivery: the process is killed while a message is in the
// middle of its delivery; after a restart it is delivered (a duplicate is
// allowed, a loss is not).
func TestCrashDuringDelivery(t *testing.T) {
	dir := t.TempDir()
	mxAddr := reserveAddr(t)
	release := make(chan struct{})
	mx := startSink(t, mxAddr, false, func(s *sink) { s.hold = release })
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	dnsSrv := dnstest.Start(t, dnstest.Zone("remote.test. 300 IN MX 10 mx.remote.test.", "mx.remote.test. 300 IN A 127.0.0.1"))
	_, mxPort, _ := net.SplitHostPort(mxAddr)
	addr := reserveAddr(t)
	cfgPath := filepath.Join(dir, "sluice.toml")
	conf := fmt.Sprintf(`hostname = "crash.test"
data_dir = %q
[smtp]
listen = [%q]
[submission]
listen = []
tls_listen = []
[dns]
servers = [%q]
[delivery]
port = %s
[queue]
min_backoff = "1s"
max_backoff = "2s"
`, filepath.Join(dir, "data"), addr, dnsSrv.Addr, mxPort)
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	proc := startProcess(t, cfgPath, addr)
	servertest.MustSend(t, addr, "sender@localhost", []string{"bob@remote.test"}, servertest.Message("sender@localhost", "bob@remote.test", "in-flight", "x\r\n"))
	select {
	case <-mx.entered: // the delivery is inside DATA at the MX
	case <-time.After(15 * time.Second):
		log, _ := os.ReadFile(cfgPath + ".log")
		t.Fatalf("the delivery never reached the MX:\n%s", log)
	}
	if err := proc.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.Wait()
	close(release) // the MX may now finish (or see the connection gone)

	startProcess(t, cfgPath, addr)
	got := waitSink(t, mx, 1, 30*time.Second)
	found := false
	for _, m := range got {
		found = found || strings.Contains(string(m), "Subject: in-flight")
	}
	if !found {
		t.Errorf("the in-flight message was lost")
	}
}
