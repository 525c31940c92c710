package local

import (
	"context"
	"log/slog"
	"strings"

	"github.com/sluice-mta/sluice/core/mail"
)

// splitAddr splits addr at its last '@' into local part and domain. ok is
// false when there is no '@'.
func splitAddr(addr string) (user, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "", "", false
	}
	return addr[:i], addr[i+1:], true
}

// sent, deferred and bounced build Results with the usual reply codes.
func sent(rcpt, relay, dsn, text string) mail.Result {
	return mail.Result{Rcpt: rcpt, Status: mail.Sent, Code: 250, DSN: dsn, Text: text, Relay: relay}
}

func deferred(rcpt, relay, dsn, text string) mail.Result {
	return mail.Result{Rcpt: rcpt, Status: mail.Deferred, Code: 451, DSN: dsn, Text: text, Relay: relay}
}

func bounced(rcpt, relay, dsn, text string) mail.Result {
	return mail.Result{Rcpt: rcpt, Status: mail.Bounced, Code: 550, DSN: dsn, Text: text, Relay: relay}
}

// logResult records a transport's answer at debug level; the queue writes
// the one delivery line per recipient (with the final status) at info.
func logResult(ctx context.Context, log *slog.Logger, m *mail.Message, r mail.Result) {
	log.Log(ctx, slog.LevelDebug, "local transport",
		"id", m.ID, "to", r.Rcpt, "relay", r.Relay, "dsn", r.DSN, "status", r.Status.String(), "text", r.Text)
}

// orDiscard returns l, or a logger that drops everything when l is nil.
func orDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l
}
