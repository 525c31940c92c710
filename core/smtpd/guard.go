package smtpd

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// guardConn sits between the client's socket and go-smtp. It follows the
// SMTP state on the raw byte stream (command lines, DATA up to the end
// marker, BDAT chunks) so that it can:
//
//   - refuse command lines that end in a bare LF or hold a bare CR, which
//     go-smtp's textproto reader would accept (closing with a 500 reply);
//   - give each read inside DATA or a BDAT chunk its own DataTimeout (go-smtp
//     only sets a deadline per command line);
//   - close the connection after any read error inside message data, so bytes
//     sent after a stalled DATA are never read as commands;
//   - enforce MaxLineLength on command lines and DATA lines (go-smtp's own
//     limit is switched off: it also applied to BDAT chunks it discards,
//     closing the connection after a correct 552);
//   - rewrite "RCPT TO:<postmaster>", which go-smtp's parser refuses, into
//     "RCPT TO:<postmaster@first-local-domain>" (RFC 5321 §4.5.1);
//   - run STARTTLS itself (see startTLS), so that all of the above keeps
//     working on the decrypted stream, and serve implicit TLS the same way.
//
// It hands go-smtp at most one command line per Read and enters DATA mode
// only after go-smtp answered the DATA command with 354, so both always
// agree on where commands are. Its DATA end detection is go-smtp's own
// state machine, byte for byte; it never decides where a message ends.
type guardConn struct {
	net.Conn

	hostname    string
	maxLine     int // longest line without its CRLF; 0 for no limit
	dataTimeout time.Duration
	postmaster  string // "postmaster@domain", or "" to leave the line alone

	raw  []byte // read buffer; raw[r:w] is unread
	r, w int
	out  []byte // a checked command line not yet handed out

	mode     int
	dstate   int   // go-smtp's dataReader state in modeData
	lineLen  int   // length of the current DATA line so far
	bdatLeft int64 // chunk bytes still to pass in modeBDAT
	await    int   // what the reply to the last command line decides
	reply    [3]byte
	replied  bool
	err      error // latched: the connection is finished
	// closeAfterReply closes the connection once the next reply is written.
	closeAfterReply atomic.Bool
	// lostCR is set when go-smtp's dataReader drops a bare CR: at a line
	// start it elides "." and then "\r", even when no "\n" follows, so
	// "\r\n.\rX" reaches the session as "\r\nX". The session refuses such
	// a message as holding a bare CR. Atomic: BDAT sessions read it from
	// another goroutine.
	lostCR atomic.Bool

	closeOnce sync.Once
	onClose   func()

	// tlsConfig enables STARTTLS; nil leaves STARTTLS to go-smtp (which
	// then refuses it, having no TLSConfig either).
	tlsConfig        *tls.Config
	handshakeTimeout time.Duration
	// tlsConn is the TLS layer over Conn once TLS started; every read and
	// write goes through it, while Close and deadlines use Conn directly.
	tlsConn atomic.Pointer[tls.Conn]
	// handshaken is false while an implicit-TLS handshake is pending.
	handshaken bool
	// needHelo refuses transaction commands after STARTTLS until the
	// client greets again (RFC 3207 §4.2: the session starts over).
	needHelo bool
	// sasl is set after a 334 reply: the next line is a SASL response,
	// not a command. authed is set after a 235 reply.
	sasl, authed bool
	// onTLS, when set, is told of every discarded pipelined byte count.
	onTLS func(discarded int)
}

// Modes of a guardConn.
const (
	modeCmd  = iota // command lines
	modeData        // inside DATA, up to <CRLF>.<CRLF>
	modeBDAT        // inside a BDAT chunk
)

// What the server's reply to the last command line decides.
const (
	awaitNone = iota
	awaitData // 354 enters DATA
)

// go-smtp's dataReader states (data.go in go-smtp), copied exactly.
const (
	stateBeginLine = iota
	stateDot
	stateDotCR
	stateCR
	stateData
	stateEOF
)

// errConnFinished is returned by every Read once the guard closed the
// connection; it wraps net.ErrClosed so go-smtp ends the session quietly.
var errConnFinished = fmt.Errorf("smtpd: connection closed by the server: %w", net.ErrClosed)

func newGuardConn(c net.Conn, hostname string, maxLine int, dataTimeout time.Duration,
	postmaster string, onClose func()) *guardConn {
	size := max(4096, maxLine+2)
	return &guardConn{
		Conn:        c,
		hostname:    hostname,
		maxLine:     maxLine,
		dataTimeout: dataTimeout,
		postmaster:  postmaster,
		raw:         make([]byte, size),
		onClose:     onClose,
	}
}

