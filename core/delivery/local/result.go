package local

import (
	"context"
	"log/slog"

	"github.com/sluice-mta/sluice/core/mail"
)

// reason builds the Reply a local transport reports in its own words:
// code, enhanced code (a constant such as "5.1.1") and text.
func reason(code int, enhanced, text string) mail.Reply {
	return mail.Reply{Code: code, Enhanced: mail.MustEnhanced(enhanced), Text: text}
}

// logResult records a transport's answer at debug level; the queue writes
// the one delivery line per recipient (with the final status) at info.
func logResult(ctx context.Context, log *slog.Logger, m *mail.Message, r mail.Result) {
	log.Log(ctx, slog.LevelDebug, "local transport",
		"id", m.ID, "to", r.Rcpt, "relay", r.Relay, "dsn", r.Reply.Enhanced.String(), "status", r.Status.String(), "text", r.Reply.Text)
}

// orDiscard returns l, or a logger that drops everything when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
