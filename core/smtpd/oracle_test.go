package smtpd

import (
	"bufio"
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/emersion/go-smtp"
)

// smtpOracle is a real go-smtp server, set up as New sets up its own (no
// line limit, no size limit, no TLS), serving net.Pipe connections. The
// guard's framing is checked against it: where go-smtp ends DATA, which
// bytes it drops, how many bytes a BDAT command takes as its chunk. It is
// the go-smtp in go.mod, so a go-smtp upgrade that moves any of these
// fails the guard's tests instead of opening a gap.
type smtpOracle struct {
	srv       *smtp.Server
	conns     chan net.Conn
	done      chan struct{}
	closeOnce sync.Once
}

var _ net.Listener = (*smtpOracle)(nil)

// newSMTPOracle starts an oracle server until the test ends.
func newSMTPOracle(tb testing.TB) *smtpOracle {
	o := &smtpOracle{conns: make(chan net.Conn), done: make(chan struct{})}
	o.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &oracleSession{conn: c.Conn().(*oracleConn)}, nil
	}))
	o.srv.Domain = "oracle.test"
	o.srv.MaxLineLength = 0
	o.srv.ErrorLog = log.New(io.Discard, "", 0)
	served := make(chan error, 1)
	go func() { served <- o.srv.Serve(o) }()
	tb.Cleanup(func() {
		o.srv.Close()
		if err := <-served; err != nil {
			tb.Errorf("oracle server: %v", err)
		}
	})
	return o
}

// Accept returns the server ends of the pipes made by dial.
func (o *smtpOracle) Accept() (net.Conn, error) {
	select {
	case c := <-o.conns:
		return c, nil
	case <-o.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept.
func (o *smtpOracle) Close() error {
	o.closeOnce.Do(func() { close(o.done) })
	return nil
}

// Addr is the pipe's address.
func (o *smtpOracle) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// oracleConn is go-smtp's end of a pipe; it counts the bytes go-smtp reads.
// The client writes message bytes one per Write, so go-smtp's buffered
// reader never reads ahead and the count is exactly what it consumed.
type oracleConn struct {
	net.Conn
	read atomic.Int64
	// writes receives read at the start of each of go-smtp's writes
	// (dropped when full: only the reply after a drain matters).
	writes chan int64
	// msg receives the first message go-smtp hands the session.
	msg     chan oracleMessage
	msgOnce sync.Once
}

// oracleMessage is what go-smtp handed Session.Data.
type oracleMessage struct {
	consumed int64  // bytes go-smtp read from the start of the message
	body     []byte // what the session got
	err      error  // the reader's error: nil when the end marker was seen
	// dataReader: the reader was go-smtp's DATA reader, the one
	// bodyReader stands in for (isDataReader).
	dataReader bool
}

func (c *oracleConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *oracleConn) Write(p []byte) (int, error) {
	select {
	case c.writes <- c.read.Load():
	default:
	}
	return c.Conn.Write(p)
}

// oracleSession accepts every transaction and reports the first message.
type oracleSession struct{ conn *oracleConn }

func (s *oracleSession) Reset()                                         {}
func (s *oracleSession) Logout() error                                  { return nil }
func (s *oracleSession) Mail(from string, opts *smtp.MailOptions) error { return nil }
func (s *oracleSession) Rcpt(to string, opts *smtp.RcptOptions) error   { return nil }

func (s *oracleSession) Data(r io.Reader) error {
	start := s.conn.read.Load()
	body, err := io.ReadAll(r)
	m := oracleMessage{consumed: s.conn.read.Load() - start, body: body, err: err, dataReader: isDataReader(r)}
	s.conn.msgOnce.Do(func() { s.conn.msg <- m })
	return err
}

// oracleClient is the test's end of one pipe to the oracle.
type oracleClient struct {
	net.Conn
	r    *bufio.Reader
	sc   *oracleConn
	sent int64 // bytes written before trickle
}

// send writes s in one Write.
func (c *oracleClient) send(s string) {
	n, _ := io.WriteString(c, s)
	c.sent += int64(n)
}

// dial opens a session and sends EHLO, MAIL and RCPT.
func (o *smtpOracle) dial(tb testing.TB) *oracleClient {
	tb.Helper()
	client, server := net.Pipe()
	sc := &oracleConn{Conn: server, writes: make(chan int64, 64), msg: make(chan oracleMessage, 1)}
	select {
	case o.conns <- sc:
	case <-o.done:
		tb.Fatal("oracle closed")
	}
	c := &oracleClient{Conn: client, r: bufio.NewReader(client), sc: sc}
	tb.Cleanup(func() { c.Close() })
	c.expect(tb, "220")
	c.send("EHLO client.test\r\nMAIL FROM:<a@oracle.test>\r\nRCPT TO:<b@oracle.test>\r\n")
	c.expect(tb, "250")
	c.expect(tb, "250")
	c.expect(tb, "250")
	for len(sc.writes) > 0 { // every reply so far was read, so was written
		<-sc.writes
	}
	return c
}

// expect reads one reply and fails unless it has code.
func (c *oracleClient) expect(tb testing.TB, code string) {
	tb.Helper()
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			tb.Fatalf("oracle: reading reply %s: %v", code, err)
		}
		if !strings.HasPrefix(line, code) {
			tb.Fatalf("oracle: got %q, want %s", line, code)
		}
		if len(line) < 4 || line[3] != '-' {
			return
		}
	}
}

// trickle writes b one byte per Write and then closes the pipe, reading
// and dropping whatever go-smtp answers meanwhile.
func (c *oracleClient) trickle(b []byte) {
	go io.Copy(io.Discard, c.r)
	go func() {
		for i := range b {
			if _, err := c.Write(b[i : i+1]); err != nil {
				return
			}
		}
		c.Close()
	}()
}

// dataEnd sends DATA and then b, and reports where go-smtp ended the
// message (the index just past its end marker, or -1) and what it handed
// the session.
func (o *smtpOracle) dataEnd(tb testing.TB, b []byte) (int, []byte) {
	tb.Helper()
	c := o.dial(tb)
	c.send("DATA\r\n")
	c.expect(tb, "354")
	c.trickle(b)
	m := <-c.sc.msg
	c.Close()
	switch {
	case m.err == nil:
		return int(m.consumed), m.body
	case errors.Is(m.err, io.ErrUnexpectedEOF) && m.consumed == int64(len(b)):
		return -1, m.body
	}
	tb.Fatalf("oracle: DATA reader failed after %d of %d bytes: %v", m.consumed, len(b), m.err)
	return 0, nil
}

// bdatChunkLen sends the command line "BDAT"+rest followed by n bytes and
// reports how many of them go-smtp took as the chunk before answering.
func (o *smtpOracle) bdatChunkLen(tb testing.TB, rest string, n int) int {
	tb.Helper()
	c := o.dial(tb)
	c.send("BDAT" + rest + "\r\n")
	c.trickle([]byte(strings.Repeat("x", n)))
	at := <-c.sc.writes // the reply to BDAT
	c.Close()
	return int(at - c.sent)
}
