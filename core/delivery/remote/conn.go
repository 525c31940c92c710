package remote

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"net/textproto"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/tlsrpt"
)

// quitTimeout bounds the QUIT sent to a connection being closed.
const quitTimeout = 10 * time.Second

// conn is one SMTP session to a remote host, ready for MAIL.
type conn struct {
	c   *smtp.Client
	raw net.Conn // what c reads and writes; closing it aborts c
	// relay is "host[ip]:port", the Result's Relay; key is the pool key
	// (relay and how the session is secured).
	relay, key string
	// tls is the TLS version ("TLSv1.3"), "" in plain text; verified
	// says how the certificate was verified ("dane", "mta-sts", "pkix",
	// "no").
	tls, verified string
	// msgs counts the transactions this connection has carried.
	msgs int
	// reused is set when the connection came from the pool.
	reused bool
	// open is set while the server holds a transaction (MAIL accepted, no
	// reply to the end of the data yet): the next MAIL needs RSET first.
	open bool
	// cmds writes pipelined commands as c would (pipeline.go); made at
	// the first pipelined transaction.
	cmds *cmdFormatter
	// rr reads replies beneath c (replies).
	rr *replyReader
	// timer closes the connection while it is idle in the pool.
	timer *time.Timer
}

// replies returns the reader of replies to commands written beneath c:
// the one of the last transaction, when it holds no bytes (it never does
// after a transaction that ended well: replyReader.end), else a new one.
// Kept for the next transaction: a bufio.Reader and textproto.Reader less
// to allocate a message.
func (cn *conn) replies() *replyReader {
	if cn.rr == nil || cn.rr.br.Buffered() != 0 {
		cn.rr = newReplyReader(cn.raw)
	}
	return cn.rr
}

// quit says QUIT, waiting at most timeout, and closes the connection.
func (cn *conn) quit(timeout time.Duration) {
	cn.c.CommandTimeout = min(timeout, quitTimeout)
	cn.c.Quit()
	cn.c.Close()
}

// connect returns a session to host at ap secured as p says: an idle
// pooled one unless fresh is set, or a new one (greeting, EHLO, TLS, AUTH
// when p says). A failure means: try the next address.
func (d *Deliverer) connect(ctx context.Context, ds *dest, host string, ap netip.AddrPort, p *tlsPlan, fresh bool) (*conn, *failure) {
	relay := relayName(host, ap.Addr(), int(ap.Port()))
	if !fresh {
		for _, k := range p.accepts() {
			if cn := d.pool.get(relay + "|" + k); cn != nil {
				cn.reused = true
				return cn, nil
			}
		}
	}
	cn, f, retry := d.dial(ctx, host, relay, ap, p)
	if retry != nil {
		// Opportunistic TLS (or an MTA-STS policy in testing mode): a
		// broken or unverified TLS session must not stop the mail.
		d.log.Debug("TLS failed; trying again without it (or unverified)", "relay", relay, "error", f.reply.Text)
		cn, f, _ = d.dial(ctx, host, relay, ap, retry)
	}
	if f != nil {
		return nil, f
	}
	cn.key = relay + "|" + p.keyFor(cn)
	if p.auth {
		if f := d.auth(cn, ds, ap, p); f != nil {
			cn.c.Close()
			return nil, f
		}
	}
	return cn, nil
}

// keyFor is the pool key (after the relay name) of cn, a session made for
// p: p's own when cn is secured as p asks (or logged in), else what cn is,
// so that a session that fell back to less is never reused for a policy
// that needs more.
func (p *tlsPlan) keyFor(cn *conn) string {
	switch {
	case p.auth:
		return p.key
	case cn.tls == "":
		return "plain"
	case cn.verified == "no" && p.verify != nil:
		return "opp"
	}
	return p.key
}

// accepts lists the pool keys of the sessions p may reuse, best first.
func (p *tlsPlan) accepts() []string {
	switch {
	case p.auth:
		return []string{p.key}
	case p.mode == planPlain:
		return []string{"plain"}
	case p.mode == planOptional || p.soft:
		return []string{p.key, "opp", "plain"}
	}
	return []string{p.key}
}

