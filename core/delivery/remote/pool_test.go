package remote

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/internal/testca"
	"github.com/sluice-mta/sluice/core/mail"
)

// TestConnectionReuse: messages to one destination share a connection,
// which carries them without a round trip between them: one EHLO per
// connection (two with STARTTLS, as RFC 3207 requires) and no RSET, as
// counted at the sink (in plain text only: the TLS case is not counted).
func TestConnectionReuse(t *testing.T) {
	for _, tt := range []struct {
		name      string
		tls       bool
		perConn   int
		wantConns int
		wantEHLO  int
	}{
		{"one connection for all", false, 0, 1, 1},
		{"one TLS connection for all", true, 0, 1, -1},
		{"capped messages per connection", false, 2, 3, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, twoMX...)
			s := startSink(t, sinkOptions{tls: tt.tls})
			e.route("192.0.2.1:25", s.addr)
			d := e.deliverer(func(o *Options) { o.MaxMsgsPerConn = tt.perConn })
			for i := range 5 {
				rcpts := []string{fmt.Sprintf("u%d@example.test", i)}
				check(t, deliver(d, message(fmt.Sprint("Q", i), rcpts...)), rcpts, want{status: mail.Sent})
			}
			if n := len(s.transactions()); n != 5 {
				t.Errorf("sink got %d transactions, want 5", n)
			}
			for _, tx := range s.transactions() {
				if tx.tls != tt.tls {
					t.Errorf("transaction over TLS = %v, want %v", tx.tls, tt.tls)
				}
			}
			if conns, _, _ := s.counts(); conns != tt.wantConns {
				t.Errorf("sink saw %d connections, want %d", conns, tt.wantConns)
			}
			if cmds := s.commands(); tt.wantEHLO >= 0 && (cmds["EHLO"] != tt.wantEHLO || cmds["RSET"] != 0 || cmds["MAIL"] != 5) {
				t.Errorf("sink saw commands %v, want %d EHLO, no RSET, 5 MAIL", cmds, tt.wantEHLO)
			}
			d.Close()
			waitFor(t, "the pooled connection to close", func() bool { _, open, _ := s.counts(); return open == 0 })
		})
	}
}

// TestResetAfterFailedTransaction: a transaction left open (its only
// recipient refused) is ended with RSET before the next message on the
// connection; go-smtp's Client.Reset forgets the EHLO, so EHLO follows it.
func TestResetAfterFailedTransaction(t *testing.T) {
	e := newEnv(t, twoMX...)
	s := startSink(t, sinkOptions{replies: map[string][]*smtp.SMTPError{
		"nobody@example.test": {{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}},
	}})
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(nil)
	defer d.Close()
	check(t, deliver(d, message("Q1", "nobody@example.test")), []string{"nobody@example.test"}, want{status: mail.Bounced, dsn: "5.1.1"})
	for _, id := range []string{"Q2", "Q3"} {
		check(t, deliver(d, message(id, "a@example.test")), []string{"a@example.test"}, want{status: mail.Sent})
	}
	if conns, _, _ := s.counts(); conns != 1 {
		t.Errorf("sink saw %d connections, want 1", conns)
	}
	if cmds := s.commands(); cmds["RSET"] != 1 || cmds["EHLO"] != 2 || cmds["MAIL"] != 3 {
		t.Errorf("sink saw commands %v, want 1 RSET (after the refused transaction only), 2 EHLO, 3 MAIL", cmds)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, twoMX...)
	s := startSink(t, sinkOptions{})
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(func(o *Options) { o.IdleTimeout = time.Millisecond })
	rcpts := []string{"a@example.test"}
	check(t, deliver(d, message("Q1", rcpts...)), rcpts, want{status: mail.Sent})
	waitFor(t, "the idle connection to close", func() bool { _, open, _ := s.counts(); return open == 0 })
	check(t, deliver(d, message("Q2", rcpts...)), rcpts, want{status: mail.Sent})
	if conns, _, _ := s.counts(); conns != 2 {
		t.Errorf("sink saw %d connections, want 2", conns)
	}
}

