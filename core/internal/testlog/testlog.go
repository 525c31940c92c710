// Package testlog is a log sink for tests: a buffer that concurrent
// writers (a server's goroutines, a child process's output) fill while the
// test reads it, optionally echoed to the test's own log, and waited on
// for a line. It imports only the standard library and testwait, so any
// package's tests may use it.
package testlog

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testwait"
)

// Buffer keeps what is written to it; it is safe for concurrent use. The
// zero value is ready and echoes nothing.
type Buffer struct {
	echo testing.TB
	mu   sync.Mutex
	b    bytes.Buffer
}

// New returns a Buffer that also passes every write on to t.Log.
func New(t testing.TB) *Buffer { return &Buffer{echo: t} }

// Write keeps p (and logs it to the test when the Buffer echoes).
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.b.Write(p)
	b.mu.Unlock()
	if b.echo != nil {
		b.echo.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Logger returns a text logger writing to b at level and above.
func (b *Buffer) Logger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: level}))
}

// WaitFor waits until what was written holds want, failing t after within.
func (b *Buffer) WaitFor(t testing.TB, want string, within time.Duration) {
	t.Helper()
	testwait.Until(t, within, fmt.Sprintf("a log line with %q", want), func() bool { return strings.Contains(b.String(), want) })
}
