package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/dsn"
)

// expiredDSN and expiredText describe recipients still pending after
// Options.MaxLifetime.
const (
	expiredDSN  = "4.4.7"
	expiredText = "delivery time expired"
)

// deliver makes one delivery attempt of the leased message id and records
// its outcome.
func (q *Queue) deliver(ctx context.Context, d Deliverer, id string) {
	m, err := q.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		q.dropLease(id)
		return
	}
	if err != nil {
		q.log.Error("queue: read leased message failed; it stays leased until restart", "id", id, "err", err)
		return
	}
	var rcpts []string
	for _, r := range m.Pending() {
		rcpts = append(rcpts, r.Addr)
	}
	var results []Result
	if len(rcpts) > 0 {
		results = d.Deliver(ctx, m, rcpts)
	}
	shutdown := ctx.Err() != nil
	// Record with a context of our own: a shutdown must not lose results of
	// deliveries that already happened.
	// The record need not be on disk before the worker moves on: if a crash
	// loses it, the message is delivered again (a duplicate, never a loss),
	// and a bounce made here is lost only together with the failure it
	// reports, which is then retried. So it commits without waiting for the
	// group sync; the next sync covers it.
	rctx := context.WithoutCancel(ctx)
	if err := q.commit(rctx, func(txn *badger.Txn) error {
		return q.record(txn, id, m.Body, results, shutdown)
	}); err != nil {
		q.log.Error("queue: record delivery results failed; message stays leased until restart", "id", id, "err", err)
	}
}

// dropLease deletes the lease of a message that has gone.
func (q *Queue) dropLease(id string) {
	err := q.db.Update(func(txn *badger.Txn) error { return txn.Delete(leaseKey(id)) })
	if err != nil {
		q.log.Error("queue: drop lease failed", "id", id, "err", err)
	}
}

// record applies an attempt's results to the current envelope of id (an
// admin may have held or removed it meanwhile) in txn: it finishes, bounces
// or reschedules the message. With shutdown set, recipients without a final
// result neither count an attempt nor get rescheduled: the message stays
// leased and is due again at the next Open.
func (q *Queue) record(txn *badger.Txn, id string, body []byte, results []Result, shutdown bool) error {
	env, err := getEnvelope(txn, id)
	if errors.Is(err, ErrNotFound) {
		return txn.Delete(leaseKey(id)) // removed during delivery
	}
	if err != nil {
		return err
	}
	now := q.opts.Now()
	delay := now.Sub(env.Received).Round(time.Second)
	used := make([]bool, len(results))
	var failed []dsn.Rcpt
	deferred := false
	for _, r := range env.Pending() {
		res, ok := takeResult(results, used, r.Addr)
		if !ok {
			if shutdown {
				continue
			}
			res = Result{Rcpt: r.Addr, Status: Deferred, DSN: "4.0.0", Text: "no delivery result"}
		}
		if shutdown && res.Status == Deferred {
			continue
		}
		r.LastError, r.DSNCode, r.Relay = res.Text, res.DSN, res.Relay
		if r.DSNCode == "" {
			r.DSNCode = defaultDSN(res.Status)
		}
		q.log.Info("delivery", "id", id, "to", r.Addr, "relay", res.Relay, "delay", delay.String(),
			"dsn", r.DSNCode, "status", res.Status.String(), "text", res.Text)
		switch res.Status {
		case Sent:
			r.State = Delivered
			r.LastError = ""
		case Bounced:
			r.State = Failed
			failed = append(failed, bounceRcpt(r, res.Code))
		default:
			r.Attempts++
			deferred = true
		}
	}
	if deferred {
		env.Attempts++
	}
	if !shutdown && len(env.Pending()) > 0 && now.After(env.Received.Add(q.opts.MaxLifetime)) {
		for _, r := range env.Pending() {
			r.State = Failed
			r.DSNCode = expiredDSN
			if r.LastError == "" {
				r.LastError = expiredText
			} else {
				r.LastError = expiredText + "; last error: " + r.LastError
			}
			q.log.Info("delivery", "id", id, "to", r.Addr, "relay", r.Relay, "delay", delay.String(),
				"dsn", expiredDSN, "status", Bounced.String(), "text", r.LastError)
			failed = append(failed, bounceRcpt(r, 0))
		}
	}
	if len(failed) > 0 {
		if err := q.bounce(txn, env, body, failed, now); err != nil {
			return err
		}
	}

	if len(env.Pending()) == 0 {
		q.log.Info("removed", "id", id, "reason", "done")
		return deleteMessage(txn, env)
	}
	if shutdown {
		return putEnvelope(txn, env) // stays leased
	}
	if err := txn.Delete(leaseKey(id)); err != nil {
		return err
	}
	env.NextAttempt = q.nextAttempt(env, now)
	if err := putEnvelope(txn, env); err != nil {
		return err
	}
	if env.Held {
		return nil
	}
	return txn.Set(schedKey(env.NextAttempt, id), nil)
}

