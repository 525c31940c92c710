package metrics

import (
	"strings"
	"sync"
)

// admitAttempts is how many attempts a destination needs, counted in the
// candidate sketch, before it may take one of the free label slots: a
// domain seen once or twice never takes a slot a busy one could have.
const admitAttempts = 10

// OtherDestination is the destination label of every domain without one
// of its own.
const OtherDestination = "other"

// destinations turns a recipient domain into a destination label from a
// bounded set: the configured route domains, plus at most n other domains,
// each admitted for the life of the process once it has reached
// admitAttempts attempts (a guaranteed count, not an estimate) in a
// Space-Saving sketch (Metwally et al. 2005) of
// 8n counters. Everything else is "other". So at most len(routes)+n+1
// values exist, the busiest destinations of the process's early life get
// theirs first, and a counter never vanishes while the process runs (which
// rate() would read as a reset). A restart starts the ranking afresh.
type destinations struct {
	mu       sync.Mutex
	n        int
	fixed    map[string]bool
	admitted map[string]bool
	sketch   map[string]candidate // at most 8n entries
}

// candidate is a Space-Saving counter: count over-estimates the domain's
// attempts by at most err, the count it inherited.
type candidate struct{ count, err uint64 }

func newDestinations(routes []string, n int) *destinations {
	d := &destinations{n: max(n, 0), fixed: map[string]bool{}, admitted: map[string]bool{}, sketch: map[string]candidate{}}
	for _, r := range routes {
		d.fixed[normDomain(r)] = true
	}
	return d
}

// normDomain lowercases a domain and drops a final dot.
func normDomain(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// label returns domain's destination label, counting one attempt toward
// its admission.
func (d *destinations) label(domain string) string {
	domain = normDomain(domain)
	if domain == "" {
		return OtherDestination
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fixed[domain] || d.admitted[domain] {
		return domain
	}
	if len(d.admitted) >= d.n {
		return OtherDestination
	}
	c, ok := d.sketch[domain]
	if !ok && len(d.sketch) >= 8*d.n {
		// Space-Saving: the newcomer replaces the smallest counter and
		// inherits its count, which it may over-estimate by that much.
		var minKey string
		var minC uint64
		for k, v := range d.sketch {
			if minKey == "" || v.count < minC {
				minKey, minC = k, v.count
			}
		}
		delete(d.sketch, minKey)
		c = candidate{count: minC, err: minC}
	}
	c.count++
	if c.count-c.err < admitAttempts {
		d.sketch[domain] = c
		return OtherDestination
	}
	delete(d.sketch, domain)
	d.admitted[domain] = true
	return domain
}

// Labeled returns the domains that have a label of their own, routes
// first.
func (d *destinations) labeled() (routes, admitted []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range d.fixed {
		routes = append(routes, k)
	}
	for k := range d.admitted {
		admitted = append(admitted, k)
	}
	return routes, admitted
}
