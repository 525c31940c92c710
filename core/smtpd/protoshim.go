package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// guardConn is the connection go-smtp serves: the protocol half of the SMTP
// guard, over the transport half (lineGuard, in lineguard.go). It keeps the
// little protocol state that has to live below go-smtp because it decides
// how the following bytes are read, or because go-smtp offers no hook for it:
//
//   - STARTTLS. go-smtp would wrap its connection in a *tls.Conn, leaving
//     the guard below TLS, checking ciphertext. So the shim advertises and
//     runs STARTTLS itself (go-smtp gets no TLS configuration and answers
//     any STARTTLS it still sees with 502): it answers the command, discards
//     whatever the client pipelined after it (RFC 3207 §5, CVE-2011-0411),
//     performs the handshake on the socket within handshakeTimeout and from
//     then on the line guard reads through the TLS layer. What go-smtp does
//     after its own handshake the shim does too: transaction commands get
//     go-smtp's "introduce yourself" reply until the client greets again
//     (RFC 3207 §4.2: the session starts over; the next EHLO resets
//     go-smtp's transaction). Implicit TLS (port 465) runs the same way.
//   - AUTH state. After a 334 reply the next line is a SASL response, never
//     a command to intercept or frame ("STARTTLS" and "DATA" are valid
//     base64); after a 235 reply STARTTLS is refused.
//   - Reply control. closeAfterReply hangs up once the next reply is
//     written (a plugin's Disconnect verdict, too many failed logins: 421
//     then close); a session can only return a reply, not close after it.
//   - "RCPT TO:<postmaster>", which go-smtp's parser refuses, is rewritten
//     to the first local domain's postmaster (RFC 5321 §4.5.1).
type guardConn struct {
	net.Conn // the socket

	// session is the session ID; line.log carries it.
	session    string
	line       lineGuard
	postmaster string // "postmaster@domain", or "" to leave the line alone
	out        []byte // a command line not yet handed to go-smtp

	// closeAfterReply closes the connection once the next reply is written.
	closeAfterReply atomic.Bool
	closeOnce       sync.Once
	onClose         func()

	// tlsConfig enables STARTTLS; nil means plain text only.
	tlsConfig        *tls.Config
	handshakeTimeout time.Duration
	// tlsConn is the TLS layer over the socket once TLS started; every read
	// and write goes through it, while Close and deadlines use the socket.
	tlsConn atomic.Pointer[tls.Conn]
	// handshaken is false while an implicit-TLS handshake is pending.
	handshaken bool
	// secured is the state of the completed handshake, for the
	// disconnect line, which Close may write from another goroutine.
	secured atomic.Pointer[tls.ConnectionState]
	// onTLS, when set, is told of each completed handshake, and
	// onTLSFailure of each failed one with its reason.
	onTLS        func(st *tls.ConnectionState)
	onTLSFailure func(reason string)
	// advertise adds STARTTLS to the reply being written (to EHLO).
	advertise bool
	// needHelo refuses transaction commands after STARTTLS until the
	// client greets again.
	needHelo bool
	// sasl is set after a 334 reply; authed after a 235 reply.
	sasl, authed bool
	// drain follows the transaction for a graceful stop (drain.go).
	drain drainState
	// rdns is the client's reverse DNS lookup, nil without one (rdns.go).
	rdns       *rdnsLookup
	rdnsLogged atomic.Bool
}

// Replies the shim sends itself.
const (
	replyTLSReady     = "220 2.0.0 Ready to start TLS\r\n"
	replyTLSActive    = "502 5.5.1 Already running in TLS\r\n"
	replyTLSArgs      = "501 5.5.4 STARTTLS takes no parameters\r\n"
	replyTLSAfterAuth = "503 5.5.1 STARTTLS is not allowed after AUTH\r\n"
	replyHeloFirst    = "502 5.5.1 Please introduce yourself first.\r\n"
	capSTARTTLS       = "250-STARTTLS\r\n"
)

func newGuardConn(c net.Conn, hostname string, maxLine int, dataTimeout time.Duration,
	postmaster string, onClose func()) *guardConn {
	g := &guardConn{Conn: c, postmaster: postmaster, onClose: onClose}
	g.line.init(c, hostname, maxLine, dataTimeout, g.Close)
	return g
}