// dial opens a new session secured as p says. retry, when set, is the
// plan to try again with after a failure that p allows to be survived
// (opportunistic TLS, MTA-STS testing); the failure says what happened.
func (d *Deliverer) dial(ctx context.Context, host, relay string, ap netip.AddrPort, p *tlsPlan) (cn *conn, f *failure, retry *tlsPlan) {
	dctx, cancel := context.WithTimeout(ctx, d.opts.ConnectTimeout)
	raw, err := d.opts.Dial(dctx, "tcp", ap.String())
	cancel()
	if err != nil {
		return nil, deferred("4.4.1", relay, "connect to %s: %v", relay, unwrapOp(err)), nil
	}
	// Cancelling ctx aborts the handshake.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	at := peerOf(host, raw)
	if p.mode == planImplicit {
		tc, err := d.handshake(ctx, raw, p)
		if err != nil {
			raw.Close()
			return nil, d.tlsFailed(ctx, relay, at, p, err), nil
		}
		c := d.newClient(tc)
		if err := c.Hello(d.opts.Hostname); err != nil {
			c.Close()
			return nil, sessionFailure(relay, "refused the session", err), nil
		}
		return d.secured(ctx, c, tc, relay, at, p), nil, nil
	}
	c := d.newClient(raw)
	if err := c.Hello(d.opts.Hostname); err != nil {
		c.Close()
		return nil, sessionFailure(relay, "refused the session", err), nil
	}
	cn = &conn{c: c, raw: raw, relay: relay}
	if p.mode == planPlain {
		return cn, nil, nil
	}
	started := false
	if ok, _ := c.Extension("STARTTLS"); ok {
		var tc *tls.Conn
		tc, started, err = d.startTLS(ctx, raw, p)
		if err != nil {
			c.Close()
			f := d.tlsFailed(ctx, relay, at, p, err)
			var ve *verifyError
			switch {
			case p.mode == planRequired && !p.soft:
				return nil, f, nil
			case errors.As(err, &ve):
				// Counted as what it is: opportunistic TLS, not a
				// session the policy's verification passed.
				return nil, f, &tlsPlan{mode: planOptional, metric: "opportunistic", name: p.name, serverName: p.serverName, key: "opp"}
			}
			return nil, f, &tlsPlan{mode: planPlain, metric: "none", name: p.name, key: "plain"}
		}
		if started {
			c = d.newClient(&greeted{Conn: tc, pending: "220 TLS session started\r\n"})
			if err := c.Hello(d.opts.Hostname); err != nil {
				c.Close()
				return nil, sessionFailure(relay, "refused EHLO after STARTTLS", err), nil
			}
			return d.secured(ctx, c, tc, relay, at, p), nil, nil
		}
	}
	// No STARTTLS offered, or refused with a reply.
	d.record(ctx, p.report, at, p.metric, false, tlsrpt.ResultSTARTTLSNotSupported, relay+" does not offer STARTTLS")
	if p.mode == planRequired && !p.soft {
		cn.quit(d.opts.CommandTimeout) // a clean session: say QUIT
		return nil, policyFailure(relay, "%s does not offer STARTTLS, which %s requires; not sent in plain text", relay, p.why), nil
	}
	return cn, nil, nil
}

// secured is the session c over tc, which p's handshake secured.
func (d *Deliverer) secured(ctx context.Context, c *smtp.Client, tc *tls.Conn, relay string, at peer, p *tlsPlan) *conn {
	verified := p.verified
	if p.verify == nil || verified == "" {
		verified = "no"
	}
	d.record(ctx, p.report, at, p.metric, true, "", "")
	return &conn{c: c, raw: tc, relay: relay, tls: versionName(tc.ConnectionState().Version), verified: verified}
}

