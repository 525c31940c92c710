package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"time"
)

// go-smtp runs STARTTLS by wrapping its connection in a *tls.Conn, which
// would leave the guard below TLS, seeing only ciphertext. So the guard
// runs STARTTLS itself and stays on top: it answers the command, discards
// whatever the client pipelined after it (RFC 3207 §5, CVE-2011-0411),
// performs the handshake on the socket and from then on reads and writes
// through the TLS layer, checking the decrypted stream exactly as before.
// go-smtp never sees the STARTTLS command; it keeps talking to the guard.
//
// What go-smtp would have done after the handshake the guard does too:
// the session starts over (transaction commands get the reply go-smtp
// gives before a greeting until the client sends EHLO again, and the next
// EHLO resets go-smtp's transaction) and STARTTLS is no longer advertised.

// Replies the guard sends itself.
const (
	replyTLSReady     = "220 2.0.0 Ready to start TLS\r\n"
	replyTLSActive    = "502 5.5.1 Already running in TLS\r\n"
	replyTLSArgs      = "501 5.5.4 STARTTLS takes no parameters\r\n"
	replyTLSAfterAuth = "503 5.5.1 STARTTLS is not allowed after AUTH\r\n"
	replyHeloFirst    = "502 5.5.1 Please introduce yourself first.\r\n"
)

// enableTLS makes the guard answer STARTTLS with cfg.
func (g *guardConn) enableTLS(cfg *tls.Config, handshakeTimeout time.Duration) {
	g.tlsConfig, g.handshakeTimeout = cfg, handshakeTimeout
}

// implicitTLS makes the connection TLS from its first byte (port 465);
// the handshake runs at the first read or write.
func (g *guardConn) implicitTLS(cfg *tls.Config, handshakeTimeout time.Duration) {
	g.enableTLS(cfg, handshakeTimeout)
	g.tlsConn.Store(tls.Server(g.Conn, cfg))
}

// handshake completes a pending TLS handshake within handshakeTimeout; a
// failure closes the connection.
func (g *guardConn) handshake() error {
	if g.handshaken || g.err != nil {
		return g.err
	}
	tc := g.tlsConn.Load()
	if tc == nil {
		return nil
	}
	// The context closes the socket when it expires.
	ctx, cancel := context.WithTimeout(context.Background(), g.handshakeTimeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		g.Close()
		g.err = errConnFinished
		return err
	}
	g.handshaken = true
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

// intercept handles the command lines the guard answers itself: STARTTLS
// when it runs TLS, and transaction commands after STARTTLS before the
// client greets again. It reports whether line was handled.
func (g *guardConn) intercept(line []byte) (bool, error) {
	cmd := line[:len(line)-2]
	verb := cmd
	if i := bytes.IndexByte(cmd, ' '); i >= 0 {
		verb = cmd[:i]
	}
	switch {
	case g.tlsConfig != nil && bytes.EqualFold(verb, []byte("STARTTLS")):
		return true, g.startTLS(len(cmd) != len(verb) && len(bytes.TrimSpace(cmd[len(verb):])) > 0)
	case !g.needHelo:
		return false, nil
	case bytes.EqualFold(verb, []byte("EHLO")) || bytes.EqualFold(verb, []byte("HELO")):
		g.needHelo = false
		return false, nil
	case bytes.EqualFold(verb, []byte("BDAT")):
		// A chunk may follow that must not be read as commands.
		return true, g.fail("503 5.5.1", "Send EHLO after STARTTLS, closing connection")
	case bytes.EqualFold(verb, []byte("MAIL")) || bytes.EqualFold(verb, []byte("RCPT")) ||
		bytes.EqualFold(verb, []byte("DATA")) || bytes.EqualFold(verb, []byte("AUTH")):
		return true, g.say(replyHeloFirst)
	}
	return false, nil
}

// say writes one reply of the guard's own.
func (g *guardConn) say(r string) error {
	g.Conn.SetWriteDeadline(time.Now().Add(g.handshakeTimeout))
	if _, err := g.stream().Write([]byte(r)); err != nil {
		g.Close()
		g.err = errConnFinished
		return err
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
	// Nothing the client sent before the handshake may be read after it.
	if discarded := g.w - g.r; discarded > 0 && g.onTLS != nil {
		g.onTLS(discarded)
	}
	g.r, g.w = 0, 0
	g.tlsConn.Store(tls.Server(g.Conn, g.tlsConfig))
	if err := g.handshake(); err != nil {
		return err
	}
	g.needHelo = true
	return nil
}
