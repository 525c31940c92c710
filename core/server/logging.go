package server

import (
	"context"
	"io"
	"log/slog"
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
// key=value lines) or "json" lines, and its control.
func NewLogger(w io.Writer, level, format string) (*slog.Logger, *LogControl) {
	c := &LogControl{}
	c.Set(level, format)
	opts := &slog.HandlerOptions{Level: &c.level}
	h := &switchHandler{c: c, text: slog.NewTextHandler(w, opts), json: slog.NewJSONHandler(w, opts)}
	return slog.New(h), c
}

// WithLogControl lets a reload change the level and format of the logger
// given to New, made with NewLogger and c.
func WithLogControl(c *LogControl) Option {
	return func(s *Server) { s.sh.logCtl = c }
}

// switchHandler writes each record through the text or the JSON handler,
// as its control says; both carry the same attributes and groups.
type switchHandler struct {
	c          *LogControl
	text, json slog.Handler
}

func (h *switchHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= h.c.level.Level()
}

func (h *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	if h.c.json.Load() {
		return h.json.Handle(ctx, r)
	}
	return h.text.Handle(ctx, r)
}

func (h *switchHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &switchHandler{c: h.c, text: h.text.WithAttrs(attrs), json: h.json.WithAttrs(attrs)}
}

func (h *switchHandler) WithGroup(name string) slog.Handler {
	return &switchHandler{c: h.c, text: h.text.WithGroup(name), json: h.json.WithGroup(name)}
}
