// Package queue is Sluice's durable mail queue: it accepts messages into a
// Badger database with one synced commit each (concurrent commits share
// their fsyncs), schedules them by due time, leases them to delivery
// workers, records per-recipient results, retries with backoff, expires old
// messages and bounces failures to the sender with a DSN.
//
// Keys are namespaced so each kind of record can be scanned by prefix:
//
//	m/<id>                        envelope (JSON)
//	b/<id>                        message bytes
//	s/<8-byte BE due nanos><id>   schedule index, in due order
//	l/<id>                        lease held by a worker
//	x/<kind><len><field><id>      listing index (index.go)
//	kv/…                          reserved for the plugin key-value store
package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/internal/badgerlog"
	"github.com/sluice-mta/sluice/core/mail"
)

// ErrNotFound is returned when no queued message has the given ID.
var ErrNotFound = errors.New("queue: message not found")

// Options configure a Queue.
type Options struct {
	// Dir is the Badger directory; it is created if missing.
	Dir string
	// Hostname names this MTA as the reporting MTA of bounces.
	Hostname string
	// MinBackoff is the delay after the first failed attempt; each further
	// attempt doubles it up to MaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxLifetime is how long a message may stay queued before its pending
	// recipients expire and are bounced.
	MaxLifetime time.Duration
	// HoldLifetime is how long a held message is kept: then its pending
	// recipients expire and are bounced with a DSN (as their NOTIFY
	// allows). Zero keeps held messages until they are released.
	HoldLifetime time.Duration
	// DelayWarning, when positive, sends the sender one "delayed" DSN once a
	// message has waited this long with recipients still pending (checked
	// at the first deferral after it passes, as Postfix does). Zero is off.
	DelayWarning time.Duration
	// Workers is the number of concurrent deliveries.
	Workers int
	// GCInterval is the value-log garbage collection period.
	GCInterval time.Duration
	// Deliverer delivers due messages; it may be set later with
	// SetDeliverer, before Run.
	Deliverer mail.Deliverer
	// Logger receives one line per event; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Observer is told of commits and delivery outcomes (metrics); nil
	// for none.
	Observer Observer

	// memTableSize overrides Badger's memtable size (tests force rotations).
	memTableSize int64
	// valueThreshold overrides which values go to the value log (benchmarks).
	valueThreshold int64
	// badgerSyncWrites turns on Badger's own per-commit sync instead of the
	// group commit (benchmark baseline).
	badgerSyncWrites bool
	// onFileSync, when set, is called with the path of every WAL,
	// value-log file and directory the group commit has made durable.
	onFileSync func(path string)
	// beforeSync, when set, runs at the start of every group sync, before
	// it looks at the directory (tests rotate a memtable there).
	beforeSync func()
	// scanBudget overrides how many envelopes one Page reads (tests).
	scanBudget int
	// listScan has listings read the envelopes in turn, as before the
	// index is complete, instead of seeking it (tests of the scan).
	listScan bool
	// inRecord, when set, runs inside the transaction that records a
	// delivery attempt, before it commits (tests force conflicts).
	inRecord func(id string)
	// onScan, when set, is called at each scan of the schedule index
	// (tests count them).
	onScan func()
	// vlogTrim overrides vlogTrimInterval (tests).
	vlogTrim time.Duration
	// vlogFileSize overrides valueLogFileSize (tests rotate files sooner).
	vlogFileSize int64
}