// TestStalePooledConnection: a pooled connection the server dropped is
// replaced by a new one, and the message goes out.
func TestStalePooledConnection(t *testing.T) {
	e := newEnv(t, twoMX...)
	s := startSink(t, sinkOptions{})
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(nil)
	rcpts := []string{"a@example.test"}
	check(t, deliver(d, message("Q1", rcpts...)), rcpts, want{status: mail.Sent})
	// Break the idle connection under the pool's feet.
	for _, list := range d.pool.conns {
		for _, cn := range list {
			cn.raw.Close()
		}
	}
	check(t, deliver(d, message("Q2", rcpts...)), rcpts, want{status: mail.Sent})
	if conns, _, _ := s.counts(); conns != 2 {
		t.Errorf("sink saw %d connections, want 2", conns)
	}
}

// TestPerDestinationLimit: a burst to a slow destination holds to its
// limit, and another destination keeps flowing meanwhile.
func TestPerDestinationLimit(t *testing.T) {
	e := newEnv(t,
		"slow.test. 300 IN MX 10 mx.slow.test.", "mx.slow.test. 300 IN A 192.0.2.1",
		"fast.test. 300 IN MX 10 mx.fast.test.", "mx.fast.test. 300 IN A 192.0.2.2")
	hold := make(chan struct{})
	slow := startSink(t, sinkOptions{hold: hold})
	fast := startSink(t, sinkOptions{})
	e.route("192.0.2.1:25", slow.addr)
	e.route("192.0.2.2:25", fast.addr)
	d := e.deliverer(func(o *Options) {
		o.MaxConnections = 4
		o.MaxPerDestination = 3
		o.PerDomainLimit = map[string]int{"slow.test": 2}
	})
	const burst = 8
	var wg sync.WaitGroup
	results := make([][]mail.Result, burst)
	for i := range burst {
		wg.Go(func() { results[i] = deliver(d, message(fmt.Sprint("S", i), fmt.Sprintf("u%d@slow.test", i))) })
	}
	waitFor(t, "two sessions held by the slow sink", func() bool { return slow.dataSessions() == 2 })
	// The slow destination holds two slots; the fast one still flows.
	for i := range 3 {
		rcpts := []string{fmt.Sprintf("u%d@fast.test", i)}
		check(t, deliver(d, message(fmt.Sprint("F", i), rcpts...)), rcpts, want{status: mail.Sent})
	}
	close(hold)
	wg.Wait()
	for i, r := range results {
		check(t, r, []string{fmt.Sprintf("u%d@slow.test", i)}, want{status: mail.Sent})
	}
	if _, _, maxOpen := slow.counts(); maxOpen != 2 {
		t.Errorf("slow sink had up to %d connections at once, want 2", maxOpen)
	}
	if n := len(slow.transactions()); n != burst {
		t.Errorf("slow sink got %d transactions, want %d", n, burst)
	}
}

// TestWaitRespectsContext: a delivery waiting for a destination slot gives
// up when its context ends, and defers.
func TestWaitRespectsContext(t *testing.T) {
	e := newEnv(t, twoMX...)
	hold := make(chan struct{})
	s := startSink(t, sinkOptions{hold: hold})
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(func(o *Options) { o.MaxPerDestination = 1 })
	done := make(chan []mail.Result)
	go func() { done <- deliver(d, message("Q1", "a@example.test")) }()
	waitFor(t, "the first session to be held", func() bool { return s.dataSessions() == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	rcpts := []string{"b@example.test"}
	second := make(chan []mail.Result)
	go func() { second <- d.Deliver(ctx, message("Q2", rcpts...), rcpts) }()
	waitFor(t, "the second delivery to wait for the slot", func() bool {
		d.dests.mu.Lock()
		defer d.dests.mu.Unlock()
		return d.dests.m["example.test"] != nil && d.dests.m["example.test"].users == 2
	})
	cancel()
	check(t, <-second, rcpts, want{status: mail.Deferred, dsn: "4.4.1", text: "waiting for a connection slot"})
	close(hold)
	check(t, <-done, []string{"a@example.test"}, want{status: mail.Sent})
}

func TestTLSPolicy(t *testing.T) {
	for _, tt := range []struct {
		name    string
		offer   bool
		policy  string
		wantTLS bool
	}{
		{"offered and used", true, "", true},
		{"not offered, plain", false, "", false},
		{"offered, policy none", true, TLSNone, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, twoMX...)
			s := startSink(t, sinkOptions{tls: tt.offer})
			e.route("192.0.2.1:25", s.addr)
			d := e.deliverer(func(o *Options) { o.TLS = tt.policy })
			rcpts := []string{"a@example.test"}
			check(t, deliver(d, message("Q1", rcpts...)), rcpts, want{status: mail.Sent})
			if txns := s.transactions(); len(txns) != 1 || txns[0].tls != tt.wantTLS {
				t.Errorf("transactions = %+v, want one with TLS %v", txns, tt.wantTLS)
			}
		})
	}
}

