// Package logctx carries log attributes in a context.Context. The SMTP
// server puts a connection's session ID into the context of every call it
// makes for that session; every line logged with that context — by the
// plugin host (plugin log lines, plugin failures), the queue (the "queued"
// line) — then carries it, without a logger being passed along.
//
// Attributes reach the output only through a handler made by NewHandler
// (or a logger made by Logger); the server wraps its root logger once.
// Standard library only.
package logctx

import (
	"context"
	"log/slog"
	"slices"
	"time"
)

// ctxKey is the context key of the attribute list.
type ctxKey struct{}

// With returns a context carrying attrs after those ctx carries already.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	if len(attrs) == 0 {
		return ctx
	}
	old := Attrs(ctx)
	return context.WithValue(ctx, ctxKey{}, append(slices.Clip(old), attrs...))
}

// Attrs returns the attributes ctx carries; the caller must not modify
// the slice.
func Attrs(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	a, _ := ctx.Value(ctxKey{}).([]slog.Attr)
	return a
}

// Handler adds the attributes of each record's context to the record
// before passing it on.
type Handler struct {
	next slog.Handler
}

var _ slog.Handler = (*Handler)(nil)

// NewHandler returns h wrapped in a Handler, or h itself when it is one
// already (wrapping twice would write the attributes twice).
func NewHandler(h slog.Handler) slog.Handler {
	if _, ok := h.(*Handler); ok {
		return h
	}
	return &Handler{next: h}
}

// Logger returns a logger whose handler is l's wrapped by NewHandler; nil
// gives a logger that discards everything.
func Logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	if _, ok := l.Handler().(*Handler); ok {
		return l
	}
	return slog.New(NewHandler(l.Handler()))
}

// Enabled reports whether the wrapped handler takes records at level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle adds ctx's attributes to r and passes it on. Under a group
// (WithGroup) they land in that group, like the record's own attributes.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	if attrs := Attrs(ctx); len(attrs) > 0 {
		r = r.Clone() // r may share its attribute storage with other copies
		r.AddAttrs(attrs...)
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs returns a Handler over the wrapped handler's WithAttrs.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(attrs)}
}

// WithGroup returns a Handler over the wrapped handler's WithGroup.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name)}
}

// Info writes the line l.InfoContext(ctx, msg, args...) writes, without
// first recording the caller's program counter (runtime.Callers), which
// slog does on every line for handlers that print the source and which
// the server's handlers never print: a few thousand instructions a line,
// for lines logged for every connection or message (issue 17).
func Info(ctx context.Context, l *slog.Logger, msg string, args ...any) {
	if ctx, r, ok := infoRecord(ctx, l, msg); ok {
		r.Add(args...)
		_ = l.Handler().Handle(ctx, r)
	}
}

// InfoAttrs is Info with the line's attributes given as slog.Attr, which
// slog.String, slog.Int and the like make without an allocation, where
// each value passed to Info as an argument is one (its conversion to
// any): for the lines of every message (issue 17).
func InfoAttrs(ctx context.Context, l *slog.Logger, msg string, attrs ...slog.Attr) {
	if ctx, r, ok := infoRecord(ctx, l, msg); ok {
		r.AddAttrs(attrs...)
		_ = l.Handler().Handle(ctx, r)
	}
}

// infoRecord starts an info line for Info and InfoAttrs (a nil ctx is
// context.Background()); ok is false when l does not write info lines.
func infoRecord(ctx context.Context, l *slog.Logger, msg string) (context.Context, slog.Record, bool) {
	if ctx == nil {
		ctx = context.Background()
	}
	if !l.Enabled(ctx, slog.LevelInfo) {
		return ctx, slog.Record{}, false
	}
	return ctx, slog.NewRecord(time.Now(), slog.LevelInfo, msg, 0), true
}
