package queue

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/dsn"
	"github.com/sluice-mta/sluice/core/mail"
)

// NOTIFY keywords (RFC 3461 section 4.1), one per kind of report.
const (
	notifyFailure = "FAILURE"
	notifyDelay   = "DELAY"
	notifySuccess = "SUCCESS"
)

// wantsNotice applies RFC 3461 NOTIFY to one kind of report: NEVER asks for
// none; a list asks for the kinds it names; no list is Sluice's default,
// FAILURE,DELAY (RFC 3461 leaves the default to the implementation).
func wantsNotice(r *mail.Recipient, kind string) bool {
	if len(r.Notify) == 0 {
		return kind == notifyFailure || kind == notifyDelay
	}
	want := false
	for _, n := range r.Notify {
		if strings.EqualFold(n, "NEVER") {
			return false
		}
		if strings.EqualFold(n, kind) {
			want = true
		}
	}
	return want
}

// logDelivery writes the one line per recipient and attempt, as Postfix
// does: to, relay, delay, dsn, status and the reply; the Observer is told
// of it with the other effects.
func (q *Queue) logDelivery(fx *effects, id string, r *mail.Recipient, delay time.Duration, status mail.Status, text string) {
	q.logDeliveryTLS(fx, id, r, delay, status, text, "", "", "")
}

// logDeliveryTLS is logDelivery for an attempt over outbound SMTP, with
// how the session was secured and the TLS policy that applied
// (mail.Result's TLS, Verified and TLSPolicy).
func (q *Queue) logDeliveryTLS(fx *effects, id string, r *mail.Recipient, delay time.Duration, status mail.Status, text, tls, verified, policy string) {
	relay := r.Relay
	if relay == "" {
		relay = "none"
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("id", id), slog.String("to", r.Addr), slog.String("relay", relay),
		slog.String("delay", delay.String()), slog.String("dsn", r.DSNCode), slog.String("status", status.String()))
	// How the session was secured (outbound SMTP): tls=TLSv1.3 verified=dane.
	if tls != "" {
		attrs = append(attrs, slog.String("tls", tls))
		if verified != "" {
			attrs = append(attrs, slog.String("verified", verified))
		}
	}
	if policy != "" {
		attrs = append(attrs, slog.String("tls_policy", policy))
	}
	fx.infoAttrs("delivery", append(attrs, slog.String("text", text))...)
	if q.opts.Observer != nil {
		fx.deliveries = append(fx.deliveries, Delivery{ID: id, Rcpt: r.Addr, Status: status, Relay: r.Relay,
			DSN: r.DSNCode, Text: text, Delay: delay, At: q.opts.Now()})
	}
}

// reportRcpt describes recipient r for a report with the given action; code
// and text are the reply that decided it (code 0: our own words). The
// remote transport's text is the whole reply line ("550 5.1.1 …"), which
// is not given its code a second time.
func reportRcpt(r *mail.Recipient, action string, code int, text string) dsn.Rcpt {
	diag := text
	if code > 0 {
		c := strconv.Itoa(code)
		if rest, ok := strings.CutPrefix(text, c); !ok || (rest != "" && rest[0] != ' ') {
			text = c + " " + text
		}
		diag = "smtp; " + text
	} else if diag != "" {
		diag = "x-sluice; " + diag
	}
	remote := r.Relay
	if i := strings.IndexByte(remote, '['); i > 0 {
		remote = remote[:i]
	}
	if remote == "local" || remote == "none" {
		remote = ""
	}
	status, err := mail.ParseEnhanced(r.DSNCode)
	if err != nil {
		status = map[string]mail.EnhancedCode{"failed": {5, 0, 0}, "delayed": {4, 0, 0}}[action]
		if status.IsZero() {
			status = mail.EnhancedCode{2, 0, 0}
		}
	}
	return dsn.Rcpt{Addr: r.Addr, ORCPT: r.ORCPT, Action: action, Status: status, RemoteMTA: remote, Diagnostic: diag}
}

// delayWarning queues the one delay warning for env when Options.DelayWarning
// has passed since it arrived, naming the pending recipients whose NOTIFY
// allows it, and records that it was sent.
func (q *Queue) delayWarning(txn *badger.Txn, fx *effects, env *mail.Envelope, body []byte, now time.Time) error {
	if q.opts.DelayWarning <= 0 || env.DelayWarned || env.From == "" || now.Sub(env.Received) < q.opts.DelayWarning {
		return nil
	}
	until := env.Received.Add(q.opts.MaxLifetime)
	var rcpts []dsn.Rcpt
	for _, r := range env.Pending() {
		rc := reportRcpt(r, "delayed", 0, r.LastError)
		rc.WillRetryUntil = until
		rcpts = append(rcpts, rc)
	}
	if len(rcpts) == 0 {
		return nil
	}
	env.DelayWarned = true
	return q.report(txn, fx, env, body, notifyDelay, rcpts, now)
}

// report queues in txn one DSN of the given kind to env's sender about the
// recipients in rcpts that asked for it (NOTIFY). Nothing goes to the null
// sender: a report is never reported on.
func (q *Queue) report(txn *badger.Txn, fx *effects, env *mail.Envelope, body []byte, kind string, rcpts []dsn.Rcpt, now time.Time) error {
	if len(rcpts) == 0 {
		return nil
	}
	var want []dsn.Rcpt
	for _, rc := range rcpts {
		for i := range env.Rcpts {
			if env.Rcpts[i].Addr == rc.Addr {
				if wantsNotice(&env.Rcpts[i], kind) {
					want = append(want, rc)
				}
				break
			}
		}
	}
	what := map[string]string{notifyFailure: "bounce", notifyDelay: "delay warning", notifySuccess: "success notice"}[kind]
	if len(want) == 0 {
		if kind == notifyFailure {
			fx.info("no bounce: recipients asked for no failure notice (NOTIFY)", "id", env.ID)
		}
		return nil
	}
	if env.From == "" {
		level := slog.LevelDebug
		if kind == notifyFailure {
			level = slog.LevelWarn
		}
		fx.log(level, "no "+what+" for a null-sender message: a report is never reported on", "id", env.ID, "nrcpt", len(want))
		return nil
	}
	msg, err := dsn.Build(&dsn.Report{
		ReportingMTA: q.opts.Hostname,
		From:         "MAILER-DAEMON@" + q.opts.Hostname,
		To:           env.From,
		QueueID:      env.ID,
		EnvID:        env.EnvID,
		Arrival:      env.Received,
		Rcpts:        want,
		Ret:          env.Ret,
		Original:     body,
		Now:          now,
	})
	if err != nil {
		return fmt.Errorf("build %s for %s: %w", what, env.ID, err)
	}
	b := &mail.Envelope{
		From:     "",
		Rcpts:    []mail.Recipient{{Addr: env.From}},
		SMTPUTF8: env.SMTPUTF8,
		Body8Bit: env.Body8Bit,
	}
	b.ID = q.ids.next(now)
	b.Received, b.NextAttempt, b.Size = now, now, int64(len(msg))
	if _, err := q.insert(txn, b, msg, false); err != nil {
		return err
	}
	fx.info(what+" queued", "id", env.ID, "dsn_id", b.ID, "to", env.From, "nrcpt", len(want))
	fx.info("queued", "id", b.ID, "from", "", "rcpts", 1, "size", b.Size, "dsn_of", env.ID)
	fx.kick = true
	return nil
}
