package server_test

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/servertest"
)

// freePort returns a TCP port nothing listens on, over IPv4 or IPv6.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", ":0") // dual-stack: free on both
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

// TestListenAddressLists: wildcard IPv4 with wildcard IPv6 on one port
// binds (the IPv6 socket is IPv6-only), "[::]:P" alone is dual-stack, and
// the other lists an operator writes bind too; mail arrives over
// 127.0.0.1 and ::1 wherever the list covers them.
func TestListenAddressLists(t *testing.T) {
	v6 := haveIPv6Loopback()
	if !v6 {
		t.Log("no IPv6 loopback on this machine: only the IPv4 side is checked")
	}
	for _, tc := range []struct {
		listen       []string // P is the port
		over4, over6 bool     // mail arrives over 127.0.0.1, over ::1
	}{
		{listen: []string{"0.0.0.0:P", "[::]:P"}, over4: true, over6: true},
		{listen: []string{"[::]:P", "0.0.0.0:P"}, over4: true, over6: true},
		{listen: []string{"[::]:P"}, over4: true, over6: true},
		{listen: []string{":P"}, over4: true, over6: true},
		{listen: []string{"0.0.0.0:P"}, over4: true},
		{listen: []string{"127.0.0.1:P", "[::1]:P"}, over4: true, over6: true},
		{listen: []string{"[::]:P", "127.0.0.1:P"}, over4: true, over6: true},
		{listen: []string{"[::1]:P"}, over6: true},
	} {
		t.Run(strings.Join(tc.listen, ","), func(t *testing.T) {
			if !v6 && !tc.over4 {
				t.Skip("IPv6 only, and no IPv6 loopback here")
			}
			port := freePort(t)
			cfg := servertest.Config(t)
			cfg.SMTP.Listen = nil
			for _, a := range tc.listen {
				cfg.SMTP.Listen = append(cfg.SMTP.Listen, strings.Replace(a, "P", port, 1))
			}
			s := servertest.Start(t, cfg)
			if n := len(s.Services()[0].Addrs); n != len(tc.listen) {
				t.Fatalf("%d addresses bound, want %d", n, len(tc.listen))
			}
			sent := 0
			for _, c := range []struct {
				host string
				want bool
			}{{"127.0.0.1", tc.over4}, {"::1", tc.over6 && v6}} {
				if c.host == "::1" && !v6 {
					continue
				}
				addr := net.JoinHostPort(c.host, port)
				subject := "over " + c.host
				_, err := servertest.Send(addr, "sender@localhost", []string{"alice@localhost"}, servertest.Message("sender@localhost", "alice@localhost", subject, "x\r\n"))
				switch {
				case c.want && err != nil:
					t.Errorf("sending to %s: %v", addr, err)
				case !c.want && err == nil:
					t.Errorf("sending to %s worked, but %v does not cover it", addr, cfg.SMTP.Listen)
				case c.want:
					sent++
				}
			}
			if got := len(servertest.WaitFiles(t, s.Mailbox("alice", "localhost"), sent, 10*time.Second)); got != sent {
				t.Errorf("%d messages delivered, want %d", got, sent)
			}
		})
	}
}

// TestListenIPv4ElsewhereInTheConfig: an IPv4 address on a port makes
// "[::]" on that port IPv6-only even when the two are in different
// services' lists: SMTP on [::]:P and implicit TLS on 127.0.0.1:P both bind.
func TestListenIPv4ElsewhereInTheConfig(t *testing.T) {
	if !haveIPv6Loopback() {
		t.Skip("no IPv6 loopback on this machine")
	}
	port := freePort(t)
	cfg := servertest.Config(t)
	cfg.SMTP.Listen = []string{"[::]:" + port}
	cfg.Submission.TLSListen = []string{"127.0.0.1:" + port}
	s := servertest.Start(t, cfg)
	if got := fmt.Sprint(s.Services()[0].Addrs, s.Services()[1].TLSAddrs); !strings.Contains(got, port) {
		t.Fatalf("bound %s", got)
	}
	// ::1 reaches the SMTP service; 127.0.0.1 the implicit-TLS one.
	servertest.MustSend(t, net.JoinHostPort("::1", port), "sender@localhost", []string{"alice@localhost"}, servertest.Message("sender@localhost", "alice@localhost", "v6", "x\r\n"))
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}
