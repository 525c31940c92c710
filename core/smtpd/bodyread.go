package smtpd

import (
	"io"
	"net"
	"reflect"

	"github.com/emersion/go-smtp"
)

// bodyReader reads a DATA body for the session straight from the line
// guard's read buffer, un-dot-stuffed in runs (unstuffer), instead of
// through go-smtp's dataReader, which takes the body one ReadByte at a
// time: a fifth of the server's user-space instructions per 10 KiB message
// (BENCHMARKS.md, issue 17). It hands out exactly what go-smtp's reader
// would — the same bytes, the same io.EOF, io.ErrUnexpectedEOF and
// smtp.ErrDataTooLarge at the same points (FuzzBodyUnstuff checks the
// bytes against the real go-smtp) — and the guard's own scanner still
// frames the message and checks its lines, so nothing past the end marker
// is ever read.
//
// go-smtp drains its own reader after Session.Data returns. So finish,
// deferred by the session, reads on to the end marker whatever Data did,
// and then has the guard hand go-smtp the three bytes ".\r\n": its
// dataReader, at the start of a line, ends there at once, and the next
// bytes it reads are the next command's, as they would have been.
type bodyReader struct {
	g  *guardConn
	u  unstuffer
	in []byte // message bytes taken from the guard, not yet handed out
	// limited and n mirror go-smtp's MaxMessageBytes accounting.
	limited bool
	n       int64
	err     error // a read error, latched
}

// newBodyReader returns a bodyReader when r is go-smtp's DATA reader on a
// guarded connection, else nil (BDAT bodies, and any other reader, are
// read through r). maxBytes is go-smtp's MaxMessageBytes.
func newBodyReader(c net.Conn, r io.Reader, maxBytes int64) *bodyReader {
	g, ok := c.(*guardConn)
	if !ok || !isDataReader(r) {
		return nil
	}
	return &bodyReader{g: g, limited: maxBytes > 0, n: maxBytes}
}

// isDataReader reports whether r is go-smtp's DATA reader (its unexported
// *smtp.dataReader); for BDAT go-smtp hands Session.Data a pipe.
func isDataReader(r io.Reader) bool {
	t := reflect.TypeOf(r)
	return t != nil && t.Kind() == reflect.Pointer &&
		t.Elem().PkgPath() == "github.com/emersion/go-smtp" && t.Elem().Name() == "dataReader"
}

// Read hands out message bytes as go-smtp's dataReader.Read does.
func (b *bodyReader) Read(p []byte) (int, error) {
	if b.limited {
		if b.n <= 0 {
			return 0, smtp.ErrDataTooLarge
		}
		if int64(len(p)) > b.n {
			p = p[:b.n]
		}
	}
	w := 0
	var err error
	for w < len(p) && b.u.state != stateEOF {
		if len(b.in) == 0 {
			if b.err != nil {
				err = b.err
				break
			}
			if b.in, err = b.take(); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				b.err = err
				break
			}
		}
		n, used := b.u.run(p[w:], b.in)
		w += n
		b.in = b.in[used:]
	}
	if err == nil && b.u.state == stateEOF {
		err = io.EOF
	}
	if b.limited {
		b.n -= int64(w)
	}
	return w, err
}

// take returns the next message bytes from the guard.
func (b *bodyReader) take() ([]byte, error) {
	l := &b.g.line
	if !l.inMessage() || l.mode != modeData {
		// The guard's scanner ended the message where ours did not: they
		// run the same state machine, so this cannot happen; hang up
		// rather than guess where the next command starts.
		l.finish(errConnFinished)
		return nil, errConnFinished
	}
	return l.takeMessage(len(l.raw))
}

// finish reads the rest of the message, if Data stopped early, and then
// lets go-smtp's own reader end at once (see bodyReader).
func (b *bodyReader) finish() {
	b.limited = false
	var scratch [4096]byte
	for b.u.state != stateEOF && b.err == nil {
		if _, err := b.Read(scratch[:]); err != nil && err != io.EOF {
			break
		}
	}
	if b.u.state == stateEOF && len(b.g.out) == 0 {
		b.g.out = []byte(".\r\n")
	}
}

// unstuffer is go-smtp's dataReader state machine (the states of
// dataScanner) run over runs of bytes: in the middle of a line it copies up
// to the next CR at once.
type unstuffer struct{ state int }

// run un-dot-stuffs src into dst as go-smtp's dataReader would, stopping
// when dst is full, src is used up or the end marker is passed; it returns
// the bytes written and the bytes of src used.
func (u *unstuffer) run(dst, src []byte) (w, used int) {
	s, i := u.state, 0
	for i < len(src) && w < len(dst) && s != stateEOF {
		if s == stateData {
			// Lines without a leading dot are copied in one run.
			if n, rs := dataRun(src[i:min(len(src), i+len(dst)-w)]); n > 0 {
				w += copy(dst[w:], src[i:i+n])
				i += n
				s = rs
				continue
			}
		}
		c := src[i]
		i++
		var out bool
		if s, out = dataStep(s, c); out {
			dst[w] = c
			w++
		}
	}
	u.state = s
	return w, i
}
