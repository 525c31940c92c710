package smtpd

import (
	"crypto/tls"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/metrics"
)

// countObserver counts every event as "Method:arg,arg".
type countObserver struct {
	mu sync.Mutex
	n  map[string]int
}

func newCountObserver() *countObserver { return &countObserver{n: map[string]int{}} }

func (o *countObserver) add(ev string, delta int) {
	o.mu.Lock()
	o.n[ev] += delta
	o.mu.Unlock()
}
func (o *countObserver) SMTPConnection(s, r string)  { o.add("conn:"+s+","+r, 1) }
func (o *countObserver) SMTPSession(s string, d int) { o.add("sessions:"+s, d) }
func (o *countObserver) SMTPMessage(s, r string)     { o.add("msg:"+s+","+r, 1) }
func (o *countObserver) SMTPReject(s, st, r string)  { o.add("reject:"+s+","+st+","+r, 1) }
func (o *countObserver) SMTPTLS(s string, v, c uint16, cert bool) {
	o.add(fmt.Sprintf("tls:%s,%x,%s,%v", s, v, tls.CipherSuiteName(c), cert), 1)
}
func (o *countObserver) SMTPTLSFailure(s, r string) { o.add("tlsfail:"+s+","+r, 1) }
func (o *countObserver) AuthAttempt(m, r string)    { o.add("auth:"+m+","+r, 1) }
func (o *countObserver) SMTPStress(s string, on bool) {
	o.add(fmt.Sprintf("stress:%s,%v", s, on), 1)
}

func (o *countObserver) get(ev string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[ev]
}

// sum adds up the counts of the events starting with prefix.
func (o *countObserver) sum(prefix string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for ev, c := range o.n {
		if strings.HasPrefix(ev, prefix) {
			n += c
		}
	}
	return n
}

// waitFor polls until ev has been counted want times.
func (o *countObserver) waitFor(t *testing.T, ev string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for o.get(ev) != want {
		if time.Now().After(deadline) {
			o.mu.Lock()
			t.Fatalf("%s counted %d times, want %d; all: %v", ev, o.n[ev], want, o.n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestObserverSMTP: a session's connection, refusals by stage and reason,
// messages by result and the session gauge reach the observer.
func TestObserverSMTP(t *testing.T) {
	obs := newCountObserver()
	opts := testOptions(&fakeQueue{})
	opts.Observer = obs
	addr := startServer(t, opts)
	rc := dialRaw(t, addr, "")
	rc.greet()
	obs.waitFor(t, "sessions:smtp", 1)
	rc.send("MAIL FROM:<a@remote.example>\r\n")
	rc.expect(250)
	rc.send("RCPT TO:<x@elsewhere.example>\r\n")
	rc.expect(554)
	rc.send("RCPT TO:<bad..dots@local.test>\r\n")
	rc.expect(553)
	rc.send("RCPT TO:<bob@local.test>\r\n")
	rc.expect(250)
	rc.send("DATA\r\n")
	rc.expect(354)
	rc.send("Subject: hi\r\n\r\nhello\r\n.\r\n")
	rc.expect(250)
	rc.send("MAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send("Subject: hi\r\n\r\nbare\nnewline\r\n.\r\n")
	rc.expect(550)
	rc.send("QUIT\r\n")
	rc.expect(221)
	rc.readToEOF()
	obs.waitFor(t, "sessions:smtp", 0)
	for ev, want := range map[string]int{
		"conn:smtp,accepted":            1,
		"reject:smtp,rcpt,relay":        1,
		"reject:smtp,rcpt,syntax":       1,
		"reject:smtp,data,bare_newline": 1,
		"msg:smtp,accepted":             1,
		"msg:smtp,rejected":             1,
	} {
		if got := obs.get(ev); got != want {
			t.Errorf("%s = %d, want %d", ev, got, want)
		}
	}
}

// TestObserverConnLimitAndAuth: a connection over the limit is refused and
// counted; logins count by mechanism and result; TLS by version.
func TestObserverConnLimitAndAuth(t *testing.T) {
	obs := newCountObserver()
	opts := submissionOptions(t, &fakeQueue{})
	opts.Observer = obs
	opts.Listener.MaxConnections = 1
	addr := startServer(t, opts)
	rc := dialRaw(t, addr, "")
	rc.greet()
	over := dialRaw(t, addr, "")
	over.expect(421)
	obs.waitFor(t, "reject:submission,connect,limits", 1)
	obs.waitFor(t, "conn:submission,refused", 1)

	rc.send("AUTH PLAIN " + plain("alice@local.test", "secret") + "\r\n")
	rc.expect(538) // no TLS yet
	rc.startTLS()
	rc.ehlo()
	rc.send("AUTH PLAIN " + plain("alice@local.test", "wrong") + "\r\n")
	rc.expect(535)
	rc.send("AUTH PLAIN " + plain("alice@local.test", "secret") + "\r\n")
	rc.expect(235)
	for ev, want := range map[string]int{
		"auth:PLAIN,refused":                  1,
		"auth:PLAIN,failure":                  1,
		"auth:PLAIN,success":                  1,
		"reject:submission,auth,tls_required": 1,
	} {
		if got := obs.get(ev); got != want {
			t.Errorf("%s = %d, want %d", ev, got, want)
		}
	}
	if got := obs.sum("tls:submission,304,TLS_"); got != 1 {
		t.Errorf("TLS 1.3 handshakes counted %d times, want 1; all: %v", got, obs.n)
	}
}

// TestRejectReasons: every rule the session and the guard name maps to one
// of the metric's fixed reasons, and plugins, spam and unknown replies are
// classified.
func TestRejectReasons(t *testing.T) {
	fixed := metrics.Reasons()
	for reply, rule := range ruleOf {
		if r, ok := reasonOfRule[rule]; !ok || !slices.Contains(fixed, r) {
			t.Errorf("rule %q (%s) has no reason", rule, reply)
		}
	}
	for rule, r := range reasonOfRule {
		if !slices.Contains(fixed, r) {
			t.Errorf("rule %q maps to %q, not one of the fixed reasons", rule, r)
		}
	}
	// The guard's rules, from its fail calls.
	for _, rule := range []string{"max_line_length", "bare_newline", "helo_after_starttls"} {
		if _, ok := reasonOfRule[rule]; !ok {
			t.Errorf("guard rule %q has no reason", rule)
		}
	}
	other := mail.NewReply(550, "5.7.1", "no")
	for _, c := range []struct {
		reply *mail.Reply
		attrs []any
		want  string
	}{
		{errAuthEncryption, nil, "tls_required"},
		{other, []any{"plugin", "ratelimit"}, "rate"},
		{other, []any{"plugin", "greylist"}, "plugin"},
		{other, []any{"rule", "spam", "score", 20.0}, "spam"},
		{other, []any{"rule", "addressing", "rcpt", "x@y"}, "unknown_user"},
		{mail.NewReply(501, "5.5.4", "bad"), nil, "syntax"},
		{other, nil, "limits"},
	} {
		if got := rejectReason(c.reply, c.attrs); got != c.want {
			t.Errorf("rejectReason(%s, %v) = %q, want %q", c.reply, c.attrs, got, c.want)
		}
	}
}
