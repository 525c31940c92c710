package dns

import (
	"container/list"
	"sync"
	"time"

	mdns "github.com/miekg/dns"
)

// qkey identifies a question.
type qkey struct {
	name  string // canonical: lower case, fully qualified
	qtype uint16
}

// answer is the outcome of a question: the records of the type asked at
// the end of the CNAME chain, or none, and whether the name does not exist.
type answer struct {
	rrs []mdns.RR
	nx  bool
	// secure is set when a trusted server validated the answer (AD bit).
	secure bool
}

// cache holds answers until they expire, dropping the least recently used
// when full.
type cache struct {
	mu  sync.Mutex
	max int
	m   map[qkey]*list.Element
	lru list.List // of *cacheEntry, most recent first
}

type cacheEntry struct {
	key     qkey
	ans     *answer
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[qkey]*list.Element)}
}

// get returns the answer for k unless it is missing or expired at now.
func (c *cache) get(k qkey, now time.Time) (*answer, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return nil, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.lru.Remove(el)
		delete(c.m, k)
		return nil, false
	}
	c.lru.MoveToFront(el)
	return e.ans, true
}

// put stores ans for k until expires.
func (c *cache) put(k qkey, ans *answer, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[k]; ok {
		e := el.Value.(*cacheEntry)
		e.ans, e.expires = ans, expires
		c.lru.MoveToFront(el)
		return
	}
	c.m[k] = c.lru.PushFront(&cacheEntry{key: k, ans: ans, expires: expires})
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
}

// len returns how many answers are cached.
func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

// flight is one exchange in progress that identical questions wait for.
type flight struct {
	done    chan struct{}
	waiters int // callers that asked, guarded by Resolver.mu
	ans     *answer
	err     error
}