// takeResult finds the first unused result for addr.
func takeResult(results []Result, used []bool, addr string) (Result, bool) {
	for i, r := range results {
		if !used[i] && strings.EqualFold(r.Rcpt, addr) {
			used[i] = true
			return r, true
		}
	}
	return Result{}, false
}

func defaultDSN(s Status) string {
	switch s {
	case Sent:
		return "2.0.0"
	case Bounced:
		return "5.0.0"
	}
	return "4.0.0"
}

// nextAttempt is now plus MinBackoff·2^(attempts-1), capped at MaxBackoff,
// with ±5% jitter, and never later than the expiry time (so expiry is
// noticed on time).
func (q *Queue) nextAttempt(env *Envelope, now time.Time) time.Time {
	d := q.opts.MinBackoff
	for i := 1; i < env.Attempts && d < q.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, q.opts.MaxBackoff)
	if j := int64(d / 10); j > 0 {
		d += time.Duration(rand.Int64N(j)) - time.Duration(j/2)
	}
	t := now.Add(d)
	if exp := env.Received.Add(q.opts.MaxLifetime); t.After(exp) && now.Before(exp) {
		t = exp.Add(time.Second)
	}
	return t
}

// bounceRcpt describes a failed recipient for a DSN.
func bounceRcpt(r *Recipient, code int) dsn.Rcpt {
	diag := r.LastError
	if code > 0 {
		diag = fmt.Sprintf("smtp; %d %s", code, r.LastError)
	} else if diag != "" {
		diag = "x-sluice; " + diag
	}
	remote := r.Relay
	if i := strings.IndexByte(remote, '['); i > 0 {
		remote = remote[:i]
	}
	if remote == "local" {
		remote = ""
	}
	return dsn.Rcpt{Addr: r.Addr, ORCPT: r.ORCPT, Action: "failed", Status: r.DSNCode, RemoteMTA: remote, Diagnostic: diag}
}

// wantsFailureDSN applies RFC 3461 NOTIFY: the default (no list) and a list
// naming FAILURE ask for a failure DSN; NEVER, or a list without FAILURE,
// does not.
func wantsFailureDSN(r *Recipient) bool {
	if len(r.Notify) == 0 {
		return true
	}
	for _, n := range r.Notify {
		if strings.EqualFold(n, "FAILURE") {
			return true
		}
	}
	return false
}

// bounce enqueues in txn one DSN to env's sender for the failed recipients
// that asked for one. A bounce is never bounced.
func (q *Queue) bounce(txn *badger.Txn, env *Envelope, body []byte, failed []dsn.Rcpt, now time.Time) error {
	var rcpts []dsn.Rcpt
	for _, f := range failed {
		for i := range env.Rcpts {
			if env.Rcpts[i].Addr == f.Addr && wantsFailureDSN(&env.Rcpts[i]) {
				rcpts = append(rcpts, f)
				break
			}
		}
	}
	if len(rcpts) == 0 {
		q.log.Info("no bounce: recipients asked for no failure notice (NOTIFY)", "id", env.ID)
		return nil
	}
	if env.From == "" {
		q.log.Warn("not bouncing a bounce: failure of a null-sender message dropped", "id", env.ID, "nrcpt", len(rcpts))
		return nil
	}
	msg, err := dsn.Build(&dsn.Report{
		ReportingMTA: q.opts.Hostname,
		From:         "MAILER-DAEMON@" + q.opts.Hostname,
		To:           env.From,
		QueueID:      env.ID,
		EnvID:        env.EnvID,
		Arrival:      env.Received,
		Rcpts:        rcpts,
		Ret:          env.Ret,
		Original:     body,
		Now:          now,
	})
	if err != nil {
		return fmt.Errorf("build bounce for %s: %w", env.ID, err)
	}
	b := &Envelope{
		From:     "",
		Rcpts:    []Recipient{{Addr: env.From}},
		SMTPUTF8: env.SMTPUTF8,
		Body8Bit: env.Body8Bit,
	}
	b.ID = q.ids.next(now)
	b.Received, b.NextAttempt, b.Size = now, now, int64(len(msg))
	if err := q.insert(txn, b, msg); err != nil {
		return err
	}
	q.log.Info("bounce queued", "id", env.ID, "bounce_id", b.ID, "to", env.From, "nrcpt", len(rcpts))
	q.log.Info("queued", "id", b.ID, "from", "", "nrcpt", 1, "size", b.Size, "bounce_of", env.ID)
	q.kick()
	return nil
}
