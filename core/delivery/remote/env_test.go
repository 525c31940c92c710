package remote

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	sdns "github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/dns/dnstest"
	"github.com/sluice-mta/sluice/core/mail"
)

// env is a small internet on loopback: a DNS server and a dialer that maps
// the addresses the zone names ("192.0.2.1:25") to sinks on 127.0.0.1.
// Unmapped addresses refuse connections.
type env struct {
	t   testing.TB
	dns *dnstest.Server
	res *sdns.Resolver

	mu    sync.Mutex
	hosts map[string]string
}

func newEnv(t testing.TB, records ...string) *env {
	t.Helper()
	srv := dnstest.Start(t, dnstest.Zone(records...))
	// The server is trusted: a zone it treats as signed (SetSigned) gives
	// secure answers, as a local validating resolver would.
	res, err := sdns.New(sdns.Options{Servers: []string{srv.Addr}, Trusted: []string{srv.Addr}, CacheSize: -1, Timeout: 500 * time.Millisecond, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, dns: srv, res: res, hosts: make(map[string]string)}
}

// route makes connections to addr reach real.
func (e *env) route(addr, real string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.hosts[addr] = real
}

func (e *env) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	e.mu.Lock()
	real, ok := e.hosts[addr]
	e.mu.Unlock()
	if !ok {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	var d net.Dialer
	return d.DialContext(ctx, network, real)
}

// deliverer returns a Deliverer on e, with opts changed by mod.
func (e *env) deliverer(mod func(*Options)) *Deliverer {
	e.t.Helper()
	o := Options{Hostname: "out.sluice.test", Resolver: e.res, Dial: e.dial}
	if mod != nil {
		mod(&o)
	}
	d, err := New(o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { d.Close() })
	return d
}

// message returns a small message to rcpts.
func message(id string, rcpts ...string) *mail.Message {
	m := &mail.Message{Envelope: mail.Envelope{ID: id, From: "sender@origin.test"}}
	for _, r := range rcpts {
		m.Rcpts = append(m.Rcpts, mail.Recipient{Addr: r})
	}
	m.Body = []byte("From: sender@origin.test\r\nSubject: " + id + "\r\n\r\nHello.\r\n")
	return m
}

// deliver delivers m to all its recipients.
func deliver(d *Deliverer, m *mail.Message) []mail.Result {
	var rcpts []string
	for _, r := range m.Rcpts {
		rcpts = append(rcpts, r.Addr)
	}
	return d.Deliver(context.Background(), m, rcpts)
}

// want is what a Result must hold; empty fields are not checked.
type want struct {
	status mail.Status
	dsn    string
	text   string // a substring of Text
	relay  string
	// policy is the TLS policy the Result names; "" is not checked.
	policy string
}

func check(t *testing.T, got []mail.Result, rcpts []string, w ...want) {
	t.Helper()
	if len(got) != len(rcpts) {
		t.Fatalf("got %d results, want %d: %+v", len(got), len(rcpts), got)
	}
	for i, r := range got {
		ww := w[min(i, len(w)-1)]
		if r.Rcpt != rcpts[i] {
			t.Errorf("result %d is for %q, want %q", i, r.Rcpt, rcpts[i])
		}
		if r.Status != ww.status || (ww.dsn != "" && r.Reply.Enhanced.String() != ww.dsn) ||
			!strings.Contains(r.Reply.Text, ww.text) || (ww.relay != "" && r.Relay != ww.relay) || (ww.policy != "" && r.TLSPolicy != ww.policy) {
			t.Errorf("result for %s = %s %s %q relay %s tls_policy %q; want %s %s %q relay %s tls_policy %q",
				r.Rcpt, r.Status, r.Reply.Enhanced.String(), r.Reply.Text, r.Relay, r.TLSPolicy, ww.status, ww.dsn, ww.text, ww.relay, ww.policy)
		}
	}
}

// waitFor waits until cond holds, failing the test if it never does.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// received returns n Received: header lines.
func received(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Received: from hop%d.test by hop%d.test; Mon, 1 Jan 2024 00:00:00 +0000\r\n", i, i+1)
	}
	return b.String()
}
