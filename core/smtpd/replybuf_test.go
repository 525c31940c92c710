package smtpd

import (
	"net"
	"sync/atomic"
	"testing"
)

// writeCounter counts the writes made on the connections it accepts.
type writeCounter struct {
	net.Listener
	writes atomic.Int64
}

func (w *writeCounter) Accept() (net.Conn, error) {
	c, err := w.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countedConn{Conn: c, n: &w.writes}, nil
}

type countedConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countedConn) Write(p []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(p)
}

// TestRepliesCoalesced: the lines of a multi-line reply leave in one
// write, and so do the replies to commands a client pipelined (MAIL, RCPT
// and DATA sent together), while a client that waits for each reply gets
// each at once; a message and the session go on as usual.
func TestRepliesCoalesced(t *testing.T) {
	q := &fakeQueue{}
	wc := &writeCounter{}
	addr := serveOn(t, testOptions(q), func(s *Server, l net.Listener) error {
		wc.Listener = l
		return s.Serve(wc)
	})
	rc := dialRaw(t, addr, "")
	rc.expect(220)
	step := func(what string, send string, replies []int, writes int64) {
		t.Helper()
		before := wc.writes.Load()
		rc.send(send)
		for _, code := range replies {
			rc.expect(code)
		}
		if got := wc.writes.Load() - before; got != writes {
			t.Errorf("%s: %d writes for %d replies, want %d", what, got, len(replies), writes)
		}
	}
	step("EHLO (a multi-line reply)", "EHLO client.test\r\n", []int{250}, 1)
	step("MAIL, RCPT, DATA pipelined", "MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@local.test>\r\nRCPT TO:<c@local.test>\r\nDATA\r\n",
		[]int{250, 250, 250, 354}, 1)
	step("the message", "Subject: x\r\n\r\nhello\r\n.\r\n", []int{250}, 1)
	step("MAIL alone", "MAIL FROM:<a@sender.test>\r\n", []int{250}, 1)
	step("RCPT alone", "RCPT TO:<b@local.test>\r\n", []int{250}, 1)
	step("RSET then QUIT pipelined", "RSET\r\nQUIT\r\n", []int{250, 221}, 1)
	if envs, _ := q.got(); len(envs) != 1 || len(envs[0].Rcpts) != 2 {
		t.Errorf("queued %+v, want one message to two recipients", envs)
	}
}
