package kvstore

import (
	"context"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Migrate moves every record under Prefix from the database from (the
// queue's, where the store used to live) into s, which Open opened: it
// copies them with their expiry, syncs s, then deletes them from from and
// syncs it. It returns how many records it moved; with none to move it
// only looks. A crash at any point loses nothing and the next call
// finishes the move: until the deletions are synced the records are still
// in from and are copied again (over the same values, since nothing
// writes to s before Migrate returns), and they are deleted only once
// their copies are on disk.
//
// Call it before the store is used.
func Migrate(ctx context.Context, from *badger.DB, s *Store) (int, error) {
	n, err := copyPrefix(ctx, from, s.db)
	if err != nil || n == 0 {
		return 0, err
	}
	if err := s.db.Sync(); err != nil {
		return 0, fmt.Errorf("kvstore: migrate: sync the new database: %w", err)
	}
	if err := deletePrefix(ctx, from); err != nil {
		return 0, err
	}
	if err := from.Sync(); err != nil {
		return 0, fmt.Errorf("kvstore: migrate: sync the old database: %w", err)
	}
	return n, nil
}

// copyPrefix writes every live record under Prefix in from into to.
func copyPrefix(ctx context.Context, from, to *badger.DB) (int, error) {
	wb := to.NewWriteBatch()
	defer wb.Cancel()
	n := 0
	err := from.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(Prefix), PrefetchValues: true, PrefetchSize: 100})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			v, err := item.ValueCopy(nil)
			if err != nil {
				return fmt.Errorf("read %q: %w", item.Key(), err)
			}
			e := badger.NewEntry(item.KeyCopy(nil), v)
			e.ExpiresAt = item.ExpiresAt()
			if err := wb.SetEntry(e); err != nil {
				return fmt.Errorf("write %q: %w", item.Key(), err)
			}
			n++
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return 0, fmt.Errorf("kvstore: migrate: copy the records: %w", err)
	}
	return n, nil
}

// deletePrefix deletes every record under Prefix in db.
func deletePrefix(ctx context.Context, db *badger.DB) error {
	wb := db.NewWriteBatch()
	defer wb.Cancel()
	err := db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte(Prefix)})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := wb.Delete(it.Item().KeyCopy(nil)); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = wb.Flush()
	}
	if err != nil {
		return fmt.Errorf("kvstore: migrate: delete the moved records: %w", err)
	}
	return nil
}
