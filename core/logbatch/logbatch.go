// Package logbatch gathers the server's log lines into fewer write system
// calls. A busy server logs about five lines a message (connect, queued,
// disconnect, delivery, removed), each one write(2) when slog writes to
// standard error directly; a Writer holds what it is given for at most a
// short delay and writes it in one call, so at a few thousand messages a
// second the lines of many messages share a write.
//
// A line reaches the underlying writer at the latest Delay after it was
// logged, at once when Flush is called (the server's logger flushes after
// every warning or error), and when the held bytes reach the size limit.
// Nothing runs while nothing is held: the timer is armed by the first
// line after a write. Close writes what is held and makes later writes
// direct. Standard library only.
package logbatch

import (
	"io"
	"sync"
	"time"
)

// DefaultDelay is how long a line may wait for others before it is
// written: short against a person reading the log, long against the
// ~0.4 ms a busy server spends on a message.
const DefaultDelay = 5 * time.Millisecond

// DefaultSize is the number of held bytes that are written at once,
// whatever the delay: about 400 lines.
const DefaultSize = 64 << 10

// Writer holds what is written to it and writes it to the underlying
// writer in batches. It is safe for concurrent use.
type Writer struct {
	w     io.Writer
	delay time.Duration
	size  int

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer
	armed  bool  // the timer will flush what is held
	err    error // the last write's error, returned by the next Write
	closed bool
}

var _ io.WriteCloser = (*Writer)(nil)

// New returns a Writer over w that holds lines for at most delay and
// writes at once when size bytes are held; delay <= 0 or size <= 0 take
// DefaultDelay and DefaultSize.
func New(w io.Writer, delay time.Duration, size int) *Writer {
	if delay <= 0 {
		delay = DefaultDelay
	}
	if size <= 0 {
		size = DefaultSize
	}
	b := &Writer{w: w, delay: delay, size: size}
	b.timer = time.AfterFunc(time.Hour, b.fire)
	b.timer.Stop()
	return b
}

// Write holds p (a whole line, as slog's handlers write one record in one
// call) to be written within the delay; when the held bytes reach the size
// it writes them before returning. It returns the error of an earlier
// write that failed, once.
func (b *Writer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.err; err != nil {
		b.err = nil
		return 0, err
	}
	if b.closed {
		return b.w.Write(p)
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= b.size {
		return len(p), b.flushLocked()
	}
	if !b.armed {
		b.armed = true
		b.timer.Reset(b.delay)
	}
	return len(p), nil
}

// Flush writes what is held now.
func (b *Writer) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.flushLocked()
}

// Close writes what is held; later writes go to the underlying writer
// directly. It does not close the underlying writer.
func (b *Writer) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return b.flushLocked()
}

// fire is the timer's: it writes what is held, keeping a failure for the
// next Write.
func (b *Writer) fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.flushLocked(); err != nil {
		b.err = err
	}
}

// flushLocked writes the held bytes in one call and disarms the timer.
// Lines are written under the lock, so they keep their order and a
// concurrent Flush returns only after they are out.
func (b *Writer) flushLocked() error {
	if b.armed {
		b.timer.Stop()
		b.armed = false
	}
	if len(b.buf) == 0 {
		return nil
	}
	_, err := b.w.Write(b.buf)
	b.buf = b.buf[:0]
	if cap(b.buf) > 4*b.size { // one huge line does not stay held
		b.buf = nil
	}
	return err
}
