package filter

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// MemKV is an in-memory KV with the embedded store's semantics (TTLs on
// its clock; Incr on a decimal counter, an error on anything else; a new
// counter takes the ttl, an existing one keeps its expiry). It serves the
// offline tools (`sluice plugin check/test`), sdktest and an AUTH throttle
// given no store. Expired keys are dropped when touched, and all of them
// when the map grows past memKVPrune.
type MemKV struct {
	mu  sync.Mutex
	m   map[string]memVal
	now func() time.Time
}

type memVal struct {
	v   []byte
	exp time.Time // zero: never
}

// memKVPrune is the size past which a write sweeps expired keys.
const memKVPrune = 10000

var _ KV = (*MemKV)(nil)

// NewMemKV returns an empty store; now is its clock (nil: time.Now).
func NewMemKV(now func() time.Time) *MemKV {
	if now == nil {
		now = time.Now
	}
	return &MemKV{m: map[string]memVal{}, now: now}
}

// get returns key's live value; mu is held.
func (s *MemKV) get(key string) (memVal, bool) {
	e, ok := s.m[key]
	if ok && !e.exp.IsZero() && !s.now().Before(e.exp) {
		delete(s.m, key)
		return memVal{}, false
	}
	return e, ok
}

// put stores e; mu is held.
func (s *MemKV) put(key string, e memVal) {
	if len(s.m) >= memKVPrune {
		for k := range s.m {
			s.get(k)
		}
	}
	s.m[key] = e
}

func (s *MemKV) expiry(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return s.now().Add(ttl)
}

// Get implements KV.
func (s *MemKV) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(key)
	return append([]byte(nil), e.v...), ok, nil
}

// GetMany implements KV.
func (s *MemKV) GetMany(_ context.Context, keys []string) ([][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([][]byte, len(keys))
	for i, k := range keys {
		if e, ok := s.get(k); ok {
			out[i] = append([]byte{}, e.v...)
		}
	}
	return out, nil
}

// Set implements KV.
func (s *MemKV) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(key, memVal{v: append([]byte(nil), value...), exp: s.expiry(ttl)})
	return nil
}

// Incr implements KV: a new key takes ttl, an existing one keeps its
// expiry.
func (s *MemKV) Incr(_ context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.incr(key, delta, ttl)
}

// IncrMany implements KV: the increments in order, under one lock; a
// key that is not a counter fails the call with none made.
func (s *MemKV) IncrMany(_ context.Context, keys []string, deltas []int64, ttls []time.Duration) ([]int64, error) {
	if len(deltas) != len(keys) || len(ttls) != len(keys) {
		return nil, fmt.Errorf("incr of %d keys with %d deltas and %d TTLs", len(keys), len(deltas), len(ttls))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range keys {
		if e, ok := s.get(k); ok {
			if _, err := strconv.ParseInt(string(e.v), 10, 64); err != nil {
				return nil, err
			}
		}
	}
	out := make([]int64, len(keys))
	for i, k := range keys {
		out[i], _ = s.incr(k, deltas[i], ttls[i]) // every key checked above
	}
	return out, nil
}

// incr is Incr for a caller holding s.mu.
func (s *MemKV) incr(key string, delta int64, ttl time.Duration) (int64, error) {
	e, ok := s.get(key)
	var n int64
	if ok {
		old, err := strconv.ParseInt(string(e.v), 10, 64)
		if err != nil {
			return 0, err
		}
		n = old
	} else {
		e.exp = s.expiry(ttl)
	}
	n += delta
	e.v = strconv.AppendInt(nil, n, 10)
	s.put(key, e)
	return n, nil
}

// Del implements KV.
func (s *MemKV) Del(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}
