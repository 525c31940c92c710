package server_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/servertest"
)

// proxyConfig is a server whose SMTP service is behind a load balancer on
// 127.0.0.1; 198.51.100.0/24 may relay.
func proxyConfig(t *testing.T) *config.Config {
	cfg := servertest.Config(t)
	cfg.Auth = config.Auth{} // no SPF or DKIM lookups of the test's names
	cfg.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	cfg.SMTP.ProxyProtocol = true
	cfg.SMTP.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	return cfg
}

// dialFrom connects to addr from the loopback address from.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// proxyHeader writes a PROXY header of version v naming client.
func proxyHeader(t *testing.T, c net.Conn, v byte, client string) {
	t.Helper()
	h := &proxyproto.Header{Version: v, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      &net.TCPAddr{IP: net.ParseIP(client), Port: 40000},
		DestinationAddr: c.RemoteAddr()}
	if _, err := h.WriteTo(c); err != nil {
		t.Fatal(err)
	}
}

// closedWithoutBanner checks that c is closed before any byte is sent.
func closedWithoutBanner(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	b, err := io.ReadAll(c)
	if len(b) > 0 || (err != nil && !strings.Contains(err.Error(), "reset")) {
		t.Errorf("got %q, %v; want the connection closed without a banner", b, err)
	}
}

// TestProxyProtocol: behind a balancer on 127.0.0.1, the client a v1 or v2
// PROXY header names is the one relay control, Received and the logs see;
// a header from an address not in proxy_trusted, or a balancer's
// connection without one, is closed without a banner.
func TestProxyProtocol(t *testing.T) {
	cfg := proxyConfig(t)
	s := servertest.Start(t, cfg)

	session := func(v byte, client string) *rawSession {
		c := dialFrom(t, "127.0.0.1", s.Addr)
		proxyHeader(t, c, v, client)
		rs := &rawSession{t: t, conn: c, r: bufio.NewReader(c)}
		rs.expect("220")
		rs.cmdExpect("EHLO client.example", "250")
		return rs
	}

	// v1 from a trusted network: relaying is allowed.
	rs := session(1, "198.51.100.7")
	rs.cmdExpect("MAIL FROM:<a@sender.example>", "250")
	rs.cmdExpect("RCPT TO:<b@remote.example>", "250")
	rs.cmdExpect("QUIT", "221")

	// v2 from elsewhere: relaying is refused, local mail is taken and its
	// Received names the proxied client.
	rs = session(2, "203.0.113.5")
	rs.cmdExpect("MAIL FROM:<a@sender.example>", "250")
	rs.cmdExpect("RCPT TO:<b@remote.example>", "554")
	rs.cmdExpect("RCPT TO:<user@localhost>", "250")
	rs.cmdExpect("DATA", "354")
	rs.write(servertest.Message("a@sender.example", "user@localhost", "proxied", "hi\r\n") + ".\r\n")
	rs.expect("250")
	rs.cmdExpect("QUIT", "221")
	files := servertest.WaitFiles(t, s.Mailbox("user", "localhost"), 1, 15*time.Second)
	msg, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	_, rcvd, _ := strings.Cut(string(msg), "\nReceived: ")
	if rcvd, _, _ = strings.Cut(rcvd, "\n"); !strings.HasPrefix(rcvd, "from client.example (") || !strings.HasSuffix(rcvd, " [203.0.113.5])") {
		t.Errorf("Received: %q, want it from the proxied client [203.0.113.5]", rcvd)
	}

	// A header from an address that is not a balancer: closed.
	c := dialFrom(t, "127.0.0.2", s.Addr)
	proxyHeader(t, c, 2, "198.51.100.7")
	closedWithoutBanner(t, c, 5*time.Second)
	// A balancer's connection without a header: closed.
	c = dialFrom(t, "127.0.0.1", s.Addr)
	io.WriteString(c, "EHLO client.example\r\n")
	closedWithoutBanner(t, c, 5*time.Second)

	connects := map[string]int{}
	var refused []string
	for _, l := range s.Logs() {
		if strings.Contains(l, " msg=connect ") {
			_, client, _ := strings.Cut(l, " client=")
			connects[client]++
		}
		if strings.Contains(l, `msg="connection refused: `) {
			refused = append(refused, l)
		}
	}
	if connects["198.51.100.7"] != 1 || connects["203.0.113.5"] != 1 || len(connects) != 2 {
		t.Errorf("connections logged from %v, want one from each proxied client", connects)
	}
	if len(refused) != 2 || !strings.Contains(refused[0], "not from a proxy_trusted address\" service=smtp proxy=127.0.0.2") ||
		!strings.Contains(refused[1], "no valid PROXY protocol header\" service=smtp proxy=127.0.0.1") {
		t.Errorf("refusals logged: %q", refused)
	}
}

// TestProxyProtocolSilent: a balancer that sends nothing is closed once
// the command timeout has passed.
func TestProxyProtocolSilent(t *testing.T) {
	cfg := proxyConfig(t)
	cfg.SMTP.CommandTimeout = config.Duration(time.Second)
	s := servertest.Start(t, cfg)
	c := dialFrom(t, "127.0.0.1", s.Addr)
	start := time.Now()
	closedWithoutBanner(t, c, 10*time.Second)
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("closed after %v, before the command timeout", d)
	}
}

// TestProxyProtocolImplicitTLS: on an implicit-TLS submission address the
// header comes first, then the TLS handshake; the session is the proxied
// client's.
func TestProxyProtocolImplicitTLS(t *testing.T) {
	cfg := servertest.Config(t)
	cfg.Auth = config.Auth{}
	cfg.Submission.TLSListen = []string{"127.0.0.1:0"}
	cfg.Submission.ProxyProtocol = true
	cfg.Submission.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	s := servertest.Start(t, cfg)
	var addr string
	for _, svc := range s.Services() {
		if svc.Name == "submission" {
			addr = svc.TLSAddrs[0].String()
		}
	}
	c := dialFrom(t, "127.0.0.1", addr)
	proxyHeader(t, c, 2, "203.0.113.9")
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
	rs := &rawSession{t: t, conn: tc, r: bufio.NewReader(tc)}
	rs.expect("220")
	rs.cmdExpect("EHLO client.example", "250")
	rs.cmdExpect("QUIT", "221")
	found := false
	for _, l := range s.Logs() {
		if strings.Contains(l, " msg=connect service=submission ") && strings.HasSuffix(l, " client=203.0.113.9") {
			found = true
		}
	}
	if !found {
		t.Errorf("no connect line from the proxied client 203.0.113.9 on submission")
	}
}

// TestProxyProtocolLimits: the per-address connection limit counts the
// proxied clients, not the balancer they all come through.
func TestProxyProtocolLimits(t *testing.T) {
	cfg := proxyConfig(t)
	cfg.SMTP.MaxConnectionsPerIP = 1
	s := servertest.Start(t, cfg)
	open := func(client string) *rawSession {
		c := dialFrom(t, "127.0.0.1", s.Addr)
		proxyHeader(t, c, 1, client)
		return &rawSession{t: t, conn: c, r: bufio.NewReader(c)}
	}
	open("192.0.2.1").expect("220")
	open("192.0.2.1").expect("421 4.7.0")
	open("192.0.2.2").expect("220")
}
