// Package kvstore is the plugins' persistent key-value store: values with an
// optional time to live and atomic integer counters, kept in a Badger
// database under the key prefix "kv/" — one of its own (Open: the server's
// data_dir/kv), or one the caller shares with it (New) — or in Redis
// (NewRedis). Migrate moves the records out of the queue's database, where
// earlier versions kept them.
//
// Writes here are ordinary Badger commits, never synced: they hold
// rate-limit counters and greylisting marks, which a power loss may lose
// without harm, so the store never waits for an fsync.
//
// Expiry has Badger's one-second resolution. A TTL is rounded up to the next
// whole second, so a key lives at least as long as asked and at most about
// one second longer.
package kvstore

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Prefix is the key prefix of every record the store writes.
const Prefix = "kv/"

// stripes is the number of locks Incr spreads keys over.
const stripes = 64

// Store is the key-value store; it is safe for concurrent use.
type Store struct {
	db   *badger.DB
	seed maphash.Seed
	// locks serialise Incr calls on the same key within this process, so they
	// do not fight over Badger's conflict detection; commits from elsewhere
	// are still caught by it and retried.
	locks [stripes]sync.Mutex
	// now is the clock for expiry times.
	now func() time.Time
	// owned is set when Open opened db, which Close then closes.
	owned bool
}

// New returns a Store over db, which the caller opened (normally the queue's
// database) and closes.
func New(db *badger.DB) *Store {
	return &Store{db: db, seed: maphash.MakeSeed(), now: time.Now}
}

// lock is the stripe lock of key.
func (s *Store) lock(key string) *sync.Mutex { return &s.locks[maphash.String(s.seed, key)%stripes] }

func dbKey(key string) []byte { return []byte(Prefix + key) }

// expiresAt is the Badger expiry (Unix seconds) of a key written now with
// ttl: 0 for none, otherwise rounded up to the next whole second.
func (s *Store) expiresAt(ttl time.Duration) (uint64, error) {
	if ttl < 0 {
		return 0, fmt.Errorf("kvstore: negative TTL %v; use 0 for a key that never expires", ttl)
	}
	if ttl == 0 {
		return 0, nil
	}
	end := s.now().Add(ttl)
	sec := end.Unix()
	if end.Nanosecond() > 0 {
		sec++
	}
	return uint64(sec), nil
}

// Get returns the value of key and whether it exists; an expired key does
// not.
func (s *Store) Get(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	var val []byte
	err := s.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(dbKey(key))
		if err != nil {
			return err
		}
		val, err = item.ValueCopy(nil)
		return err
	})
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("kvstore: get %q: %w", key, err)
	}
	return val, true, nil
}

// GetMany returns the values of keys in one read transaction: nil for a
// missing or expired key, a non-nil slice for a present one.
func (s *Store) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([][]byte, len(keys))
	err := s.db.View(func(txn *badger.Txn) error {
		for i, key := range keys {
			item, err := txn.Get(dbKey(key))
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("kvstore: get %q: %w", key, err)
			}
			if out[i], err = item.ValueCopy(nil); err != nil {
				return fmt.Errorf("kvstore: get %q: %w", key, err)
			}
			if out[i] == nil {
				out[i] = []byte{}
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Keys lists the keys that start with prefix and have not expired, in
// key order.
func (s *Store) Keys(ctx context.Context, prefix string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []string
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: dbKey(prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			out = append(out, string(it.Item().Key()[len(Prefix):]))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("kvstore: keys %q: %w", prefix, err)
	}
	return out, nil
}

// Set stores value under key, replacing any earlier value and its TTL. A
// ttl of 0 keeps the key until it is deleted.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	exp, err := s.expiresAt(ttl)
	if err != nil {
		return err
	}
	e := badger.NewEntry(dbKey(key), value)
	e.ExpiresAt = exp
	// Under the key's lock, so that an Incr in a database without
	// conflict detection (Open) does not count over it.
	mu := s.lock(key)
	mu.Lock()
	defer mu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.SetEntry(e) }); err != nil {
		return fmt.Errorf("kvstore: set %q: %w", key, err)
	}
	return nil
}

