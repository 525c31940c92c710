package remote

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	mdns "github.com/miekg/dns"
	"github.com/sluice-mta/sluice/core/mail"

	"github.com/emersion/go-smtp"
)

// twoMX is a zone where example.test has two MX hosts.
var twoMX = []string{
	"example.test. 300 IN MX 10 mx1.example.test.",
	"example.test. 300 IN MX 20 mx2.example.test.",
	"mx1.example.test. 300 IN A 192.0.2.1",
	"mx2.example.test. 300 IN A 192.0.2.2",
}

func TestRouting(t *testing.T) {
	tests := []struct {
		name     string
		records  []string
		refuse1  bool   // mx1's address greets with 421 instead of refusing
		servfail string // a name answering SERVFAIL
		want     want
		sinkGot  int // which sink (1 or 2) gets the message; 0: none
	}{
		{name: "best MX", records: twoMX, sinkGot: 1,
			want: want{status: mail.Sent, dsn: "2.0.0", text: "250 ", relay: "mx1.example.test[192.0.2.1]:25"}},
		{name: "next MX when the first refuses", records: twoMX[1:], sinkGot: 2,
			want: want{status: mail.Sent, relay: "mx2.example.test[192.0.2.2]:25"}},
		{name: "next MX when the first greets 421", records: twoMX, refuse1: true, sinkGot: 2,
			want: want{status: mail.Sent, relay: "mx2.example.test[192.0.2.2]:25"}},
		{name: "next address (IPv6) of the same MX", records: []string{"example.test. 300 IN MX 10 mx1.example.test.",
			"mx1.example.test. 300 IN A 192.0.2.9", "mx1.example.test. 300 IN AAAA 2001:db8::2"}, sinkGot: 2,
			want: want{status: mail.Sent, relay: "mx1.example.test[2001:db8::2]:25"}},
		{name: "implicit MX", records: []string{"example.test. 300 IN A 192.0.2.2"}, sinkGot: 2,
			want: want{status: mail.Sent, relay: "example.test[192.0.2.2]:25"}},
		{name: "null MX", records: []string{"example.test. 300 IN MX 0 ."},
			want: want{status: mail.Bounced, dsn: "5.1.10", text: "null MX"}},
		{name: "NXDOMAIN", records: []string{"other.test. 300 IN A 192.0.2.1"},
			want: want{status: mail.Bounced, dsn: "5.1.2", text: "does not exist"}},
		{name: "SERVFAIL defers", records: twoMX, servfail: "example.test",
			want: want{status: mail.Deferred, dsn: "4.4.3"}},
		{name: "no MX reachable defers", records: []string{"example.test. 300 IN MX 10 mx9.example.test.", "mx9.example.test. 300 IN A 192.0.2.9"},
			want: want{status: mail.Deferred, dsn: "4.4.1", text: "connection refused", relay: "mx9.example.test[192.0.2.9]:25"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.records...)
			if tt.servfail != "" {
				e.dns.SetRcode(tt.servfail, mdns.RcodeServerFailure)
			}
			s1, s2 := startSink(t, sinkOptions{}), startSink(t, sinkOptions{})
			if tt.refuse1 {
				e.route("192.0.2.1:25", startRefuser(t))
			} else {
				e.route("192.0.2.1:25", s1.addr)
			}
			e.route("192.0.2.2:25", s2.addr)
			e.route("[2001:db8::2]:25", s2.addr)
			d := e.deliverer(nil)
			rcpts := []string{"a@example.test", "b@Example.TEST"}
			check(t, deliver(d, message("Q1", rcpts...)), rcpts, tt.want)
			n1, n2 := len(s1.transactions()), len(s2.transactions())
			wantN := [3]int{}
			wantN[tt.sinkGot] = 1
			if n1 != wantN[1] || n2 != wantN[2] {
				t.Errorf("sink 1 got %d, sink 2 got %d transactions; want %d and %d", n1, n2, wantN[1], wantN[2])
			}
			if tt.sinkGot != 0 {
				got := []*sink{nil, s1, s2}[tt.sinkGot].transactions()[0]
				if len(got.rcpts) != 2 || got.from != "sender@origin.test" {
					t.Errorf("transaction = %+v, want both recipients in one", got)
				}
			}
		})
	}
}

