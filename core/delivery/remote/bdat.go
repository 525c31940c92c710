package remote

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/mail"
)

// The message goes to a server that offers CHUNKING (RFC 3030) as one
// "BDAT n LAST" chunk: the command and the bytes as they are, one reply.
// That is a round trip less than DATA (354, then the reply to the end of
// the data) and no dot-stuffing, which go-smtp's DATA writer does a byte
// at a time. go-smtp's client has no BDAT, so the chunk is written to the
// connection beneath it and the reply read from there (BENCHMARKS.md,
// "Outbound CHUNKING", has the measurement).

// maxReply bounds the bytes read for one reply read beneath go-smtp's
// client (replyReader), so that a server sending an endless line costs a
// bounded buffer (go-smtp's client bounds its own reads the same way).
const maxReply = 64 << 10

// canonical reports whether body can go in a BDAT chunk as it is: every
// line ends in CRLF, the last one too. DATA would write the same bytes
// (go-smtp's DATA writer turns a bare LF into CRLF and ends an unfinished
// last line), so a body that is not gets DATA.
func canonical(body []byte) bool {
	if !bytes.HasSuffix(body, []byte("\r\n")) {
		return false
	}
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '\n')
		if j < 0 {
			return true
		}
		if i+j == 0 || body[i+j-1] != '\r' {
			return false
		}
		i += j + 1
	}
}

// sendBody sends body in cn's open transaction, after its recipients: as
// one BDAT chunk when the server offers CHUNKING and the body is
// canonical, else with DATA. It returns the text of the server's 2xx
// reply, or the error: an *smtp.SMTPError for a refusal, another error
// for a lost connection. The transaction stays open (for
// ready's RSET) only after a refused DATA or BDAT.
func (d *Deliverer) sendBody(cn *conn, body []byte) (string, error) {
	if ok, _ := cn.c.Extension("CHUNKING"); ok && canonical(body) {
		text, err := d.bdat(cn.raw, body)
		var se *smtp.SMTPError
		if err == nil || !errors.As(err, &se) {
			cn.open = false // done, or the connection is closed
		}
		return text, err
	}
	return d.data(cn, body)
}

// bdat writes "BDAT n LAST" and body to raw, the connection beneath
// go-smtp's client, in one write (writev on TCP), and reads the reply
// within DataTimeout. go-smtp has read every byte the server sent before
// (its last command's reply), and the server sends nothing after this
// reply unasked, so the reply's bytes are read here and none are left for
// the client. A server that sent more spoke out of turn: its reply stands,
// but the connection is closed rather than trusted with another
// transaction.
func (d *Deliverer) bdat(raw net.Conn, body []byte) (string, error) {
	cmd := strconv.AppendInt([]byte("BDAT "), int64(len(body)), 10)
	cmd = append(cmd, " LAST\r\n"...)
	bufs := net.Buffers{cmd, body}
	if _, err := bufs.WriteTo(raw); err != nil {
		return "", err
	}
	defer raw.SetReadDeadline(time.Time{})
	rr := newReplyReader(raw)
	_, msg, err := rr.read(2, d.opts.DataTimeout)
	if err != nil {
		return "", err
	}
	rr.end(d.log, "BDAT")
	return msg, nil
}

// rset ends the transaction left open on cn with RSET, written beneath
// go-smtp's client as BDAT is: the client's own Reset clears its
// unexported didHello, and its next MAIL would say EHLO again. A refused
// RSET, or one the server said more after, leaves the connection unfit.
func (d *Deliverer) rset(cn *conn) error {
	if _, err := cn.raw.Write([]byte("RSET\r\n")); err != nil {
		return err
	}
	defer cn.raw.SetReadDeadline(time.Time{})
	rr := cn.replies()
	if _, _, err := rr.read(2, d.opts.CommandTimeout); err != nil {
		return err
	}
	if !rr.end(d.log, "RSET") {
		return errors.New("the server sent more than its reply to RSET")
	}
	return nil
}

// replyError is the *smtp.SMTPError go-smtp's client makes of a refusal:
// the enhanced code cut from the text (each line's, RFC 2034) when it has
// one.
func replyError(code int, msg string) *smtp.SMTPError {
	se := &smtp.SMTPError{Code: code, Message: msg}
	word, _, _ := strings.Cut(msg, " ")
	if enh, rest, ok := mail.CutEnhanced(msg); ok {
		se.EnhancedCode, se.Message = smtp.EnhancedCode(enh), strings.ReplaceAll(rest, "\n"+word+" ", "\n")
	}
	return se
}
