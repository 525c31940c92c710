package server

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
)

// LogControl changes the level and the format of a logger made by
// NewLogger while it is in use: a reload applies log_level and log_format
// through it (WithLogControl).
type LogControl struct {
	level slog.LevelVar
	json  atomic.Bool
}

// Set makes the logger write at level ("debug", "info", "warn", "error";
// anything else is info) in format ("json", anything else is text).
func (c *LogControl) Set(level, format string) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	c.level.Set(l)
	c.json.Store(format == "json")
}

// NewLogger returns a logger writing to w at level, as "text" (slog's
// key=value lines) or "json" lines, and its control. When w holds lines
// back (it has a Flush method, as a logbatch.Writer does), the logger
// flushes it after every warning or error, so those are out at once.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, *LogControl) {
	c := &LogControl{}
	c.Set(level, format)
	opts := &slog.HandlerOptions{Level: &c.level}
	h := &switchHandler{c: c, text: &lazyHandler{h: slog.NewTextHandler(w, opts)}, json: &lazyHandler{h: slog.NewJSONHandler(w, opts)}}
	if f, ok := w.(flusher); ok {
		h.flush = f
	}
	return slog.New(h), c
}

// flusher is a writer that holds lines back until Flush.
type flusher interface{ Flush() error }

// WithLogControl lets a reload change the level and format of the logger
// given to New, made with NewLogger and c.
func WithLogControl(c *LogControl) Option {
	return func(s *Server) { s.sh.logCtl = c }
}

// switchHandler writes each record through the text or the JSON handler,
// as its control says; both carry the same attributes and groups. Each
// is made only when a record goes through it (lazyHandler): a logger
// made for every connection (its session and client) costs the text
// handler's attributes alone, not the JSON handler's too (issue 17).
type switchHandler struct {
	c          *LogControl
	text, json *lazyHandler
	flush      flusher // nil, or flushed after each warning or error
}

func (h *switchHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.c.level.Level()
}

func (h *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	var err error
	if h.c.json.Load() {
		err = h.json.get().Handle(ctx, r)
	} else {
		err = h.text.get().Handle(ctx, r)
	}
	if h.flush != nil && r.Level >= slog.LevelWarn {
		if ferr := h.flush.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h *switchHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &switchHandler{c: h.c, text: h.text.with(attrs, ""), json: h.json.with(attrs, ""), flush: h.flush}
}

func (h *switchHandler) WithGroup(name string) slog.Handler {
	return &switchHandler{c: h.c, text: h.text.with(nil, name), json: h.json.with(nil, name), flush: h.flush}
}

// lazyHandler is a handler, or the WithAttrs or WithGroup of its parent's
// handler, made at its first use.
type lazyHandler struct {
	once   sync.Once
	h      slog.Handler // set at once for a root, else at the first get
	parent *lazyHandler
	attrs  []slog.Attr // WithAttrs(attrs), or
	group  string      // WithGroup(group)
}

// with is the lazyHandler of WithAttrs(attrs) (group "") or
// WithGroup(group) on l.
func (l *lazyHandler) with(attrs []slog.Attr, group string) *lazyHandler {
	return &lazyHandler{parent: l, attrs: attrs, group: group}
}

// get returns the handler, making it (and its parents) if need be.
func (l *lazyHandler) get() slog.Handler {
	l.once.Do(func() {
		switch {
		case l.parent == nil:
		case l.group != "":
			l.h = l.parent.get().WithGroup(l.group)
		default:
			l.h = l.parent.get().WithAttrs(l.attrs)
		}
	})
	return l.h
}
