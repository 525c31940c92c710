package server_test

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/internal/testlog"
	"github.com/sluice-mta/sluice/core/logbatch"
	"github.com/sluice-mta/sluice/core/server"
)

// TestLoggerFlushesWarnings: over a writer that holds lines back (the
// server's log as `sluice serve` makes it), info lines wait, and a warning
// or an error is written at once with everything logged before it, in
// order; the lines are the ones slog writes, in either format.
func TestLoggerFlushesWarnings(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			out := &testlog.Buffer{}
			w := logbatch.New(out, time.Hour, 0)
			log, _ := server.NewLogger(w, "info", format)
			log = log.With("session", "s1")
			log.Info("connect")
			log.Debug("not at info")
			log.Info("queued", "id", "Q1")
			if got := out.String(); got != "" {
				t.Fatalf("info lines written before a flush:\n%s", got)
			}
			log.Warn("slowdisk", "ms", 40)
			got := out.String()
			lines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
			want := []string{"connect", "queued", "slowdisk"}
			if len(lines) != len(want) {
				t.Fatalf("after the warning, %d lines, want %d:\n%s", len(lines), len(want), got)
			}
			for i, msg := range want {
				m := "msg=" + msg
				if format == "json" {
					m = `"msg":"` + msg + `"`
				}
				if !strings.Contains(lines[i], m) || !strings.Contains(lines[i], "s1") {
					t.Errorf("line %d = %q, want %s with the session", i, lines[i], m)
				}
			}
			log.Info("disconnect")
			log.Error("lost", "err", "x")
			if n := strings.Count(out.String(), "\n"); n != 5 {
				t.Errorf("after an error, %d lines, want 5:\n%s", n, out.String())
			}
			log.Info("last")
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out.String(), "msg=last") && !strings.Contains(out.String(), `"msg":"last"`) {
				t.Errorf("Close did not write the held line:\n%s", out.String())
			}
		})
	}
}

// TestLoggerFormatSwitch: a logger derived with attributes and a group
// (as each connection's is) before the format changes writes them in the
// new format after it, and in the old one again after a switch back: each
// format's handler is made when first used, with the same attributes.
func TestLoggerFormatSwitch(t *testing.T) {
	out := &testlog.Buffer{}
	log, ctl := server.NewLogger(out, "info", "text")
	conn := log.With("session", "s1", "client", "192.0.2.9").WithGroup("tls").With("version", "TLSv1.3")
	conn.Info("connect", "n", 1)
	ctl.Set("info", "json")
	conn.Info("queued", "n", 2)
	ctl.Set("info", "text")
	conn.Info("disconnect", "n", 3)
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{
		"msg=connect session=s1 client=192.0.2.9 tls.version=TLSv1.3 tls.n=1",
		`"msg":"queued","session":"s1","client":"192.0.2.9","tls":{"version":"TLSv1.3","n":2}}`,
		"msg=disconnect session=s1 client=192.0.2.9 tls.version=TLSv1.3 tls.n=3",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d = %q, want it to end in %q", i, lines[i], w)
		}
	}
}
