package queue

import (
	"errors"
	"os"
	"path/filepath"
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

// TestDirWatch: the group commit's directory watch reports a file created
// or removed since it was last asked, and nothing when nothing changed, so
// that syncAll lists the directory only after a change.
func TestDirWatch(t *testing.T) {
	dir := t.TempDir()
	w, err := newDirWatch(dir)
	if err != nil {
		t.Skipf("no inotify here (%v): syncAll lists the directory at every sync", err)
	}
	defer w.close()
	step := func(what string, want bool) {
		t.Helper()
		got, err := w.changed()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got != want {
			t.Errorf("%s: changed = %v, want %v", what, got, want)
		}
	}
	step("nothing done", false)
	p := filepath.Join(dir, "00001.mem")
	if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	step("file created", true)
	step("asked again", false)
	if err := os.WriteFile(p, []byte("more"), 0o600); err != nil {
		t.Fatal(err)
	}
	step("file written (the listing is the same)", false)
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	step("file removed", true)
}