// peer is the other end of a session attempt, for TLS reports: the host
// and, once connected, both ends' addresses.
type peer struct {
	host          string
	local, remote netip.Addr
}

// peerOf is host at the ends of c.
func peerOf(host string, c net.Conn) peer {
	addr := func(a net.Addr) netip.Addr {
		ap, _ := netip.ParseAddrPort(a.String())
		return ap.Addr().Unmap()
	}
	return peer{host: host, local: addr(c.LocalAddr()), remote: addr(c.RemoteAddr())}
}

// versionName names a TLS version as Postfix and OpenSSL log it: "TLSv1.3".
func versionName(v uint16) string {
	return strings.Replace(tls.VersionName(v), "TLS ", "TLSv", 1)
}

// tlsFailed reports a failed handshake (or certificate) and returns the
// deferral that names it.
func (d *Deliverer) tlsFailed(ctx context.Context, relay string, at peer, p *tlsPlan, err error) *failure {
	var ve *verifyError
	if errors.As(err, &ve) {
		d.record(ctx, p.report, at, p.metric, false, ve.rtype, ve.reportDetail())
		return policyFailure(relay, "TLS with %s failed: %v (required by %s); not sent", relay, ve.err, p.why)
	}
	d.record(ctx, p.report, at, p.metric, false, tlsrpt.ResultValidationFailure, "TLS handshake: "+err.Error())
	if p.mode == planRequired || p.mode == planImplicit {
		return policyFailure(relay, "TLS handshake with %s failed (%s requires TLS): %v; not sent", relay, p.why, unwrapOp(err))
	}
	return deferred("4.4.2", relay, "STARTTLS with %s failed: %v", relay, unwrapOp(err))
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
func (d *Deliverer) startTLS(ctx context.Context, raw net.Conn, p *tlsPlan) (tc *tls.Conn, started bool, err error) {
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
	tc, err = d.handshake(ctx, raw, p)
	return tc, true, err
}

// handshake secures raw as p says: the certificate is checked by p.verify
// (none: opportunistic TLS, where any certificate protects against
// passive eavesdropping).
func (d *Deliverer) handshake(ctx context.Context, raw net.Conn, p *tlsPlan) (*tls.Conn, error) {
	cfg := &tls.Config{
		ServerName: p.serverName,
		// Verification is p.verify's, in VerifyConnection, so that DANE
		// and the names MTA-STS and the relay allow are checked the same
		// way and the problem is known.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if p.verify == nil {
				return nil
			}
			return p.verify(cs)
		},
	}
	if p.verify != nil {
		cfg.MinVersion = tls.VersionTLS12 // RFC 8996, RFC 8997
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
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

// auth logs in to a relay with AUTH PLAIN, or LOGIN when that is all it
// offers: only over a verified TLS session, or in plain text to a relay on
// loopback with relay_tls = "none".
func (d *Deliverer) auth(cn *conn, ds *dest, ap netip.AddrPort, p *tlsPlan) *failure {
	verified := cn.tls != "" && cn.verified != "no"
	if !verified && !(p.plainAuth && ap.Addr().Unmap().IsLoopback()) {
		return deferred("4.7.0", cn.relay,
			"not sending the relay credentials to %s over a session that is not verified TLS", cn.relay)
	}
	ok, mechs := cn.c.Extension("AUTH")
	if !ok {
		return deferred("4.7.0", cn.relay, "relay %s does not offer AUTH; check relay_user or the relay's configuration", cn.relay)
	}
	var sc sasl.Client
	switch list := strings.Fields(strings.ToUpper(mechs)); {
	case slices.Contains(list, sasl.Plain):
		sc = sasl.NewPlainClient("", ds.user, ds.pass)
	case slices.Contains(list, sasl.Login):
		sc = sasl.NewLoginClient(ds.user, ds.pass)
	default:
		return deferred("4.7.0", cn.relay, "relay %s offers neither AUTH PLAIN nor LOGIN (it offers %s)", cn.relay, mechs)
	}
	if err := cn.c.Auth(sc); err != nil {
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
