package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"net/textproto"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/sluice-mta/sluice/core/mail"
)

// quitTimeout bounds the QUIT sent to a connection being closed.
const quitTimeout = 10 * time.Second

// conn is one SMTP session to a remote host, ready for MAIL.
type conn struct {
	c   *smtp.Client
	raw net.Conn // what c reads and writes; closing it aborts c
	// relay is "host[ip]:port", the pool key and the Result's Relay.
	relay string
	tls   bool
	// msgs counts the transactions this connection has carried.
	msgs int
	// reused is set when the connection came from the pool.
	reused bool
	// open is set while the server holds a transaction (MAIL accepted, no
	// reply to the end of the data yet): the next MAIL needs RSET first.
	open bool
	// timer closes the connection while it is idle in the pool.
	timer *time.Timer
}

// quit says QUIT, waiting at most timeout, and closes the connection.
func (cn *conn) quit(timeout time.Duration) {
	cn.c.CommandTimeout = min(timeout, quitTimeout)
	cn.c.Quit()
	cn.c.Close()
}

// connect returns a session to host at ap: an idle pooled one unless fresh
// is set, or a new one (greeting, EHLO, STARTTLS when the policy and the
// peer allow, AUTH when auth is set). A failure means: try the next
// address.
func (d *Deliverer) connect(ctx context.Context, host string, ap netip.AddrPort, auth, fresh bool) (*conn, *failure) {
	relay := relayName(host, ap.Addr(), int(ap.Port()))
	if !fresh {
		if cn := d.pool.get(relay); cn != nil {
			cn.reused = true
			return cn, nil
		}
	}
	cn, f, tlsFailed := d.dial(ctx, host, relay, ap, d.opts.TLS == TLSOpportunistic)
	if tlsFailed {
		// A broken TLS stack on either side must not stop the mail.
		d.log.Debug("STARTTLS failed; retrying in plain text", "relay", relay, "error", f.reply.Text)
		cn, f, _ = d.dial(ctx, host, relay, ap, false)
	}
	if f != nil {
		return nil, f
	}
	if auth {
		if f := d.auth(cn, ap); f != nil {
			cn.c.Close()
			return nil, f
		}
	}
	return cn, nil
}

// dial opens a new session. tlsFailed reports a failed STARTTLS handshake,
// after which a plain session may be tried.
func (d *Deliverer) dial(ctx context.Context, host, relay string, ap netip.AddrPort, tryTLS bool) (cn *conn, f *failure, tlsFailed bool) {
	dctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	raw, err := d.opts.Dial(dctx, "tcp", ap.String())
	cancel()
	if err != nil {
		return nil, deferred("4.4.1", relay, "connect to %s: %v", relay, unwrapOp(err)), false
	}
	// Cancelling ctx aborts the handshake.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	c := d.newClient(raw)
	if err := c.Hello(d.opts.Hostname); err != nil {
		c.Close()
		return nil, sessionFailure(relay, "refused the session", err), false
	}
	cn = &conn{c: c, raw: raw, relay: relay}
	if ok, _ := c.Extension("STARTTLS"); !ok || !tryTLS {
		return cn, nil, false
	}
	tc, started, err := d.startTLS(ctx, raw, host)
	if err != nil {
		c.Close()
		return nil, deferred("4.4.2", relay, "STARTTLS with %s failed: %v", relay, err), started
	}
	if !started {
		// STARTTLS was refused with a reply: go on in plain text.
		return cn, nil, false
	}
	c = d.newClient(&greeted{Conn: tc, pending: "220 TLS session started\r\n"})
	if err := c.Hello(d.opts.Hostname); err != nil {
		c.Close()
		return nil, sessionFailure(relay, "refused EHLO after STARTTLS", err), true
	}
	return &conn{c: c, raw: tc, relay: relay, tls: true}, nil, false
}

// newClient wraps raw in a go-smtp client with our timeouts.
func (d *Deliverer) newClient(raw net.Conn) *smtp.Client {
	c := smtp.NewClient(raw)
	c.CommandTimeout = d.opts.CommandTimeout
	c.SubmissionTimeout = d.opts.DataTimeout
	return c
}