// enableTLS makes the shim offer and run STARTTLS with cfg.
func (g *guardConn) enableTLS(cfg *tls.Config, handshakeTimeout time.Duration) {
	g.tlsConfig, g.handshakeTimeout = cfg, handshakeTimeout
}

// implicitTLS makes the connection TLS from its first byte (port 465);
// the handshake runs at the first read or write.
func (g *guardConn) implicitTLS(cfg *tls.Config, handshakeTimeout time.Duration) {
	g.enableTLS(cfg, handshakeTimeout)
	g.useTLS(tls.Server(g.Conn, cfg))
}

// useTLS makes every later read and write go through tc.
func (g *guardConn) useTLS(tc *tls.Conn) {
	g.tlsConn.Store(tc)
	g.line.stream = tc
}

// Close closes the connection; the first call also runs onClose.
func (g *guardConn) Close() error {
	g.line.flushReplies() // owed to the client; a failure changes nothing now
	g.closeOnce.Do(func() {
		if g.onClose != nil {
			g.onClose()
		}
		g.forget()
	})
	return g.Conn.Close()
}

// Read hands go-smtp the next checked bytes: message data, or one command
// line at a time.
func (g *guardConn) Read(p []byte) (int, error) {
	if len(g.out) > 0 {
		n := copy(p, g.out)
		g.out = g.out[n:]
		return n, nil
	}
	if err := g.handshake(); err != nil {
		return 0, err
	}
	if g.line.inMessage() {
		return g.line.readMessage(p)
	}
	for {
		line, err := g.readCommand()
		if err != nil && isTimeout(err) {
			if err = g.line.commandTimedOut(err); err == nil {
				_ = g.SetReadDeadline(g.line.cmdDeadline) // shortened by stress mode
				continue
			}
		}
		if err != nil {
			return 0, err
		}
		if g.sasl { // a SASL response, never a command
			g.out = line
		} else if handled, err := g.intercept(line); err != nil {
			return 0, err
		} else if handled {
			continue
		} else {
			g.line.frame(line)
			g.out = g.rewrite(line)
		}
		n := copy(p, g.out)
		g.out = g.out[n:]
		return n, nil
	}
}

