package kvstore

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// openOwn opens a store of its own in dir, closed when the test ends.
func openOwn(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestOpenOps: a store in a database of its own, with its small sizes,
// keeps every operation's contract; its largest value (64 KiB, the ABI's
// limit) fits.
func TestOpenOps(t *testing.T) {
	s := openOwn(t, filepath.Join(t.TempDir(), "kv"))
	testOps(t, s)
	big := make([]byte, 64<<10)
	for i := range big {
		big[i] = byte(i)
	}
	if err := s.Set(context.Background(), "big", big, 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(context.Background(), "big"); err != nil || !ok || string(v) != string(big) {
		t.Fatalf("Get of a 64 KiB value: %d bytes, %v, %v", len(v), ok, err)
	}
}

// TestOpenReopen: Open creates its directory (and missing parents); a
// reopened store has the values, counters and expiries of the last one,
// and Close of a store from New leaves its database open.
func TestOpenReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data", "kv")
	s, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "mark", []byte("seen"), time.Hour); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Incr(ctx, "count", 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	exp := expiry(t, s.db, "mark")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "MANIFEST")); err != nil {
		t.Fatalf("no database in %s: %v", dir, err)
	}
	s = openOwn(t, dir)
	if n, err := s.Incr(ctx, "count", 1, 0); err != nil || n != 4 {
		t.Errorf("Incr after reopening = %d, %v; want 4", n, err)
	}
	if v, ok, err := s.Get(ctx, "mark"); err != nil || !ok || string(v) != "seen" {
		t.Errorf("Get after reopening = %q, %v, %v; want seen", v, ok, err)
	}
	if got := expiry(t, s.db, "mark"); got != exp {
		t.Errorf("expiry after reopening %d, want %d", got, exp)
	}

	db := openDB(t)
	if err := New(db).Close(); err != nil {
		t.Fatal(err)
	}
	if err := New(db).Set(ctx, "x", nil, 0); err != nil {
		t.Errorf("Set after closing a Store from New: %v (its database was closed)", err)
	}
}

// TestOpenBadDir: a directory that cannot be made is a clear error.
func TestOpenBadDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(file, "kv"), nil); err == nil {
		t.Fatal("Open under a file: no error")
	}
}

// oldLayout fills db as the queue's database of an earlier version: queue
// records, and the store's under Prefix (one with an expiry, one expired).
func oldLayout(t *testing.T, db *badger.DB) (live map[string]string) {
	t.Helper()
	ctx := context.Background()
	old := New(db)
	live = map[string]string{}
	for i := range 250 {
		k, v := fmt.Sprintf("greylist/triplet-%03d", i), fmt.Sprintf("%d", 1000+i)
		if err := old.Set(ctx, k, []byte(v), 0); err != nil {
			t.Fatal(err)
		}
		live[k] = v
	}
	if _, err := old.Incr(ctx, "ratelimit/window", 7, time.Hour); err != nil {
		t.Fatal(err)
	}
	live["ratelimit/window"] = "7"
	e := badger.NewEntry([]byte(Prefix+"expired"), []byte("gone")).WithTTL(time.Nanosecond)
	err := db.Update(func(txn *badger.Txn) error {
		for _, k := range []string{"m/envelope", "q/other", "kv"} {
			if err := txn.Set([]byte(k), []byte("queue")); err != nil {
				return err
			}
		}
		return txn.SetEntry(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	return live
}

// checkMoved: to holds every live record with its expiry, from none of
// the store's records and all of its others.
func checkMoved(t *testing.T, from *badger.DB, to *Store, live map[string]string, exp uint64) {
	t.Helper()
	ctx := context.Background()
	keys, err := to.Keys(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != len(live) {
		t.Errorf("the new store has %d keys, want %d", len(keys), len(live))
	}
	for k, want := range live {
		if v, ok, err := to.Get(ctx, k); err != nil || !ok || string(v) != want {
			t.Errorf("%s in the new store = %q, %v, %v; want %q", k, v, ok, err, want)
		}
	}
	if got := expiry(t, to.db, "ratelimit/window"); got != exp {
		t.Errorf("the counter's expiry moved from %d to %d", exp, got)
	}
	if n, err := to.Incr(ctx, "ratelimit/window", 1, time.Hour); err != nil || n != 8 {
		t.Errorf("Incr of the moved counter = %d, %v; want 8", n, err)
	}
	if left, err := New(from).Keys(ctx, ""); err != nil || len(left) != 0 {
		t.Errorf("the old database keeps %q, %v", left, err)
	}
	err = from.View(func(txn *badger.Txn) error {
		for _, k := range []string{"m/envelope", "q/other", "kv"} {
			if _, err := txn.Get([]byte(k)); err != nil {
				return fmt.Errorf("queue record %q: %w", k, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// TestMigrate: the store's records move with their expiry (the expired one
// is not moved), the queue's stay; a second Migrate has nothing to do.
func TestMigrate(t *testing.T) {
	ctx := context.Background()
	from := openDB(t)
	live := oldLayout(t, from)
	exp := expiry(t, from, "ratelimit/window")
	to := openOwn(t, filepath.Join(t.TempDir(), "kv"))
	n, err := Migrate(ctx, from, to)
	if err != nil || n != len(live) {
		t.Fatalf("Migrate = %d, %v; want %d", n, err, len(live))
	}
	checkMoved(t, from, to, live, exp)
	if n, err := Migrate(ctx, from, to); err != nil || n != 0 {
		t.Errorf("a second Migrate = %d, %v; want 0", n, err)
	}
}

// TestMigrateResumes: a migration stopped by a crash after the copy, or
// halfway through the deletions, is finished by the next Migrate, with
// nothing lost and nothing left behind.
func TestMigrateResumes(t *testing.T) {
	ctx := context.Background()
	for _, stop := range []string{"after the copy", "halfway through the deletions"} {
		t.Run(stop, func(t *testing.T) {
			fromDir, toDir := t.TempDir(), filepath.Join(t.TempDir(), "kv")
			from, err := badger.Open(badger.DefaultOptions(fromDir).WithLogger(nil))
			if err != nil {
				t.Fatal(err)
			}
			live := oldLayout(t, from)
			exp := expiry(t, from, "ratelimit/window")
			to, err := Open(toDir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if n, err := copyPrefix(ctx, from, to.db); err != nil || n != len(live) {
				t.Fatalf("copy = %d, %v", n, err)
			}
			if err := to.db.Sync(); err != nil {
				t.Fatal(err)
			}
			if stop != "after the copy" {
				keys, err := New(from).Keys(ctx, "")
				if err != nil {
					t.Fatal(err)
				}
				for _, k := range keys[:len(keys)/2] {
					if err := New(from).Del(ctx, k); err != nil {
						t.Fatal(err)
					}
				}
			}
			// The process ends here; both databases are reopened.
			if err := from.Close(); err != nil {
				t.Fatal(err)
			}
			if err := to.Close(); err != nil {
				t.Fatal(err)
			}
			from, err = badger.Open(badger.DefaultOptions(fromDir).WithLogger(nil))
			if err != nil {
				t.Fatal(err)
			}
			defer from.Close()
			to = openOwn(t, toDir)
			if _, err := Migrate(ctx, from, to); err != nil {
				t.Fatal(err)
			}
			checkMoved(t, from, to, live, exp)
		})
	}
}

// TestOpenIncrConcurrent: without Badger's conflict detection (Open turns
// it off), the store's own locks keep every count of concurrent Incr and
// IncrMany calls.
func TestOpenIncrConcurrent(t *testing.T) {
	countConcurrently(t, openOwn(t, t.TempDir()))
}
