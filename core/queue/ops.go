package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/dsn"
	"github.com/sluice-mta/sluice/core/mail"
)

// Administrative bounces fail every pending recipient with this status.
const (
	adminBounceDSN  = "5.0.0"
	adminBounceText = "bounced by the administrator"
)

// FlushDomain makes due now every message that is not held and has a
// pending recipient in domain (compared without regard to case or a
// trailing dot), and wakes the scheduler. An empty domain flushes every
// message, as Flush does.
func (q *Queue) FlushDomain(ctx context.Context, domain string) error {
	// An operator may write "@Example.COM." or " example.com ".
	domain = mail.NormDomain(strings.TrimPrefix(strings.TrimSpace(domain), "@"))
	if domain == "" {
		return q.Flush(ctx)
	}
	// Collect the IDs page by page: a deep queue's envelopes are not held
	// in memory at once.
	var ids []string
	f := newFilter(ListOptions{Domain: domain})
	after := ""
	for {
		next, err := q.find(ctx, after, &f, func(env *mail.Envelope) bool {
			if !env.Held {
				ids = append(ids, env.ID)
			}
			return true
		})
		if err != nil {
			return fmt.Errorf("queue: flush %s: %w", domain, err)
		}
		if next == "" {
			break
		}
		after = next
	}
	const batch = 500
	for len(ids) > 0 {
		n := min(len(ids), batch)
		err := q.update(ctx, func(txn *badger.Txn) error {
			for _, id := range ids[:n] {
				env, err := getEnvelope(txn, id)
				if errors.Is(err, ErrNotFound) {
					continue // delivered or removed meanwhile
				}
				if err != nil {
					return err
				}
				if env.Held || !hasPendingIn(env, domain) {
					continue
				}
				if err := q.makeDue(txn, env); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("queue: flush %s: %w", domain, err)
		}
		ids = ids[n:]
	}
	q.log.Info("flushed", "domain", domain)
	q.kick()
	return nil
}

// hasPendingIn reports whether env has a pending recipient in domain
// (normalised, not empty).
func hasPendingIn(env *mail.Envelope, domain string) bool {
	for _, r := range env.Pending() {
		if mail.Domain(r.Addr) == domain {
			return true
		}
	}
	return false
}

// Bounce fails every pending recipient of message id at once with 5.0.0
// "bounced by the administrator", sends the sender one DSN naming them
// (as their NOTIFY allows; never to the null sender) and removes the
// message. A delivery already in progress finishes; its results are
// dropped, so a recipient it reaches may also be named in the DSN.
func (q *Queue) Bounce(ctx context.Context, id string) error {
	err := q.updateFx(ctx, func(txn *badger.Txn, fx *effects) error {
		env, err := getEnvelope(txn, id)
		if err != nil {
			return err
		}
		was, _, err := storedEntries(txn, env) // before the recipients fail
		if err != nil {
			return err
		}
		body, err := getBody(txn, id)
		if err != nil {
			return err
		}
		now := q.opts.Now()
		delay := now.Sub(env.Received).Round(time.Second)
		var failed []dsn.Rcpt
		for _, r := range env.Pending() {
			r.State, r.DSNCode, r.LastError = mail.Failed, adminBounceDSN, adminBounceText
			q.logDelivery(fx, id, r, delay, mail.Bounced, adminBounceText)
			failed = append(failed, reportRcpt(r, "failed", 0, adminBounceText))
		}
		if err := q.report(txn, fx, env, body, notifyFailure, failed, now); err != nil {
			return err
		}
		fx.info("removed", "id", id, "reason", "bounced by the administrator")
		fx.kick = true
		return deleteMessage(txn, was, env)
	})
	if err != nil {
		return wrapID("bounce", id, err)
	}
	return nil
}
