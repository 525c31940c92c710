package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/dsn"
	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/core/mail"
)

// Enqueue stores a new message and returns its ID once the message is
// durable on disk. It keeps an ID the caller took from NewID (or assigns
// one) and sets env's Received, NextAttempt (now) and Size. The queue may
// keep body (to deliver it without reading it back): the caller must not
// change it afterwards.
func (q *Queue) Enqueue(ctx context.Context, env *mail.Envelope, body []byte) (string, error) {
	if env == nil || len(env.Rcpts) == 0 {
		return "", errors.New("queue: message has no recipients")
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	now := q.opts.Now()
	if env.ID == "" {
		env.ID = q.ids.next(now)
	}
	env.Received = now
	env.NextAttempt = now
	env.Size = int64(len(body))
	// Lease the message to the scheduler in this transaction (handoff.go)
	// when it takes messages and has room for it.
	hand, keep := false, false
	if !env.Held {
		// The memory kept is the body's array (the caller's buffer).
		hand, keep = q.reserveHandOff(cap(body))
	}
	j := job{gen: q.gen.Load()}
	t0 := time.Now()
	err := q.commit(ctx, func(txn *badger.Txn) error {
		var err error
		j.stored, err = q.insert(txn, env, body, hand)
		return err
	})
	committed := err == nil
	if committed && !q.opts.badgerSyncWrites {
		err = q.gs.wait()
	}
	kept := 0
	if hand {
		if committed {
			j.env = env
		}
		if keep {
			kept = cap(body)
			if committed {
				j.body = body[:len(body):len(body)] // appending copies
			}
		}
	}
	if err != nil {
		if hand {
			// Committed but not synced, it is delivered all the same, as
			// a scan would find its schedule entry.
			q.handOver(j, kept)
		}
		return "", fmt.Errorf("queue: store message in %s: %w (check free disk space)", q.opts.Dir, err)
	}
	q.observeCommit(time.Since(t0))
	// With ctx: a message taken over SMTP names its session (core/logctx).
	logctx.InfoAttrs(ctx, q.log, "queued", slog.String("id", env.ID), slog.String("from", env.From),
		slog.Int("rcpts", len(env.Rcpts)), slog.Int64("size", env.Size))
	switch {
	case hand:
		q.handOver(j, kept)
	case !env.Held:
		q.kick() // its schedule entry is due
	}
	return env.ID, nil
}

// DB returns the queue's Badger database, for stores that share it under
// their own key prefix (the plugins' key-value store uses "kv/").
func (q *Queue) DB() *badger.DB { return q.db }

// NewID returns a fresh queue ID: unique, and ordered by time.
func (q *Queue) NewID() string { return q.ids.next(q.opts.Now()) }

// insert writes the body, the envelope and either the schedule entry of
// a new message or, with leased, its lease (handoff.go); it returns the
// envelope's encoding.
func (q *Queue) insert(txn *badger.Txn, env *mail.Envelope, body []byte, leased bool) ([]byte, error) {
	if err := txn.Set(bodyKey(env.ID), body); err != nil {
		return nil, err
	}
	if env.Held {
		return nil, q.held(txn, nil, env, env.HoldReason, env.Received)
	}
	if leased {
		// Without index entries, which its lease without value says
		// (index.go): most such messages are gone before they would
		// matter.
		stored, err := setEnvelope(txn, env)
		if err != nil {
			return nil, err
		}
		return stored, txn.Set(leaseKey(env.ID), nil)
	}
	stored, err := putEnvelopeEnc(txn, nil, env)
	if err != nil {
		return nil, err
	}
	return stored, q.setSched(txn, env.NextAttempt, env.ID)
}

// held puts env (stored with index entries was) on hold at now for reason
// (kept if it has one) and stores it: without a schedule entry until released, or, when held mail expires
// (HoldLifetime), scheduled at its expiry. The caller has removed any
// other schedule entry.
func (q *Queue) held(txn *badger.Txn, was []ixEntry, env *mail.Envelope, reason string, now time.Time) error {
	env.Held = true
	if env.HoldReason == "" {
		env.HoldReason = reason
	}
	if env.HeldAt.IsZero() {
		env.HeldAt = now
	}
	if q.opts.HoldLifetime > 0 {
		env.NextAttempt = env.HeldAt.Add(q.opts.HoldLifetime)
		if err := q.setSched(txn, env.NextAttempt, env.ID); err != nil {
			return err
		}
	}
	return putEnvelope(txn, was, env)
}

// holdExpired reports whether held env has passed its hold lifetime at now.
func (q *Queue) holdExpired(env *mail.Envelope, now time.Time) bool {
	return env.Held && q.opts.HoldLifetime > 0 && !now.Before(env.HeldAt.Add(q.opts.HoldLifetime))
}

// holdExpiredDSN is the status of the recipients of a held message not
// released within the hold lifetime.
const holdExpiredDSN = "5.7.1"

// expireHeld bounces the pending recipients of a held message whose hold
// lifetime has passed, with one DSN to the sender, and removes it (stored
// with index entries was).
func (q *Queue) expireHeld(txn *badger.Txn, fx *effects, was []ixEntry, env *mail.Envelope, now time.Time) error {
	body, err := getBody(txn, env.ID)
	if err != nil {
		return err
	}
	text := fmt.Sprintf("held and not released within %v", q.opts.HoldLifetime)
	if env.HoldReason != "" {
		text = fmt.Sprintf("held (%s) and not released within %v", env.HoldReason, q.opts.HoldLifetime)
	}
	delay := now.Sub(env.Received).Round(time.Second)
	var failed []dsn.Rcpt
	for _, r := range env.Pending() {
		r.State, r.DSNCode, r.LastError = mail.Failed, holdExpiredDSN, text
		q.logDelivery(fx, env.ID, r, delay, mail.Bounced, text)
		failed = append(failed, reportRcpt(r, "failed", 0, text))
	}
	if err := q.report(txn, fx, env, body, notifyFailure, failed, now); err != nil {
		return err
	}
	fx.info("removed", "id", env.ID, "reason", "hold expired")
	fx.kick = true
	return deleteMessage(txn, was, env)
}

// List returns every queued envelope, ordered by ID (arrival). It holds
// the whole queue in memory: the admin API and the CLI page through it
// with Page instead.
func (q *Queue) List(ctx context.Context) ([]mail.Envelope, error) {
	var out []mail.Envelope
	_, err := q.scan(ctx, "", 0, nil, func(env *mail.Envelope) bool {
		out = append(out, *env)
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("queue: list messages: %w", err)
	}
	return out, nil
}

// Get returns the message with the given ID, or ErrNotFound.
func (q *Queue) Get(ctx context.Context, id string) (*mail.Message, error) {
	var m *mail.Message
	err := q.db.View(func(txn *badger.Txn) error {
		env, err := getEnvelope(txn, id)
		if err != nil {
			return err
		}
		body, err := getBody(txn, id)
		if err != nil {
			return err
		}
		m = &mail.Message{Envelope: *env, Body: body}
		return nil
	})
	if err != nil {
		return nil, wrapID("get", id, err)
	}
	return m, nil
}

// body reads the message bytes of id (ErrNotFound when it is gone).
func (q *Queue) body(id string) ([]byte, error) {
	var body []byte
	err := q.db.View(func(txn *badger.Txn) error {
		var err error
		body, err = getBody(txn, id)
		return err
	})
	return body, err
}

// Hold keeps a message from being scheduled until Release. A delivery
// already in progress finishes, and the message is then not rescheduled.
func (q *Queue) Hold(ctx context.Context, id string) error {
	err := q.update(ctx, func(txn *badger.Txn) error {
		env, err := getEnvelope(txn, id)
		if err != nil {
			return err
		}
		if env.Held {
			return nil
		}
		now := q.opts.Now()
		was, lk, err := storedEntries(txn, env)
		if err != nil {
			return err
		}
		if err := keepLease(txn, id, lk, now); err != nil {
			return err
		}
		if err := txn.Delete(schedKey(env.NextAttempt, id)); err != nil {
			return err
		}
		return q.held(txn, was, env, "held by the administrator", now)
	})
	if err != nil {
		return wrapID("hold", id, err)
	}
	q.log.Info("held", "id", id)
	return nil
}

// Release makes a held (or waiting) message due now.
func (q *Queue) Release(ctx context.Context, id string) error {
	err := q.update(ctx, func(txn *badger.Txn) error {
		env, err := getEnvelope(txn, id)
		if err != nil {
			return err
		}
		return q.makeDue(txn, env)
	})
	if err != nil {
		return wrapID("release", id, err)
	}
	q.log.Info("released", "id", id)
	q.kick()
	return nil
}

// makeDue clears env's hold and moves its schedule entry (a held
// message's is its expiry) to now, unless a worker holds it leased (the
// worker reschedules it when done: a leased message not held is left as
// it is).
func (q *Queue) makeDue(txn *badger.Txn, env *mail.Envelope) error {
	was, lk, err := storedEntries(txn, env)
	if err != nil {
		return err
	}
	if lk != notLeased && !env.Held {
		return nil
	}
	if err := keepLease(txn, env.ID, lk, q.opts.Now()); err != nil {
		return err
	}
	if err := txn.Delete(schedKey(env.NextAttempt, env.ID)); err != nil {
		return err
	}
	env.Held, env.HoldReason, env.HeldAt = false, "", time.Time{}
	if lk == notLeased {
		env.NextAttempt = q.opts.Now()
		if err := q.setSched(txn, env.NextAttempt, env.ID); err != nil {
			return err
		}
	}
	return putEnvelope(txn, was, env)
}

// Remove deletes a message and everything recorded about it.
func (q *Queue) Remove(ctx context.Context, id string) error {
	err := q.update(ctx, func(txn *badger.Txn) error {
		env, err := getEnvelope(txn, id)
		if err != nil {
			return err
		}
		was, _, err := storedEntries(txn, env)
		if err != nil {
			return err
		}
		return deleteMessage(txn, was, env)
	})
	if err != nil {
		return wrapID("remove", id, err)
	}
	q.log.Info("removed", "id", id)
	return nil
}

// Flush makes every message that is not held due now and wakes the
// scheduler.
func (q *Queue) Flush(ctx context.Context) error {
	const batch = 500
	now := q.opts.Now()
	var after []byte
	for {
		var ids []string
		err := q.db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSched)})
			defer it.Close()
			if after == nil {
				it.Rewind()
			} else {
				it.Seek(append(after, 0))
			}
			for ; it.Valid() && len(ids) < batch; it.Next() {
				k := it.Item().KeyCopy(nil)
				due, id, ok := parseSchedKey(k)
				if !ok {
					continue
				}
				if dueNanos(due) <= dueNanos(now) {
					// Already due; later keys may not be.
					after = k
					continue
				}
				ids = append(ids, id)
				after = k
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("queue: flush: %w", err)
		}
		if len(ids) == 0 {
			break
		}
		err = q.update(ctx, func(txn *badger.Txn) error {
			for _, id := range ids {
				env, err := getEnvelope(txn, id)
				if errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					return err
				}
				if env.Held {
					continue
				}
				if err := q.makeDue(txn, env); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("queue: flush: %w", err)
		}
	}
	q.log.Info("flushed")
	q.kick()
	return nil
}

func wrapID(op, id string, err error) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("queue: %s %s: %w", op, id, ErrNotFound)
	}
	return fmt.Errorf("queue: %s %s: %w", op, id, err)
}