// IncrMany adds deltas[i] to the counter under keys[i], with ttls[i] for a
// counter it creates, for every i, as Incr does each, in one Badger
// transaction: the counts are all made or, on an error, none. It returns
// the new values in order; a key listed twice is counted twice. It is
// atomic as Incr is.
func (s *Store) IncrMany(ctx context.Context, keys []string, deltas []int64, ttls []time.Duration) ([]int64, error) {
	if len(deltas) != len(keys) || len(ttls) != len(keys) {
		return nil, fmt.Errorf("kvstore: incr of %d keys with %d deltas and %d TTLs", len(keys), len(deltas), len(ttls))
	}
	exps := make([]uint64, len(keys))
	var held [stripes]bool
	for i, key := range keys {
		exp, err := s.expiresAt(ttls[i])
		if err != nil {
			return nil, err
		}
		exps[i] = exp
		held[maphash.String(s.seed, key)%stripes] = true
	}
	// The stripes in their order, so that two calls never wait for each
	// other's.
	for i := range held {
		if held[i] {
			s.locks[i].Lock()
			defer s.locks[i].Unlock()
		}
	}
	out := make([]int64, len(keys))
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := s.db.Update(func(txn *badger.Txn) error {
			for i, key := range keys {
				n, err := incrIn(txn, key, deltas[i], exps[i])
				if err != nil {
					return fmt.Errorf("%q: %w", key, err)
				}
				out[i] = n
			}
			return nil
		})
		if errors.Is(err, badger.ErrConflict) {
			continue // another transaction changed a key first: count again
		}
		if err != nil {
			return nil, fmt.Errorf("kvstore: incr %w", err)
		}
		return out, nil
	}
}

// incrIn adds delta to the counter under key within txn: see Incr; exp
// is the expiry of a counter it creates.
func incrIn(txn *badger.Txn, key string, delta int64, exp uint64) (int64, error) {
	k := dbKey(key)
	e := badger.NewEntry(k, nil)
	e.ExpiresAt = exp
	item, err := txn.Get(k)
	var n int64
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
		n = delta
	case err != nil:
		return 0, err
	default:
		var old int64
		err := item.Value(func(v []byte) error {
			var perr error
			old, perr = strconv.ParseInt(string(v), 10, 64)
			return perr
		})
		if err != nil {
			return 0, fmt.Errorf("key holds a value that is not a decimal integer (%w); Incr only counters, or Del the key first", err)
		}
		n = old + delta
		if (delta > 0 && n < old) || (delta < 0 && n > old) {
			return 0, fmt.Errorf("counter %d %+d overflows int64", old, delta)
		}
		e.ExpiresAt = item.ExpiresAt()
	}
	e.Value = strconv.AppendInt(nil, n, 10)
	return n, txn.SetEntry(e)
}

// Incr adds delta to the integer counter under key and returns the new
// value. A missing or expired key counts from 0 and takes ttl (0: none); an
// existing key keeps the expiry it has, so a fixed window ends when it
// began plus its TTL however often it is counted (sliding or successive
// windows use a new key per window). Counters are stored as decimal text,
// which Get returns; Incr on a value that is not such a number fails.
//
// Incr is atomic: concurrent calls, from this Store or any other over the
// same database, never lose a count.
func (s *Store) Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	exp, err := s.expiresAt(ttl)
	if err != nil {
		return 0, err
	}
	mu := s.lock(key)
	mu.Lock()
	defer mu.Unlock()
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		var n int64
		err := s.db.Update(func(txn *badger.Txn) error {
			var err error
			n, err = incrIn(txn, key, delta, exp)
			return err
		})
		if errors.Is(err, badger.ErrConflict) {
			continue // another transaction changed the key first: count again
		}
		if err != nil {
			return 0, fmt.Errorf("kvstore: incr %q: %w", key, err)
		}
		return n, nil
	}
}

// Del removes key; removing a missing key is not an error.
func (s *Store) Del(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	mu := s.lock(key) // as Set
	mu.Lock()
	defer mu.Unlock()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(dbKey(key)) }); err != nil {
		return fmt.Errorf("kvstore: del %q: %w", key, err)
	}
	return nil
}
