package smtpd

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// lineGuard is the transport half of the SMTP guard (the protocol half is
// guardConn, in protoshim.go). It owns the raw byte stream under go-smtp:
// the read buffer, where each command line, DATA body and BDAT chunk ends
// (the framing), and the checks that must happen on bytes before go-smtp's
// textproto reader takes them in:
//
//   - a command line ending in a bare LF or holding a bare CR ends the
//     connection with 500 5.5.2 (go-smtp's reader accepts both);
//   - a command or DATA line longer than maxLine ends it with 500 5.4.0
//     (go-smtp's own limit is off: it also counts bytes of BDAT chunks,
//     see RATIONALE.md);
//   - a command line must arrive whole within the command timeout, counted
//     from go-smtp's read deadline for it (commandDeadline), not per read;
//   - every read inside DATA or a BDAT chunk gets its own data timeout (go-smtp
//     has one deadline per command line, so a whole message would have to
//     arrive within the command timeout of its DATA command), and the
//     message must keep up the minimum data rate after its grace period
//     (dataDeadline); both timeouts shrink in stress mode (stress.go);
//   - after a read error inside message data the connection is finished: a
//     stall gets 421 4.4.2 and a hang-up, and nothing the client sends later
//     is ever read as a command (go-smtp would go back to reading commands).
//
// It hands go-smtp at most one command line per read, and DATA bytes only up
// to go-smtp's end marker, so go-smtp's buffer never holds bytes the guard has
// not classified. The framing mirrors go-smtp's (dataScanner is its DATA
// state machine, bdatChunk its BDAT argument rules); FuzzGuardDataEnd and
// FuzzGuardBDAT check both against a real go-smtp server.
type lineGuard struct {
	hostname string
	maxLine  int   // longest line without its CRLF; 0 for no limit
	pace     *pace // timeouts and minimum data rate
	log      *slog.Logger
	// observe, when set, is told of each refusal the guard makes.
	observe func(stage, rule string)

	// sock is the socket (deadlines); stream is what bytes are read from
	// and the guard's own replies written to: sock, or TLS over it.
	sock, stream net.Conn
	// hangUp closes the connection (guardConn.Close).
	hangUp func() error

	raw  []byte // read buffer; raw[r:w] is unread
	r, w int
	// small is the command-line buffer while raw is big, a data buffer
	// from dataBufs (growForData, releaseData).
	small []byte
	big   *[dataBufSize]byte

	mode     int
	data     dataScanner // in modeData
	lineLen  int         // length of the current DATA line so far
	bdatLeft int64       // chunk bytes still to pass in modeBDAT
	got      int64       // bytes passed in the current DATA or chunk
	// awaitData is set after a DATA command line; the reply to it, once
	// written, decides whether DATA mode starts (354) or not.
	awaitData bool
	reply     [3]byte
	replied   bool
	err       error // latched: the connection is finished
	// lostCR is set when go-smtp's dataReader dropped a bare CR (see
	// dataScanner). Atomic: BDAT sessions read it from another goroutine.
	lostCR atomic.Bool

	// The command line being waited for: when the wait started, and its
	// deadline (commandDeadline); lineOpen until readLine returns it.
	lineStart, cmdDeadline time.Time
	lineOpen               bool
	msgStart               time.Time // when the DATA body or BDAT chunk began
	// wait tells other goroutines what the guard is waiting for (eviction
	// in stress mode); wake is bumped by whoever shortens a deadline from
	// outside (retime, evict), kicked is set on an evicted connection.
	wait   waitState
	wake   atomic.Uint32
	kicked atomic.Bool
	// replies holds replies not yet written (replybuf.go).
	replies replyBuf
}

// Framing modes of a lineGuard.
const (
	modeCmd  = iota // command lines
	modeData        // inside DATA, up to <CRLF>.<CRLF>
	modeBDAT        // inside a BDAT chunk
)

// errConnFinished is returned by every read once the guard closed the
// connection; it wraps net.ErrClosed so go-smtp ends the session quietly.
var errConnFinished = fmt.Errorf("smtpd: connection closed by the server: %w", net.ErrClosed)

// init sets the limits and allocates the read buffer.
func (l *lineGuard) init(sock net.Conn, hostname string, maxLine int, dataTimeout time.Duration, hangUp func() error) {
	l.sock, l.stream, l.hangUp = sock, sock, hangUp
	l.hostname, l.maxLine = hostname, maxLine
	l.pace = &pace{data: dataTimeout, minRate: DefaultMinDataRate, stressed: new(atomic.Bool)}
	l.raw = make([]byte, max(4096, maxLine+2))
	l.log = slog.New(slog.DiscardHandler)
}

