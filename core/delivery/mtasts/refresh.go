package mtasts

import (
	"context"
	"strings"
	"time"
)

// failedFetch is a fetch that failed, under the record id, until when it
// is remembered.
type failedFetch struct {
	id    string
	err   error
	until time.Time
}

// recentFailure is the error of a fetch of domain's policy under the same
// record id that failed less than FailureTTL ago, or nil.
func (c *Cache) recentFailure(domain, id string, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.failed[domain]
	switch {
	case !ok:
		return nil
	case f.id != id || !now.Before(f.until):
		delete(c.failed, domain)
		return nil
	}
	return f.err
}

// refresh fetches domain's policy in the background, once at a time.
func (c *Cache) refresh(domain, id string) {
	if !c.claim(domain) {
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.refetch(domain, id)
	}()
}

// claim marks domain as being refreshed; false when it already is, or the
// Cache is closed.
func (c *Cache) claim(domain string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.refreshing[domain] {
		return false
	}
	c.refreshing[domain] = true
	return true
}

// refetch fetches the policy of domain, which the caller claimed, keeping
// the cached one when that fails.
func (c *Cache) refetch(domain, id string) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
	defer cancel()
	if _, err := c.fetch(ctx, domain, id); err != nil {
		c.log.Info("MTA-STS: refreshing a policy failed; the cached one stays", "domain", domain, "err", err)
	}
	c.mu.Lock()
	delete(c.refreshing, domain)
	c.mu.Unlock()
}

// sweeper runs sweep every SweepInterval until Close.
func (c *Cache) sweeper() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
			c.sweep(c.ctx)
		}
	}
}

// sweep fetches again, one after the other, the cached policies fetched
// more than RefreshAfter ago, whether or not their record is still
// published (RFC 8461 section 10.2: an attacker who strips the record
// must not be able to make a policy lapse).
func (c *Cache) sweep(ctx context.Context) {
	now := c.opts.Now()
	c.mu.Lock()
	for d, f := range c.failed {
		if !now.Before(f.until) {
			delete(c.failed, d)
		}
	}
	c.mu.Unlock()
	for _, domain := range c.cached(ctx) {
		p := c.load(ctx, domain, now)
		if p == nil || now.Sub(p.Fetched) <= RefreshAfter || !c.claim(domain) {
			continue
		}
		id, err := c.record(ctx, domain)
		if err != nil {
			id = p.ID
		}
		c.refetch(domain, id)
		if ctx.Err() != nil {
			return
		}
	}
}

// cached lists the domains with a policy in the cache.
func (c *Cache) cached(ctx context.Context) []string {
	if c.opts.Store == nil {
		c.mu.Lock()
		defer c.mu.Unlock()
		out := make([]string, 0, len(c.mem))
		for d := range c.mem {
			out = append(out, d)
		}
		return out
	}
	keys, err := c.opts.Store.Keys(ctx, keyPrefix)
	if err != nil {
		c.log.Warn("MTA-STS: listing the cached policies failed", "err", err)
		return nil
	}
	for i, k := range keys {
		keys[i] = strings.TrimPrefix(k, keyPrefix)
	}
	return keys
}