// startTLS sends STARTTLS on raw, whose EHLO reply the client has read in
// full, and does the handshake. The reply is read a byte at a time so that
// nothing sent before the handshake is taken into the TLS session.
// started is false, with no error, when the peer refused STARTTLS.
func (d *Deliverer) startTLS(ctx context.Context, raw net.Conn, host string) (tc *tls.Conn, started bool, err error) {
	raw.SetDeadline(time.Now().Add(d.opts.CommandTimeout))
	defer raw.SetDeadline(time.Time{})
	if _, err := raw.Write([]byte("STARTTLS\r\n")); err != nil {
		return nil, false, err
	}
	tp := textproto.NewReader(bufio.NewReaderSize(byteReader{raw}, 16))
	if _, _, err := tp.ReadResponse(220); err != nil {
		var pe *textproto.Error
		if errors.As(err, &pe) {
			return nil, false, nil
		}
		return nil, false, err
	}
	cfg := &tls.Config{
		// Opportunistic TLS: any certificate protects against passive
		// eavesdropping; verification needs DANE or MTA-STS.
		InsecureSkipVerify: true,
	}
	if !isIP(host) {
		cfg.ServerName = host
	}
	tc = tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, true, err
	}
	return tc, true, nil
}

// byteReader reads one byte per call.
type byteReader struct{ net.Conn }

func (r byteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return r.Conn.Read(p)
}

// greeted hands the go-smtp client a greeting before the TLS session's
// bytes, since after STARTTLS the server sends none but the client reads
// one before its EHLO.
type greeted struct {
	net.Conn
	pending string
}

func (g *greeted) Read(p []byte) (int, error) {
	if g.pending != "" {
		n := copy(p, g.pending)
		g.pending = g.pending[n:]
		return n, nil
	}
	return g.Conn.Read(p)
}

// auth authenticates cn to the smarthost with AUTH PLAIN, only over TLS or
// to a loopback address.
func (d *Deliverer) auth(cn *conn, ap netip.AddrPort) *failure {
	if !cn.tls && !ap.Addr().Unmap().IsLoopback() {
		return deferred("4.7.0", cn.relay,
			"not sending the relay credentials to %s without TLS (it offered no STARTTLS, or tls = \"none\")", cn.relay)
	}
	if ok, _ := cn.c.Extension("AUTH"); !ok {
		return deferred("4.7.0", cn.relay, "relay %s does not offer AUTH; check relay_user or the relay's configuration", cn.relay)
	}
	if err := cn.c.Auth(sasl.NewPlainClient("", d.opts.RelayUser, d.opts.RelayPassword)); err != nil {
		f := sessionFailure(cn.relay, "refused our credentials", err)
		f.reply.Enhanced = mail.EnhancedCode{4, 7, 8}
		return f
	}
	return nil
}

// sessionFailure is a deferral for a session that failed before MAIL:
// even a 5xx from the greeting or EHLO is no verdict on the recipients.
func sessionFailure(relay, what string, err error) *failure {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return deferred("4.4.2", relay, "%s %s: %s", relay, what, replyText(se))
	}
	return deferred("4.4.2", relay, "%s %s: %v", relay, what, unwrapOp(err))
}

// replyText renders a reply as the server wrote it, on one line: "550
// 5.1.1 text", or "550 text" when it gave no enhanced code.
func replyText(se *smtp.SMTPError) string {
	r := mail.WireReply(se.Code, se.EnhancedCode, se.Message)
	r.Enhanced = mail.EnhancedCode{}
	if e := se.EnhancedCode; e != smtp.NoEnhancedCode && e != (smtp.EnhancedCode{}) {
		r.Enhanced = mail.EnhancedCode(e)
	}
	return r.String()
}

// replyResult is the Result of a reply to rcpt: 5xx bounces, anything else
// defers. The enhanced code is the server's, or one derived from the basic
// code when the reply has none (or one of another class). The Reply's text
// is the whole reply on one line (replyText), which the queue records as
// the recipient's last error.
func replyResult(rcpt, relay string, se *smtp.SMTPError) mail.Result {
	r := mail.WireReply(se.Code, se.EnhancedCode, se.Message)
	r.Text = replyText(se)
	switch se.Code / 100 {
	case 5:
		return mail.BouncedResult(rcpt, relay, r)
	case 4:
	default:
		r.Enhanced = mail.EnhancedCode{4, 0, 0} // not a failure reply: retry
	}
	return mail.DeferredResult(rcpt, relay, r)
}

// unwrapOp drops the "dial tcp …:" prefix of a *net.OpError, since the
// relay is named already.
func unwrapOp(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