// Defaults used for zero Options fields.
const (
	defaultMinBackoff  = 5 * time.Minute
	defaultMaxBackoff  = time.Hour
	defaultMaxLifetime = 5 * 24 * time.Hour
	defaultWorkers     = 8
	defaultGCInterval  = 10 * time.Minute
	// vlogTrimInterval is how often the pages of the rotated value-log
	// files are dropped from the process's mappings (trimVlog).
	vlogTrimInterval = time.Second
	// bodyThreshold: values of at least this size (message bodies) go to the
	// value log; envelopes and index entries stay in the LSM tree. See
	// RATIONALE.md "Queue durability: group commit".
	bodyThreshold = 1 << 10
	// valueLogFileSize is small enough for value-log GC to reclaim space
	// soon after messages leave the queue, and bounds what the file being
	// written (mmapped, so resident) adds to the RSS.
	valueLogFileSize = 16 << 20
	// Badger's memory, sized for an MTA's small records rather than
	// Badger's defaults (a 64 MiB memtable, five of them, a 256 MiB block
	// cache): see RATIONALE.md "Memory". Each memtable is a Go allocation
	// of about memTableSize × 1.3 (Badger's batch slack), resident once
	// written; numMemtables of them may exist while flushes are behind,
	// and with GOGC 100 the heap grows to twice what is live before a
	// collection. 6 MiB (was 16, then 8): a flush writes the memtable
	// through a table builder whose arena starts at twice Badger's base
	// table size (4 MiB) and doubles, holding each 4 KiB block raw and
	// compressed (~2.2 × the table): an 8 MiB memtable (6.4 MB of table
	// under the bench's load) took 4 + 8 + 16 MiB, a 6 MiB one (4.8 MB)
	// fits in 4 + 8. Not smaller: a transaction may take 15 % of a
	// memtable (943 KB here), and Flush and FlushDomain rewrite 500
	// envelopes (each under bodyThreshold) in one. RATIONALE.md
	// "Memtables that fit the flush's arena".
	memTableSize = 6 << 20
	numMemtables = 3
	// blockCacheSize caches decompressed table blocks (envelopes and the
	// schedule index; bodies are in the value log, not cached).
	blockCacheSize = 16 << 20
	// numCompactors: two, Badger's minimum; compactions are few with the
	// bodies in the value log.
	numCompactors = 2
	// tableSizeMultiplier 1 keeps every table at Badger's 2 MiB base size
	// at every level: a compaction builds up to 13 tables at once, each
	// in a buffer twice its size, and with the default (2) the tables of
	// a deep queue's lower levels made a startup compaction take 900 MiB.
	tableSizeMultiplier = 1
)

// Queue is the durable message queue. Its methods are safe for concurrent
// use.
type Queue struct {
	opts Options
	db   *badger.DB
	log  *slog.Logger
	gs   *groupSync
	ids  idGen

	mu        sync.Mutex
	deliverer mail.Deliverer
	cancelRun context.CancelFunc
	stopSched context.CancelFunc // stops leasing (Drain)
	runDone   chan struct{}
	drained   DrainStats
	closed    bool
	// leasingStopped is set once Drain has stopped leasing.
	leasingStopped atomic.Bool

	// files is what the group commit syncs (syncfiles.go).
	files syncFiles

	// indexed is set once every envelope has its listing index entries
	// (index.go); ixStop and ixDone stop and await a rebuild of them.
	indexed atomic.Bool
	ixStop  context.CancelFunc
	ixDone  chan struct{}

	// wake nudges the scheduler (Flush, Release, Enqueue, a finished
	// delivery); it holds at most one pending signal.
	wake chan struct{}
	// rescan asks the scheduler to scan the schedule index: something may
	// be due that it has not been handed (kick sets it; nudge does not).
	rescan atomic.Bool
	// soonest is the earliest due time (dueNanos; 0: none) of the retries
	// scheduled since the scheduler last looked (wakeAt), so that it scans
	// when they are due rather than at once.
	soonest atomic.Uint64
	// ready hands messages leased at enqueue to the scheduler
	// (handoff.go); handN counts the places reserved in it, and handOn is
	// set while the scheduler takes them.
	ready  chan handed
	handMu sync.Mutex
	handN  int
	handOn bool
	// handBytes is the size of the bodies the messages in ready carry.
	handBytes int
	// gen counts the commits of update and updateFx: the administrator's
	// operations (and recoverLeases). Unchanged since before a message
	// was enqueued, it says that the message's envelope is as Enqueue
	// stored it (handoff.go).
	gen atomic.Uint64
	// low is where the scan of the schedule index starts.
	low *schedLow
}

