package queue

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sluice-mta/sluice/core/mail"
)

// Run schedules and delivers due messages with Options.Workers concurrent
// workers and collects value-log garbage every Options.GCInterval, until
// ctx is done (or Close or Drain is called). Deliveries in flight are then
// cancelled: what they had not delivered is released, due again at once,
// at the next Run. Each delivery uses the deliverer set last
// (SetDeliverer may be called while Run runs).
func (q *Queue) Run(ctx context.Context) error {
	if q.getDeliverer() == nil {
		return errors.New("queue: no deliverer set; call SetDeliverer before Run")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// sched stops leasing (Drain) before the deliveries are cancelled.
	sched, stopSched := context.WithCancel(ctx)
	defer stopSched()
	done := make(chan struct{})
	defer close(done)
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return errors.New("queue: Run called after Close")
	}
	if q.cancelRun != nil {
		q.mu.Unlock()
		return errors.New("queue: Run called twice")
	}
	q.cancelRun, q.stopSched, q.runDone = cancel, stopSched, done
	q.drained = DrainStats{}
	q.leasingStopped.Store(false)
	q.mu.Unlock()

	var wg sync.WaitGroup
	jobs := make(chan job)                      // leased messages
	busy := make(chan struct{}, q.opts.Workers) // one token per busy worker
	for range q.opts.Workers {
		wg.Go(func() {
			for j := range jobs {
				retry := q.deliver(ctx, q.getDeliverer(), j)
				if sched.Err() != nil { // finished during a drain, or cut short
					q.countDrained(ctx.Err() != nil)
				}
				<-busy
				if retry.IsZero() {
					q.nudge() // a worker is free
				} else {
					q.wakeAt(retry)
				}
			}
		})
	}
	wg.Go(func() { q.gcLoop(sched) })

	q.startHandOff()
	q.schedule(sched, jobs, busy)
	q.endHandOff()
	close(jobs)
	wg.Wait()
	return nil
}

// schedule leases due messages to idle workers: fresh ones Enqueue leased
// and handed over first, then, when something else may be due (a kick,
// the next due time reached, a scan that filled every free worker), what
// a scan of the schedule index finds. It sleeps until the next due time or a wake-up.
func (q *Queue) schedule(ctx context.Context, jobs chan<- job, busy chan struct{}) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	q.rescan.Store(true) // whatever was due before Run
	var next time.Time   // the next due time the last scan saw; zero if none
	// give hands a leased message to a worker; a free one is waiting.
	give := func(j job) {
		busy <- struct{}{}
		select {
		case jobs <- j:
		case <-ctx.Done():
			q.unlease(j.env.ID) // no worker will have it
		}
	}
	// take leases e and hands it to a worker; it reports false when the
	// entry was gone, held or could not be leased.
	take := func(e schedEntry) bool {
		env, err := q.lease(e)
		switch {
		case errors.Is(err, badger.ErrConflict):
			q.rescan.Store(true) // changed under us: look again
			return false
		case err != nil:
			q.log.Error("queue: lease failed", "id", e.id, "err", err)
			return false
		case env == nil:
			return false
		}
		give(job{env: env})
		return true
	}
	for {
		if ctx.Err() != nil {
			return
		}
		if s := q.soonest.Swap(0); s != 0 { // a retry scheduled since (wakeAt)
			if t := time.Unix(0, int64(s)); next.IsZero() || t.Before(next) {
				next = t
			}
		}
		free := cap(busy) - len(busy)
	fresh:
		for free > 0 {
			select {
			case h := <-q.ready:
				q.tookHanded(h)
				if h.env != nil { // leased at enqueue
					give(h.job)
					free--
				}
			default:
				break fresh
			}
		}
		if free > 0 && (q.rescan.Swap(false) || (!next.IsZero() && !next.After(q.opts.Now()))) {
			var ids []schedEntry
			var err error
			next, ids, err = q.due(free)
			if err != nil {
				q.log.Error("queue: scan schedule failed; retrying in a second", "err", err)
				next = q.opts.Now().Add(time.Second)
			}
			if len(ids) == free {
				q.rescan.Store(true) // there may be more than we could take
			}
			for _, e := range ids {
				if take(e) {
					free--
				}
			}
		}
		wait := time.Duration(-1)
		switch {
		case free == 0:
			// A finishing worker nudges.
		case q.rescan.Load() || len(q.ready) > 0:
			wait = 0
		case !next.IsZero():
			wait = max(next.Sub(q.opts.Now()), 0)
		}
		if wait >= 0 {
			timer.Reset(wait)
		}
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// schedEntry is one schedule index entry.
type schedEntry struct {
	id  string
	key []byte
}

// due returns up to limit entries due now, in due order, and when fewer are
// due, the due time of the next scheduled message (zero if none). It seeks
// past the entries leased since (see schedLow), so its cost is the entries
// it returns, not the queue's depth or the traffic.
func (q *Queue) due(limit int) (time.Time, []schedEntry, error) {
	if q.opts.onScan != nil {
		q.opts.onScan()
	}
	start := q.low.begin()
	now := dueNanos(q.opts.Now())
	var ids []schedEntry
	var next time.Time
	first := uint64(math.MaxUint64)
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixSched)})
		defer it.Close()
		for it.Seek(schedSeekKey(start)); it.Valid(); it.Next() {
			t, id, ok := parseSchedKey(it.Item().Key())
			if !ok {
				continue
			}
			first = min(first, dueNanos(t))
			if dueNanos(t) > now {
				next = t
				return nil
			}
			if len(ids) == limit {
				return nil
			}
			ids = append(ids, schedEntry{id, it.Item().KeyCopy(nil)})
		}
		return nil
	})
	if err != nil {
		q.low.seen(start) // look there again
		return next, ids, err
	}
	q.low.seen(first)
	return next, ids, err
}

