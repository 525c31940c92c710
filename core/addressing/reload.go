package addressing

import (
	"context"
	"errors"
	"os"
	"slices"
	"syscall"
	"time"
)

// fileStamp is what a poll compares to notice that a file changed: its
// size, modification time and inode.
type fileStamp struct {
	path  string
	size  int64
	mtime int64 // UnixNano
	ino   uint64
	err   string
}

// stampFiles stamps each map file. A file that cannot be read is an error.
func stampFiles(files Files) ([]fileStamp, error) {
	var out []fileStamp
	for _, p := range files.list() {
		st := stamp(p)
		if st.err != "" {
			return nil, errors.New(st.err)
		}
		out = append(out, st)
	}
	return out, nil
}

// stamp stamps one file; a missing file is a stamp with err set.
func stamp(path string) fileStamp {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{path: path, err: err.Error()}
	}
	st := fileStamp{path: path, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st
}

// Watch polls the map files every Options.Poll until ctx is done, and
// reloads them when one has changed and then stayed unchanged for one
// poll (so that a file being written is not read half-way). Run it in a
// goroutine.
func (r *Resolver) Watch(ctx context.Context) {
	tick := time.NewTicker(r.opts.Poll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			r.poll()
		}
	}
}

// poll looks at the files once and reloads them when they changed and
// have settled: unchanged since the previous poll, or last written at
// least a poll interval ago.
func (r *Resolver) poll() {
	now := r.stampAll()
	quiet := time.Now().Add(-r.opts.Poll).UnixNano()
	r.mu.Lock()
	settled := slices.Equal(now, r.seen) || !slices.ContainsFunc(now, func(s fileStamp) bool { return s.mtime > quiet })
	r.seen = now
	changed := !slices.Equal(now, r.loaded) && !slices.Equal(now, r.failed)
	r.mu.Unlock()
	if settled && changed {
		r.reload(now)
	}
}

// stampAll stamps every map file, missing ones included.
func (r *Resolver) stampAll() []fileStamp {
	var out []fileStamp
	for _, p := range r.opts.Files.list() {
		out = append(out, stamp(p))
	}
	return out
}

// Reload reads the map files now and swaps the new Table in. On a mistake
// it keeps the current Table and returns the mistakes.
func (r *Resolver) Reload() error {
	return r.reload(r.stampAll())
}

// reload loads the files stamped before as before. The new Table replaces
// the old one whole, and only when no file changed while it was read.
func (r *Resolver) reload(before []fileStamp) error {
	t, err := LoadTable(r.opts.Files)
	if err == nil && !slices.Equal(before, r.stampAll()) {
		return nil // changed while being read: the next poll takes it
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.failed = before
		for _, e := range unjoin(err) {
			r.log.Error("addressing: map not reloaded, keeping the previous one", "error", e.Error())
		}
		return err
	}
	r.table.Store(t)
	r.loaded, r.failed = before, nil
	r.reloads.Add(1)
	s := t.Stats()
	r.log.Info("addressing: maps reloaded", "domains", s.Domains, "mailboxes", s.Mailboxes, "aliases", s.Aliases, "catch_alls", s.CatchAlls)
	for _, w := range t.Warnings() {
		r.log.Warn("addressing: " + w)
	}
	return nil
}

// Reloads counts the Tables swapped in since New.
func (r *Resolver) Reloads() int64 { return r.reloads.Load() }

// unjoin returns the errors an errors.Join holds, or err itself.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
