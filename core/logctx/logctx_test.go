package logctx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/logctx"
)

// lines decodes the JSON lines in b.
func lines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		out = append(out, m)
	}
	return out
}

func TestHandler(t *testing.T) {
	ctx := logctx.With(context.Background(), slog.String("session", "s1"))
	ctx = logctx.With(ctx, slog.String("id", "Q1"))
	for _, tt := range []struct {
		name string
		log  func(l *slog.Logger)
		want map[string]any // keys that must be there (nil value: must be absent)
	}{
		{"context attrs", func(l *slog.Logger) { l.InfoContext(ctx, "m", "k", "v") },
			map[string]any{"session": "s1", "id": "Q1", "k": "v"}},
		{"no context", func(l *slog.Logger) { l.Info("m") },
			map[string]any{"session": nil, "id": nil}},
		{"derived logger", func(l *slog.Logger) { l.With("client", "ip").InfoContext(ctx, "m") },
			map[string]any{"session": "s1", "client": "ip"}},
		{"disabled level", func(l *slog.Logger) { l.DebugContext(ctx, "m"); l.Info("marker") },
			map[string]any{"msg": "marker", "session": nil}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			l := logctx.Logger(slog.New(slog.NewJSONHandler(&b, nil)))
			tt.log(l)
			got := lines(t, &b)
			if len(got) != 1 {
				t.Fatalf("%d lines, want 1:\n%s", len(got), b.String())
			}
			for k, v := range tt.want {
				if g, ok := got[0][k]; v == nil && ok || v != nil && g != v {
					t.Errorf("%s = %v, want %v:\n%s", k, g, v, b.String())
				}
			}
		})
	}
}

// TestWrapOnce: wrapping a wrapped logger again writes the attributes once.
func TestWrapOnce(t *testing.T) {
	var b bytes.Buffer
	l := logctx.Logger(logctx.Logger(slog.New(slog.NewTextHandler(&b, nil))))
	l = slog.New(logctx.NewHandler(l.Handler()))
	l.InfoContext(logctx.With(context.Background(), slog.String("session", "s1")), "m")
	if n := strings.Count(b.String(), "session=s1"); n != 1 {
		t.Errorf("session written %d times, want once: %s", n, b.String())
	}
}

// TestWithDoesNotShare: two contexts derived from one do not see each
// other's attributes.
func TestWithDoesNotShare(t *testing.T) {
	base := logctx.With(context.Background(), slog.String("a", "1"), slog.String("b", "2"))
	x := logctx.With(base, slog.String("x", "x"))
	y := logctx.With(base, slog.String("y", "y"))
	if got := logctx.Attrs(x); len(got) != 3 || got[2].Key != "x" {
		t.Errorf("x carries %v", got)
	}
	if got := logctx.Attrs(y); len(got) != 3 || got[2].Key != "y" {
		t.Errorf("y carries %v", got)
	}
	if got := logctx.Attrs(base); len(got) != 2 {
		t.Errorf("base carries %v", got)
	}
	if logctx.With(base) != base {
		t.Error("With without attributes made a new context")
	}
	if logctx.Attrs(context.Background()) != nil {
		t.Error("a bare context carries attributes")
	}
}

// TestInfoWritesTheSameLine: logctx.Info and InfoAttrs write what
// InfoContext writes, in text and JSON, with the logger's and the
// context's attributes, and nothing below the logger's level.
func TestInfoWritesTheSameLine(t *testing.T) {
	ctx := logctx.With(context.Background(), slog.String("session", "s1"))
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	for _, format := range []string{"text", "json"} {
		var a, b bytes.Buffer
		mk := func(w *bytes.Buffer, level slog.Level) *slog.Logger {
			opts := &slog.HandlerOptions{ReplaceAttr: noTime, Level: level}
			var h slog.Handler = slog.NewTextHandler(w, opts)
			if format == "json" {
				h = slog.NewJSONHandler(w, opts)
			}
			return logctx.Logger(slog.New(h)).With("client", "192.0.2.1")
		}
		mk(&a, slog.LevelInfo).InfoContext(ctx, "disconnect", "duration", 1500*time.Millisecond, "tls", true)
		logctx.Info(ctx, mk(&b, slog.LevelInfo), "disconnect", "duration", 1500*time.Millisecond, "tls", true)
		if a.String() != b.String() || !strings.Contains(b.String(), "s1") || !strings.Contains(b.String(), "192.0.2.1") {
			t.Errorf("%s: InfoContext wrote %q, Info %q", format, a.String(), b.String())
		}
		var d bytes.Buffer
		logctx.InfoAttrs(ctx, mk(&d, slog.LevelInfo), "disconnect", slog.Duration("duration", 1500*time.Millisecond), slog.Bool("tls", true))
		if d.String() != a.String() {
			t.Errorf("%s: InfoContext wrote %q, InfoAttrs %q", format, a.String(), d.String())
		}
		var c bytes.Buffer
		logctx.Info(nil, mk(&c, slog.LevelWarn), "connect")
		logctx.InfoAttrs(nil, mk(&c, slog.LevelWarn), "connect", slog.String("k", "v"))
		if c.Len() != 0 {
			t.Errorf("%s: an info line at level warn: %q", format, c.String())
		}
	}
}
