package filter

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/pluginapi"
)

// TestLogLinesCarryContext: what a plugin logs (through the log host
// function, or on stdout) and a plugin's failure are logged with the
// call's context, so an SMTP session's ID reaches them, and carry the
// queue ID once the transaction has one, and no empty one before.
func TestLogLinesCarryContext(t *testing.T) {
	dir := t.TempDir()
	install(t, dir, "10-hello", "stdout", "")
	install(t, dir, "20-bad", "trap", "failure_policy = \"continue\"\n")
	h, logs := newHost(t, dir, Options{})
	ctx := logctx.With(context.Background(), slog.String("session", "s0123456789a"))

	for _, tt := range []struct {
		hook    pluginapi.Hook
		queueID string
	}{
		{pluginapi.HookRcpt, ""},
		{pluginapi.HookData, "Q1"},
	} {
		t.Run(tt.hook.String(), func(t *testing.T) {
			txn := newTxn()
			txn.QueueID = tt.queueID
			mark := len(logs.String())
			h.Run(ctx, tt.hook, txn)
			NewEnv(ctx, tt.hook, txn, &EnvSpec{Plugin: "30-native", Logger: h.log}).Log(int32(slog.LevelInfo), "from the log function")

			var seen []string
			for _, l := range strings.Split(strings.TrimSpace(logs.String()[mark:]), "\n") {
				if !strings.Contains(l, " plugin=") {
					continue
				}
				seen = append(seen, l)
				if !strings.Contains(l, " session=s0123456789a") {
					t.Errorf("plugin line without the session ID: %s", l)
				}
				if !strings.Contains(l, " hook="+tt.hook.String()) {
					t.Errorf("plugin line without the hook: %s", l)
				}
				if tt.queueID == "" && strings.Contains(l, " id=") {
					t.Errorf("plugin line with a queue ID before there is one: %s", l)
				}
				if tt.queueID != "" && !strings.Contains(l, " id="+tt.queueID) {
					t.Errorf("plugin line without the queue ID: %s", l)
				}
			}
			all := strings.Join(seen, "\n")
			for _, want := range []string{`msg="hello stdout" plugin=10-hello`, `msg="plugin failed; instance discarded" plugin=20-bad`, `msg="from the log function" plugin=30-native`} {
				if !strings.Contains(all, want) {
					t.Errorf("no line %q among:\n%s", want, all)
				}
			}
		})
	}
}