// Open opens (or creates) the queue in opts.Dir. Messages that a previous
// process had leased to a worker become due at once: a crash loses nothing,
// though it may deliver a message twice.
func Open(ctx context.Context, opts Options) (*Queue, error) {
	if opts.Dir == "" {
		return nil, errors.New("queue: no directory configured; set the queue directory in the config")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("queue: create directory %s: %w (check its parent exists and is writable)", opts.Dir, err)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = defaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = defaultMaxBackoff
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = opts.MinBackoff
	}
	if opts.MaxLifetime <= 0 {
		opts.MaxLifetime = defaultMaxLifetime
	}
	if opts.Workers <= 0 {
		opts.Workers = defaultWorkers
	}
	if opts.GCInterval <= 0 {
		opts.GCInterval = defaultGCInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Hostname == "" {
		opts.Hostname, _ = os.Hostname()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}

	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("queue: directory %s: %w", opts.Dir, err)
	}
	opts.Dir = dir
	threshold := int64(bodyThreshold)
	if opts.valueThreshold > 0 {
		threshold = opts.valueThreshold
	}
	bo := badger.DefaultOptions(dir).
		WithSyncWrites(opts.badgerSyncWrites). // normally off: see groupSync
		WithValueThreshold(threshold).
		WithValueLogFileSize(valueLogFileSize).
		WithMemTableSize(memTableSize).
		WithNumMemtables(numMemtables).
		WithBlockCacheSize(blockCacheSize).
		WithNumCompactors(numCompactors).
		// Badger's own expvar counters: nothing reads them (core/metrics
		// counts what Sluice reports), and they cost a map update for every
		// LSM level each point read visits, more levels in a deep queue.
		WithMetricsEnabled(false).
		WithLogger(badgerlog.New(logger, "queue"))
	bo.TableSizeMultiplier = tableSizeMultiplier
	if opts.memTableSize > 0 {
		bo = bo.WithMemTableSize(opts.memTableSize)
	}
	if opts.vlogFileSize > 0 {
		bo = bo.WithValueLogFileSize(opts.vlogFileSize)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("queue: open database in %s: %w (check its permissions and that no other sluice process uses it)", dir, err)
	}
	q := &Queue{
		opts:      opts,
		db:        db,
		log:       logger,
		deliverer: opts.Deliverer,
		wake:      make(chan struct{}, 1),
		low:       newSchedLow(),
		ready:     make(chan handed, readyBacklog),
	}
	q.files.open(dir)
	q.gs = newGroupSync(q.syncAll)
	if err := q.recoverLeases(ctx); err != nil {
		q.gs.close()
		q.files.close()
		db.Close()
		return nil, err
	}
	if err := q.openIndex(ctx); err != nil {
		q.gs.close()
		q.files.close()
		db.Close()
		return nil, err
	}
	return q, nil
}

// SetDeliverer sets the Deliverer used by Run: before Run, or while it
// runs (a reload), for every delivery that starts afterwards.
func (q *Queue) SetDeliverer(d mail.Deliverer) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deliverer = d
}

func (q *Queue) getDeliverer() mail.Deliverer {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deliverer
}

// Close stops Run if it is still running, waits for it, and closes the
// database.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	cancel, done := q.cancelRun, q.runDone
	q.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	q.stopIndex()
	q.gs.close()
	q.files.close()
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("queue: close database in %s: %w", q.opts.Dir, err)
	}
	return nil
}

// kick wakes the scheduler without blocking.
func (q *Queue) kick() {
	q.rescan.Store(true)
	q.nudge()
}

// wakeAt tells the scheduler that a schedule entry due at t has been
// committed (a retry): it scans by t, not at once, unless t has come. A
// deferral thus costs no scan of the schedule index (whose cost, though
// not proportional, grows with the queue's LSM levels); the scan at t
// finds the entry, since it was written before.
func (q *Queue) wakeAt(t time.Time) {
	if !t.After(q.opts.Now()) {
		q.kick()
		return
	}
	n := dueNanos(t)
	for {
		cur := q.soonest.Load()
		if (cur != 0 && cur <= n) || q.soonest.CompareAndSwap(cur, n) {
			break
		}
	}
	q.nudge()
}

// nudge wakes the scheduler without asking for a scan: a worker is free,
// or a fresh message waits in ready.
func (q *Queue) nudge() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// recoverLeases makes every message leased by a previous process due now.
func (q *Queue) recoverLeases(ctx context.Context) error {
	var ids []string
	err := q.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(prefixLease)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			ids = append(ids, string(it.Item().Key()[len(prefixLease):]))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("queue: scan leases in %s: %w", q.opts.Dir, err)
	}
	for _, id := range ids {
		var outcome string // what became of the leased message, for the log
		err := q.update(ctx, func(txn *badger.Txn) (err error) {
			outcome, err = q.endLease(txn, id)
			return err
		})
		if err != nil {
			return fmt.Errorf("queue: recover lease of %s: %w", id, err)
		}
		q.log.Info("lease recovered, "+outcome, "id", id)
	}
	return nil
}

// update runs fn in a read-write transaction, retrying on conflicts, and
// returns once the commit is durable. fn may run more than once: it must
// not log or notify (see updateFx).
func (q *Queue) update(ctx context.Context, fn func(txn *badger.Txn) error) error {
	return q.updateFx(ctx, func(txn *badger.Txn, _ *effects) error { return fn(txn) })
}

// commit runs fn in a read-write transaction, retrying on conflicts, and
// returns once Badger has applied it, without waiting for it to be synced.
// fn runs again after a conflict (see commitFx).
func (q *Queue) commit(ctx context.Context, fn func(txn *badger.Txn) error) error {
	for {
		err := q.updateDB(fn)
		if !errors.Is(err, badger.ErrConflict) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}
