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