// noteReply records the code of the first reply written after a DATA
// command line.
func (l *lineGuard) noteReply(p []byte) {
	if l.awaitData && !l.replied && len(p) >= 3 {
		copy(l.reply[:], p)
		l.replied = true
	}
}

// inMessage reports whether the next read is message data (DATA or a BDAT
// chunk), entering DATA mode first if the server answered DATA with 354.
func (l *lineGuard) inMessage() bool {
	if l.awaitData {
		if l.replied && string(l.reply[:]) == "354" {
			l.growForData()
			l.mode, l.data, l.lineLen, l.got = modeData, dataScanner{}, 0, 0
			l.msgStart = time.Now()
			l.lostCR.Store(false)
		}
		l.awaitData, l.replied = false, false
	}
	return l.mode != modeCmd
}

// dataBufSize is the read buffer once message data starts: a 10 KiB
// message arrives in one or two reads instead of three of 4 KiB (each
// read a system call; issue 17). Command lines keep the small buffer.
const dataBufSize = 32 << 10

// dataBufs holds the read buffers of message data between messages: a
// connection takes one when a DATA body or BDAT chunk starts and gives it
// back at its next command line (releaseData), so that a message does
// not cost a fresh 32 KiB to allocate, zero and collect (a third of the
// bytes the server allocated a relayed message; BENCHMARKS.md, s28cpu).
// A buffer is only ever touched by the goroutine reading its connection.
var dataBufs = sync.Pool{New: func() any { return new([dataBufSize]byte) }}

// growForData switches the read buffer to one of dataBufSize from
// dataBufs, keeping the unread bytes. A line handed out before stays
// valid: it refers to the command buffer, kept aside.
func (l *lineGuard) growForData() {
	if l.big != nil || len(l.raw) >= dataBufSize {
		return
	}
	big := dataBufs.Get().(*[dataBufSize]byte)
	l.w, l.r = copy(big[:], l.raw[l.r:l.w]), 0
	l.small, l.raw, l.big = l.raw, big[:], big
}

// releaseData goes back to the command buffer once command lines are read
// again, when the unread bytes fit in it, and gives the data buffer back
// to dataBufs. Nothing refers to the data buffer then: message bytes were
// copied out (readMessage) or used up by the session before go-smtp
// reads the next command (bodyReader).
func (l *lineGuard) releaseData() {
	if l.big == nil || l.mode != modeCmd || l.w-l.r > len(l.small) {
		return
	}
	l.w, l.r = copy(l.small, l.raw[l.r:l.w]), 0
	dataBufs.Put(l.big)
	l.raw, l.small, l.big = l.small, nil, nil
}

// frame looks at a command line go-smtp is about to read for the commands
// after which message bytes follow.
func (l *lineGuard) frame(line []byte) {
	cmd := line[:len(line)-2]
	switch {
	case len(cmd) >= 4 && bytes.EqualFold(cmd[:4], []byte("DATA")):
		l.awaitData, l.replied = true, false
	case len(cmd) > 5 && bytes.EqualFold(cmd[:4], []byte("BDAT")) && cmd[4] == ' ':
		if size, ok := bdatChunk(cmd[5:]); ok && size > 0 {
			l.growForData()
			l.mode, l.bdatLeft, l.got = modeBDAT, size, 0
			l.msgStart = time.Now()
			l.lostCR.Store(false)
		}
	}
}

// bdatChunk mirrors go-smtp's handleBdat: the size of the chunk that follows
// "BDAT args", which follows whenever the arguments parse, even when the
// command is then refused.
func bdatChunk(args []byte) (int64, bool) {
	f := strings.Fields(string(args))
	if len(f) == 0 || len(f) > 2 || len(f) == 2 && !strings.EqualFold(f[1], "LAST") {
		return 0, false
	}
	size, err := strconv.ParseUint(f[0], 10, 32)
	return int64(size), err == nil
}

// readLine returns the next whole command line, CRLF included, after the
// transport checks; the slice is valid until the next read.
func (l *lineGuard) readLine() ([]byte, error) {
	l.releaseData()
	for {
		if l.err != nil {
			return nil, l.err
		}
		if i := bytes.IndexByte(l.raw[l.r:l.w], '\n'); i >= 0 {
			line := l.raw[l.r : l.r+i+1]
			l.r += i + 1
			l.lineOpen = false
			l.wait.set(waitBusy, time.Time{})
			if l.maxLine > 0 && len(line) > l.maxLine+2 {
				return nil, l.fail("max_line_length", "500 5.4.0", "Too long line, closing connection")
			}
			if len(line) < 2 || line[len(line)-2] != '\r' ||
				bytes.IndexByte(line[:len(line)-2], '\r') >= 0 {
				return nil, l.fail("bare_newline", "500 5.5.2", "Bare CR or LF in command line, closing connection")
			}
			return line, nil
		}
		if l.r == 0 && l.w == len(l.raw) {
			return nil, l.fail("max_line_length", "500 5.4.0", "Too long line, closing connection")
		}
		if err := l.fill(); err != nil {
			return nil, err
		}
	}
}