// Write passes a reply on: it notes the reply codes the guard acts on, adds
// STARTTLS to the EHLO reply while TLS is available, and closes the
// connection after the reply when closeAfterReply is set.
func (g *guardConn) Write(p []byte) (int, error) {
	g.line.noteReply(p)
	g.noteTxnReply(p)
	if len(p) >= 4 {
		g.sasl = string(p[:4]) == "334 "
		if string(p[:4]) == "235 " {
			g.authed = true
		}
	}
	out := p
	if g.advertise {
		g.advertise = false
		out = withCapability(p, capSTARTTLS)
	}
	if err := g.handshake(); err != nil {
		return 0, err
	}
	err := g.line.writeReply(out)
	if g.closeAfterReply.Load() && bytes.HasSuffix(p, []byte("\r\n")) {
		g.Close()
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// withCapability inserts capability line c after the first line of a
// multi-line 250 reply (the EHLO greeting line); other replies pass as they
// are.
func withCapability(p []byte, c string) []byte {
	i := bytes.Index(p, []byte("\r\n"))
	if !bytes.HasPrefix(p, []byte("250-")) || i < 0 {
		return p
	}
	out := make([]byte, 0, len(p)+len(c))
	out = append(out, p[:i+2]...)
	out = append(out, c...)
	return append(out, p[i+2:]...)
}

// intercept handles the command lines the shim answers itself: STARTTLS
// when it runs TLS, and transaction commands after STARTTLS before the
// client greets again. It reports whether line was handled.
func (g *guardConn) intercept(line []byte) (bool, error) {
	cmd := line[:len(line)-2]
	verb := cmd
	if i := bytes.IndexByte(cmd, ' '); i >= 0 {
		verb = cmd[:i]
	}
	greet := bytes.EqualFold(verb, []byte("EHLO")) || bytes.EqualFold(verb, []byte("HELO"))
	switch {
	case g.tlsConfig != nil && bytes.EqualFold(verb, []byte("STARTTLS")):
		return true, g.startTLS(len(bytes.TrimSpace(cmd[len(verb):])) > 0)
	case greet:
		g.needHelo = false
		g.advertise = g.tlsConfig != nil && g.tlsConn.Load() == nil && bytes.EqualFold(verb, []byte("EHLO"))
		return false, nil
	case !g.needHelo:
		return false, nil
	case bytes.EqualFold(verb, []byte("BDAT")):
		// A chunk may follow that must not be read as commands.
		return true, g.line.fail("helo_after_starttls", "503 5.5.1", "Send EHLO after STARTTLS, closing connection")
	case bytes.EqualFold(verb, []byte("MAIL")) || bytes.EqualFold(verb, []byte("RCPT")) ||
		bytes.EqualFold(verb, []byte("DATA")) || bytes.EqualFold(verb, []byte("AUTH")):
		return true, g.say(replyHeloFirst)
	}
	return false, nil
}

// rewrite returns the command line to hand go-smtp: "RCPT TO:<postmaster>"
// made a full address, anything else unchanged.
func (g *guardConn) rewrite(line []byte) []byte {
	cmd := line[:len(line)-2]
	if g.postmaster == "" || len(cmd) <= 8 || !bytes.EqualFold(cmd[:8], []byte("RCPT TO:")) {
		return line
	}
	rest := bytes.TrimLeft(cmd[8:], " ")
	const bare = "<postmaster>"
	if len(rest) >= len(bare) && bytes.EqualFold(rest[:len(bare)], []byte(bare)) {
		return fmt.Appendf(nil, "RCPT TO:<%s>%s\r\n", g.postmaster, rest[len(bare):])
	}
	return line
}

// say writes one reply of the shim's own.
func (g *guardConn) say(r string) error {
	g.Conn.SetWriteDeadline(time.Now().Add(g.handshakeTimeout))
	g.line.replies.mu.Lock()
	g.line.replies.buf = append(g.line.replies.buf, r...)
	err := g.line.flushLocked()
	g.line.replies.mu.Unlock()
	if err != nil {
		return g.line.finish(err)
	}
	return nil
}

// startTLS answers STARTTLS and runs the handshake.
func (g *guardConn) startTLS(hasArgs bool) error {
	switch {
	case g.tlsConn.Load() != nil:
		return g.say(replyTLSActive)
	case hasArgs:
		return g.say(replyTLSArgs)
	case g.authed:
		return g.say(replyTLSAfterAuth)
	}
	if err := g.say(replyTLSReady); err != nil {
		return err
	}
	if n := g.line.discard(); n > 0 {
		g.line.log.Warn("starttls: discarded commands pipelined before the handshake", "bytes", n)
	}
	g.useTLS(tls.Server(g.Conn, g.tlsConfig))
	if err := g.handshake(); err != nil {
		return err
	}
	g.needHelo = true
	return nil
}

// handshake completes a pending TLS handshake within handshakeTimeout; a
// failure closes the connection.
func (g *guardConn) handshake() error {
	if g.handshaken || g.line.err != nil {
		return g.line.err
	}
	tc := g.tlsConn.Load()
	if tc == nil {
		return nil
	}
	// The context closes the socket when it expires.
	ctx, cancel := context.WithTimeout(context.Background(), min(g.handshakeTimeout, g.line.pace.commandTimeout()))
	defer cancel()
	g.line.wait.set(waitHandshake, time.Now())
	err := tc.HandshakeContext(ctx)
	g.line.wait.set(waitBusy, time.Time{})
	if err != nil {
		// Logged and counted here, once; go-smtp is handed an error it
		// ends the session on quietly (not its "error handling" warning).
		reason := tlsFailureReason(err)
		g.line.log.Info("tls handshake failed", "reason", reason, "err", err)
		if g.onTLSFailure != nil {
			g.onTLSFailure(reason)
		}
		return g.line.finish(errConnFinished)
	}
	g.handshaken = true
	st := tc.ConnectionState()
	g.secured.Store(&st)
	g.line.log.Info("tls", tlsAttrs(&st)...)
	if g.onTLS != nil {
		g.onTLS(&st)
	}
	return nil
}

// tlsState returns the TLS connection state once TLS is up.
func (g *guardConn) tlsState() (tls.ConnectionState, bool) {
	tc := g.tlsConn.Load()
	if tc == nil || !g.handshaken {
		return tls.ConnectionState{}, false
	}
	return tc.ConnectionState(), true
}

// lostBareCR reports whether the DATA just read held a bare CR that
// go-smtp's dataReader dropped (see dataScanner.lostCR).
func lostBareCR(c net.Conn) bool {
	g, ok := c.(*guardConn)
	return ok && g.line.lostCR.Load()
}