// lease moves a schedule entry to a lease so no other worker takes the
// message, and returns the message's envelope as the lease read it. It
// returns nil when the entry is gone or stray (then removed) or the
// message is held, and badger.ErrConflict when it changed meanwhile.
func (q *Queue) lease(e schedEntry) (*mail.Envelope, error) {
	now := q.opts.Now()
	var leased *mail.Envelope
	stray := false
	var fx *effects
	err := q.updateDB(func(txn *badger.Txn) error {
		fx = new(effects)
		leased = nil
		if _, err := txn.Get(e.key); err != nil {
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			return err
		}
		if err := txn.Delete(e.key); err != nil {
			return err
		}
		env, err := getEnvelope(txn, e.id)
		if errors.Is(err, ErrNotFound) {
			stray = true
			return nil
		}
		if err != nil {
			return err
		}
		if env.Held {
			// A held message's entry is its expiry (HoldLifetime, which
			// a reload may have changed since).
			was, _, err := storedEntries(txn, env)
			if err != nil {
				return err
			}
			switch {
			case q.holdExpired(env, now):
				return q.expireHeld(txn, fx, was, env, now)
			case q.opts.HoldLifetime > 0:
				env.NextAttempt = env.HeldAt.Add(q.opts.HoldLifetime)
				if err := q.setSched(txn, env.NextAttempt, e.id); err != nil {
					return err
				}
				return putEnvelope(txn, was, env)
			}
			return nil
		}
		leased = env
		return txn.Set(leaseKey(e.id), indexedLease(now))
	})
	if err != nil {
		return nil, err
	}
	q.do(fx)
	if stray {
		q.log.Warn("queue: dropped a schedule entry without envelope", "id", e.id)
	}
	return leased, nil
}

// gcLoop runs value-log garbage collection every GCInterval and, every
// vlogTrimInterval, drops the pages of the rotated value-log files from
// the process's mappings (trimVlog). Both run here, on one goroutine, so
// that no trim runs while a file that GC rewrote may still be unmapped.
func (q *Queue) gcLoop(ctx context.Context) {
	gc := time.NewTicker(q.opts.GCInterval)
	defer gc.Stop()
	every := q.opts.vlogTrim
	if every <= 0 {
		every = vlogTrimInterval
	}
	trim := time.NewTicker(every)
	defer trim.Stop()
	// A GC pass that rewrote n files deletes them, at once or when the
	// last open iterator closes; until n of the files mapped before it
	// (before) are unmapped, trimming waits.
	var before map[int64]bool
	n := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-gc.C:
			if n > 0 {
				break // the last pass's files are not gone yet
			}
			before = make(map[int64]bool)
			for _, m := range vlogMappings(q.opts.Dir) {
				before[m.fid] = true
			}
			n = q.runGC(ctx)
			continue
		case <-trim.C:
		}
		maps := vlogMappings(q.opts.Dir)
		if n > 0 {
			still := make(map[int64]bool)
			for _, m := range maps {
				if before[m.fid] {
					still[m.fid] = true
				}
			}
			if len(still) > len(before)-n {
				continue
			}
			n = 0
		}
		trimVlog(maps)
	}
}