// Close closes the connection; the first call also runs onClose.
func (g *guardConn) Close() error {
	g.closeOnce.Do(func() {
		if g.onClose != nil {
			g.onClose()
		}
	})
	return g.Conn.Close()
}

// Write notes the reply code the server sends after DATA and AUTH, drops
// go-smtp's STARTTLS capability once TLS is on, and closes the connection
// after a reply when closeAfterReply is set (a plugin's Disconnect verdict
// or too many failed logins: 421, then close).
func (g *guardConn) Write(p []byte) (int, error) {
	if g.await != awaitNone && !g.replied && len(p) >= 3 {
		copy(g.reply[:], p)
		g.replied = true
	}
	if len(p) >= 4 {
		g.sasl = string(p[:4]) == "334 "
		if string(p[:4]) == "235 " {
			g.authed = true
		}
	}
	out := p
	if g.tlsConn.Load() != nil && bytes.HasPrefix(p, []byte("250")) {
		out = dropLine(p, "250-STARTTLS\r\n")
	}
	if err := g.handshake(); err != nil {
		return 0, err
	}
	_, err := g.stream().Write(out)
	if g.closeAfterReply.Load() && bytes.HasSuffix(p, []byte("\r\n")) {
		g.Close()
	}
	if err != nil {
		return 0, err
	}
	return len(p), nil
}

// dropLine returns p without any whole line equal to line.
func dropLine(p []byte, line string) []byte {
	i := bytes.Index(p, []byte(line))
	if i < 0 || i > 0 && p[i-1] != '\n' {
		return p
	}
	out := append(p[:i:i], p[i+len(line):]...)
	return dropLine(out, line)
}

// stream is what reads and writes go through: the TLS layer once TLS
// started, else the socket.
func (g *guardConn) stream() net.Conn {
	if t := g.tlsConn.Load(); t != nil {
		return t
	}
	return g.Conn
}

// Read hands out the next checked bytes.
func (g *guardConn) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	if len(g.out) > 0 {
		n := copy(p, g.out)
		g.out = g.out[n:]
		return n, nil
	}
	if g.await != awaitNone {
		switch {
		case g.await == awaitData && g.replied && string(g.reply[:]) == "354":
			g.mode, g.dstate, g.lineLen = modeData, stateBeginLine, 0
			g.lostCR.Store(false)
		}
		g.await, g.replied = awaitNone, false
	}
	switch g.mode {
	case modeData:
		return g.readData(p)
	case modeBDAT:
		return g.readBDAT(p)
	}
	return g.readCmd(p)
}

// fill reads more bytes from the socket into raw, compacting first.
func (g *guardConn) fill() error {
	if g.r > 0 {
		g.w = copy(g.raw, g.raw[g.r:g.w])
		g.r = 0
	}
	inData := g.mode == modeData || g.mode == modeBDAT
	if inData && g.dataTimeout > 0 {
		if err := g.Conn.SetReadDeadline(time.Now().Add(g.dataTimeout)); err != nil {
			return g.finish(err)
		}
	}
	if err := g.handshake(); err != nil {
		return err
	}
	n, err := g.stream().Read(g.raw[g.w:])
	g.w += n
	if n > 0 {
		return nil
	}
	if err != nil && inData {
		return g.finish(err)
	}
	return err
}

// finish closes the connection after a read error inside message data and
// latches errConnFinished; it returns err for this one read.
func (g *guardConn) finish(err error) error {
	g.Close()
	g.err = errConnFinished
	return err
}

// fail writes a last reply, closes the connection and latches.
func (g *guardConn) fail(code, text string) error {
	g.Conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	g.stream().Write([]byte(code + " " + g.hostname + " " + text + "\r\n"))
	g.Close()
	g.err = errConnFinished
	return g.err
}

// readCmd hands out one whole, checked command line.
func (g *guardConn) readCmd(p []byte) (int, error) {
	for {
		if i := bytes.IndexByte(g.raw[g.r:g.w], '\n'); i >= 0 {
			line := g.raw[g.r : g.r+i+1]
			g.r += i + 1
			if g.maxLine > 0 && len(line) > g.maxLine+2 {
				return 0, g.fail("500 5.4.0", "Too long line, closing connection")
			}
			if len(line) < 2 || line[len(line)-2] != '\r' ||
				bytes.IndexByte(line[:len(line)-2], '\r') >= 0 {
				return 0, g.fail("500 5.5.2", "Bare CR or LF in command line, closing connection")
			}
			if g.sasl { // a SASL response, never a command
				g.out = line
			} else if handled, err := g.intercept(line); err != nil {
				return 0, err
			} else if handled {
				continue
			} else {
				g.out = g.classify(line)
			}
			n := copy(p, g.out)
			g.out = g.out[n:]
			return n, nil
		}
		if g.r == 0 && g.w == len(g.raw) {
			return 0, g.fail("500 5.4.0", "Too long line, closing connection")
		}
		if err := g.fill(); err != nil {
			return 0, err
		}
	}
}

