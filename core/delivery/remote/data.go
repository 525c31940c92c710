package remote

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
)

// A DATA body goes out dot-stuffed in runs, beneath go-smtp's client: its
// DATA writer (net/textproto's DotWriter) looks at every byte and writes
// it with bufio's WriteByte, flushed every 4 KiB, which was a third of the
// server's user-space instructions per relayed message (BENCHMARKS.md,
// "Outbound PIPELINING and DATA in runs"). Here bytes.IndexByte finds the
// line ends, the runs between the places that need a byte added are
// copied whole, and the body with its final "." goes in one write. The
// bytes on the wire are DotWriter's, quirks and all (FuzzDotStuff holds
// them to it): a bare LF becomes CRLF, a line starting with "." gets
// another, and an unfinished last line is ended before the ".".

// stuffRun bounds the body bytes stuffed into one buffer and one write: a
// larger body goes in writes of this much, so that a big message costs a
// bounded buffer rather than a second copy of itself.
const stuffRun = 256 << 10

// dotState is where DotWriter's state machine stands: at the start of the
// data, at the start of a line, in a line, or just after a CR in a line.
type dotState uint8

const (
	dotBegin dotState = iota
	dotLine
	dotData
	dotCR
)

// dotStuffer dot-stuffs a body given in one or more pieces.
type dotStuffer struct{ state dotState }

// append appends src, stuffed, to dst.
func (s *dotStuffer) append(dst, src []byte) []byte {
	run := 0 // src[run:i] is copied as it is
	for i := 0; i < len(src); {
		switch s.state {
		case dotBegin, dotLine:
			s.state = dotData
			if src[i] == '.' {
				dst = append(dst, src[run:i]...)
				dst = append(dst, '.')
				run = i
			}
		case dotCR:
			s.state = dotData
			if src[i] == '\n' {
				s.state = dotLine
			}
			i++
		case dotData:
			j := bytes.IndexByte(src[i:], '\n')
			if j < 0 {
				if oddCRs(src[i:]) {
					s.state = dotCR
				}
				i = len(src)
				break
			}
			// The LF ends the line. DotWriter adds a CR before it
			// unless it follows a CR that put it in its CR state: one
			// ending an odd run of CRs (after a CR, a second CR is
			// just data).
			if !oddCRs(src[i : i+j]) {
				dst = append(dst, src[run:i+j]...)
				dst = append(dst, '\r')
				run = i + j
			}
			i += j + 1
			s.state = dotLine
		}
	}
	return append(dst, src[run:]...)
}

// end appends the end of the data to dst: the last line's CRLF when it
// has none, then ".\r\n".
func (s *dotStuffer) end(dst []byte) []byte {
	switch s.state {
	case dotBegin, dotData:
		dst = append(dst, '\r')
		fallthrough
	case dotCR:
		dst = append(dst, '\n')
	}
	return append(dst, ".\r\n"...)
}

// dotEnd is the end of the data after a body whose last line is ended.
var dotEnd = []byte(".\r\n")

// unstuffed reports that dotStuffer leaves body as it is and ends it with
// ".\r\n" alone: body ends in LF, no line starts with ".", and every LF
// ends an odd run of CRs (a CR is added before any other).
func unstuffed(body []byte) bool {
	n := len(body)
	if n == 0 || body[0] == '.' || body[n-1] != '\n' || mail.IndexLineDot(body) >= 0 {
		return false
	}
	for i := 0; ; {
		j := bytes.IndexByte(body[i:], '\n')
		if j < 0 {
			return true
		}
		// The CRs before the LF cannot reach back past the line's start
		// (an LF, or body's), so oddCRs over all of body[:p] is the line's.
		p := i + j
		if p == 0 || body[p-1] != '\r' || p >= 2 && body[p-2] == '\r' && !oddCRs(body[:p]) {
			return false
		}
		i = p + 1
	}
}

// oddCRs reports that b ends in an odd number of CRs.
func oddCRs(b []byte) bool {
	n := 0
	for n < len(b) && b[len(b)-1-n] == '\r' {
		n++
	}
	return n%2 == 1
}

