package remote

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/mail"
)

// To a server that offers PIPELINING (RFC 2920) a transaction's MAIL, its
// RCPTs and its DATA (or, with CHUNKING, "BDAT n LAST" and the message)
// go in one write, and the replies are read in order; then, after DATA's
// 354, the body in one more write (endData). That is two round trips
// instead of three plus one per recipient. go-smtp's client (v0.25)
// cannot pipeline: it waits for each reply. So the commands are written
// on the connection beneath it and the replies read from there, as BDAT
// is; the command lines themselves are go-smtp's (cmdFormatter).
// RATIONALE.md, "Outbound PIPELINING beneath go-smtp's client", says why
// this rather than a change to go-smtp.

// pipeline runs transaction's work (which see; the checks before MAIL are
// done) with the commands pipelined. done is false, with nothing sent,
// when the server does not offer PIPELINING or go-smtp's client would
// refuse to write one of the commands: then they go one at a time, which
// reports that refusal as it always has.
func (d *Deliverer) pipeline(cn *conn, m *mail.Message, rcpts []string, r *txnOut, first, utf8 bool) (ok, stale, done bool) {
	if has, _ := cn.c.Extension("PIPELINING"); !has {
		return false, false, false
	}
	group, chunk, formatted := cn.group(m, rcpts, utf8)
	if !formatted {
		return false, false, false
	}
	raw := cn.raw
	defer raw.SetDeadline(time.Time{})
	var err error
	if chunk {
		raw.SetWriteDeadline(time.Now().Add(d.opts.DataTimeout))
		bufs := net.Buffers{group, m.Body}
		_, err = bufs.WriteTo(raw)
	} else {
		raw.SetWriteDeadline(time.Now().Add(d.opts.CommandTimeout))
		_, err = raw.Write(group)
	}
	rr := cn.replies()
	if err == nil {
		_, _, err = rr.read(250, d.opts.CommandTimeout)
	}
	if err != nil {
		if ok, stale := r.mailFailed(err, first); !ok {
			return false, stale, true
		}
		// MAIL refused: the server answers the rest too (RFC 2920 says
		// to read every reply), refusing each.
		return d.skip(cn, rr, len(rcpts), chunk), false, true
	}
	cn.open = true // until the reply to the end of the data
	var accepted []int
	for i := range rcpts {
		_, _, err := rr.read(25, d.opts.CommandTimeout)
		if accepted, ok = r.rcpt(accepted, i, err); !ok {
			return false, false, true
		}
	}
	if len(accepted) == 0 {
		// Every recipient refused: the server refuses DATA or BDAT too.
		return d.skip(cn, rr, 0, chunk), false, true
	}
	var resp string
	what := "the end of the data"
	if chunk {
		what = "BDAT"
		_, resp, err = rr.read(2, d.opts.DataTimeout)
		var se *smtp.SMTPError
		if err == nil || !errors.As(err, &se) {
			cn.open = false // done, or the connection is lost
		}
	} else if _, _, err = rr.read(354, d.opts.CommandTimeout); err == nil {
		resp, err = d.endData(cn, rr, m.Body)
	}
	if err != nil {
		return r.reply(accepted, err), false, true
	}
	cn.msgs++
	r.sent(accepted, resp)
	return rr.end(d.log, what), false, true
}

// group is the pipelined commands of m's transaction to rcpts on cn:
// MAIL, the RCPTs and DATA, or (chunk: the server offers CHUNKING and the
// body is canonical) "BDAT n LAST", the body to follow. formatted is
// false when go-smtp's client would refuse to write one of them.
func (cn *conn) group(m *mail.Message, rcpts []string, utf8 bool) (group []byte, chunk, formatted bool) {
	if cn.cmds == nil {
		cn.cmds = newCmdFormatter(cn.c)
	}
	f := cn.cmds
	f.rec.out = f.rec.out[:0]
	if f.c.Mail(m.From, mailOptions(m, utf8)) != nil {
		return nil, false, false
	}
	info := recipientInfo(m)
	for _, rc := range rcpts {
		if f.c.Rcpt(rc, rcptOptions(info[rc])) != nil {
			return nil, false, false
		}
	}
	has, _ := cn.c.Extension("CHUNKING")
	chunk = has && canonical(m.Body)
	group = f.rec.out
	if chunk {
		group = strconv.AppendInt(append(group, "BDAT "...), int64(len(m.Body)), 10)
		group = append(group, " LAST\r\n"...)
	} else {
		group = append(group, "DATA\r\n"...)
	}
	f.rec.out = group // keeps the capacity for the next transaction
	return group, chunk, true
}

// skip reads and drops the replies to n RCPTs and to DATA or (chunk) BDAT
// in a transaction whose outcome is decided already: a refused MAIL, or
// every recipient refused. It reports that the connection is fit for
// more: it is not after a 421, a lost connection, or a 354 to DATA (the
// server would take a message for nobody; closing the connection is the
// only way to stop it).
func (d *Deliverer) skip(cn *conn, rr *replyReader, n int, chunk bool) bool {
	for range n {
		if code, _, err := rr.read(0, d.opts.CommandTimeout); err != nil || code == 421 {
			return false
		}
	}
	timeout := d.opts.CommandTimeout
	if chunk {
		timeout = d.opts.DataTimeout
	}
	code, _, err := rr.read(0, timeout)
	switch {
	case err != nil || code == 421:
		return false
	case code == 354:
		d.log.Warn("closing the connection: the server took DATA with no recipient", "relay", cn.relay)
		cn.raw.Close()
		return false
	case code/100 == 2:
		cn.open = false // a chunk taken with no recipient: nothing is open
	}
	return rr.end(d.log, "its last command")
}

