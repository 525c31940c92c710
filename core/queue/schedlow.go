package queue

import (
	"encoding/binary"
	"math"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// schedLow is where the scheduler's scan of the schedule index starts.
// Each lease deletes a schedule entry, and Badger keeps the tombstone
// until a compaction drops it; a scan from the start of the index would
// step over every message leased since, on every tick, so its cost would
// grow with the traffic and the queue. Instead the scan seeks to the due
// time of the first live entry the last scan saw, lowered by every entry
// written since that scan began.
//
// An entry is accounted for once its transaction has committed (a
// transaction that has not committed is invisible to the scan anyway):
// committed lowers pending, which the next scan takes in before it opens
// its snapshot. An entry committed after a scan began is therefore either
// in that scan's snapshot (and the scan started at or before it: it was
// committed before pending was taken) or in pending for the next scan.
type schedLow struct {
	mu      sync.Mutex
	low     uint64                 // no live entry is due before it, but those in pending
	pending uint64                 // earliest entry committed since the last scan began
	open    map[*badger.Txn]uint64 // earliest entry written by each open transaction
}

func newSchedLow() *schedLow {
	return &schedLow{pending: math.MaxUint64, open: map[*badger.Txn]uint64{}}
}

// wrote notes that txn writes a schedule entry due at t.
func (s *schedLow) wrote(txn *badger.Txn, t time.Time) {
	n := dueNanos(t)
	s.mu.Lock()
	if v, ok := s.open[txn]; !ok || n < v {
		s.open[txn] = n
	}
	s.mu.Unlock()
}

// done ends txn: its entries count from now on when it committed.
func (s *schedLow) done(txn *badger.Txn, committed bool) {
	s.mu.Lock()
	if n, ok := s.open[txn]; ok {
		delete(s.open, txn)
		if committed {
			s.pending = min(s.pending, n)
		}
	}
	s.mu.Unlock()
}

// begin starts a scan: it returns where to seek to. Call it before opening
// the scan's snapshot.
func (s *schedLow) begin() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := min(s.low, s.pending)
	s.pending = math.MaxUint64
	return start
}

// seen ends a scan that began at start and found its first live entry
// due at first (math.MaxUint64: none).
func (s *schedLow) seen(first uint64) {
	s.mu.Lock()
	s.low = first
	s.mu.Unlock()
}

// schedSeekKey is the first possible schedule key due at n.
func schedSeekKey(n uint64) []byte {
	k := make([]byte, len(prefixSched)+8)
	copy(k, prefixSched)
	binary.BigEndian.PutUint64(k[len(prefixSched):], n)
	return k
}

// setSched writes the schedule entry of id due at t.
func (q *Queue) setSched(txn *badger.Txn, t time.Time, id string) error {
	q.low.wrote(txn, t)
	return txn.Set(schedKey(t, id), nil)
}

// updateDB runs fn in a read-write transaction and commits it, as
// badger.DB.Update does, and tells the scan's start of the schedule
// entries it wrote.
func (q *Queue) updateDB(fn func(txn *badger.Txn) error) error {
	if q.db.IsClosed() {
		return badger.ErrDBClosed
	}
	txn := q.db.NewTransaction(true)
	committed := false
	defer func() {
		txn.Discard()
		q.low.done(txn, committed)
	}()
	if err := fn(txn); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return err
	}
	committed = true
	return nil
}
