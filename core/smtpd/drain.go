package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// A graceful stop (Shutdown) drains the sessions: go-smtp's own Shutdown
// only closes the listeners and waits, so a session waiting for its next
// command would hold the stop until its command timeout. The guard knows
// where each session is — reading a command line or not, inside a
// transaction or not — from the command lines it hands go-smtp and the
// replies go-smtp writes, so it ends the idle ones itself with 421 4.3.2:
// at once when the session waits for a command (its read is woken by a
// deadline in the past), else as soon as its transaction has been
// answered. A transaction (MAIL accepted, its message not yet answered)
// may finish; its 250 still comes after the queue's durable commit.

// replyShutdown is what a draining server tells a session it ends.
const replyShutdown = "421 4.3.2 %s Service shutting down, try again later\r\n"

// cutWait is how long Shutdown waits for the sessions it cut at its
// deadline to end (a commit or a plugin call may be in progress).
const cutWait = 5 * time.Second

// Drained is what Shutdown did with the sessions.
type Drained struct {
	// Idle sessions were told 421 4.3.2 and closed with no transaction
	// open: at once, or when the transaction they were in was answered.
	Idle int
	// Finished is how many messages were answered 2xx during the drain
	// (taken into the queue, or discarded by a plugin).
	Finished int
	// Cut sessions were still inside a transaction when the time ran out:
	// told 421 4.3.2 and closed; their message was not acknowledged.
	Cut int
}

// drainCounts is Drained as it is counted, by the kinds below; a nil one
// counts nothing.
type drainCounts struct{ n [3]atomic.Int64 }

// Kinds of drainCounts.
const (
	countIdle = iota
	countFinished
	countCut
)

func (c *drainCounts) add(kind int) {
	if c != nil {
		c.n[kind].Add(1)
	}
}

func (c *drainCounts) snapshot() Drained {
	return Drained{Idle: int(c.n[countIdle].Load()), Finished: int(c.n[countFinished].Load()), Cut: int(c.n[countCut].Load())}
}

// drainState is a connection's part in a drain; mu guards it, since the
// drain runs on another goroutine than the session.
type drainState struct {
	mu       sync.Mutex
	draining bool
	waiting  bool // blocked reading a command line
	txn      bool // MAIL accepted, its message not yet answered
	verb     string
	bdatLast bool      // the BDAT in verb was LAST
	deadline time.Time // the read deadline go-smtp last set
	closed   bool      // told 421 and closed
	gone     bool      // Close was called
	front    *front    // the service's, once the connection is handed over
	stats    *drainCounts
}

// SetReadDeadline sets the socket's read deadline and remembers it, so
// that a command read woken by a drain can wait again until go-smtp's
// command timeout.
func (g *guardConn) SetReadDeadline(t time.Time) error {
	t = g.line.commandDeadline(t) // within the command timeout, stress mode's too
	g.drain.mu.Lock()
	g.drain.deadline = t
	g.drain.mu.Unlock()
	return g.Conn.SetReadDeadline(t)
}

// readCommand is lineGuard.readLine for go-smtp's command reads, where a
// draining server ends a session with no transaction open.
func (g *guardConn) readCommand() ([]byte, error) {
	d := &g.drain
	for {
		d.mu.Lock()
		if d.draining && !d.txn {
			d.mu.Unlock()
			return nil, g.shutDown()
		}
		d.waiting = true
		d.mu.Unlock()
		line, err := g.line.readLine()
		d.mu.Lock()
		d.waiting = false
		dl := d.deadline
		woken := err != nil && d.draining && isTimeout(err) && (dl.IsZero() || time.Now().Before(dl))
		d.mu.Unlock()
		if !woken {
			if err == nil && !g.sasl {
				g.noteCommand(line)
			}
			return line, err
		}
		if err := g.Conn.SetReadDeadline(dl); err != nil {
			return nil, err
		}
	}
}

// noteCommand follows the transaction through the command lines.
func (g *guardConn) noteCommand(line []byte) {
	verb := line[:min(4, len(line))]
	d := &g.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	d.verb = ""
	switch {
	case bytes.EqualFold(verb, []byte("MAIL")):
		d.verb = "MAIL"
	case bytes.EqualFold(verb, []byte("DATA")):
		d.verb = "DATA"
	case bytes.EqualFold(verb, []byte("BDAT")):
		d.verb = "BDAT"
		d.bdatLast = bytes.Contains(bytes.ToUpper(line), []byte(" LAST"))
	case bytes.EqualFold(verb, []byte("RSET")), bytes.EqualFold(verb, []byte("EHLO")),
		bytes.EqualFold(verb, []byte("HELO")), bytes.EqualFold(verb, []byte("STAR")):
		d.txn = false // go-smtp resets the transaction (STARTTLS: at the next EHLO)
	}
}

