package queue

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
)

// A fresh message is leased at enqueue: while Run's scheduler takes
// messages and the backlog of ready has room, Enqueue writes the
// message's lease in its own transaction instead of a schedule entry and,
// once that is durable, hands the message to the scheduler through ready,
// which gives it to a worker without a transaction of its own. A crash
// before the delivery is recorded leaves the lease, which recoverLeases
// turns into a schedule entry at the next start, as it does any lease.
// The worker checks that the envelope is still the one Enqueue stored
// (not held, removed or changed by an administrator meanwhile) before it
// delivers. See RATIONALE.md "Queue: lease at enqueue".

// readyBacklog is how many fresh messages wait in memory for a worker,
// leased, before Enqueue falls back to a schedule entry that the
// scheduler finds by scanning.
const readyBacklog = 4096

// A message handed over keeps its body in memory, so that its worker need
// not read it back, when the body's array (the caller's buffer) takes at
// most handBodyMax bytes and those of the bodies waiting in ready stay
// within handBodyBudget bytes.
const (
	handBodyMax    = 256 << 10
	handBodyBudget = 4 << 20
)

// handed is a message leased at enqueue, on its way to a worker; a nil
// env is a reservation whose enqueue failed.
type handed struct {
	job
	// kept is the body memory the reservation counted in handBytes.
	kept int
}

// job is a leased message for a worker.
type job struct {
	// env is the envelope as the lease read it, or as Enqueue stored it.
	env *mail.Envelope
	// stored is set for a message leased at enqueue: the encoding Enqueue
	// stored, which the worker compares with what is stored now.
	stored []byte
	// body, when set, is the body Enqueue stored, and gen the value of
	// q.gen before it committed: while q.gen has not moved, no
	// administrator has changed the message, and the worker uses env and
	// body without reading the database.
	body []byte
	gen  uint64
}

// reserveHandOff reserves a place in ready for a message about to be
// enqueued whose body takes size bytes of memory; it reports false when
// the scheduler does not take messages (before Run, after Drain) or the
// backlog is full, and whether the body may be kept in memory. A
// reservation is ended by exactly one handOver.
func (q *Queue) reserveHandOff(size int) (ok, keep bool) {
	q.handMu.Lock()
	defer q.handMu.Unlock()
	if !q.handOn || q.handN >= readyBacklog {
		return false, false
	}
	q.handN++
	if size <= handBodyMax && q.handBytes+size <= handBodyBudget {
		q.handBytes += size
		keep = true
	}
	return true, keep
}

// handOver ends a reservation: it gives the scheduler the message j.env,
// stored (durably, or at least committed) with its lease, or, with j.env
// nil, tells it that the enqueue failed. kept is the body memory the
// reservation counted.
func (q *Queue) handOver(j job, kept int) {
	if j.env != nil {
		j.env = cloneEnvelope(j.env) // the caller keeps its envelope
	}
	q.ready <- handed{j, kept} // never blocks: the reservation holds a place
	q.nudge()
}

// tookHanded frees the place of h, which the scheduler received.
func (q *Queue) tookHanded(h handed) {
	q.handMu.Lock()
	q.handN--
	q.handBytes -= h.kept
	q.handMu.Unlock()
}

// startHandOff has Enqueue lease fresh messages to the scheduler (Run).
func (q *Queue) startHandOff() {
	q.handMu.Lock()
	q.handOn = true
	q.handMu.Unlock()
}

// endHandOff stops leasing at enqueue once the scheduler has stopped, and
// makes every message handed to it but not taken (and those of enqueues
// still in flight) due at once again, as a lease cut short is.
func (q *Queue) endHandOff() {
	q.handMu.Lock()
	q.handOn = false
	n := q.handN
	q.handMu.Unlock()
	for range n {
		h := <-q.ready
		q.tookHanded(h)
		if h.env != nil {
			q.unlease(h.env.ID)
		}
	}
}

// startLeased reads what a worker needs to deliver the leased message of
// j: its body and its envelope. The envelope of a message leased at
// enqueue is the one Enqueue stored unless an administrator changed it
// since (then the one stored now: the caller must not deliver a held
// one); while no administrator's operation has committed since the
// enqueue (q.gen), it is that one for sure, and a kept body is used as
// it is. ErrNotFound: the message has gone.
func (q *Queue) startLeased(j job) (*mail.Envelope, []byte, error) {
	if j.body != nil && q.gen.Load() == j.gen {
		return j.env, j.body, nil
	}
	env := j.env
	var body []byte
	err := q.db.View(func(txn *badger.Txn) error {
		var err error
		if j.stored != nil {
			if env, err = getEnvelopeKnown(txn, env.ID, env, j.stored); err != nil {
				return err
			}
		}
		body, err = getBody(txn, env.ID)
		return err
	})
	return env, body, err
}

// cloneEnvelope copies env deep enough that a change to the copy's
// recipients or notes (as record and a deliverer may make) leaves env as
// it was.
func cloneEnvelope(env *mail.Envelope) *mail.Envelope {
	c := *env
	c.Rcpts = slices.Clone(env.Rcpts)
	c.Notes = maps.Clone(env.Notes)
	return &c
}

// getEnvelopeKnown is getEnvelope for a caller that knows an envelope of
// id, known, and its encoding enc (nil: none): when the envelope stored is
// still that, it returns a copy of known instead of decoding it again.
func getEnvelopeKnown(txn *badger.Txn, id string, known *mail.Envelope, enc []byte) (*mail.Envelope, error) {
	if enc == nil {
		return getEnvelope(txn, id)
	}
	item, err := txn.Get(msgKey(id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var env *mail.Envelope
	err = item.Value(func(v []byte) error {
		if bytes.Equal(v, enc) {
			env = cloneEnvelope(known)
			return nil
		}
		env = new(mail.Envelope)
		return decodeEnvelope(v, env)
	})
	if err != nil {
		return nil, fmt.Errorf("decode envelope %s: %w", id, err)
	}
	return env, nil
}
