package local

import "sync"

// dirSyncer shares directory fsyncs between concurrent deliveries into the
// same directory, as a group commit: Sync returns once an fsync of the
// directory that started after the call has finished, so that N renames
// into one mailbox's new/ cost about one directory fsync, not N. It keeps
// state only for directories with a caller in Sync, and starts no
// goroutines: the first caller to find no fsync running does it.
type dirSyncer struct {
	fsync func(dir string) error

	mu   sync.Mutex
	dirs map[string]*dirState
}

// dirState is one directory's group: fsyncs are numbered; started counts
// those begun, done the number of the last one finished, err its result.
type dirState struct {
	refs          int
	running       bool
	started, done uint64
	err           error
	cond          sync.Cond
}

func newDirSyncer(fsync func(dir string) error) *dirSyncer {
	return &dirSyncer{fsync: fsync, dirs: make(map[string]*dirState)}
}

// Sync makes every rename into dir done before the call durable.
func (s *dirSyncer) Sync(dir string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.dirs[dir]
	if st == nil {
		st = &dirState{}
		st.cond.L = &s.mu
		s.dirs[dir] = st
	}
	st.refs++
	defer func() {
		if st.refs--; st.refs == 0 {
			delete(s.dirs, dir)
		}
	}()
	// An fsync running now may have begun before our rename: only one that
	// starts after this point covers it.
	target := st.started + 1
	for st.done < target {
		if st.running {
			st.cond.Wait()
			continue
		}
		st.running = true
		st.started++
		n := st.started
		s.mu.Unlock()
		err := s.fsync(dir)
		s.mu.Lock()
		st.running, st.done, st.err = false, n, err
		st.cond.Broadcast()
	}
	// A later fsync than ours also covers us; its result is the one that
	// tells whether our rename is on disk.
	return st.err
}
