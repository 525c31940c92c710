package remote

import (
	"context"
	"sync"
	"time"
)

// pool keeps idle SMTP connections, keyed by relay name
// ("host[ip]:port") and how they are secured, for the next message to the same place. Each closes
// after the idle timeout.
type pool struct {
	idle    time.Duration
	max     int
	quitTmo time.Duration

	mu     sync.Mutex
	conns  map[string][]*conn
	n      int
	closed bool
}

func newPool(idle time.Duration, max int, quitTimeout time.Duration) *pool {
	return &pool{idle: idle, max: max, quitTmo: quitTimeout, conns: make(map[string][]*conn)}
}

// get returns an idle connection to key, or nil.
func (p *pool) get(key string) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	list := p.conns[key]
	if len(list) == 0 {
		return nil
	}
	c := list[len(list)-1]
	p.take(key, len(list)-1)
	c.timer.Stop()
	return c
}

// take removes p.conns[key][i]; p.mu is held.
func (p *pool) take(key string, i int) {
	list := p.conns[key]
	list = append(list[:i], list[i+1:]...)
	if len(list) == 0 {
		delete(p.conns, key)
	} else {
		p.conns[key] = list
	}
	p.n--
}

// put keeps c for reuse, or closes it when the pool is full or closed.
func (p *pool) put(c *conn) {
	p.mu.Lock()
	if p.closed || p.n >= p.max {
		p.mu.Unlock()
		c.quit(p.quitTmo)
		return
	}
	p.conns[c.key] = append(p.conns[c.key], c)
	p.n++
	c.timer = time.AfterFunc(p.idle, func() { p.expire(c) })
	p.mu.Unlock()
}

// expire closes c if it is still idle in the pool.
func (p *pool) expire(c *conn) {
	p.mu.Lock()
	for i, x := range p.conns[c.key] {
		if x == c {
			p.take(c.key, i)
			p.mu.Unlock()
			c.quit(p.quitTmo)
			return
		}
	}
	p.mu.Unlock()
}

// close closes every idle connection; later puts close theirs.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	var all []*conn
	for _, list := range p.conns {
		for _, c := range list {
			c.timer.Stop()
			all = append(all, c)
		}
	}
	p.conns = make(map[string][]*conn)
	p.n = 0
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range all {
		wg.Go(func() { c.quit(p.quitTmo) })
	}
	wg.Wait()
}

// semaphores bounds concurrent deliveries per destination. Entries live
// only while someone holds or waits for them.
type semaphores struct {
	mu sync.Mutex
	m  map[string]*sem
}

type sem struct {
	ch    chan struct{}
	users int
}

func newSemaphores() *semaphores { return &semaphores{m: make(map[string]*sem)} }

// acquire takes one of limit slots for key, waiting as long as ctx allows.
func (s *semaphores) acquire(ctx context.Context, key string, limit int) (func(), error) {
	s.mu.Lock()
	e := s.m[key]
	if e == nil {
		e = &sem{ch: make(chan struct{}, limit)}
		s.m[key] = e
	}
	e.users++
	s.mu.Unlock()
	done := func() {
		s.mu.Lock()
		e.users--
		if e.users == 0 {
			delete(s.m, key)
		}
		s.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; done() }, nil
	case <-ctx.Done():
		done()
		return nil, ctx.Err()
	}
}