// TestRealDialer delivers with the default dialer to the sink's port.
func TestRealDialer(t *testing.T) {
	s := startSink(t, sinkOptions{})
	host, port, _ := net.SplitHostPort(s.addr)
	e := newEnv(t, "example.test. 300 IN MX 10 mx.example.test.", "mx.example.test. 300 IN A "+host)
	p, _ := strconv.Atoi(port)
	d := e.deliverer(func(o *Options) { o.Dial, o.Port = nil, p })
	rcpts := []string{"a@example.test"}
	check(t, deliver(d, message("Q1", rcpts...)), rcpts,
		want{status: mail.Sent, relay: "mx.example.test[" + host + "]:" + port})
}

func TestReplies(t *testing.T) {
	e := newEnv(t, twoMX...)
	s := startSink(t, sinkOptions{replies: map[string][]*smtp.SMTPError{
		"later@example.test":  {{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 1}, Message: "mailbox busy"}},
		"nobody@example.test": {{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<nobody@example.test>: no such user"}},
		"plain@example.test":  {{Code: 553, EnhancedCode: smtp.NoEnhancedCode, Message: "bad mailbox"}},
	}})
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(nil)
	rcpts := []string{"ok@example.test", "later@example.test", "nobody@example.test", "plain@example.test"}
	check(t, deliver(d, message("Q1", rcpts...)), rcpts,
		want{status: mail.Sent, dsn: "2.0.0"},
		want{status: mail.Deferred, dsn: "4.2.1", text: "451 4.2.1 mailbox busy"},
		want{status: mail.Bounced, dsn: "5.1.1", text: "550 5.1.1 <nobody@example.test>: no such user"},
		want{status: mail.Bounced, dsn: "5.1.3", text: "553 bad mailbox"})
	txns := s.transactions()
	if len(txns) != 1 || len(txns[0].rcpts) != 1 || txns[0].rcpts[0] != "ok@example.test" {
		t.Fatalf("sink got %+v, want one transaction for ok@", txns)
	}
	// The deferred recipient is accepted on the next attempt.
	retry := []string{"later@example.test"}
	check(t, d.Deliver(context.Background(), message("Q1", rcpts...), retry), retry, want{status: mail.Sent})
}

func TestDataReplyAppliesToAccepted(t *testing.T) {
	for _, tt := range []struct {
		code   int
		status mail.Status
	}{{554, mail.Bounced}, {452, mail.Deferred}} {
		e := newEnv(t, twoMX...)
		s := startSink(t, sinkOptions{
			replies: map[string][]*smtp.SMTPError{"nobody@example.test": {{Code: 550, EnhancedCode: smtp.NoEnhancedCode, Message: "no"}}},
			dataErr: &smtp.SMTPError{Code: tt.code, EnhancedCode: smtp.EnhancedCode{tt.code / 100, 6, 0}, Message: "content refused"},
		})
		e.route("192.0.2.1:25", s.addr)
		d := e.deliverer(nil)
		rcpts := []string{"a@example.test", "nobody@example.test", "b@example.test"}
		check(t, deliver(d, message("Q1", rcpts...)), rcpts,
			want{status: tt.status, text: strconv.Itoa(tt.code) + " "},
			want{status: mail.Bounced, dsn: "5.2.0", text: "550 no"},
			want{status: tt.status, text: "content refused"})
	}
}

func TestSplitByMaxRcpts(t *testing.T) {
	e := newEnv(t, twoMX...)
	s := startSink(t, sinkOptions{})
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(func(o *Options) { o.MaxRcptsPerTxn = 2 })
	rcpts := []string{"1@example.test", "2@example.test", "3@example.test", "4@example.test", "5@example.test"}
	check(t, deliver(d, message("Q1", rcpts...)), rcpts, want{status: mail.Sent})
	txns := s.transactions()
	if len(txns) != 3 || len(txns[0].rcpts) != 2 || len(txns[1].rcpts) != 2 || len(txns[2].rcpts) != 1 {
		t.Errorf("transactions = %+v, want 2+2+1 recipients", txns)
	}
	if conns, _, _ := s.counts(); conns != 1 {
		t.Errorf("sink saw %d connections, want 1", conns)
	}
}

// TestSMTPUTF8AndSize: a message declared SMTPUTF8 with a UTF-8 header
// bounces (5.6.7) at a server without SMTPUTF8, and one too large for the
// server's SIZE bounces (5.3.4), neither sent; one declared SMTPUTF8 but
// all ASCII is not internationalized and goes without the parameter
// (RFC 6531: no downgrade is involved); a server offering SMTPUTF8 gets
// the parameter.
func TestSMTPUTF8AndSize(t *testing.T) {
	e := newEnv(t, twoMX...)
	plain := startSink(t, sinkOptions{maxSize: 4096})
	utf8 := startSink(t, sinkOptions{smtputf8: true})
	e.route("192.0.2.1:25", plain.addr)
	e.route("192.0.2.2:25", utf8.addr)
	d := e.deliverer(nil)
	rcpts := []string{"a@example.test"}

	m := message("Q1", rcpts...)
	m.SMTPUTF8 = true
	m.Body = []byte("From: sender@origin.test\r\nSubject: caf\xc3\xa9\r\n\r\nHello.\r\n")
	check(t, deliver(d, m), rcpts, want{status: mail.Bounced, dsn: "5.6.7", text: "SMTPUTF8"})

	big := message("Q2", rcpts...)
	big.Body = append(big.Body, make([]byte, 5000)...)
	check(t, deliver(d, big), rcpts, want{status: mail.Bounced, dsn: "5.3.4"})
	if n := len(plain.transactions()); n != 0 {
		t.Errorf("the sink took %d transactions, want none", n)
	}

	ascii := message("Q3", rcpts...)
	ascii.SMTPUTF8 = true
	ascii.Body = []byte("From: sender@origin.test\r\nSubject: plain\r\n\r\nd\xc3\xa9j\xc3\xa0 vu, in the body only\r\n")
	check(t, deliver(d, ascii), rcpts, want{status: mail.Sent})
	if txns := plain.transactions(); len(txns) != 1 || txns[0].utf8 || txns[0].data != string(ascii.Body) {
		t.Errorf("transactions = %+v, want Q3 without SMTPUTF8", txns)
	}

	// A peer that offers SMTPUTF8 gets it.
	d2 := e.deliverer(func(o *Options) { o.Routes = map[string]Route{"example.test": {Relay: "192.0.2.2:25"}} })
	check(t, deliver(d2, m), rcpts, want{status: mail.Sent})
	if txns := utf8.transactions(); len(txns) != 1 || !txns[0].utf8 {
		t.Errorf("transactions = %+v, want one with SMTPUTF8", txns)
	}
}

// TestNeedsSMTPUTF8: a non-ASCII address needs SMTPUTF8 even when MAIL
// did not declare it: to a server without it the message bounces with
// 5.6.7 and nothing is sent; to one with it, MAIL carries SMTPUTF8.
func TestNeedsSMTPUTF8(t *testing.T) {
	e := newEnv(t, twoMX...)
	plain := startSink(t, sinkOptions{})
	utf8 := startSink(t, sinkOptions{smtputf8: true})
	e.route("192.0.2.1:25", plain.addr)
	e.route("192.0.2.2:25", utf8.addr)
	for _, tc := range []struct {
		name, from, rcpt string
	}{
		{"recipient", "sender@origin.test", "jösé@example.test"},
		{"sender", "jösé@origin.test", "a@example.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := message("Q-"+tc.name, tc.rcpt)
			m.From = tc.from
			d := e.deliverer(nil)
			defer d.Close()
			check(t, deliver(d, m), []string{tc.rcpt}, want{status: mail.Bounced, dsn: "5.6.7", text: "SMTPUTF8"})
			if n := plain.commands()["MAIL"]; n != 0 {
				t.Errorf("the sink without SMTPUTF8 saw %d MAIL commands, want none", n)
			}
			d2 := e.deliverer(func(o *Options) { o.Routes = map[string]Route{"example.test": {Relay: "192.0.2.2:25"}} })
			defer d2.Close()
			check(t, deliver(d2, m), []string{tc.rcpt}, want{status: mail.Sent})
			txns := utf8.transactions()
			if last := txns[len(txns)-1]; !last.utf8 || last.rcpts[0] != tc.rcpt || last.from != tc.from {
				t.Errorf("transaction %+v, want one with SMTPUTF8 from %s to %s", last, tc.from, tc.rcpt)
			}
		})
	}
}

