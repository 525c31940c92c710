package smtpd

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// serving is a Server started on a fresh 127.0.0.1 port.
type serving struct {
	srv  *Server
	addr string
	done chan error // Serve's result
}

// serveServer serves opts on a fresh port until the test ends.
func serveServer(t *testing.T, opts Options) *serving {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sv := &serving{srv: s, addr: l.Addr().String(), done: make(chan error, 1)}
	go func() { sv.done <- s.Serve(l) }()
	t.Cleanup(func() { s.Close() })
	return sv
}

// shutdown runs Shutdown with timeout in the background.
func (sv *serving) shutdown(timeout time.Duration) <-chan Drained {
	out := make(chan Drained, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		d, err := sv.srv.Shutdown(ctx)
		if err != nil {
			d.Cut = -1 // make the test fail on the counts
		}
		out <- d
	}()
	return out
}

// expectShutdown reads the 421 4.3.2 of a draining server, then EOF.
func (rc *rawConn) expectShutdown() {
	rc.t.Helper()
	rc.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	code, text := rc.reply()
	if code != 421 || !strings.HasPrefix(text, "4.3.2 ") {
		rc.t.Fatalf("got %d %q, want 421 4.3.2", code, text)
	}
	if rest := rc.readToEOF(); rest != "" {
		rc.t.Errorf("after the 421: %q", rest)
	}
}

// waitDraining waits until Shutdown has begun and told every open
// connection.
func waitDraining(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f := s.fr
		f.mu.Lock()
		all, conns := f.closed, f.openConns()
		f.mu.Unlock()
		for _, g := range conns {
			g.drain.mu.Lock()
			all = all && g.drain.draining
			g.drain.mu.Unlock()
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the drain did not begin within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitDrained(t *testing.T, ch <-chan Drained, within time.Duration) Drained {
	t.Helper()
	select {
	case d := <-ch:
		return d
	case <-time.After(within):
		t.Fatalf("Shutdown did not return within %v", within)
		return Drained{}
	}
}

// TestShutdownIdle: sessions with no transaction open get 421 4.3.2 at
// once (the command timeout is a minute), whether they greeted or not,
// over TLS too; Shutdown returns when they are gone, and nothing new is
// accepted.
func TestShutdownIdle(t *testing.T) {
	q := &fakeQueue{}
	opts := testOptions(q)
	opts.TLSConfig, _ = testTLSConfig(t)
	sv := serveServer(t, opts)
	banner := dialRaw(t, sv.addr, "")
	banner.expect(220)
	greeted := dialRaw(t, sv.addr, "")
	greeted.greet()
	tlsed := dialRaw(t, sv.addr, "")
	tlsed.greet()
	tlsed.startTLS()
	tlsed.ehlo()
	after := dialRaw(t, sv.addr, "") // a transaction that ended before the stop
	after.greet()
	after.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@local.test>\r\nDATA\r\n")
	after.expect(250)
	after.expect(250)
	after.expect(354)
	after.send("Subject: x\r\n\r\nx\r\n.\r\n")
	after.expect(250)

	start := time.Now()
	ch := sv.shutdown(30 * time.Second)
	for _, rc := range []*rawConn{banner, greeted, tlsed, after} {
		rc.expectShutdown()
	}
	d := waitDrained(t, ch, 5*time.Second)
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("drained in %v", el)
	}
	if d != (Drained{Idle: 4}) {
		t.Errorf("Drained %+v, want 4 idle", d)
	}
	if err := <-sv.done; err != nil {
		t.Errorf("Serve returned %v", err)
	}
	if c, err := net.DialTimeout("tcp", sv.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("a connection was accepted after Shutdown")
	}
}

// TestShutdownMidData: a session inside DATA when the stop begins
// finishes its message, gets its 250 and then 421 4.3.2; an idle one is
// closed meanwhile; Shutdown waits for the first.
func TestShutdownMidData(t *testing.T) {
	for _, bdat := range []bool{false, true} {
		t.Run(fmt.Sprintf("bdat=%v", bdat), func(t *testing.T) {
			q := &fakeQueue{}
			sv := serveServer(t, testOptions(q))
			busy := dialRaw(t, sv.addr, "")
			busy.greet()
			busy.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@local.test>\r\n")
			busy.expect(250)
			busy.expect(250)
			if bdat {
				busy.send("BDAT 12\r\nSubject: x\r\n")
				busy.expect(250)
			} else {
				busy.send("DATA\r\n")
				busy.expect(354)
				busy.send("Subject: x\r\n")
			}
			idle := dialRaw(t, sv.addr, "")
			idle.greet()

			ch := sv.shutdown(30 * time.Second)
			idle.expectShutdown()
			select {
			case d := <-ch:
				t.Fatalf("Shutdown returned %+v with a transaction in progress", d)
			case <-time.After(100 * time.Millisecond):
			}
			if bdat {
				busy.send("BDAT 5 LAST\r\n\r\nx\r\n")
			} else {
				busy.send("\r\nx\r\n.\r\n")
			}
			busy.expect(250)
			busy.expectShutdown()
			d := waitDrained(t, ch, 5*time.Second)
			if d != (Drained{Idle: 2, Finished: 1}) {
				t.Errorf("Drained %+v, want 2 idle (one after its message), 1 finished", d)
			}
			if envs, _ := q.got(); len(envs) != 1 {
				t.Errorf("queued %d messages, want 1", len(envs))
			}
		})
	}
}

// TestShutdownBeforeData: a transaction open before DATA may go on
// through RCPT and DATA; RSET ends it and the session.
func TestShutdownBeforeData(t *testing.T) {
	q := &fakeQueue{}
	sv := serveServer(t, testOptions(q))
	rc := dialRaw(t, sv.addr, "")
	rc.greet()
	rc.send("MAIL FROM:<a@example.org>\r\n")
	rc.expect(250)
	ch := sv.shutdown(30 * time.Second)
	waitDraining(t, sv.srv)
	rc.send("RCPT TO:<u@local.test>\r\n")
	rc.expect(250)
	rc.send("RSET\r\n")
	rc.expect(250)
	rc.expectShutdown()
	if d := waitDrained(t, ch, 5*time.Second); d != (Drained{Idle: 1}) {
		t.Errorf("Drained %+v, want 1 idle", d)
	}
}

// TestShutdownDeadline: a session still inside DATA when the time runs
// out gets 421 4.3.2 and is closed; its message is not queued.
func TestShutdownDeadline(t *testing.T) {
	q := &fakeQueue{}
	sv := serveServer(t, testOptions(q))
	rc := dialRaw(t, sv.addr, "")
	rc.greet()
	rc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<u@local.test>\r\nDATA\r\n")
	rc.expect(250)
	rc.expect(250)
	rc.expect(354)
	rc.send("Subject: x\r\n")
	start := time.Now()
	ch := sv.shutdown(300 * time.Millisecond)
	rc.expectShutdown()
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Errorf("cut after %v, before the deadline", el)
	}
	if d := waitDrained(t, ch, 5*time.Second); d != (Drained{Cut: 1}) {
		t.Errorf("Drained %+v, want 1 cut", d)
	}
	if envs, _ := q.got(); len(envs) != 0 {
		t.Errorf("queued %d messages, want none", len(envs))
	}
}

