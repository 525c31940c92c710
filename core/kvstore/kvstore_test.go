package kvstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/internal/testwait"
)

var _ filter.KV = (*Store)(nil)

func openDB(tb testing.TB) *badger.DB {
	tb.Helper()
	db, err := badger.Open(badger.DefaultOptions(tb.TempDir()).WithLogger(nil))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestGetSetDel(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t))
	if v, ok, err := s.Get(ctx, "a"); err != nil || ok || v != nil {
		t.Fatalf("Get missing = %q, %v, %v; want nil, false, nil", v, ok, err)
	}
	if err := s.Set(ctx, "a", []byte("one"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "a", []byte("two"), 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, "a"); err != nil || !ok || string(v) != "two" {
		t.Fatalf("Get = %q, %v, %v; want two, true, nil", v, ok, err)
	}
	if err := s.Set(ctx, "empty", nil, 0); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := s.Get(ctx, "empty"); err != nil || !ok || len(v) != 0 {
		t.Fatalf("Get empty = %q, %v, %v; want \"\", true, nil", v, ok, err)
	}
	if err := s.Del(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.Get(ctx, "a"); err != nil || ok {
		t.Fatalf("Get after Del = %v, %v; want false, nil", ok, err)
	}
	if err := s.Del(ctx, "never-set"); err != nil {
		t.Fatalf("Del missing: %v", err)
	}
	if err := s.Set(ctx, "a", []byte("x"), -time.Second); err == nil {
		t.Error("Set with negative TTL: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := s.Get(cctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get on canceled context: %v", err)
	}
	if _, err := s.Incr(cctx, "a", 1, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("Incr on canceled context: %v", err)
	}
}

func TestExpiresAtRoundsUp(t *testing.T) {
	s := New(openDB(t))
	base := time.Unix(1000, 0)
	tests := []struct {
		now  time.Time
		ttl  time.Duration
		want uint64
	}{
		{base, 0, 0},
		{base, time.Second, 1001},
		{base, time.Millisecond, 1001},
		{base.Add(999 * time.Millisecond), time.Millisecond, 1001},
		{base.Add(999 * time.Millisecond), 2 * time.Millisecond, 1002},
		{base.Add(500 * time.Millisecond), time.Hour, 4601},
	}
	for _, tt := range tests {
		s.now = func() time.Time { return tt.now }
		got, err := s.expiresAt(tt.ttl)
		if err != nil || got != tt.want {
			t.Errorf("expiresAt(%v) at %v = %d, %v; want %d", tt.ttl, tt.now.Sub(base), got, err, tt.want)
		}
	}
}

// waitGone polls until key is gone; expiry must come within limit.
func waitGone(t *testing.T, s *Store, key string, limit time.Duration) {
	t.Helper()
	testwait.Until(t, limit, fmt.Sprintf("%q to expire at its TTL", key), func() bool {
		_, ok, err := s.Get(context.Background(), key)
		if err != nil {
			t.Fatal(err)
		}
		return !ok
	})
}

func TestTTLExpiry(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t))
	if err := s.Set(ctx, "short", []byte("v"), time.Second); err != nil {
		t.Fatal(err)
	}
	// A sub-second TTL rounds up, so the key is there right after Set
	// (Badger's own WithTTL would truncate it to "already expired").
	if err := s.Set(ctx, "tiny", []byte("v"), 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "count", 5, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "forever", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"short", "tiny", "count", "forever"} {
		if _, ok, err := s.Get(ctx, k); err != nil || !ok {
			t.Fatalf("%q missing right after writing: %v", k, err)
		}
	}
	// 1 s rounded up ends at most 2 s from now; allow slack for slow runs.
	waitGone(t, s, "short", 5*time.Second)
	waitGone(t, s, "tiny", 5*time.Second)
	waitGone(t, s, "count", 5*time.Second)
	if _, ok, _ := s.Get(ctx, "forever"); !ok {
		t.Error("key without TTL expired")
	}
	// An expired counter starts again from zero.
	if n, err := s.Incr(ctx, "count", 2, 0); err != nil || n != 2 {
		t.Errorf("Incr after expiry = %d, %v; want 2", n, err)
	}
}

