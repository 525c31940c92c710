package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
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
// A commit lands in the active memtable's WAL (the newest *.mem file) and,
// for a body, the newest value-log file (*.vlog); Badger's DB.Sync msyncs
// exactly those two. syncAll fdatasyncs the same two files itself, at once
// (two flushes in flight instead of one after the other), through
// descriptors it keeps open: on Linux a second descriptor shares the page
// cache with Badger's mmap, so the pages it dirtied are written back.
//
// A memtable that filled up after a commit has been rotated out un-synced
// (Badger syncs a rotated WAL only under SyncWrites), so every other *.mem
// file is fdatasync'ed too — once: a rotated memtable takes no more writes,
// so one sync that started after its rotation covers it for good. One that
// vanished was flushed to an L0 table that Badger msynced and recorded in
// its synced MANIFEST before deleting the WAL. A rotated value-log file is
// msynced by Badger when it truncates it at rotation. Badger does not fsync
// the directory after creating a WAL, value-log or L0 table file, so the
// directory is fsynced whenever its listing has changed.
//
// Which files exist is read from the directory only when it changed: an
// inotify watch (dirWatch) says so with one read that finds nothing in the
// usual case, instead of two listings (openat, getdents64 ×2, close each)
// around every sync. A file Badger creates is queued as an event before
// the creating call returns, so a rotation that happened before this sync
// began is seen by it. Without inotify the directory is listed every time.
func (q *Queue) syncAll() error {
	if q.opts.beforeSync != nil {
		q.opts.beforeSync()
	}
	st := &q.files
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := st.refresh(q.opts.Dir); err != nil {
		return err
	}
	// The value log first: it holds the bodies, the most to write, and
	// fdatasyncAll syncs the first file on this goroutine while the
	// others start on their own.
	todo := make([]*os.File, 0, 2+len(st.rotated))
	if st.vlog != nil {
		todo = append(todo, st.vlog)
	}
	if st.mem != nil {
		todo = append(todo, st.mem)
	}
	var rotated []string
	for name := range st.rotated {
		f, err := os.Open(filepath.Join(q.opts.Dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			delete(st.rotated, name) // flushed to a table meanwhile
			continue
		}
		if err != nil {
			return fmt.Errorf("queue: sync %s: %w", name, err)
		}
		defer f.Close()
		todo = append(todo, f)
		rotated = append(rotated, name)
	}
	if err := fdatasyncAll(todo); err != nil {
		return fmt.Errorf("queue: sync database in %s: %w", q.opts.Dir, err)
	}
	for _, name := range rotated {
		delete(st.rotated, name)
	}
	if q.opts.onFileSync != nil {
		for _, f := range todo {
			q.opts.onFileSync(f.Name())
		}
	}
	if !st.dirDirty {
		return nil
	}
	if err := fsyncDir(q.opts.Dir); err != nil {
		return fmt.Errorf("queue: sync directory %s: %w", q.opts.Dir, err)
	}
	if q.opts.onFileSync != nil {
		q.opts.onFileSync(q.opts.Dir)
	}
	st.dirDirty = false
	return nil
}

// fdatasyncAll fdatasyncs every file, all at once, and returns the first
// error.
func fdatasyncAll(files []*os.File) error {
	switch len(files) {
	case 0:
		return nil
	case 1:
		return fdatasyncFile(files[0])
	}
	errs := make([]error, len(files))
	var wg sync.WaitGroup
	for i, f := range files[1:] {
		wg.Go(func() { errs[i+1] = fdatasyncFile(f) })
	}
	errs[0] = fdatasyncFile(files[0])
	wg.Wait()
	return errors.Join(errs...)
}

func fdatasyncFile(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("fdatasync %s: %w", f.Name(), err)
		}
		return nil
	}
}

func fsyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