// TestRouteRelayCA: a route's own CA file verifies its relay (and the
// password goes there), where the relay CAs of the other relays (here the
// system's roots) would not.
func TestRouteRelayCA(t *testing.T) {
	ca := testca.New(t, "route CA")
	good := ca.Chain(ca.Issue(t, []string{"smart.test"}, time.Time{}, time.Time{}))
	for _, tc := range []struct {
		name  string
		roots *x509.CertPool
		want  want
	}{
		{"the route's CA", ca.Pool(), want{status: mail.Sent}},
		{"without it", nil, want{status: mail.Deferred, dsn: "4.7.5", text: "certificate not trusted"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "smart.test. 300 IN A 192.0.2.5")
			s := startSink(t, sinkOptions{cert: &good, user: "alice", pass: "secret"})
			e.route("192.0.2.5:587", s.addr)
			d := e.deliverer(func(o *Options) {
				o.Routes = map[string]Route{"example.test": {Relay: "smart.test:587", User: "alice", Password: "secret", Roots: tc.roots}}
			})
			got := deliver(d, message("Q1", "a@example.test"))
			check(t, got, []string{"a@example.test"}, tc.want)
			if tc.want.status == mail.Sent {
				if txns := s.transactions(); len(txns) != 1 || txns[0].user != "alice" {
					t.Errorf("relay got %+v, want one transaction as alice", txns)
				}
			} else if s.authCount() != 0 {
				t.Errorf("an unverified relay got %d AUTH commands", s.authCount())
			}
		})
	}
}

