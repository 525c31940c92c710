package sdktest

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
)

var (
	_ filter.Resolver = MemResolver{}
	_ filter.Metrics  = (*Metrics)(nil)
)

// MemKV is an in-memory filter.KV with the embedded store's semantics
// (filter.MemKV). Expiry follows the clock given to NewMemKV.
type MemKV = filter.MemKV

// NewMemKV returns an empty store; now is its clock (nil: time.Now).
func NewMemKV(now func() time.Time) *MemKV { return filter.NewMemKV(now) }

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
