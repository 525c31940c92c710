package local

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDirSyncerCoversEveryCaller: each caller returns only after an fsync
// that started after its call has finished, and concurrent callers share
// fsyncs.
func TestDirSyncerCoversEveryCaller(t *testing.T) {
	var clock, lastDoneStart, fsyncs atomic.Int64
	s := newDirSyncer(func(dir string) error {
		start := clock.Add(1)
		fsyncs.Add(1)
		time.Sleep(2 * time.Millisecond) // a disk
		for {
			old := lastDoneStart.Load()
			if start <= old || lastDoneStart.CompareAndSwap(old, start) {
				break
			}
		}
		return nil
	})
	const callers = 64
	var wg sync.WaitGroup
	for i := 0; i < callers; i++ {
		wg.Go(func() {
			calledAt := clock.Add(1)
			if err := s.Sync("/mail/new"); err != nil {
				t.Error(err)
			}
			if done := lastDoneStart.Load(); done <= calledAt {
				t.Errorf("returned before an fsync started after the call (call %d, last fsync started %d)", calledAt, done)
			}
		})
	}
	wg.Wait()
	if n := fsyncs.Load(); n >= callers {
		t.Errorf("%d fsyncs for %d concurrent callers: nothing shared", n, callers)
	}
	if len(s.dirs) != 0 {
		t.Errorf("%d directories still tracked after every caller left", len(s.dirs))
	}
}

// TestDirSyncerError: a failed fsync is reported to the callers it covers.
func TestDirSyncerError(t *testing.T) {
	boom := errors.New("disk on fire")
	s := newDirSyncer(func(string) error { return boom })
	if err := s.Sync("/x"); !errors.Is(err, boom) {
		t.Errorf("Sync = %v, want the fsync error", err)
	}
}
