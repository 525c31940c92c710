package kvstore

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/internal/badgerlog"
)

// The own database's sizes: the plugins' KV holds small counters and
// marks, so its memtables and caches are a fraction of the queue's and an
// idle server with the first-party plugins stays within its memory target
// (BENCHMARKS.md, "The plugin KV in its own Badger").
const (
	// ownMemTableSize: a memtable is a Go allocation of about this much ×
	// 1.3, resident once written; a counter's entry is under 100 bytes, so
	// 2 MiB holds some 20,000 writes before a flush (~0.4 MB of table).
	ownMemTableSize = 2 << 20
	// ownNumMemtables: one being written, one being flushed.
	ownNumMemtables = 2
	// ownBlockCacheSize caches table blocks read back once flushed.
	ownBlockCacheSize = 1 << 20
	// ownValueThreshold keeps every value in the LSM tree: a plugin's
	// value is at most 64 KiB (core/filter), an MTA-STS policy as small,
	// and Badger requires the threshold under 15 % of a memtable.
	ownValueThreshold = 128 << 10
	// ownValueLogFileSize bounds the value log's mmapped file, which the
	// threshold above leaves empty.
	ownValueLogFileSize = 16 << 20
	// ownBaseTableSize: tables as small as the memtables. A flush's table
	// builder starts with an arena of twice this (4 MiB), which a 2 MiB
	// memtable's table, raw and compressed, fits with room to spare.
	ownBaseTableSize = 2 << 20
)

// Open opens (or creates) a database of the store's own in dir and returns
// the Store over it; Close closes it. Its writes are never synced, not
// even by a sync of the queue: a kill -9 loses nothing (Badger's log is in
// the page cache), a power loss or kernel crash may lose the writes of the
// last seconds before it.
//
// The store keeps its keys under Prefix, as in a shared database, so that
// Migrate copies records as they are.
func Open(dir string, logger *slog.Logger) (*Store, error) { return open(dir, logger, nil) }

// open is Open with adjust, if not nil, changing Badger's options last.
func open(dir string, logger *slog.Logger, adjust func(badger.Options) badger.Options) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kvstore: create directory %s: %w (check its parent exists and is writable)", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("kvstore: directory %s: %w", dir, err)
	}
	bo := badger.DefaultOptions(abs).
		WithSyncWrites(false).
		WithMemTableSize(ownMemTableSize).
		WithNumMemtables(ownNumMemtables).
		WithBlockCacheSize(ownBlockCacheSize).
		WithValueThreshold(ownValueThreshold).
		WithValueLogFileSize(ownValueLogFileSize).
		WithBaseTableSize(ownBaseTableSize).
		WithNumCompactors(2). // Badger's minimum
		WithNumLevelZeroTables(4).
		WithNumLevelZeroTablesStall(8).
		// Every write is this Store's, and its stripe locks order those
		// on one key: Badger's conflict detection would find nothing.
		WithDetectConflicts(false).
		WithMetricsEnabled(false).
		WithLogger(badgerlog.New(logger, "kv"))
	if adjust != nil {
		bo = adjust(bo)
	}
	db, err := badger.Open(bo)
	if err != nil {
		return nil, fmt.Errorf("kvstore: open database in %s: %w (check its permissions and that no other sluice process uses it)", abs, err)
	}
	s := New(db)
	s.owned = true
	return s, nil
}

// Close closes the database if Open opened it; a Store from New leaves
// its database to the caller.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("kvstore: close database: %w", err)
	}
	return nil
}