// txnOut fills the Results of one transaction's recipients from the
// server's replies.
type txnOut struct {
	rcpts []string
	out   []mail.Result
	relay string
}

// set sets the Results of the recipients at idx to res.
func (r *txnOut) set(idx []int, res func(rcpt string) mail.Result) {
	for _, i := range idx {
		r.out[i] = res(r.rcpts[i])
	}
}

// lost defers the recipients at idx: the connection was lost (err).
func (r *txnOut) lost(idx []int, err error) {
	r.set(idx, deferred("4.4.2", r.relay, "connection to %s lost: %v", r.relay, unwrapOp(err)).result)
}

// reply applies a refusal (an *smtp.SMTPError) or a lost connection to
// idx; ok is false when the connection is lost or the server said it is
// closing it (421).
func (r *txnOut) reply(idx []int, err error) (ok bool) {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		r.lost(idx, err)
		return false
	}
	r.set(idx, func(rc string) mail.Result { return replyResult(rc, r.relay, se) })
	return se.Code != 421
}

// mailFailed applies err, the failure of MAIL (or of writing it), to
// every recipient. stale is set, and nothing filled, when it was the first
// command on a pooled connection that broke or closed (421): the caller
// dials anew. ok reports, as reply does, that the connection is fit for
// more.
func (r *txnOut) mailFailed(err error, first bool) (ok, stale bool) {
	var se *smtp.SMTPError
	if first && (!errors.As(err, &se) || se.Code == 421) {
		return false, true
	}
	return r.reply(span(0, len(r.rcpts)), err), false
}

// rcpt applies the reply to the RCPT of recipient i (err nil: accepted,
// added to accepted). ok is false when the transaction cannot go on: a
// lost connection or a 421 defers the recipients accepted so far and those
// after i.
func (r *txnOut) rcpt(accepted []int, i int, err error) (_ []int, ok bool) {
	if err == nil {
		return append(accepted, i), true
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		r.lost(append(accepted, span(i, len(r.rcpts))...), err)
		return accepted, false
	}
	r.out[i] = replyResult(r.rcpts[i], r.relay, se)
	if se.Code == 421 {
		r.lost(append(accepted, span(i+1, len(r.rcpts))...), errors.New("server closed the session (421)"))
		return accepted, false
	}
	return accepted, true
}

// sent records the recipients at idx as delivered with resp, the text of
// the server's 2xx reply to the message.
func (r *txnOut) sent(idx []int, resp string) {
	text := strings.Join(strings.Fields(resp), " ")
	ok250 := mail.Reply{Code: 250, Enhanced: mail.EnhancedCode{2, 0, 0}, Text: "250 " + text}
	if code, _, has := mail.CutEnhanced(text); has && code[0] == 2 {
		ok250.Enhanced = code
	}
	r.set(idx, func(rc string) mail.Result { return mail.SentResult(rc, r.relay, ok250) })
}

// span is the indexes from i to n-1.
func span(i, n int) []int {
	idx := make([]int, 0, max(n-i, 0))
	for ; i < n; i++ {
		idx = append(idx, i)
	}
	return idx
}

// formatExts are the extensions go-smtp's client looks at when it writes
// MAIL and RCPT.
var formatExts = []string{"8BITMIME", "SIZE", "REQUIRETLS", "SMTPUTF8", "DSN", "AUTH", "RRVS", "DELIVERBY", "MT-PRIORITY"}

// cmdFormatter writes MAIL and RCPT command lines exactly as go-smtp's
// client writes them (the parameters it adds, or leaves out, for the
// extensions the server offers; the checks it makes), without sending
// them: it is a second go-smtp client, told the real session's extensions,
// on a connection that keeps what the client writes and answers every
// command with 250.
type cmdFormatter struct {
	c   *smtp.Client
	rec *recordConn
}

// newCmdFormatter returns a formatter for commands to the server real is
// talking to.
func newCmdFormatter(real *smtp.Client) *cmdFormatter {
	var exts []string
	for _, e := range formatExts {
		if has, _ := real.Extension(e); has {
			exts = append(exts, e)
		}
	}
	var script strings.Builder
	script.WriteString("220 formatter\r\n")
	lines := append([]string{"formatter"}, exts...)
	for i, line := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		script.WriteString("250" + sep + line + "\r\n")
	}
	rec := &recordConn{script: script.String()}
	c := smtp.NewClient(rec)
	c.Hello("formatter") // cannot fail: rec answers as scripted
	return &cmdFormatter{c: c, rec: rec}
}

// recordConn is the connection beneath a cmdFormatter's client: it keeps
// what is written, and reads the greeting and EHLO reply of its script,
// then "250 ok" each time the client reads a reply.
type recordConn struct {
	script string
	out    []byte
}

var _ net.Conn = (*recordConn)(nil)

func (c *recordConn) Read(p []byte) (int, error) {
	if c.script == "" {
		return copy(p, "250 ok\r\n"), nil
	}
	n := copy(p, c.script)
	c.script = c.script[n:]
	return n, nil
}

func (c *recordConn) Write(p []byte) (int, error) {
	c.out = append(c.out, p...)
	return len(p), nil
}

func (c *recordConn) Close() error                     { return nil }
func (c *recordConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *recordConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *recordConn) SetDeadline(time.Time) error      { return nil }
func (c *recordConn) SetReadDeadline(time.Time) error  { return nil }
func (c *recordConn) SetWriteDeadline(time.Time) error { return nil }
