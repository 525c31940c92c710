package filter

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
)

// maxLogLine bounds one line of a guest's stdout or stderr in the log.
const maxLogLine = 4 << 10

// logWriter turns a guest's stdout and stderr into log lines tagged with
// the plugin, one line per line written. Each instance has its own, so
// that the lines of a call are logged with that call's context (the SMTP
// session's ID), hook and queue ID; the instance writes only from inside
// a call, on the caller's goroutine.
type logWriter struct {
	log    *slog.Logger
	plugin string
	in     *instance // set once instantiated; nil in a unit test
	mu     sync.Mutex
	buf    []byte
}

func newLogWriter(log *slog.Logger, plugin string) *logWriter {
	return &logWriter{log: log, plugin: plugin}
}

// Write logs every complete line of p and keeps the rest for later.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			room := maxLogLine - len(w.buf)
			if len(p) < room {
				w.buf = append(w.buf, p...)
				break
			}
			w.buf = append(w.buf, p[:room]...)
			p = p[room:]
			w.flush()
			continue
		}
		w.buf = append(w.buf, p[:min(i, maxLogLine)]...)
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (w *logWriter) flush() {
	if len(w.buf) > maxLogLine {
		w.buf = w.buf[:maxLogLine]
	}
	ctx := context.Background()
	args := []any{"plugin", w.plugin, "stream", "stdio"}
	if in := w.in; in != nil && in.env.ctx != nil {
		ctx = in.env.ctx
		args = withID(append(args, "hook", in.env.hook.String()), in.env.txn)
	}
	if !w.allow(ctx, len(w.buf)) {
		w.buf = w.buf[:0]
		return
	}
	w.log.Log(ctx, slog.LevelInfo, string(bytes.TrimRight(w.buf, "\r")), args...)
	w.buf = w.buf[:0]
}

// allow counts a line of n bytes against the plugin's log quota: the
// call's, during a call, else the plugin's per minute.
func (w *logWriter) allow(ctx context.Context, n int) bool {
	in := w.in
	switch {
	case !w.log.Enabled(ctx, slog.LevelInfo):
		return false
	case in == nil || in.p.spec.Quota == nil:
		return true
	case in.env.spec != nil:
		return in.env.allowLog(n)
	}
	q := in.p.spec.Quota
	if !q.log.take(time.Now().UnixNano(), n, q.LogBytesPerMinute) {
		q.refused.Add(1)
		return false
	}
	return true
}
