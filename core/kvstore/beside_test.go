package kvstore

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// BenchmarkBesideQueue: one message's KV work as the ratelimit plugin
// does it (a window's six buckets read at MAIL, one count at RCPT, two at
// DATA) beside one message's queue writes (an envelope, a 10 KiB body,
// a schedule entry, deleted again 64 messages later, and a sync every 8
// messages, as the group commit does at 20 sessions), with the store in
// the queue-like database ("shared") or in one of its own ("own"; with
// Badger's conflict detection on, as in the queue's, "own-detect"). It
// reports the process's CPU time a message (Badger's goroutines
// included) and the wall time of the KV work, the queue writes and the
// syncs:
//
//	for i in 1 2 3; do for m in shared own own-detect; do
//	  go test -run '^$' -bench "BesideQueue/$m\$" -benchtime 20000x ./core/kvstore; done; done
func BenchmarkBesideQueue(b *testing.B) {
	for _, mode := range []string{"shared", "own", "own-detect"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			qdb, err := badger.Open(badger.DefaultOptions(b.TempDir()).
				WithMemTableSize(16 << 20).WithNumMemtables(3).WithValueThreshold(4 << 10).
				WithValueLogFileSize(16 << 20).WithBlockCacheSize(16 << 20).WithNumCompactors(2).
				WithMetricsEnabled(false).WithLogger(nil))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { qdb.Close() })
			s := New(qdb)
			if mode != "shared" {
				var adjust func(badger.Options) badger.Options
				if mode == "own-detect" {
					adjust = func(o badger.Options) badger.Options { return o.WithDetectConflicts(true) }
				}
				if s, err = open(filepath.Join(b.TempDir(), "kv"), nil, adjust); err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
			}
			body := make([]byte, 10<<10)
			env := make([]byte, 300)
			var kvT, syncT, queueT time.Duration
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				id := fmt.Sprintf("%016d", i)
				err := qdb.Update(func(txn *badger.Txn) error {
					if err := txn.Set([]byte("m/"+id), env); err != nil {
						return err
					}
					if err := txn.Set([]byte("b/"+id), body); err != nil {
						return err
					}
					return txn.Set([]byte("s/"+id), []byte(id))
				})
				if err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				queueT += t1.Sub(t0)
				rateWork(ctx, b, s, i)
				t2 := time.Now()
				kvT += t2.Sub(t1)
				if i%8 == 7 {
					if err := qdb.Sync(); err != nil {
						b.Fatal(err)
					}
				}
				t3 := time.Now()
				syncT += t3.Sub(t2)
				if i >= 64 {
					old := fmt.Sprintf("%016d", i-64)
					err := qdb.Update(func(txn *badger.Txn) error {
						for _, p := range []string{"m/", "b/", "s/"} {
							if err := txn.Delete([]byte(p + old)); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
				queueT += time.Since(t3)
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			b.ReportMetric(float64(kvT.Microseconds())/float64(b.N), "kv-µs/op")
			b.ReportMetric(float64(syncT.Microseconds())/float64(b.N), "sync-µs/op")
			b.ReportMetric(float64(queueT.Microseconds())/float64(b.N), "queue-µs/op")
		})
	}
}

// cpuTime is the process's user and system time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDeepQueue: the same KV work alone, with the store in a
// queue-like database holding 200,000 envelopes and schedule entries (a
// deep queue, its LSM tree several levels deep) or in one of its own:
//
//	for i in 1 2 3; do for m in shared own; do
//	  go test -run '^$' -bench "DeepQueue/$m\\$" -benchmem -benchtime 20000x ./core/kvstore; done; done
func BenchmarkDeepQueue(b *testing.B) {
	for _, mode := range []string{"shared", "own"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			qdb := openQueueLike(b)
			wb := qdb.NewWriteBatch()
			env := make([]byte, 300)
			for i := range 200_000 {
				id := fmt.Sprintf("%016d", i)
				if err := wb.Set([]byte("m/"+id), env); err != nil {
					b.Fatal(err)
				}
				if err := wb.Set([]byte("s/"+id), []byte(id)); err != nil {
					b.Fatal(err)
				}
			}
			if err := wb.Flush(); err != nil {
				b.Fatal(err)
			}
			s := storeFor(b, mode, qdb)
			cpu0 := cpuTime(b)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				rateWork(ctx, b, s, i)
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// rateWork is message i's KV work as the ratelimit plugin does it: a
// window's six buckets read at MAIL, one count at RCPT, two at DATA.
// Senders repeat (50 of them), buckets change every 500 messages.
func rateWork(ctx context.Context, b *testing.B, s *Store, i int) {
	sender := fmt.Sprintf("ratelimit/s/sender%02d@example.test/", i%50)
	bucket := i / 500
	keys := make([]string, 6)
	for j := range keys {
		keys[j] = sender + fmt.Sprint(bucket-j)
	}
	hour := []time.Duration{time.Hour, time.Hour}
	if _, err := s.GetMany(ctx, keys); err != nil {
		b.Fatal(err)
	}
	if _, err := s.IncrMany(ctx, keys[:1], []int64{1}, hour[:1]); err != nil {
		b.Fatal(err)
	}
	if _, err := s.IncrMany(ctx, []string{keys[0], "ratelimit/r/" + keys[0]}, []int64{1, 1}, hour); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBusyQueue: the KV work of one message at a time while another
// goroutine keeps writing messages into the queue-like database (an
// envelope and a 10 KiB body a commit, as fast as Badger takes them),
// with the store in that database ("shared") or its own ("own"): the
// latency of the KV work, which in the shared database includes waiting
// for Badger's one write goroutine behind the queue's commits:
//
//	for i in 1 2 3; do for m in shared own; do
//	  go test -run '^$' -bench "BusyQueue/$m\$" -benchtime 5000x ./core/kvstore; done; done
func BenchmarkBusyQueue(b *testing.B) {
	for _, mode := range []string{"shared", "own"} {
		b.Run(mode, func(b *testing.B) {
			ctx := context.Background()
			qdb := openQueueLike(b)
			s := storeFor(b, mode, qdb)
			stop, done := make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				body, env := make([]byte, 10<<10), make([]byte, 300)
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("%016d", i)
					_ = qdb.Update(func(txn *badger.Txn) error {
						if err := txn.Set([]byte("m/"+id), env); err != nil {
							return err
						}
						return txn.Set([]byte("b/"+id), body)
					})
				}
			}()
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				rateWork(ctx, b, s, i)
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			close(stop)
			<-done
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}

// openQueueLike opens a database with the queue's settings
// (core/queue/queue.go), closed when b ends.
func openQueueLike(b *testing.B) *badger.DB {
	qdb, err := badger.Open(badger.DefaultOptions(b.TempDir()).
		WithMemTableSize(16 << 20).WithNumMemtables(3).WithValueThreshold(1 << 10).
		WithValueLogFileSize(16 << 20).WithBlockCacheSize(16 << 20).WithNumCompactors(2).
		WithMetricsEnabled(false).WithLogger(nil))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { qdb.Close() })
	return qdb
}

// storeFor is the store of a benchmark's mode: in qdb ("shared") or in a
// database of its own ("own"), closed when b ends.
func storeFor(b *testing.B, mode string, qdb *badger.DB) *Store {
	if mode != "own" {
		return New(qdb)
	}
	s, err := Open(filepath.Join(b.TempDir(), "kv"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}