// readMessage passes message bytes: DATA up to and including go-smtp's end
// marker, or the rest of the current BDAT chunk.
func (l *lineGuard) readMessage(p []byte) (int, error) {
	b, err := l.takeMessage(len(p))
	if err != nil {
		return 0, err
	}
	return copy(p, b), nil
}

// takeMessage is readMessage without the copy: it returns up to max
// message bytes from the read buffer, valid until the next read.
func (l *lineGuard) takeMessage(max int) ([]byte, error) {
	if l.err != nil {
		return nil, l.err
	}
	if l.r == l.w {
		if err := l.fill(); err != nil {
			return nil, err
		}
	}
	b := l.raw[l.r:min(l.w, l.r+max)]
	var n int
	if l.mode == modeBDAT {
		n = int(min(int64(len(b)), l.bdatLeft))
		if l.bdatLeft -= int64(n); l.bdatLeft == 0 {
			l.mode = modeCmd
		}
	} else {
		n = l.data.scan(b)
		if l.data.lostCR {
			l.lostCR.Store(true)
		}
		if l.maxLine > 0 && l.longLine(b[:n]) {
			return nil, l.fail("max_line_length", "500 5.4.0", "Too long line, closing connection")
		}
		if l.data.ended() {
			l.mode = modeCmd
		}
	}
	l.r += n
	l.got += int64(n)
	return b[:n], nil
}

// longLine tracks DATA line lengths over b and reports a line longer than
// maxLine (plus CRLF). It looks a window ahead rather than from line to
// line: within the bytes the current line may still take (and its LF),
// an LF must come, and the line after the last LF there starts the next
// window; a 10 KiB body of 80-byte lines takes 5 steps, not 130.
func (l *lineGuard) longLine(b []byte) bool {
	limit := l.maxLine + 1 // bytes a line may have before its LF
	for {
		room := limit - l.lineLen // of b, before the current line's LF
		if room < 0 {
			return true
		}
		if len(b) <= room {
			if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
				l.lineLen = len(b) - i - 1
			} else {
				l.lineLen += len(b)
			}
			return false
		}
		i := bytes.LastIndexByte(b[:room+1], '\n')
		if i < 0 {
			return true
		}
		l.lineLen = 0
		b = b[i+1:]
	}
}

// discard drops every buffered byte not yet read and returns their number
// (STARTTLS: nothing sent before the handshake may be read after it).
func (l *lineGuard) discard() int {
	n := l.w - l.r
	l.r, l.w = 0, 0
	return n
}

// fill reads more bytes from the stream into raw, compacting first. Inside
// message data each read gets its own deadline (dataDeadline), and a failed
// read finishes the connection. A command line's deadline is set by go-smtp
// through commandDeadline; a timeout there is the caller's to answer
// (guardConn.Read), since a draining server wakes such reads on purpose.
func (l *lineGuard) fill() error {
	// The client may be waiting for them before it sends more.
	if err := l.flushReplies(); err != nil {
		return l.finish(err)
	}
	if l.r > 0 {
		l.w = copy(l.raw, l.raw[l.r:l.w])
		l.r = 0
	}
	inData := l.mode != modeCmd
	start := time.Now()
	for {
		woken := l.wake.Load()
		var dl time.Time
		var rate bool
		if inData {
			dl, rate = l.dataDeadline(start)
			l.wait.set(waitData, l.schedule())
			if err := l.sock.SetReadDeadline(dl); err != nil {
				return l.finish(err)
			}
		} else {
			l.wait.set(waitCommand, l.lineStart)
		}
		if l.kicked.Load() {
			return l.evicted()
		}
		if l.wake.Load() != woken {
			continue // a deadline was shortened meanwhile: take it
		}
		n, err := l.stream.Read(l.raw[l.w:])
		l.w += n
		switch {
		case n > 0:
			if inData {
				l.wait.set(waitBusy, time.Time{})
			}
			return nil
		case err != nil && l.kicked.Load():
			return l.evicted()
		case err != nil && inData && isTimeout(err):
			if dl, rate = l.dataDeadline(start); time.Now().Before(dl) {
				continue // woken by stress mode: wait on with its timeouts
			}
			return l.dataTimedOut(rate, err)
		case err != nil && inData:
			return l.finish(err)
		}
		return err
	}
}

