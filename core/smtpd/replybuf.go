package smtpd

import (
	"bytes"
	"sync"
)

// replyBuf holds replies not yet written, so that several go out in one
// write (one system call, one TCP segment):
//
//   - the lines of a multi-line reply (go-smtp writes an EHLO reply line by
//     line, nine writes) are held until its last line;
//   - a reply is held while the client has already sent the next command
//     line (PIPELINING: MAIL, RCPT and DATA arrive together and their
//     three replies leave together), as Postfix does.
//
// Whatever is held is written before the connection waits for input
// (lineGuard.fill), before a reply of the guard's own, and when the
// connection is closed, so a client never waits for a reply it is owed.
// At most replyBufMax bytes are held.
type replyBuf struct {
	mu  sync.Mutex // Close may come from another goroutine
	buf []byte
}

// replyBufMax bounds what is held for a client that pipelines many
// commands.
const replyBufMax = 4096

// hold reports whether reply line p may wait: it is not the last line of
// its reply, or more command lines are already waiting to be read.
func (l *lineGuard) hold(p []byte) bool {
	if len(p) >= 4 && p[3] == '-' {
		return true
	}
	return l.mode == modeCmd && !l.awaitData && bytes.IndexByte(l.raw[l.r:l.w], '\n') >= 0
}

// writeReply writes p, or holds it (see replyBuf), after what is held.
func (l *lineGuard) writeReply(p []byte) error {
	l.replies.mu.Lock()
	defer l.replies.mu.Unlock()
	if l.hold(p) && len(l.replies.buf)+len(p) <= replyBufMax {
		l.replies.buf = append(l.replies.buf, p...)
		return nil
	}
	if len(l.replies.buf) == 0 {
		_, err := l.stream.Write(p)
		return err
	}
	l.replies.buf = append(l.replies.buf, p...)
	return l.flushLocked()
}

// flushReplies writes what is held.
func (l *lineGuard) flushReplies() error {
	l.replies.mu.Lock()
	defer l.replies.mu.Unlock()
	return l.flushLocked()
}

func (l *lineGuard) flushLocked() error {
	if len(l.replies.buf) == 0 {
		return nil
	}
	_, err := l.stream.Write(l.replies.buf)
	l.replies.buf = l.replies.buf[:0]
	return err
}