// runGC rewrites value-log files while Badger finds one at least half
// garbage, and returns how many it rewrote.
func (q *Queue) runGC(ctx context.Context) int {
	n := 0
	for ctx.Err() == nil {
		err := q.db.RunValueLogGC(0.5)
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				q.log.Warn("queue: value-log GC failed", "err", err)
			}
			break
		}
		n++
	}
	if n > 0 {
		q.log.Info("queue: value-log GC rewrote files", "files", n)
	}
	return n
}

// DrainStats is what Drain did with the deliveries in flight.
type DrainStats struct {
	// Finished deliveries ran to their end during the drain.
	Finished int
	// Released ones were cancelled at the drain's deadline; their
	// recipients without a result are due again at once, at the next Run.
	Released int
}

// Drain stops Run gracefully: no message is leased any more, and the
// deliveries in flight may finish until ctx is done, after which they are
// cancelled and released. It returns when Run has returned (at once when
// Run is not running), with what became of the deliveries.
func (q *Queue) Drain(ctx context.Context) DrainStats {
	q.mu.Lock()
	stop, cancel, done := q.stopSched, q.cancelRun, q.runDone
	q.mu.Unlock()
	if done == nil {
		return DrainStats{}
	}
	stop()
	q.leasingStopped.Store(true)
	select {
	case <-done:
	case <-ctx.Done():
		cancel()
		<-done
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.drained
}

// countDrained counts a delivery that ended after leasing stopped.
func (q *Queue) countDrained(cut bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if cut {
		q.drained.Released++
	} else {
		q.drained.Finished++
	}
}

// unlease ends the lease of a message no worker delivers now: it is due
// at once again, or, held meanwhile, keeps the schedule entry Hold gave it
// (its expiry, if any). It reports whether the message is due.
func (q *Queue) unlease(id string) bool {
	var outcome string
	err := q.commit(context.Background(), func(txn *badger.Txn) (err error) {
		outcome, err = q.endLease(txn, id)
		return err
	})
	if err != nil {
		q.log.Error("queue: releasing a lease failed; the message is due at the next start", "id", id, "err", err)
		return false
	}
	return outcome == leaseDue
}

// What endLease did with a leased message.
const (
	leaseDue  = "due now"
	leaseHeld = "still held"
	leaseGone = "message gone"
)

// endLease deletes the lease of message id, which no worker delivers:
// the message is due now (leaseDue) or, held meanwhile, keeps the schedule
// entry Hold gave it (leaseHeld); one leased at enqueue gets its index
// entries here. An envelope gone leaves only the lease to delete
// (leaseGone). Used by unlease at a stop and recoverLeases at a start.
func (q *Queue) endLease(txn *badger.Txn, id string) (string, error) {
	env, err := getEnvelope(txn, id)
	if errors.Is(err, ErrNotFound) {
		return leaseGone, txn.Delete(leaseKey(id))
	}
	if err != nil {
		return "", err
	}
	was, _, err := storedEntries(txn, env)
	if err != nil {
		return "", err
	}
	if err := txn.Delete(leaseKey(id)); err != nil {
		return "", err
	}
	if env.Held {
		return leaseHeld, writeIndex(txn, was, ixEntries(env))
	}
	return leaseDue, q.dueNow(txn, was, env)
}

// dueNow schedules env, leased and stored with index entries was, for now
// (unless it is held).
func (q *Queue) dueNow(txn *badger.Txn, was []ixEntry, env *mail.Envelope) error {
	env.NextAttempt = q.opts.Now()
	if err := putEnvelope(txn, was, env); err != nil {
		return err
	}
	if env.Held {
		return nil
	}
	return q.setSched(txn, env.NextAttempt, env.ID)
}
