package queue

import (
	"cmp"
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/dsn"
	"github.com/sluice-mta/sluice/core/mail"
)

// expiredDSN and expiredText describe recipients still pending after
// Options.MaxLifetime.
const (
	expiredDSN  = "4.4.7"
	expiredText = "delivery time expired"
)

// deliver makes one delivery attempt of the leased message of j, with its
// envelope as the lease read it or Enqueue stored it (an admin change
// since then applies when the outcome is recorded: the delivery was in
// progress; but a message leased at enqueue and held before its worker
// started is not delivered), and records its outcome. It returns when
// the message is due again, zero when it was not rescheduled; a bounce
// or a success notice it queued has woken the scheduler already, and a
// message delivered to every recipient simply leaves the queue.
func (q *Queue) deliver(ctx context.Context, d mail.Deliverer, j job) (retry time.Time) {
	id := j.env.ID
	env, body, err := q.startLeased(j)
	if errors.Is(err, ErrNotFound) {
		q.dropLease(id)
		return time.Time{}
	}
	if err != nil {
		q.log.Error("queue: read leased message failed; it stays leased until restart", "id", id, "err", err)
		return time.Time{}
	}
	if env.Held { // held after Enqueue leased it
		if q.unlease(id) { // released since
			q.kick()
		}
		return time.Time{}
	}
	// enc is the encoding env is stored with, when known: then record
	// need not decode the envelope again while it is unchanged, and the
	// deliverer gets a copy of env, which stays as stored.
	var enc []byte
	m := &mail.Message{Envelope: *env, Body: body}
	if env == j.env && j.stored != nil {
		enc = j.stored
		m.Envelope = *cloneEnvelope(env)
	}
	var rcpts []string
	for _, r := range m.Pending() {
		rcpts = append(rcpts, r.Addr)
	}
	var results []mail.Result
	if len(rcpts) > 0 {
		results = d.Deliver(ctx, m, rcpts)
	}
	// The record is background work, and the deliverer's last reply
	// often readies it together with a session (the next command of
	// the client this message came from): let what is runnable on this P
	// go first, rather than hold it for the record's transaction.
	runtime.Gosched()
	shutdown := ctx.Err() != nil
	// Record with a context of our own: a shutdown must not lose results of
	// deliveries that already happened.
	// The record need not be on disk before the worker moves on: if a crash
	// loses it, the message is delivered again (a duplicate, never a loss),
	// and a bounce made here is lost only together with the failure it
	// reports, which is then retried. So it commits without waiting for the
	// group sync; the next sync covers it.
	rctx := context.WithoutCancel(ctx)
	var committed *effects // the effects of the run that committed
	if err := q.commitFx(rctx, func(txn *badger.Txn, fx *effects) error {
		committed = fx
		if err := q.record(txn, fx, env, enc, m.Body, results, shutdown); err != nil {
			return err
		}
		if q.opts.inRecord != nil {
			q.opts.inRecord(id)
		}
		return nil
	}); err != nil {
		q.log.Error("queue: record delivery results failed; message stays leased until restart", "id", id, "err", err)
		return time.Time{}
	}
	return committed.retry
}

// dropLease deletes the lease of a message that has gone.
func (q *Queue) dropLease(id string) {
	err := q.updateDB(func(txn *badger.Txn) error { return txn.Delete(leaseKey(id)) })
	if err != nil {
		q.log.Error("queue: drop lease failed", "id", id, "err", err)
	}
}