// classify looks at a command line (ending in CRLF) for the commands that
// change how the following bytes are read, and returns the line to hand on.
func (g *guardConn) classify(line []byte) []byte {
	cmd := line[:len(line)-2]
	switch {
	case len(cmd) >= 4 && bytes.EqualFold(cmd[:4], []byte("DATA")):
		g.await, g.replied = awaitData, false
	case len(cmd) > 5 && bytes.EqualFold(cmd[:4], []byte("BDAT")) && cmd[4] == ' ':
		// Mirror go-smtp's handleBdat: a chunk follows whenever the
		// arguments parse, even if the command is then refused.
		args := strings.Fields(string(cmd[5:]))
		if len(args) == 0 || len(args) > 2 || len(args) == 2 && !strings.EqualFold(args[1], "LAST") {
			break
		}
		if size, err := strconv.ParseUint(args[0], 10, 32); err == nil && size > 0 {
			g.mode, g.bdatLeft = modeBDAT, int64(size)
		}
	case g.postmaster != "" && len(cmd) > 8 && bytes.EqualFold(cmd[:8], []byte("RCPT TO:")):
		rest := bytes.TrimLeft(cmd[8:], " ")
		const bare = "<postmaster>"
		if len(rest) >= len(bare) && bytes.EqualFold(rest[:len(bare)], []byte(bare)) {
			return fmt.Appendf(nil, "RCPT TO:<%s>%s\r\n", g.postmaster, rest[len(bare):])
		}
	}
	return line
}

// readData passes message bytes up to and including the end marker.
func (g *guardConn) readData(p []byte) (int, error) {
	if g.r == g.w {
		if err := g.fill(); err != nil {
			return 0, err
		}
	}
	b := g.raw[g.r:min(g.w, g.r+len(p))]
	n := g.scanData(b)
	if g.maxLine > 0 && g.longLine(b[:n]) {
		return 0, g.fail("500 5.4.0", "Too long line, closing connection")
	}
	copy(p, b[:n])
	g.r += n
	if g.dstate == stateEOF {
		g.mode = modeCmd
	}
	return n, nil
}

// scanData runs go-smtp's end-of-data state machine over b and returns how
// many bytes belong to the message (all of b, or up to the end marker).
func (g *guardConn) scanData(b []byte) int {
	s := g.dstate
	i := 0
	for i < len(b) && s != stateEOF {
		if s == stateData {
			// Fast path: in the middle of a line only CR matters.
			j := bytes.IndexByte(b[i:], '\r')
			if j < 0 {
				i = len(b)
				break
			}
			i += j + 1
			s = stateCR
			continue
		}
		c := b[i]
		i++
		switch s {
		case stateBeginLine:
			switch c {
			case '.':
				s = stateDot
			case '\r':
				s = stateCR
			default:
				s = stateData
			}
		case stateDot:
			if c == '\r' {
				s = stateDotCR
			} else {
				s = stateData
			}
		case stateDotCR:
			if c == '\n' {
				s = stateEOF
			} else {
				s = stateData
				g.lostCR.Store(true)
			}
		case stateCR:
			if c == '\n' {
				s = stateBeginLine
			} else {
				s = stateData
			}
		}
	}
	g.dstate = s
	return i
}

// longLine tracks DATA line lengths over b and reports a line longer than
// maxLine (plus CRLF).
func (g *guardConn) longLine(b []byte) bool {
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			g.lineLen += len(b)
			return g.lineLen > g.maxLine+1
		}
		if g.lineLen+i > g.maxLine+1 {
			return true
		}
		g.lineLen = 0
		b = b[i+1:]
	}
}

// readBDAT passes the bytes of the current BDAT chunk.
func (g *guardConn) readBDAT(p []byte) (int, error) {
	if g.r == g.w {
		if err := g.fill(); err != nil {
			return 0, err
		}
	}
	n := min(int64(g.w-g.r), int64(len(p)), g.bdatLeft)
	copy(p, g.raw[g.r:g.r+int(n)])
	g.r += int(n)
	g.bdatLeft -= n
	if g.bdatLeft == 0 {
		g.mode = modeCmd
	}
	return int(n), nil
}

// lostBareCR reports whether the DATA just read held a bare CR that
// go-smtp's dataReader dropped (see guardConn.lostCR).
func lostBareCR(c net.Conn) bool {
	g, ok := c.(*guardConn)
	return ok && g.lostCR.Load()
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
