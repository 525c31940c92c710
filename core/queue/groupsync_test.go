package queue

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/sluice-mta/sluice/core/mail"
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

// TestRotationBeforeSyncCovered: a memtable that rotates after a commit
// and before the group sync that acknowledges it — the case
// TestRotatedMemtablesSynced catches only when the timing happens to fall
// so — is made to happen every time: the sync's beforeSync hook writes
// until Badger starts a new WAL. The WAL holding the message must still be
// fdatasync'ed by that sync (it is no longer the newest .mem file), and the
// message must survive a reopen. With the sync of rotated WALs removed
// from syncAll it fails in every run.
func TestRotationBeforeSyncCovered(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t, dir, newClock())
	opts.memTableSize = 512 << 10
	opts.valueThreshold = 16 << 10 // 10 KiB values stay in the WAL
	var (
		mu     sync.Mutex
		seq    int
		synced = map[string]int{} // file → sequence number of its last sync
		armed  bool
		hookQ  *Queue
		filler int
		unpin  = func() {}
	)
	opts.onFileSync = func(p string) {
		mu.Lock()
		seq++
		synced[filepath.Base(p)] = seq
		mu.Unlock()
	}
	opts.beforeSync = func() {
		mu.Lock()
		rotate := armed
		armed = false
		mu.Unlock()
		if !rotate {
			return
		}
		// An open iterator holds the memtables it reads, so the WAL of
		// the commit is not deleted after its flush until the check.
		txn := hookQ.db.NewTransaction(false)
		it := txn.NewIterator(badger.IteratorOptions{})
		mu.Lock()
		unpin = func() { it.Close(); txn.Discard() }
		mu.Unlock()
		before := memFiles(t, dir)
		val := bytes.Repeat([]byte("f"), 10<<10)
		for tries := 0; ; tries++ {
			if tries > 200 {
				t.Error("no memtable rotation after 200 filler writes")
				return
			}
			err := hookQ.db.Update(func(txn *badger.Txn) error {
				for range 5 {
					filler++
					if err := txn.Set(fmt.Appendf(nil, "kv/test-filler/%d", filler), val); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
				return
			}
			if now := memFiles(t, dir); now[len(now)-1] != before[len(before)-1] {
				return // a new WAL: the one holding the commit is rotated
			}
		}
	}
	q, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	hookQ = q
	body := bytes.Repeat([]byte("y"), 10<<10)
	var ids []string
	for i := range 4 {
		mu.Lock()
		armed = true
		start := seq
		mu.Unlock()
		env := &mail.Envelope{From: "a@src.test", Rcpts: []mail.Recipient{{Addr: fmt.Sprintf("r%d@dst.test", i)}}}
		id, err := q.Enqueue(context.Background(), env, body)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		holders, _ := walsHolding(t, dir, id)
		for _, w := range holders {
			if w.newest {
				t.Errorf("%s: its WAL %s is still the newest; the hook did not rotate it", id, w.name)
			}
			mu.Lock()
			last := synced[w.name]
			mu.Unlock()
			if last <= start {
				t.Errorf("%s acknowledged while %s, which holds it and was rotated before the sync, was not synced since", id, w.name)
			}
		}
		if len(holders) == 0 {
			t.Errorf("%s: no WAL holds it", id)
		}
		mu.Lock()
		unpin()
		unpin = func() {}
		mu.Unlock()
	}
	reopenFinds(t, q, opts, ids)
}

// walHolder is a WAL (.mem) file found holding a message.
type walHolder struct {
	name   string
	newest bool // the active memtable's
}

// walsHolding returns the WAL files in dir that hold message id, and
// the WAL files there (those flushed and deleted meanwhile are skipped).
func walsHolding(t *testing.T, dir, id string) ([]walHolder, []string) {
	t.Helper()
	mems := memFiles(t, dir)
	var out []walHolder
	for j, name := range mems {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue // flushed to an L0 table meanwhile
		}
		if err != nil {
			t.Error(err)
			continue
		}
		if bytes.Contains(data, msgKey(id)) {
			out = append(out, walHolder{name: name, newest: j == len(mems)-1})
		}
	}
	return out, mems
}

// reopenFinds closes q, opens the queue again and checks that every
// message in ids is there.
func reopenFinds(t *testing.T, q *Queue, opts Options, ids []string) {
	t.Helper()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q = openQueue(t, opts)
	got := map[string]bool{}
	for _, e := range list(t, q) {
		got[e.ID] = true
	}
	for _, id := range ids {
		if !got[id] {
			t.Errorf("%s lost after reopen", id)
		}
	}
}
