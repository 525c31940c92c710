package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// syncFiles is what the group commit (syncAll) knows of the database
// directory: the files a sync must cover and whether the directory itself
// needs one. It is read again only when the directory changed.
type syncFiles struct {
	mu sync.Mutex
	// watch reports changes to the directory; nil lists it every time.
	watch *dirWatch
	// listed is set once the directory has been read.
	listed bool
	// mem and vlog are open on the newest WAL and value-log files (nil
	// before the first is made).
	mem, vlog         *os.File
	memName, vlogName string
	// rotated holds the WALs, other than the newest, not yet synced since
	// they were rotated out.
	rotated map[string]bool
	// listing is the directory as last fsynced; dirDirty is set when it
	// has changed since.
	listing  []string
	dirDirty bool
}

// open starts watching dir; without inotify the directory is listed at
// every sync.
func (s *syncFiles) open(dir string) {
	s.rotated = make(map[string]bool)
	if w, err := newDirWatch(dir); err == nil {
		s.watch = w
	}
}

// close releases the descriptors.
func (s *syncFiles) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range []*os.File{s.mem, s.vlog} {
		if f != nil {
			f.Close()
		}
	}
	s.mem, s.vlog = nil, nil
	if s.watch != nil {
		s.watch.close()
		s.watch = nil
	}
}

// refresh reads dir again when it may have changed since the last call:
// the newest WAL and value-log files, the WALs rotated out since, and
// whether the listing differs from the one last fsynced.
func (s *syncFiles) refresh(dir string) error {
	if s.listed && s.watch != nil {
		changed, err := s.watch.changed()
		if err == nil && !changed {
			return nil
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("queue: list %s: %w", dir, err)
	}
	s.listed = true
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	mem, vlog := newest(names, ".mem"), newest(names, ".vlog")
	present := make(map[string]bool, len(names))
	for _, n := range names {
		present[n] = true
		if strings.HasSuffix(n, ".mem") && n != mem && (n == s.memName || !s.seen(n)) {
			s.rotated[n] = true // rotated out since the last look, or found at start
		}
	}
	for n := range s.rotated {
		if !present[n] {
			delete(s.rotated, n) // flushed to an L0 table
		}
	}
	if s.mem, s.memName, err = reopen(s.mem, s.memName, dir, mem); err != nil {
		return err
	}
	if s.vlog, s.vlogName, err = reopen(s.vlog, s.vlogName, dir, vlog); err != nil {
		return err
	}
	if !slices.Equal(names, s.listing) {
		s.listing, s.dirDirty = names, true
	}
	return nil
}

// seen reports whether name was in the directory at the last look.
func (s *syncFiles) seen(name string) bool {
	_, ok := slices.BinarySearch(s.listing, name)
	return ok
}

// reopen returns f open on dir/name, reusing it when it is open on that
// name already.
func reopen(f *os.File, cur, dir, name string) (*os.File, string, error) {
	if name == cur && f != nil {
		return f, cur, nil
	}
	if f != nil {
		f.Close()
	}
	if name == "" {
		return nil, "", nil
	}
	nf, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		return nil, "", fmt.Errorf("queue: open %s for syncing: %w", filepath.Join(dir, name), err)
	}
	return nf, name, nil
}

// newest names the file with suffix and the highest number in a listing:
// Badger numbers WAL and value-log files in creation order, and the
// newest is the one written to.
func newest(names []string, suffix string) string {
	best, bestN := "", int64(-1)
	for _, name := range names {
		num, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(num, 10, 64); err == nil && n > bestN {
			best, bestN = name, n
		}
	}
	return best
}

// dirWatch tells whether entries were added to or removed from a
// directory since it was last asked (inotify).
type dirWatch struct{ fd int }

func newDirWatch(dir string) (*dirWatch, error) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	const events = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
		unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(fd, dir, events); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &dirWatch{fd: fd}, nil
}

// changed drains the queued events and reports whether there were any (an
// overflowed queue counts as a change).
func (w *dirWatch) changed() (bool, error) {
	var buf [4096]byte
	changed := false
	for {
		n, err := unix.Read(w.fd, buf[:])
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return changed, nil
		case err != nil:
			return true, err
		case n <= 0:
			return changed, nil
		}
		changed = true
	}
}

func (w *dirWatch) close() { unix.Close(w.fd) }