// TestReplace: after Replace, new sessions get the new options while a
// session begun before keeps the old ones to its end; the connection
// limits count both; a Shutdown drains both.
func TestReplace(t *testing.T) {
	q := &fakeQueue{}
	opts := testOptions(q)
	opts.Listener.MaxConnections = 2
	sv := serveServer(t, opts)
	old := dialRaw(t, sv.addr, "")
	old.greet()

	opts.LocalDomains = []string{"new.test"}
	opts.Hostname = "new.mx.test"
	next, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := sv.srv.Replace(next); err != nil {
		t.Fatal(err)
	}
	fresh := dialRaw(t, sv.addr, "")
	if text := fresh.expect(220); !strings.HasPrefix(text, "new.mx.test ") {
		t.Errorf("banner after Replace: %q", text)
	}
	fresh.send("EHLO client.example\r\n")
	fresh.expect(250)
	third := dialRaw(t, sv.addr, "")
	if code, text := third.reply(); code != 421 {
		t.Errorf("third connection with max_connections 2: %d %q, want 421", code, text)
	}

	for _, tc := range []struct {
		rc       *rawConn
		rcpt     string
		wantCode int
	}{
		{old, "u@local.test", 250}, {old, "u@new.test", 554},
		{fresh, "u@new.test", 250}, {fresh, "u@local.test", 554},
	} {
		tc.rc.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<" + tc.rcpt + ">\r\nRSET\r\n")
		tc.rc.expect(250)
		if code, text := tc.rc.reply(); code != tc.wantCode {
			t.Errorf("RCPT %s (session begun %s the Replace): %d %q, want %d", tc.rcpt,
				map[bool]string{true: "before", false: "after"}[tc.rc == old], code, text, tc.wantCode)
		}
		tc.rc.expect(250)
	}
	ch := sv.shutdown(30 * time.Second)
	old.expectShutdown()
	fresh.expectShutdown()
	if d := waitDrained(t, ch, 5*time.Second); d != (Drained{Idle: 2}) {
		t.Errorf("Drained %+v, want 2 idle", d)
	}
}

// TestCloseListener: a listener closed alone stops accepting and its
// Serve returns nil; the others and the open sessions go on.
func TestCloseListener(t *testing.T) {
	q := &fakeQueue{}
	sv := serveServer(t, testOptions(q))
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done2 := make(chan error, 1)
	go func() { done2 <- sv.srv.Serve(l2) }()
	open := dialRaw(t, l2.Addr().String(), "")
	open.greet()
	if err := sv.srv.CloseListener(l2); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done2:
		if err != nil {
			t.Errorf("Serve of the closed listener returned %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after CloseListener")
	}
	if c, err := net.DialTimeout("tcp", l2.Addr().String(), time.Second); err == nil {
		c.Close()
		t.Errorf("the closed listener accepted a connection")
	}
	open.send("NOOP\r\n")
	open.expect(250)
	other := dialRaw(t, sv.addr, "")
	other.greet()
}