func expiry(t *testing.T, db *badger.DB, key string) uint64 {
	t.Helper()
	var exp uint64
	err := db.View(func(txn *badger.Txn) error {
		item, err := txn.Get([]byte(Prefix + key))
		if err != nil {
			return err
		}
		exp = item.ExpiresAt()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return exp
}

func TestIncr(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	s := New(db)
	steps := []struct {
		delta int64
		want  int64
	}{{1, 1}, {1, 2}, {10, 12}, {-20, -8}, {0, -8}}
	for _, st := range steps {
		n, err := s.Incr(ctx, "c", st.delta, time.Hour)
		if err != nil || n != st.want {
			t.Fatalf("Incr(%d) = %d, %v; want %d", st.delta, n, err, st.want)
		}
	}
	if v, ok, err := s.Get(ctx, "c"); err != nil || !ok || string(v) != "-8" {
		t.Errorf("Get counter = %q, %v, %v; want \"-8\"", v, ok, err)
	}

	// The first Incr sets the expiry; later ones keep it whatever their ttl.
	first := expiry(t, db, "c")
	if first == 0 {
		t.Fatal("counter created with a TTL has no expiry")
	}
	if _, err := s.Incr(ctx, "c", 1, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "c", 1, 48*time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := expiry(t, db, "c"); got != first {
		t.Errorf("expiry after later Incr = %d; want the original %d", got, first)
	}
	if _, err := s.Incr(ctx, "nottl", 1, 0); err != nil {
		t.Fatal(err)
	}
	if got := expiry(t, db, "nottl"); got != 0 {
		t.Errorf("counter created without TTL expires at %d", got)
	}

	// Set then Incr works on a decimal value, and fails on anything else.
	if err := s.Set(ctx, "text", []byte("41"), 0); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Incr(ctx, "text", 1, 0); err != nil || n != 42 {
		t.Errorf("Incr on \"41\" = %d, %v; want 42", n, err)
	}
	if err := s.Set(ctx, "text", []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "text", 1, 0); err == nil {
		t.Error("Incr on a non-integer value: no error")
	}
	if v, _, _ := s.Get(ctx, "text"); string(v) != "hello" {
		t.Errorf("failed Incr changed the value to %q", v)
	}
	if err := s.Set(ctx, "big", []byte(strconv.FormatInt(1<<63-1, 10)), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "big", 1, 0); err == nil {
		t.Error("Incr past MaxInt64: no error")
	}
}

func TestIncrConcurrent(t *testing.T) {
	db := openDB(t)
	// Two Stores over one database do not share locks, so their commits
	// conflict in Badger and exercise the retry.
	countConcurrently(t, New(db), New(db))
}

// countConcurrently counts from 50 goroutines spread over stores, with
// Incr and IncrMany (over the stores' stripes in turn), and checks that
// no count is lost.
func countConcurrently(t *testing.T, stores ...*Store) {
	t.Helper()
	ctx := context.Background()
	const goroutines, each = 50, 40
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%len(stores)]
			for i := range each {
				if _, err := s.Incr(ctx, "hits", 1, time.Hour); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					if _, err := s.IncrMany(ctx, []string{"pair-b", "pair-a"}, []int64{1, 2}, []time.Duration{time.Hour, time.Hour}); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	v, ok, err := stores[0].Get(ctx, "hits")
	if err != nil || !ok {
		t.Fatalf("Get: %v, %v", ok, err)
	}
	if want := fmt.Sprint(goroutines * each); string(v) != want {
		t.Errorf("counter = %s; want %s", v, want)
	}
	if vs, err := stores[0].GetMany(ctx, []string{"pair-a", "pair-b"}); err != nil || string(vs[0]) != fmt.Sprint(goroutines*each) || string(vs[1]) != fmt.Sprint(goroutines*each/2) {
		t.Errorf("IncrMany's counters = %q, %v; want [%d %d]", vs, err, goroutines*each, goroutines*each/2)
	}
}

// TestIncrMany: the Badger store's IncrMany is one transaction: all its
// counts or, when a key is not a counter, none; new counters take their
// TTLs, existing ones keep theirs.
func TestIncrMany(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	s := New(db)
	if _, err := s.Incr(ctx, "old", 5, time.Hour); err != nil {
		t.Fatal(err)
	}
	oldExp := expiry(t, db, "old")
	ns, err := s.IncrMany(ctx, []string{"old", "new", "forever"}, []int64{1, 3, 1}, []time.Duration{48 * time.Hour, time.Minute, 0})
	if err != nil || len(ns) != 3 || ns[0] != 6 || ns[1] != 3 || ns[2] != 1 {
		t.Fatalf("IncrMany = %v, %v; want [6 3 1]", ns, err)
	}
	if got := expiry(t, db, "old"); got != oldExp {
		t.Errorf("IncrMany changed an existing counter's expiry from %d to %d", oldExp, got)
	}
	if e := expiry(t, db, "new"); e == 0 || e > uint64(time.Now().Add(time.Minute+time.Second).Unix()) {
		t.Errorf("new counter expires at %d; want within a minute", e)
	}
	if e := expiry(t, db, "forever"); e != 0 {
		t.Errorf("counter created with TTL 0 expires at %d", e)
	}
	if err := s.Set(ctx, "text", []byte("hello"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.IncrMany(ctx, []string{"old", "text"}, []int64{1, 1}, []time.Duration{0, 0}); err == nil || !strings.Contains(err.Error(), `"text"`) {
		t.Errorf("IncrMany over a text value: %v; want an error naming the key", err)
	}
	if v, _, _ := s.Get(ctx, "old"); string(v) != "6" {
		t.Errorf("a failed IncrMany left old at %q; want 6 (none of its counts)", v)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.IncrMany(cctx, []string{"old"}, []int64{1}, []time.Duration{0}); !errors.Is(err, context.Canceled) {
		t.Errorf("IncrMany on a canceled context: %v", err)
	}
}

func TestPrefixIsolation(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	outside := map[string]string{
		"m/a": "envelope", "x": "raw x", "kv": "no slash", "kvx": "near miss", "k/v/x": "other",
	}
	err := db.Update(func(txn *badger.Txn) error {
		for k, v := range outside {
			if err := txn.Set([]byte(k), []byte(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s := New(db)
	for _, k := range []string{"x", "kv", "m/a"} {
		if _, ok, err := s.Get(ctx, k); err != nil || ok {
			t.Errorf("Get(%q) sees a key outside the store: %v, %v", k, ok, err)
		}
	}
	if err := s.Set(ctx, "x", []byte("mine"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "m/a", 3, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.Del(ctx, "kvx"); err != nil {
		t.Fatal(err)
	}
	if err := s.Del(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, "y", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}

	got := map[string]string{}
	err = db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			got[string(it.Item().Key())] = string(v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"kv/m/a": "3", "kv/y": "kept"}
	for k, v := range outside {
		want[k] = v
	}
	if len(got) != len(want) {
		t.Errorf("database holds %d keys, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("key %q = %q; want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := outside[k]; !ok && !bytes.HasPrefix([]byte(k), []byte(Prefix)) {
			t.Errorf("store wrote %q outside %q", k, Prefix)
		}
	}
}

func BenchmarkIncr(b *testing.B) {
	ctx := context.Background()
	s := New(openDB(b))
	b.Run("one-key", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Incr(ctx, "bench", 1, time.Hour); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one-key-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Incr(ctx, "bench-par", 1, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("many-keys-parallel", func(b *testing.B) {
		var mu sync.Mutex
		next := 0
		b.RunParallel(func(pb *testing.PB) {
			mu.Lock()
			key := fmt.Sprintf("bench-%d", next)
			next++
			mu.Unlock()
			for pb.Next() {
				if _, err := s.Incr(ctx, key, 1, time.Hour); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

// TestKeys: Keys lists the live keys under a prefix, in order, without an
// expired one or the keys of another prefix.
func TestKeys(t *testing.T) {
	ctx := context.Background()
	s := New(openDB(t))
	for k, ttl := range map[string]time.Duration{"a/2": 0, "a/1": 0, "a/3": time.Second, "b/1": 0, "a": 0} {
		if err := s.Set(ctx, k, []byte("v"), ttl); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Keys(ctx, "a/")
	if err != nil || fmt.Sprint(got) != "[a/1 a/2 a/3]" {
		t.Errorf("Keys(a/) = %q, %v; want [a/1 a/2 a/3]", got, err)
	}
	waitGone(t, s, "a/3", 5*time.Second)
	if got, err := s.Keys(ctx, "a/"); err != nil || fmt.Sprint(got) != "[a/1 a/2]" {
		t.Errorf("Keys(a/) after a/3 expired = %q, %v; want [a/1 a/2]", got, err)
	}
}