// noteTxnReply follows the transaction through the replies: a 2xx to MAIL
// opens it, the reply to its message (after DATA's 354, or to BDAT LAST)
// or a refused BDAT closes it.
func (g *guardConn) noteTxnReply(p []byte) {
	if len(p) < 4 {
		return
	}
	d := &g.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	switch d.verb {
	case "":
		return
	case "MAIL":
		if p[0] == '2' {
			d.txn = true
		}
	case "DATA":
		if string(p[:3]) == "354" {
			return // the message follows; its reply closes the transaction
		}
		d.endTxn(p[0] == '2')
	case "BDAT":
		if p[0] != '2' || d.bdatLast {
			d.endTxn(p[0] == '2' && d.bdatLast)
		}
	}
	d.verb = ""
}

// endTxn closes the transaction; taken is a 2xx to its message.
func (d *drainState) endTxn(taken bool) {
	if taken && d.txn && d.draining {
		d.stats.add(countFinished)
	}
	d.txn = false
}

// startDrain marks the connection draining and, when it waits for a
// command with no transaction open, wakes its read so that it ends now.
func (g *guardConn) startDrain() {
	d := &g.drain
	d.mu.Lock()
	defer d.mu.Unlock()
	d.draining = true
	if d.waiting && !d.txn {
		_ = g.Conn.SetReadDeadline(time.Now())
	}
}

// shutDown tells the session's client 421 4.3.2 and ends the connection;
// it runs on the session's goroutine, at a command read.
func (g *guardConn) shutDown() error {
	d := &g.drain
	d.mu.Lock()
	first := !d.closed
	d.closed = true
	stats := d.stats
	d.mu.Unlock()
	if first {
		stats.add(countIdle)
		_ = g.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.WriteString(g.line.stream, g.shutdownReply())
	}
	return g.line.finish(errConnFinished)
}

// cut tells the client 421 4.3.2 and closes the connection from another
// goroutine than the session's, wherever the session is, counted as kind.
func (g *guardConn) cut(kind int) {
	d := &g.drain
	d.mu.Lock()
	first := !d.closed
	d.closed = true
	stats := d.stats
	d.mu.Unlock()
	if !first {
		return
	}
	stats.add(kind)
	var w io.Writer = g.Conn
	if tc := g.tlsConn.Load(); tc != nil {
		w = tc
	}
	_ = g.Conn.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = io.WriteString(w, g.shutdownReply())
	g.Close()
}

func (g *guardConn) shutdownReply() string {
	return fmt.Sprintf(replyShutdown, g.line.hostname)
}

// Shutdown stops the service gracefully. It stops accepting; every
// session with no transaction open is told 421 4.3.2 and closed at once;
// a session in the middle of a transaction may finish it (its 250 comes
// after the queue's durable commit, as always) and is then closed the same
// way. When ctx is done first, the sessions left are told 421 4.3.2 and
// closed, and the contexts of their plugin calls and queue commits are
// cancelled. Shutdown returns when every session has ended, with what it
// did; its error reports sessions still running a few seconds after they
// were cut. Close may follow to release anything left.
func (s *Server) Shutdown(ctx context.Context) (Drained, error) {
	f := s.fr
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return Drained{}, errors.New("smtpd: Shutdown after Close or Shutdown")
	}
	lns, gens, open := f.closeLocked()
	f.mu.Unlock()

	for l := range lns {
		l.Close()
	}
	for _, g := range open {
		g.startDrain()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, gen := range gens {
			gen.retire()
		}
	}()
	select {
	case <-done:
		return f.drained.snapshot(), nil
	case <-ctx.Done():
	}
	f.mu.Lock()
	open = f.openConns()
	f.mu.Unlock()
	for _, g := range open {
		g.cut(countCut)
	}
	for _, gen := range gens {
		gen.cancel()
	}
	select {
	case <-done:
		return f.drained.snapshot(), nil
	case <-time.After(cutWait):
		return f.drained.snapshot(), errors.New("smtpd: sessions still running after they were cut at the shutdown deadline")
	}
}

// closeLocked marks the front closed and hands over what Close and
// Shutdown stop: the listeners (taken away), the server generations and
// the open connections. f.mu is held.
func (f *front) closeLocked() (lns map[net.Listener]bool, gens []*Server, open []*guardConn) {
	f.closed = true
	lns = f.listeners
	f.listeners = make(map[net.Listener]bool)
	for g := range f.gens {
		gens = append(gens, g)
	}
	return lns, gens, f.openConns()
}

// openConns lists the open connections; f.mu is held.
func (f *front) openConns() []*guardConn {
	out := make([]*guardConn, 0, len(f.open))
	for g := range f.open {
		out = append(out, g)
	}
	return out
}
