package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// groupSync is the group commit: callers whose Badger transactions have
// committed (to memory, SyncWrites is off) call wait, and one sync that
// starts after all of them covers the whole group. Callers that arrive while
// a sync runs wait for the next one, so no caller is acknowledged by a sync
// that began before its commit.
type groupSync struct {
	sync func() error

	mu      sync.Mutex
	pending []chan error
	closed  bool
	kickc   chan struct{}
	done    chan struct{}
	// registered, when set (tests), runs in wait once the caller is
	// registered and the lock released.
	registered func()
}

func newGroupSync(sync func() error) *groupSync {
	g := &groupSync{sync: sync, kickc: make(chan struct{}, 1), done: make(chan struct{})}
	go g.loop()
	return g
}

// errClosed answers callers that arrive after close.
var errClosed = errors.New("queue: closed")

// wait returns once a sync that started after the call has finished.
func (g *groupSync) wait() error {
	c := make(chan error, 1)
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return errClosed
	}
	g.pending = append(g.pending, c)
	// Kick under the lock: close closes kickc under it too, so a caller
	// that registered before close never sends on the closed channel
	// (close serves it).
	select {
	case g.kickc <- struct{}{}:
	default:
	}
	g.mu.Unlock()
	if g.registered != nil {
		g.registered()
	}
	return <-c
}

func (g *groupSync) loop() {
	defer close(g.done)
	for range g.kickc {
		g.mu.Lock()
		batch := g.pending
		g.pending = nil
		g.mu.Unlock()
		if len(batch) == 0 {
			continue
		}
		err := g.sync()
		for _, c := range batch {
			c <- err
		}
	}
}

// close serves the callers still waiting and stops the loop.
func (g *groupSync) close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	close(g.kickc)
	g.mu.Unlock()
	<-g.done
	g.mu.Lock()
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()
	if len(batch) > 0 {
		err := g.sync()
		for _, c := range batch {
			c <- err
		}
	}
}

// syncAll makes every commit made before it started durable.
//
// DB.Sync msyncs only the active memtable's WAL and the newest value-log
// file. A memtable that filled up after a commit and before this sync has
// been rotated out un-synced (Badger syncs a rotated WAL only under
// SyncWrites), so every other *.mem file still in the directory is
// fdatasync'ed too; one that vanished was flushed to an L0 table that Badger
// msynced and recorded in its synced MANIFEST before deleting the WAL. The
// newest *.mem file is skipped only when it was the newest both before and
// after DB.Sync, i.e. it was the active memtable DB.Sync covered. Rotated
// value-log files are msynced by Badger when it truncates them at rotation.
// Badger does not fsync the directory after creating a WAL, value-log or L0
// table file, so the directory is fsynced whenever its listing has changed.
func (q *Queue) syncAll() error {
	before, err := os.ReadDir(q.opts.Dir)
	if err != nil {
		return fmt.Errorf("queue: list %s: %w", q.opts.Dir, err)
	}
	if err := q.db.Sync(); err != nil {
		return fmt.Errorf("queue: sync database in %s: %w", q.opts.Dir, err)
	}
	after, err := os.ReadDir(q.opts.Dir)
	if err != nil {
		return fmt.Errorf("queue: list %s: %w", q.opts.Dir, err)
	}
	active := newestMem(after)
	if active != newestMem(before) {
		active = "" // rotated around DB.Sync: sync them all
	}
	names := make([]string, 0, len(after))
	for _, e := range after {
		names = append(names, e.Name())
		if !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		p := filepath.Join(q.opts.Dir, e.Name())
		if e.Name() == active {
			if q.opts.onFileSync != nil {
				q.opts.onFileSync(p) // DB.Sync covered it
			}
			continue
		}
		if err := fdatasync(p); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // flushed to a table meanwhile
			}
			return fmt.Errorf("queue: sync %s: %w", p, err)
		}
		if q.opts.onFileSync != nil {
			q.opts.onFileSync(p)
		}
	}
	q.gsMu.Lock()
	defer q.gsMu.Unlock()
	if slices.Equal(names, q.lastListing) {
		return nil
	}
	if err := fsyncDir(q.opts.Dir); err != nil {
		return fmt.Errorf("queue: sync directory %s: %w", q.opts.Dir, err)
	}
	if q.opts.onFileSync != nil {
		q.opts.onFileSync(q.opts.Dir)
	}
	q.lastListing = names
	return nil
}

// newestMem names the memtable WAL with the highest number in a listing:
// Badger numbers them in creation order, and the newest is the active one.
func newestMem(ents []os.DirEntry) string {
	best, bestN := "", int64(-1)
	for _, e := range ents {
		num, ok := strings.CutSuffix(e.Name(), ".mem")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(num, 10, 64); err == nil && n > bestN {
			best, bestN = e.Name(), n
		}
	}
	return best
}

func fdatasync(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fdatasync(int(f.Fd()))
}

func fsyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
