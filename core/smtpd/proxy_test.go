package smtpd

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/sluice-mta/sluice/core/config"
)

// TestProxyProtocolTurnedOnAndOff: a listener without the PROXY protocol
// takes connections on Serve's own goroutine; a Replace that turns the
// protocol on makes the next connection's header be read (the client it
// names is the session's), a balancer's connection without one is closed
// without a banner, and turning it off again serves plain connections.
func TestProxyProtocolTurnedOnAndOff(t *testing.T) {
	q := &fakeQueue{}
	opts := testOptions(q)
	opts.TrustedNetworks = []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}
	sv := serveServer(t, opts)

	plain := dialRaw(t, sv.addr, "")
	plain.greet()
	plain.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@remote.example>\r\n")
	plain.expect(250)
	if code, text := plain.reply(); code != 554 {
		t.Errorf("relay from 127.0.0.1 without the PROXY protocol: %d %q, want 554", code, text)
	}

	replace := func(proxy bool) {
		t.Helper()
		o := opts
		o.Listener.ProxyProtocol = proxy
		o.Listener.ProxyTrusted = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
		if proxy {
			// A balancer's silent connection is closed after 2 s.
			o.Listener.CommandTimeout = config.Duration(2 * time.Second)
		}
		next, err := New(o)
		if err != nil {
			t.Fatal(err)
		}
		if err := sv.srv.Replace(next); err != nil {
			t.Fatal(err)
		}
	}

	replace(true)
	proxied := dialRaw(t, sv.addr, "")
	h := &proxyproto.Header{Version: 1, Command: proxyproto.PROXY, TransportProtocol: proxyproto.TCPv4,
		SourceAddr:      &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 40000},
		DestinationAddr: proxied.c.RemoteAddr()}
	if _, err := h.WriteTo(proxied.c); err != nil {
		t.Fatal(err)
	}
	proxied.greet()
	proxied.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@remote.example>\r\n")
	proxied.expect(250)
	if code, text := proxied.reply(); code != 250 {
		t.Errorf("relay from the proxied client 198.51.100.7 (trusted): %d %q, want 250", code, text)
	}
	silent := dialRaw(t, sv.addr, "")
	start := time.Now()
	if said := silent.readToEOF(); said != "" {
		t.Errorf("a balancer's connection without a header got %q, want it closed without a banner", said)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("closed after %v, before the command timeout (2 s) for the header", el)
	}

	replace(false)
	again := dialRaw(t, sv.addr, "")
	again.greet()
	again.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@local.test>\r\n")
	again.expect(250)
	again.expect(250)
}
