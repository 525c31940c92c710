package plugintool

import (
	"context"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
)

// memKV is the in-memory store of an offline run; TTLs are ignored, as a
// run lasts well under any of them.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

var _ filter.KV = (*memKV)(nil)

func newMemKV() *memKV { return &memKV{m: map[string][]byte{}} }

func (s *memKV) Get(_ context.Context, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return append([]byte(nil), v...), ok, nil
}

func (s *memKV) Set(_ context.Context, key string, value []byte, _ time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = append([]byte(nil), value...)
	return nil
}

func (s *memKV) Incr(_ context.Context, key string, delta int64, _ time.Duration) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := strconv.ParseInt(string(s.m[key]), 10, 64)
	n += delta
	s.m[key] = []byte(strconv.FormatInt(n, 10))
	return n, nil
}

func (s *memKV) Del(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}
