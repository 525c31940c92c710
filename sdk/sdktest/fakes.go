package sdktest

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
)

var (
	_ filter.KV       = (*MemKV)(nil)
	_ filter.Resolver = MemResolver{}
	_ filter.Metrics  = (*Metrics)(nil)
)

// MemKV is an in-memory filter.KV. Expiry follows the clock given to
// NewMemKV.
type MemKV struct {
	now func() time.Time
	mu  sync.Mutex
	m   map[string]kvEntry
}

type kvEntry struct {
	v       []byte
	expires time.Time
}

// NewMemKV returns an empty store; now is its clock (nil: time.Now).
func NewMemKV(now func() time.Time) *MemKV {
	if now == nil {
		now = time.Now
	}
	return &MemKV{now: now, m: map[string]kvEntry{}}
}

func (s *MemKV) get(key string) (kvEntry, bool) {
	e, ok := s.m[key]
	if ok && !e.expires.IsZero() && !s.now().Before(e.expires) {
		delete(s.m, key)
		return kvEntry{}, false
	}
	return e, ok
}

func (s *MemKV) expiry(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return s.now().Add(ttl)
}

// Get implements filter.KV.
func (s *MemKV) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(key)
	return append([]byte(nil), e.v...), ok, nil
}

// Set implements filter.KV.
func (s *MemKV) Set(_ context.Context, key string, value []byte, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = kvEntry{v: append([]byte(nil), value...), expires: s.expiry(ttl)}
	return nil
}

// Incr implements filter.KV: the value is a decimal counter; a new counter
// gets the ttl, an existing one keeps its expiry.
func (s *MemKV) Incr(_ context.Context, key string, delta int64, ttl time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.get(key)
	var n int64
	if ok {
		n, _ = strconv.ParseInt(string(e.v), 10, 64)
	} else {
		e.expires = s.expiry(ttl)
	}
	n += delta
	e.v = []byte(strconv.FormatInt(n, 10))
	s.m[key] = e
	return n, nil
}

// Del implements filter.KV.
func (s *MemKV) Del(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// MemResolver is a filter.Resolver answering from a map keyed by
// "TYPE name", e.g. "A 2.0.0.127.zen.example.", "TXT example.com" (names
// with or without the final dot). Missing names have no answers.
type MemResolver map[string][]string

// Lookup implements filter.Resolver.
func (r MemResolver) Lookup(_ context.Context, qtype uint16, name string) ([]string, error) {
	t := map[uint16]string{1: "A", 28: "AAAA", 15: "MX", 16: "TXT", 12: "PTR"}[qtype]
	if a, ok := r[t+" "+name]; ok {
		return a, nil
	}
	if len(name) > 0 && name[len(name)-1] == '.' {
		return r[t+" "+name[:len(name)-1]], nil
	}
	return r[t+" "+name+"."], nil
}

// Metrics is an in-memory filter.Metrics keyed by metric name.
type Metrics struct {
	mu sync.Mutex
	m  map[string]float64
}

// NewMetrics returns empty counters.
func NewMetrics() *Metrics { return &Metrics{m: map[string]float64{}} }

// Add implements filter.Metrics.
func (m *Metrics) Add(_, name string, delta float64) {
	m.mu.Lock()
	m.m[name] += delta
	m.mu.Unlock()
}

// Snapshot returns a copy of the counters.
func (m *Metrics) Snapshot() map[string]float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.m)
}
