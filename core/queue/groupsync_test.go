package queue

import (
	"errors"
	"testing"
)

// TestGroupSyncCloseWhileWaiting: a caller that has registered for the
// next sync when the group commit closes (a commit finishing as the queue
// shuts down) is served by close and must not kick the stopped loop: a
// send on the closed kick channel panicked.
func TestGroupSyncCloseWhileWaiting(t *testing.T) {
	synced := 0
	g := newGroupSync(func() error { synced++; return nil })
	g.registered = g.close
	if err := g.wait(); err != nil {
		t.Errorf("wait = %v, want nil (served by the last sync)", err)
	}
	if synced != 1 {
		t.Errorf("%d syncs, want 1", synced)
	}
	if err := g.wait(); !errors.Is(err, errClosed) {
		t.Errorf("wait after close = %v, want %v", err, errClosed)
	}
}