// dataDeadline returns the deadline of a read inside message data that
// started at start: its data timeout, or earlier when the message is
// falling behind the minimum data rate (rate true): the body or chunk may
// take a grace period (the command timeout) plus its bytes so far at
// minRate.
func (l *lineGuard) dataDeadline(start time.Time) (dl time.Time, rate bool) {
	dl = start.Add(l.pace.dataTimeout())
	if l.pace.minRate <= 0 {
		return dl, false
	}
	if r := l.schedule().Add(l.pace.commandTimeout()); r.Before(dl) {
		return r, true
	}
	return dl, false
}

// schedule is when the message would have its bytes so far at the minimum
// data rate: a message sending faster is ahead of it, a slow one behind.
func (l *lineGuard) schedule() time.Time {
	if l.pace.minRate <= 0 {
		return l.msgStart
	}
	return l.msgStart.Add(time.Duration(l.got) * time.Second / time.Duration(l.pace.minRate))
}

// dataTimedOut says why message data stopped being read — too slow
// (rate) or quiet for the data timeout — then hangs up.
func (l *lineGuard) dataTimedOut(rate bool, err error) error {
	elapsed := time.Since(l.msgStart).Round(time.Millisecond)
	if rate {
		l.log.Warn("message data below the minimum rate, closing connection", "bytes", l.got,
			"elapsed", elapsed, "min_data_rate", l.pace.minRate, "bdat", l.mode == modeBDAT, "code", 421)
		if l.observe != nil {
			l.observe("data", "min_data_rate")
		}
		l.hangUpWith("421 4.4.2", "Message data too slow, closing connection")
		return fmt.Errorf("%w: message data below %d bytes/s: %d bytes in %v: %w", errConnFinished, l.pace.minRate, l.got, elapsed, err)
	}
	// The client went quiet inside the message: say why, then hang up.
	timeout := l.pace.dataTimeout()
	l.log.Warn("message data timed out, closing connection", "bytes", l.got,
		"timeout", timeout, "bdat", l.mode == modeBDAT, "code", 421)
	if l.observe != nil {
		l.observe("data", "data_timeout")
	}
	l.hangUpWith("421 4.4.2", "Timeout waiting for message data, closing connection")
	// Answered and logged here; the session sees both causes.
	return fmt.Errorf("%w: no message data for %v after %d bytes: %w", errConnFinished, timeout, l.got, err)
}

// commandDeadline is go-smtp's read deadline t for a command line, bounded
// by the command timeout from the start of the wait for that line; a later
// call for the same line (a deadline shortened in stress mode) keeps the
// start. It remembers the result for commandTimedOut.
func (l *lineGuard) commandDeadline(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	if !l.lineOpen {
		l.lineOpen, l.lineStart = true, time.Now()
	}
	if dl := l.lineStart.Add(l.pace.commandTimeout()); dl.Before(t) {
		t = dl
	}
	l.cmdDeadline = t
	return t
}

// commandTimedOut answers a command line that did not arrive whole in time
// (err is the read's timeout) with 421 4.4.2 and hangs up. It returns nil,
// doing nothing, when the line's deadline — shortened or not by stress mode
// meanwhile — is still ahead: the read was woken to take a shorter one, and
// the caller sets it again (commandDeadline) and reads on.
func (l *lineGuard) commandTimedOut(err error) error {
	if l.cmdDeadline.IsZero() || !l.lineOpen {
		return err
	}
	if time.Now().Before(l.commandDeadline(l.cmdDeadline)) {
		return nil
	}
	l.log.Warn("command timed out, closing connection", "timeout", l.pace.commandTimeout(),
		"waited", time.Since(l.lineStart).Round(time.Millisecond), "bytes", l.w-l.r, "code", 421)
	if l.observe != nil {
		l.observe("command", "command_timeout")
	}
	return l.hangUpWith("421 4.4.2", "Timeout waiting for a command, closing connection")
}

// finish closes the connection after a read error inside message data and
// latches errConnFinished; it returns err for this one read.
func (l *lineGuard) finish(err error) error {
	l.hangUp()
	l.err = errConnFinished
	return err
}

// fail writes a last reply, logs it as a reject at the command or data
// stage by rule, closes the connection and latches.
func (l *lineGuard) fail(rule, code, text string) error {
	stage := "command"
	if l.mode != modeCmd {
		stage = "data"
	}
	l.log.Info("reject", "stage", stage, "reply", code+" "+text, "rule", rule)
	if l.observe != nil {
		l.observe(stage, rule)
	}
	return l.hangUpWith(code, text)
}

// hangUpWith writes a last reply, closes the connection and latches.
func (l *lineGuard) hangUpWith(code, text string) error {
	l.sock.SetWriteDeadline(time.Now().Add(10 * time.Second))
	l.replies.mu.Lock()
	l.replies.buf = append(l.replies.buf, code+" "+l.hostname+" "+text+"\r\n"...)
	l.flushLocked()
	l.replies.mu.Unlock()
	return l.finish(errConnFinished)
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
