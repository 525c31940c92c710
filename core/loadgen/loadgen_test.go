package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// testServer is a go-smtp server on 127.0.0.1 whose answers depend on the
// recipient: reject@ gets 550 at RCPT, tempfail@ 451 after DATA, bye@ 421
// after DATA; anyone else is accepted.
type testServer struct {
	addr          string
	noPipelining  bool // hide PIPELINING from EHLO
	mu            sync.Mutex
	messages      [][]byte
	sessions      int
	mixedCommands bool // a single read held both MAIL and RCPT
}

func startServer(t *testing.T, noPipelining bool) *testServer {
	t.Helper()
	ts := &testServer{noPipelining: noPipelining}
	s := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		ts.mu.Lock()
		ts.sessions++
		ts.mu.Unlock()
		return &testSession{ts: ts}, nil
	}))
	s.Domain = "test.invalid"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	go s.Serve(&watchListener{Listener: ln, ts: ts})
	t.Cleanup(func() { s.Close() })
	return ts
}

func (ts *testServer) count() (messages, sessions int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.messages), ts.sessions
}

type testSession struct {
	ts *testServer
	to string
}

func (s *testSession) Reset()        { s.to = "" }
func (s *testSession) Logout() error { return nil }

func (s *testSession) Mail(string, *smtp.MailOptions) error { return nil }

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "reject@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	}
	s.to = to
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	switch {
	case strings.HasPrefix(s.to, "tempfail@"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	case strings.HasPrefix(s.to, "bye@"):
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "going away"}
	}
	s.ts.mu.Lock()
	s.ts.messages = append(s.ts.messages, b)
	s.ts.mu.Unlock()
	return nil
}

// watchListener hides PIPELINING when asked and notes pipelined commands.
type watchListener struct {
	net.Listener
	ts *testServer
}

func (l *watchListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &watchConn{Conn: c, ts: l.ts}, nil
}

type watchConn struct {
	net.Conn
	ts *testServer
}

func (c *watchConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if bytes.Contains(b[:n], []byte("MAIL FROM")) && bytes.Contains(b[:n], []byte("RCPT TO")) {
		c.ts.mu.Lock()
		c.ts.mixedCommands = true
		c.ts.mu.Unlock()
	}
	return n, err
}

func (c *watchConn) Write(b []byte) (int, error) {
	if c.ts.noPipelining {
		b = bytes.ReplaceAll(b, []byte("PIPELINING"), []byte("NOPIPELINE"))
	}
	return c.Conn.Write(b)
}

func TestRunCount(t *testing.T) {
	tests := []struct {
		name     string
		to       string
		accepted int
		errors   map[string]int
	}{
		{"accepted", "user@bench.test", 40, nil},
		{"rcpt refused", "reject@bench.test", 0, map[string]int{"550": 40}},
		{"data tempfail", "tempfail@bench.test", 0, map[string]int{"451": 40}},
		{"server hangs up", "bye@bench.test", 0, map[string]int{"421": 40}},
	}
	for _, pipelining := range []bool{true, false} {
		for _, tt := range tests {
			name := tt.name
			if !pipelining {
				name += " no pipelining"
			}
			t.Run(name, func(t *testing.T) {
				ts := startServer(t, !pipelining)
				r, err := Run(t.Context(), Options{Addr: ts.addr, Conns: 3, Count: 40, Size: 2000, To: tt.to})
				if err != nil {
					t.Fatal(err)
				}
				got, sessions := ts.count()
				if r.Accepted != tt.accepted || got != tt.accepted {
					t.Errorf("accepted %d, server stored %d, want %d", r.Accepted, got, tt.accepted)
				}
				if len(r.Errors) != len(tt.errors) {
					t.Errorf("errors %v, want %v", r.Errors, tt.errors)
				}
				for k, n := range tt.errors {
					if r.Errors[k] != n {
						t.Errorf("errors %v, want %v", r.Errors, tt.errors)
					}
					if r.ErrorText[k] == "" {
						t.Errorf("no text kept for error %s", k)
					}
				}
				if r.Failed+r.Accepted != 40 {
					t.Errorf("failed %d + accepted %d, want 40 transactions", r.Failed, r.Accepted)
				}
				if r.Connected != 3 {
					t.Errorf("connected %d, want 3", r.Connected)
				}
				if tt.to == "bye@bench.test" && sessions <= 3 {
					t.Errorf("server saw %d sessions; want reconnects after each 421", sessions)
				}
				if tt.accepted > 0 && !(r.P50 > 0 && r.P50 <= r.P90 && r.P90 <= r.P99 && r.P99 <= r.Max) {
					t.Errorf("latencies out of order: p50 %v p90 %v p99 %v max %v", r.P50, r.P90, r.P99, r.Max)
				}
				if !pipelining && ts.mixedCommands {
					t.Error("sent MAIL and RCPT together to a server without PIPELINING")
				}
				if pipelining && !ts.mixedCommands {
					t.Error("never sent MAIL and RCPT together to a server offering PIPELINING")
				}
				for _, m := range ts.messages {
					if len(m) != 2000 {
						t.Errorf("server got a %d-byte message, want 2000", len(m))
					}
				}
			})
		}
	}
}

func TestRunDuration(t *testing.T) {
	ts := startServer(t, false)
	r, err := Run(t.Context(), Options{Addr: ts.addr, Conns: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := ts.count()
	if r.Accepted == 0 || r.Accepted != got {
		t.Errorf("accepted %d, server stored %d; want the same, above 0", r.Accepted, got)
	}
	if r.Rate <= 0 || r.Size != DefaultSize {
		t.Errorf("rate %v size %d", r.Rate, r.Size)
	}
	if got > 0 && len(ts.messages[0]) != DefaultSize {
		t.Errorf("message is %d bytes, want %d", len(ts.messages[0]), DefaultSize)
	}
}

func TestRunCancel(t *testing.T) {
	ts := startServer(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	r, err := Run(ctx, Options{Addr: ts.addr, Conns: 2, Duration: time.Hour})
	if !errors.Is(err, context.DeadlineExceeded) || r == nil {
		t.Fatalf("Run = %v, %v; want a report and the context's error", r, err)
	}
	if r.Errors[keyConn] != 0 {
		t.Errorf("cancelling counted %d connection errors", r.Errors[keyConn])
	}
}

func TestRunNoServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Run(t.Context(), Options{Addr: addr, Conns: 2, Count: 1}); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("Run against a closed port: %v; want an error naming %s", err, addr)
	}
}

func TestOptionsInvalid(t *testing.T) {
	for _, o := range []Options{
		{},
		{Addr: "127.0.0.1"},
		{Addr: "127.0.0.1:25", Conns: -1},
		{Addr: "127.0.0.1:25", To: "a@b>\r\nRSET"},
		{Addr: "127.0.0.1:25", From: "a b@c"},
	} {
		if _, err := Run(t.Context(), o); err == nil {
			t.Errorf("Run(%+v) succeeded; want an error", o)
		}
	}
}
