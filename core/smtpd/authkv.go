package smtpd

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
)

// memKV is an in-memory filter.KV for an AuthThrottle given no store (a
// server without a queue database, tests). Expired keys are dropped when
// touched, and all of them when the map grows past memKVPrune.
type memKV struct {
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

var _ filter.KV = (*memKV)(nil)

func newMemKV() *memKV { return &memKV{m: map[string]memVal{}, now: time.Now} }

// get returns key's live value; mu is held.
func (s *memKV) get(key string) (memVal, bool) {
	e, ok := s.m[key]
	if ok && !e.exp.IsZero() && !s.now().Before(e.exp) {
		delete(s.m, key)
		return memVal{}, false
	}
	return e, ok
}

// put stores e; mu is held.
func (s *memKV) put(key string, e memVal) {
	if len(s.m) >= memKVPrune {
		for k := range s.m {
			s.get(k)
		}
	}
	s.m[key] = e
}

func (s *memKV) expiry(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return s.now().Add(ttl)
}

// Get implements filter.KV.
func (s *memKV) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(key)
	return append([]byte(nil), e.v...), ok, nil
}

// Set implements filter.KV.
func (s *memKV) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.put(key, memVal{v: append([]byte(nil), value...), exp: s.expiry(ttl)})
	return nil
}

// Incr implements filter.KV: a new key takes ttl, an existing one keeps its
// expiry.
func (s *memKV) Incr(_ context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
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

// Del implements filter.KV.
func (s *memKV) Del(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}
