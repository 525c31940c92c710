package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// errClosed means the server ended the session (421) or the connection
// broke; the session reconnects if there is work left.
var errClosed = errors.New("connection closed")

// keyConn is the Errors key for network failures and unreadable replies.
const keyConn = "conn"

// session is one SMTP connection and its tallies. Only its own goroutine
// touches it, so the tallies need no lock.
type session struct {
	opts    *Options
	payload []byte // the message, dot-stuffed, with the final ".\r\n"
	cmds    []byte // MAIL, RCPT and DATA, for a pipelined send
	limit   *limit

	conn       net.Conn
	r          *bufio.Reader
	w          *bufio.Writer
	pipelining bool
	stopClose  func() bool // unregisters the close-on-cancel hook
	startErr   error       // why start failed

	accepted  int
	latencies []time.Duration
	errors    map[string]int
	errorText map[string]string
}

func newSession(opts *Options, payload []byte, l *limit) *session {
	return &session{
		opts:    opts,
		payload: payload,
		cmds:    fmt.Appendf(nil, "MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n", opts.From, opts.To),
		limit:   l,
	}
}

// dataPayload returns msg as it goes on the wire after a 354: lines that
// start with a dot get another, and ".\r\n" ends it. msg must end in CRLF.
func dataPayload(msg []byte) []byte {
	var b bytes.Buffer
	for line := range bytes.Lines(msg) {
		if line[0] == '.' {
			b.WriteByte('.')
		}
		b.Write(line)
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// start connects, reads the greeting and says EHLO; on failure conn stays
// nil and startErr says why.
func (s *session) start(ctx context.Context) {
	s.startErr = s.connect(ctx)
}

// loop runs transactions until the limit says stop, reconnecting when the
// server drops the session.
func (s *session) loop(ctx context.Context) {
	for s.limit.take(ctx) {
		if s.conn == nil && s.connect(ctx) != nil {
			return
		}
		if err := s.transaction(); err != nil {
			s.close()
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, errClosed) {
				s.fail(keyConn, err.Error())
			}
		}
	}
	if s.conn != nil && ctx.Err() == nil {
		s.quit()
	}
}

// connect dials, reads the 220 greeting and sends EHLO.
func (s *session) connect(ctx context.Context) error {
	d := net.Dialer{Timeout: s.opts.Timeout}
	c, err := d.DialContext(ctx, "tcp", s.opts.Addr)
	if err != nil {
		s.fail(keyConn, err.Error())
		return err
	}
	s.conn, s.r, s.w = c, bufio.NewReader(c), bufio.NewWriterSize(c, 32<<10)
	s.stopClose = context.AfterFunc(ctx, func() { c.Close() })
	s.conn.SetDeadline(time.Now().Add(s.opts.Timeout))

	code, lines, err := s.reply()
	if err == nil && code != 220 {
		err = fmt.Errorf("greeting from %s: %d %s", s.opts.Addr, code, lines[0])
		s.fail(strconv.Itoa(code), lines[0])
	} else if err != nil {
		s.fail(keyConn, err.Error())
	}
	if err == nil {
		code, lines, err = s.command("EHLO " + s.opts.Helo)
		if err == nil && code != 250 {
			err = fmt.Errorf("EHLO to %s: %d %s", s.opts.Addr, code, lines[0])
			s.fail(strconv.Itoa(code), lines[0])
		} else if err != nil {
			s.fail(keyConn, err.Error())
		}
	}
	if err != nil {
		s.close()
		return err
	}
	s.pipelining = false
	for _, l := range lines[1:] {
		if strings.EqualFold(strings.TrimSpace(l), "PIPELINING") {
			s.pipelining = true
		}
	}
	return nil
}

// transaction sends one message. It counts failed replies itself and
// returns an error only when the connection is no longer usable.
func (s *session) transaction() error {
	s.conn.SetDeadline(time.Now().Add(s.opts.Timeout))
	var mail, rcpt, data int
	var text []string
	var err error
	if s.pipelining {
		if _, err := s.w.Write(s.cmds); err != nil {
			return err
		}
		if err := s.w.Flush(); err != nil {
			return err
		}
		var mt, rt, dt []string
		if mail, mt, err = s.reply(); err != nil {
			return err
		}
		if rcpt, rt, err = s.reply(); err != nil {
			return err
		}
		if data, dt, err = s.reply(); err != nil {
			return err
		}
		switch {
		case mail/100 != 2:
			text = mt
		case rcpt/100 != 2:
			text = rt
		default:
			text = dt
		}
	} else {
		if mail, text, err = s.command("MAIL FROM:<" + s.opts.From + ">"); err != nil {
			return err
		}
		if mail/100 == 2 {
			if rcpt, text, err = s.command("RCPT TO:<" + s.opts.To + ">"); err != nil {
				return err
			}
		}
		if rcpt/100 == 2 {
			if data, text, err = s.command("DATA"); err != nil {
				return err
			}
		}
	}
	if data != 354 {
		return s.abort(mail, rcpt, data, text)
	}

	if _, err := s.w.Write(s.payload); err != nil {
		return err
	}
	if err := s.w.Flush(); err != nil {
		return err
	}
	t0 := time.Now()
	code, text, err := s.reply()
	lat := time.Since(t0)
	switch {
	case err != nil:
		return err
	case code/100 != 2:
		s.fail(strconv.Itoa(code), text[0])
	case mail/100 != 2 || rcpt/100 != 2:
		// A server that took DATA after refusing MAIL or RCPT.
		return s.abort(mail, rcpt, 0, text)
	default:
		s.accepted++
		s.latencies = append(s.latencies, lat)
	}
	if code == 421 {
		return errClosed
	}
	return nil
}

// abort counts the first refused step of a transaction that got no 354 and
// resets the session if the server had taken MAIL. A zero code is a step
// that was not sent.
func (s *session) abort(mail, rcpt, data int, text []string) error {
	code := mail
	switch {
	case mail/100 != 2:
	case rcpt/100 != 2:
		code = rcpt
	default:
		code = data
	}
	s.fail(strconv.Itoa(code), text[0])
	if mail == 421 || rcpt == 421 || data == 421 {
		return errClosed
	}
	if mail/100 != 2 {
		return nil // no transaction open
	}
	code, text, err := s.command("RSET")
	if err != nil {
		return err
	}
	if code != 250 {
		return fmt.Errorf("RSET to %s: %d %s", s.opts.Addr, code, text[0])
	}
	return nil
}

// command sends one line and reads its reply.
func (s *session) command(line string) (int, []string, error) {
	s.w.WriteString(line)
	s.w.WriteString("\r\n")
	if err := s.w.Flush(); err != nil {
		return 0, nil, err
	}
	return s.reply()
}

// reply reads one reply, single or multi-line, and returns its code and
// the text of each line.
func (s *session) reply() (int, []string, error) {
	var lines []string
	code := 0
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			return 0, nil, err
		}
		l = strings.TrimRight(l, "\r\n")
		if len(l) < 3 || (len(l) > 3 && l[3] != ' ' && l[3] != '-') {
			return 0, nil, fmt.Errorf("bad reply line from %s: %q", s.opts.Addr, l)
		}
		c, err := strconv.Atoi(l[:3])
		if err != nil || c < 200 || c > 599 || (code != 0 && c != code) {
			return 0, nil, fmt.Errorf("bad reply line from %s: %q", s.opts.Addr, l)
		}
		code = c
		text := ""
		if len(l) > 3 {
			text = strings.TrimSpace(l[4:]) // after "250-" or "250 "
		}
		lines = append(lines, text)
		if len(l) == 3 || l[3] == ' ' {
			return code, lines, nil
		}
	}
}

// fail counts one failure under key and keeps the first text for it.
func (s *session) fail(key, text string) {
	if s.errors == nil {
		s.errors, s.errorText = map[string]int{}, map[string]string{}
	}
	s.errors[key]++
	if _, ok := s.errorText[key]; !ok {
		s.errorText[key] = text
	}
}

// quit ends the session politely, without waiting long.
func (s *session) quit() {
	s.conn.SetDeadline(time.Now().Add(min(s.opts.Timeout, 2*time.Second)))
	s.command("QUIT")
	s.close()
}

// close drops the connection, if any.
func (s *session) close() {
	if s.conn == nil {
		return
	}
	s.stopClose()
	s.conn.Close()
	s.conn = nil
}