// TestSmarthostAuth: the smarthost's certificate is verified against
// RelayRoots for its host name; the password goes only over a verified
// session (or in plain text with relay_tls = "none" to loopback), with
// AUTH PLAIN or LOGIN; every failure defers naming the problem (the
// results name the relay's TLS policy), and the relay sees no AUTH at all
// then.
func TestSmarthostAuth(t *testing.T) {
	ca := testca.New(t, "Sluice test CA")
	good := ca.Chain(ca.Issue(t, []string{"smart.test"}, time.Time{}, time.Time{}))
	expired := ca.Chain(ca.Issue(t, []string{"smart.test"}, time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)))
	wrongName := ca.Chain(ca.Issue(t, []string{"other.test"}, time.Time{}, time.Time{}))
	self := selfSigned(t)
	tests := []struct {
		name     string
		sink     sinkOptions
		relay    string // the RelayHost; "" means the sink's real loopback address
		relayTLS string
		pass     string
		want     want
		wantUser string
		wantTLS  string // the results' TLSText
	}{
		{name: "loopback, relay_tls none, in plain text", relayTLS: RelayNone, pass: "secret",
			want: want{status: mail.Sent}, wantUser: "alice", wantTLS: "none"},
		{name: "loopback with a self-signed certificate gets no password", sink: sinkOptions{cert: &self}, pass: "secret",
			want: want{status: mail.Deferred, dsn: "4.7.5", text: "self-signed certificate not trusted"}},
		{name: "loopback without STARTTLS gets no password", pass: "secret",
			want: want{status: mail.Deferred, dsn: "4.7.5", text: "does not offer STARTTLS"}},
		{name: "test CA certificate, AUTH PLAIN", sink: sinkOptions{cert: &good}, relay: "smart.test:587", pass: "secret",
			want: want{status: mail.Sent}, wantUser: "alice", wantTLS: "TLSv1.3 verified=pkix"},
		{name: "test CA certificate, AUTH LOGIN", sink: sinkOptions{cert: &good, login: true}, relay: "smart.test:587", pass: "secret",
			want: want{status: mail.Sent}, wantUser: "alice", wantTLS: "TLSv1.3 verified=pkix"},
		{name: "implicit TLS", sink: sinkOptions{cert: &good, implicit: true}, relay: "smart.test:465", relayTLS: RelayImplicit, pass: "secret",
			want: want{status: mail.Sent}, wantUser: "alice", wantTLS: "TLSv1.3 verified=pkix"},
		{name: "implicit TLS, self-signed", sink: sinkOptions{cert: &self, implicit: true}, relay: "smart.test:465", relayTLS: RelayImplicit, pass: "secret",
			want: want{status: mail.Deferred, dsn: "4.7.5", text: "self-signed certificate not trusted"}},
		{name: "expired certificate", sink: sinkOptions{cert: &expired}, relay: "smart.test:587", pass: "secret",
			want: want{status: mail.Deferred, dsn: "4.7.5", text: "certificate expired"}},
		{name: "certificate for another name", sink: sinkOptions{cert: &wrongName}, relay: "smart.test:587", pass: "secret",
			want: want{status: mail.Deferred, dsn: "4.7.5", text: "certificate name mismatch: x509: certificate is valid for other.test, not smart.test"}},
		{name: "remote without STARTTLS keeps the password", relay: "smart.test:587", pass: "secret",
			want: want{status: mail.Deferred, dsn: "4.7.5", text: "does not offer STARTTLS, which relay smart.test requires"}},
		{name: "wrong password defers", sink: sinkOptions{cert: &good}, relay: "smart.test:587", pass: "wrong",
			want: want{status: mail.Deferred, dsn: "4.7.8", text: "refused our credentials"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, append(twoMX, "smart.test. 300 IN A 192.0.2.5")...)
			so := tt.sink
			so.user, so.pass = "alice", "secret"
			s := startSink(t, so)
			e.route("192.0.2.5:587", s.addr)
			e.route("192.0.2.5:465", s.addr)
			mx := startSink(t, sinkOptions{})
			e.route("192.0.2.1:25", mx.addr)
			relay := tt.relay
			d := e.deliverer(func(o *Options) {
				if relay == "" {
					relay, o.Dial = s.addr, nil
				}
				o.RelayHost, o.RelayUser, o.RelayPassword, o.RelayTLS = relay, "alice", tt.pass, tt.relayTLS
				o.RelayRoots = ca.Pool()
			})
			rcpts := []string{"a@example.test", "b@elsewhere.test"}
			got := deliver(d, message("Q1", rcpts...))
			tt.want.policy = "relay"
			check(t, got, rcpts, tt.want)
			txns := s.transactions()
			if tt.wantUser == "" {
				if len(txns) != 0 || (tt.want.dsn == "4.7.5" && s.authCount() != 0) {
					t.Errorf("relay got %+v and %d AUTH commands, want nothing", txns, s.authCount())
				}
				return
			}
			if len(txns) != 2 || txns[0].user != tt.wantUser || txns[1].user != tt.wantUser {
				t.Errorf("relay got %+v, want two transactions as %s", txns, tt.wantUser)
			}
			if got[0].TLSText() != tt.wantTLS {
				t.Errorf("result TLS %q, want %q", got[0].TLSText(), tt.wantTLS)
			}
			if n := len(mx.transactions()); n != 0 {
				t.Errorf("the MX got %d transactions; everything should go to the relay", n)
			}
		})
	}
}

// TestRelayTLSNoneOnlyToLoopback: relay_tls = "none" to a relay that is not
// on loopback is refused when the Deliverer is made, and so are
// credentials over a route whose TLS is not verified, dane-only for a
// relay, and a route's MX policy for a domain the smarthost takes.
func TestRelayTLSNoneOnlyToLoopback(t *testing.T) {
	res := newEnv(t).res
	for _, o := range []Options{
		{Resolver: res, RelayHost: "smart.test:25", RelayTLS: RelayNone},
		{Resolver: res, Routes: map[string]Route{"x.test": {Relay: "smart.test:25", User: "u", TLS: TLSOpportunistic}}},
		{Resolver: res, Routes: map[string]Route{"x.test": {User: "u"}}},
		{Resolver: res, TLS: "sometimes"},
		{Resolver: res, Routes: map[string]Route{"x.test": {Relay: "gw.test:587", TLS: TLSDANEOnly}}},
		{Resolver: res, RelayHost: "smart.test:587", Routes: map[string]Route{"x.test": {TLS: TLSVerify}}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded, want an error", o)
		}
	}
	if _, err := New(Options{Resolver: res, RelayHost: "127.0.0.1:25", RelayTLS: RelayNone, RelayUser: "u"}); err != nil {
		t.Errorf("relay_tls none to loopback: %v", err)
	}
}