// Test8BitBody: an 8-bit body to a server without 8BITMIME bounces with
// 5.6.3 and is not sent (RFC 6152: never raw); a 7-bit one is sent.
func Test8BitBody(t *testing.T) {
	e := newEnv(t, twoMX...)
	s := startSink(t, sinkOptions{no8bit: true})
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(nil)
	defer d.Close()
	rcpts := []string{"a@example.test"}
	m := message("Q8", rcpts...)
	m.Body = []byte("From: sender@origin.test\r\nSubject: caf\xc3\xa9\r\n\r\nd\xc3\xa9j\xc3\xa0 vu\r\n")
	check(t, deliver(d, m), rcpts, want{status: mail.Bounced, dsn: "5.6.3", text: "8BITMIME"})
	check(t, deliver(d, message("Q7", rcpts...)), rcpts, want{status: mail.Sent})
	if txns := s.transactions(); len(txns) != 1 || !strings.Contains(txns[0].data, "Subject: Q7") {
		t.Errorf("sink took %+v, want only the 7-bit message", txns)
	}
}

func TestLoops(t *testing.T) {
	e := newEnv(t, twoMX...)
	s := startSink(t, sinkOptions{})
	e.route("192.0.2.1:25", s.addr)
	rcpts := []string{"a@example.test"}

	own := e.deliverer(func(o *Options) { o.OwnAddrs = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:25")} })
	check(t, deliver(own, message("Q1", rcpts...)), rcpts,
		want{status: mail.Bounced, dsn: "5.4.6", text: "mail for example.test loops back to myself"})
	otherPort := e.deliverer(func(o *Options) { o.OwnAddrs = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.1:2525")} })
	check(t, deliver(otherPort, message("Q2", rcpts...)), rcpts, want{status: mail.Sent})

	d := e.deliverer(func(o *Options) { o.MaxReceived = 5 })
	m := message("Q3", rcpts...)
	m.Body = append([]byte(received(6)), m.Body...)
	check(t, deliver(d, m), rcpts, want{status: mail.Bounced, dsn: "5.4.6", text: "6 Received"})
	m.Body = append([]byte(received(5)), message("Q4").Body...)
	check(t, deliver(d, m), rcpts, want{status: mail.Sent})
	if n := len(s.transactions()); n != 2 {
		t.Errorf("sink got %d transactions, want 2", n)
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, twoMX...)
	mx, routed, picked := startSink(t, sinkOptions{}), startSink(t, sinkOptions{}), startSink(t, sinkOptions{})
	e.route("192.0.2.1:25", mx.addr)
	e.route("192.0.2.7:2526", routed.addr)
	e.route("192.0.2.8:2527", picked.addr)
	d := e.deliverer(func(o *Options) { o.Routes = map[string]Route{"Routed.TEST": {Relay: "192.0.2.7:2526"}} })
	rcpts := []string{"a@example.test", "b@routed.test"}
	check(t, deliver(d, message("Q1", rcpts...)), rcpts,
		want{status: mail.Sent, relay: "mx1.example.test[192.0.2.1]:25"},
		want{status: mail.Sent, relay: "192.0.2.7[192.0.2.7]:2526"})
	// A deliver-stage plugin's route wins over both.
	m := message("Q2", rcpts...)
	m.Route = "192.0.2.8:2527"
	check(t, deliver(d, m), rcpts, want{status: mail.Sent, relay: "192.0.2.8[192.0.2.8]:2527"})
	if a, b, c := len(mx.transactions()), len(routed.transactions()), len(picked.transactions()); a != 1 || b != 1 || c != 2 {
		t.Errorf("transactions: mx %d, routed %d, picked %d; want 1, 1 and 2 (one per domain)", a, b, c)
	}
}

// TestGrouping: recipients of one domain, written in any case and with a
// final dot, share one transaction; an address given twice is sent once
// and every position gets its Result.
func TestGrouping(t *testing.T) {
	e := newEnv(t, twoMX...)
	s := startSink(t, sinkOptions{})
	e.route("192.0.2.1:25", s.addr)
	d := e.deliverer(nil)
	rcpts := []string{"a@example.test", "b@EXAMPLE.test.", "a@example.test"}
	got := d.Deliver(context.Background(), message("G1", rcpts...), rcpts)
	check(t, got, rcpts, want{status: mail.Sent}, want{status: mail.Sent}, want{status: mail.Sent})
	txns := s.transactions()
	if len(txns) != 1 || !slices.Equal(txns[0].rcpts, []string{"a@example.test", "b@EXAMPLE.test."}) {
		t.Errorf("transactions = %+v, want one to a@example.test and b@EXAMPLE.test.", txns)
	}
}
