package filter

import (
	"context"
	"crypto/sha256"
	"sync"

	"github.com/tetratelabs/wazero"
)

// runtimes shares one wazero runtime and compiled module between the
// plugins loaded from the same module bytes with the same memory ceiling:
// the plugins of a bundle (pluginapi.FeatureEntry), such as the seven
// first-party plugins. They then hold one decoded module and one copy of
// its machine code, not one each (RATIONALE.md, "One module for the
// first-party plugins"); each plugin keeps its own pool of instances.
// Instances find their plugin through the call's context (instanceOf), so
// the host module a runtime holds serves them all.
type runtimes struct {
	mu sync.Mutex
	m  map[runtimeKey]*sharedRuntime
}

// runtimeKey identifies what a runtime compiles: the instrumented module
// (which depends on the table bound too) and the runtime's memory ceiling.
type runtimeKey struct {
	sum      [sha256.Size]byte
	memPages uint32
}

// sharedRuntime is a runtime with its compiled module, held by refs
// plugins; the last to let go closes it.
type sharedRuntime struct {
	key      runtimeKey
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	refs     int
	ready    chan struct{} // closed once rt and compiled (or err) are set
	err      error
}

// acquire returns the runtime for the instrumented module inst with a
// memory ceiling of memPages, made by build when no plugin holds one. The
// caller lets go of it with release.
func (r *runtimes) acquire(inst []byte, memPages uint32, build func() (wazero.Runtime, wazero.CompiledModule, error)) (*sharedRuntime, error) {
	key := runtimeKey{sum: sha256.Sum256(inst), memPages: memPages}
	r.mu.Lock()
	if r.m == nil {
		r.m = map[runtimeKey]*sharedRuntime{}
	}
	s, found := r.m[key]
	if found {
		s.refs++
	} else {
		s = &sharedRuntime{key: key, refs: 1, ready: make(chan struct{})}
		r.m[key] = s
	}
	r.mu.Unlock()
	if found {
		<-s.ready
		if s.err != nil {
			return nil, s.err
		}
		return s, nil
	}
	s.rt, s.compiled, s.err = build()
	if s.err != nil {
		r.mu.Lock()
		delete(r.m, key)
		r.mu.Unlock()
	}
	close(s.ready)
	if s.err != nil {
		return nil, s.err
	}
	return s, nil
}

// release lets go of s; the last holder closes its runtime.
func (r *runtimes) release(ctx context.Context, s *sharedRuntime) {
	r.mu.Lock()
	s.refs--
	last := s.refs == 0
	if last && r.m[s.key] == s {
		delete(r.m, s.key)
	}
	r.mu.Unlock()
	if last {
		_ = s.rt.Close(ctx)
	}
}

// len returns how many runtimes are held, for tests.
func (r *runtimes) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.m)
}