// writeStuffed writes body dot-stuffed and ended with "." to w: one write
// for each run bytes of body. On a plain TCP connection, a body of at
// most run bytes that stuffing leaves as it is (unstuffed) goes out as it
// is, followed by ".\r\n", in one vectored write (net.Buffers: writev),
// without a copy of it; a writer without writev (TLS) would take two
// writes for that, so it gets the copy.
func writeStuffed(w io.Writer, body []byte, run int) error {
	if _, tcp := w.(*net.TCPConn); tcp && len(body) <= run && unstuffed(body) {
		bufs := net.Buffers{body, dotEnd}
		_, err := bufs.WriteTo(w)
		return err
	}
	var s dotStuffer
	buf := make([]byte, 0, min(len(body), run)+min(len(body), run)/64+8)
	for {
		n := min(len(body), run)
		buf = s.append(buf[:0], body[:n])
		body = body[n:]
		if len(body) == 0 {
			buf = s.end(buf)
		}
		if _, err := w.Write(buf); err != nil {
			return err
		}
		if len(body) == 0 {
			return nil
		}
	}
}

// data sends body in cn's open transaction with DATA: the command, the
// 354, then endData.
func (d *Deliverer) data(cn *conn, body []byte) (string, error) {
	defer cn.raw.SetDeadline(time.Time{})
	cn.raw.SetWriteDeadline(time.Now().Add(d.opts.CommandTimeout))
	if _, err := io.WriteString(cn.raw, "DATA\r\n"); err != nil {
		return "", err
	}
	rr := cn.replies()
	if _, _, err := rr.read(354, d.opts.CommandTimeout); err != nil {
		return "", err
	}
	resp, err := d.endData(cn, rr, body)
	if err == nil {
		rr.end(d.log, "the end of the data")
	}
	return resp, err
}

// endData writes body, dot-stuffed, and its final "." after the server's
// 354 (read from rr), and reads the reply to the end of the data within
// DataTimeout. The reply ends the transaction whatever it says. It returns
// the text of a 250, or the error: an *smtp.SMTPError for a refusal,
// another error for a lost connection.
func (d *Deliverer) endData(cn *conn, rr *replyReader, body []byte) (string, error) {
	defer cn.raw.SetDeadline(time.Time{})
	cn.raw.SetWriteDeadline(time.Now().Add(d.opts.DataTimeout))
	if err := writeStuffed(cn.raw, body, stuffRun); err != nil {
		cn.open = false
		return "", err
	}
	_, msg, err := rr.read(250, d.opts.DataTimeout)
	cn.open = false
	return msg, err
}

// replyReader reads replies from the connection beneath go-smtp's client,
// for commands written there. go-smtp has read every byte the server sent
// before (its last command's reply), and a server sends nothing unasked,
// so what is read here is the replies to these commands, and nothing is
// left for the client after the last one.
type replyReader struct {
	raw net.Conn
	lr  io.LimitedReader
	br  *bufio.Reader
	tp  *textproto.Reader
}

func newReplyReader(raw net.Conn) *replyReader {
	r := &replyReader{raw: raw}
	r.lr.R = raw
	r.br = bufio.NewReaderSize(&r.lr, 512)
	r.tp = textproto.NewReader(r.br)
	return r
}

// read reads one reply within timeout: at most maxReply bytes, so that a
// server sending an endless line costs a bounded buffer (go-smtp's client
// bounds its own reads the same way). A reply other than expect (as
// textproto's ReadResponse matches it: 2 is any 2xx, 25 any 25x, 0 any)
// is returned as the *smtp.SMTPError go-smtp's client would make of it;
// another error means the connection is lost.
func (r *replyReader) read(expect int, timeout time.Duration) (code int, msg string, err error) {
	r.raw.SetReadDeadline(time.Now().Add(timeout))
	r.lr.N = maxReply
	code, msg, err = r.tp.ReadResponse(expect)
	var pe *textproto.Error
	if errors.As(err, &pe) {
		return code, "", replyError(pe.Code, pe.Msg)
	}
	return code, msg, err
}

// end checks, after the last reply expected, that the server sent nothing
// more. One that did spoke out of turn: its replies stand, but the
// connection is closed rather than trusted with another transaction, and
// end reports false.
func (r *replyReader) end(log *slog.Logger, after string) bool {
	n := r.br.Buffered()
	if n == 0 {
		return true
	}
	log.Warn("closing the connection: the server sent more than its reply to "+after, "relay", r.raw.RemoteAddr().String(), "bytes", n)
	r.raw.Close()
	return false
}
