package remote

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// replyConn is a connection whose peer answers with reply, whatever is
// written to it.
type replyConn struct {
	net.Conn // nil: only the methods below are used
	reply    io.Reader
}

func (c *replyConn) Read(p []byte) (int, error)         { return c.reply.Read(p) }
func (c *replyConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *replyConn) Close() error                       { return nil }
func (c *replyConn) RemoteAddr() net.Addr               { return &net.TCPAddr{} }
func (c *replyConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *replyConn) SetWriteDeadline(t time.Time) error { return nil }

// FuzzBDATReply feeds the BDAT reply reader what a server may answer: it
// never panics, a 2xx is text, anything else is a refusal with the
// reply's code or an error of the connection.
func FuzzBDATReply(f *testing.F) {
	for _, s := range []string{
		"250 2.0.0 Ok: queued as X\r\n",
		"250-first\r\n250 2.0.0 last\r\n",
		"554 5.7.1 content refused\r\n",
		"552-5.3.4 too big\r\n552 5.3.4 really\r\n",
		"421 4.3.0 going away\r\n",
		"250 ok\r\n421 trailing\r\n",
		"25",
		"999 what\r\n",
		"250",
		"2x0 no\r\n",
	} {
		f.Add(s)
	}
	d := &Deliverer{opts: Options{DataTimeout: time.Second}, log: slog.New(slog.DiscardHandler)}
	f.Fuzz(func(t *testing.T, reply string) {
		text, err := d.bdat(&replyConn{reply: strings.NewReader(reply)}, []byte("Subject: x\r\n\r\nx\r\n"))
		var se *smtp.SMTPError
		switch {
		case err == nil:
			if !strings.HasPrefix(reply, "2") {
				t.Errorf("reply %q taken as success %q", reply, text)
			}
		case errors.As(err, &se):
			if se.Code < 100 || se.Code > 999 || se.Code/100 == 2 {
				t.Errorf("reply %q: refusal with code %d", reply, se.Code)
			}
		}
	})
}

// TestBDATReplyBounded: a reply line without end is read only up to
// maxReply and is a lost connection, not a growing buffer.
func TestBDATReplyBounded(t *testing.T) {
	d := &Deliverer{opts: Options{DataTimeout: time.Second}, log: slog.New(slog.DiscardHandler)}
	x := &endlessX{}
	_, err := d.bdat(&replyConn{reply: io.MultiReader(strings.NewReader("250 "), x)}, []byte("x\r\n"))
	var se *smtp.SMTPError
	if err == nil || errors.As(err, &se) {
		t.Errorf("an endless reply line gave %v, want a connection error", err)
	}
	if x.n > maxReply+4096 {
		t.Errorf("read %d bytes of an endless reply, want at most about %d", x.n, maxReply)
	}
}

// endlessX is an endless stream of 'x', counting what was read.
type endlessX struct{ n int }

func (z *endlessX) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	z.n += len(p)
	return len(p), nil
}
