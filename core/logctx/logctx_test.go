package logctx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

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
