package filter

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
)

// LogLines is a slog.Handler that keeps each record as one line, for the
// tools that show a plugin's logs (`sluice plugin test`, sdk/sdktest):
// "LEVEL message", followed by ` key="value"` for each attribute when
// WithValues is set (the hook and queue ID attributes are left out: the
// tools show them already). It is safe for concurrent use.
type LogLines struct {
	// WithValues appends the records' attributes to each line.
	WithValues bool

	mu    sync.Mutex
	lines []string
}

var _ slog.Handler = (*LogLines)(nil)

// Enabled keeps every level.
func (l *LogLines) Enabled(context.Context, slog.Level) bool { return true }

// Handle keeps one record as a line.
func (l *LogLines) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Level.String())
	b.WriteByte(' ')
	b.WriteString(r.Message)
	if l.WithValues {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key != "hook" && a.Key != "id" {
				fmt.Fprintf(&b, " %s=%q", a.Key, a.Value.String())
			}
			return true
		})
	}
	l.Append(b.String())
	return nil
}

// WithAttrs returns l: attributes given to a derived logger are not kept.
func (l *LogLines) WithAttrs([]slog.Attr) slog.Handler { return l }

// WithGroup returns l.
func (l *LogLines) WithGroup(string) slog.Handler { return l }

// Append adds a line.
func (l *LogLines) Append(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

// Len returns how many lines there are, a mark for Since.
func (l *LogLines) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// Since returns a copy of the lines from mark on.
func (l *LogLines) Since(mark int) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines[mark:])
}