// record applies an attempt's results to the current envelope of the
// message leased as leased (an admin may have held or removed it
// meanwhile), stored as enc when known (nil: not known), in txn: it
// finishes, bounces or reschedules the message. With shutdown set, recipients without a final
// result neither count an attempt nor get a backoff: the message is
// released, due again at once (at the next Run). It runs again when txn
// conflicts, so it logs only through fx.
func (q *Queue) record(txn *badger.Txn, fx *effects, leased *mail.Envelope, enc, body []byte, results []mail.Result, shutdown bool) error {
	id := leased.ID
	env, err := getEnvelopeKnown(txn, id, leased, enc)
	if errors.Is(err, ErrNotFound) {
		return txn.Delete(leaseKey(id)) // removed during delivery
	}
	if err != nil {
		return err
	}
	was, _, err := storedEntries(txn, env) // before the results change it
	if err != nil {
		return err
	}
	now := q.opts.Now()
	delay := now.Sub(env.Received).Round(time.Second)
	take := resultsByRcpt(results)
	var failed, delivered []dsn.Rcpt
	deferred := false
	hold := "" // a deliver-stage quarantine's reason
	for _, r := range env.Pending() {
		res, ok := take(r.Addr)
		if !ok {
			if shutdown {
				continue
			}
			res = mail.DeferredResult(r.Addr, "", mail.Reply{Enhanced: mail.EnhancedCode{4, 0, 0}, Text: "no delivery result"})
		}
		if shutdown && res.Status == mail.Deferred {
			continue
		}
		r.LastError, r.DSNCode, r.Relay, r.TLS, r.TLSPolicy = res.Reply.Text, res.Reply.Enhanced.String(), res.Relay, res.TLSText(), res.TLSPolicy
		if r.DSNCode == "" {
			r.DSNCode = defaultDSN(res.Status)
		}
		q.logDeliveryTLS(fx, id, r, delay, res.Status, res.Reply.Text, res.TLS, res.Verified, res.TLSPolicy)
		switch res.Status {
		case mail.Sent:
			r.State = mail.Delivered
			r.Attempts++
			r.LastError = ""
			delivered = append(delivered, reportRcpt(r, "delivered", res.Reply.Code, res.Reply.Text))
		case mail.Bounced:
			r.State = mail.Failed
			r.Attempts++
			code := res.Reply.Code
			if res.Ours {
				code = 0 // our words, not a server's reply
			}
			failed = append(failed, reportRcpt(r, "failed", code, r.LastError))
		case mail.Held:
			// Pending, no attempt counted: the message is put on hold.
			hold = cmp.Or(res.Reply.Text, "held by a deliver-stage plugin")
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
			r.State = mail.Failed
			r.DSNCode = expiredDSN
			if r.LastError == "" {
				r.LastError = expiredText
			} else {
				r.LastError = expiredText + "; last error: " + r.LastError
			}
			q.logDelivery(fx, id, r, delay, mail.Bounced, r.LastError)
			failed = append(failed, reportRcpt(r, "failed", 0, r.LastError))
		}
	}
	// One report of each kind per attempt, each naming every recipient it
	// concerns.
	if err := q.report(txn, fx, env, body, notifyFailure, failed, now); err != nil {
		return err
	}
	if err := q.report(txn, fx, env, body, notifySuccess, delivered, now); err != nil {
		return err
	}
	if !shutdown && deferred {
		if err := q.delayWarning(txn, fx, env, body, now); err != nil {
			return err
		}
	}

	if len(env.Pending()) == 0 {
		fx.info("removed", "id", id, "reason", "done")
		if env.Held {
			return deleteMessage(txn, was, env) // and its hold expiry
		}
		// Leased, it has no schedule entry (Hold gives one, makeDue
		// writes none while it is leased).
		return deleteLeased(txn, was, env)
	}
	if shutdown {
		if err := txn.Delete(leaseKey(id)); err != nil {
			return err
		}
		fx.kick = true
		return q.dueNow(txn, was, env)
	}
	if err := txn.Delete(leaseKey(id)); err != nil {
		return err
	}
	if env.Held {
		// Held by an administrator during the attempt: it keeps the
		// schedule entry Hold gave it (its expiry, if any).
		return putEnvelope(txn, was, env)
	}
	if hold != "" {
		fx.info("held", "id", id, "reason", hold)
		fx.kick = true // its expiry may be scheduled (HoldLifetime)
		return q.held(txn, was, env, hold, now)
	}
	env.NextAttempt = q.nextAttempt(env, now)
	if err := putEnvelope(txn, was, env); err != nil {
		return err
	}
	fx.retry = env.NextAttempt
	return q.setSched(txn, env.NextAttempt, id)
}

// resultsByRcpt indexes an attempt's results by recipient (mail.Key) and
// returns a function that takes the next unused one for an address. An
// address given twice has a result for each time, taken in order. Building
// the index and all the takes are linear in the number of results.
func resultsByRcpt(results []mail.Result) func(addr string) (mail.Result, bool) {
	byKey := make(map[string][]mail.Result, len(results))
	for _, r := range results {
		k := mail.Key(r.Rcpt)
		byKey[k] = append(byKey[k], r)
	}
	return func(addr string) (mail.Result, bool) {
		k := mail.Key(addr)
		rs := byKey[k]
		if len(rs) == 0 {
			return mail.Result{}, false
		}
		byKey[k] = rs[1:]
		return rs[0], true
	}
}

func defaultDSN(s mail.Status) string {
	switch s {
	case mail.Sent:
		return "2.0.0"
	case mail.Bounced:
		return "5.0.0"
	}
	return "4.0.0"
}

// nextAttempt is now plus MinBackoff·2^(attempts-1), capped at MaxBackoff,
// with ±5% jitter, and never later than the expiry time (so expiry is
// noticed on time).
func (q *Queue) nextAttempt(env *mail.Envelope, now time.Time) time.Time {
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
