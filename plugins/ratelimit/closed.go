package ratelimit

import (
	"fmt"
	"strconv"
	"time"

	"github.com/sluice-mta/sluice/sdk"
)

// closedGrace is how long after a bucket's end its count is taken as
// final. Events are counted in the bucket of the host clock at the start of
// their call, so a bucket still grows for as long as a call that began in
// it runs (a hook's timeout), and on another node sharing the store for as
// long as that node's clock lags this one's. Five seconds covers both for
// any sane timeout and NTP-synchronised nodes.
const closedGrace = 5 * time.Second

// maxClosedWindows bounds the windows an instance keeps final counts for:
// at that many the cache starts afresh (about 150 bytes a window).
const maxClosedWindows = 1024

// windowID names one limit's window for one subject: its counters' key
// prefix and the subject.
type windowID struct{ prefix, subj string }

// closedCounts holds the final counts of a window's buckets, each slot
// holding the bucket whose index is congruent to it modulo subWindows.
type closedCounts struct {
	idx [subWindows]int64
	n   [subWindows]int64
	ok  [subWindows]bool
}

// closedCache keeps the counts of buckets that have closed more than
// closedGrace ago. Nothing counts in such a bucket any more, so an
// instance reads each once instead of at every call, and a call that
// counts reads nothing but its increments once the window's older buckets
// are known. An instance runs one call at a time, so the cache needs no
// lock. It is off natively (see cacheClosedBuckets).
type closedCache struct {
	on bool
	m  map[windowID]*closedCounts
}

// closed is this instance's cache.
var closed = closedCache{on: cacheClosedBuckets}

// lookup returns the window's entry, nil when there is none. A slider
// with a window state finds it there after the first lookup: an entry
// stays valid for its window even after the cache started afresh.
func (cc *closedCache) lookup(s *slider) *closedCounts {
	if !cc.on {
		return nil
	}
	if s.win != nil && s.win.e != nil {
		return s.win.e
	}
	e := cc.m[windowID{s.prefix, s.subj}]
	if s.win != nil {
		s.win.e = e
	}
	return e
}

// get returns bucket b's final count if known.
func (e *closedCounts) get(b int64) (int64, bool) {
	if e == nil {
		return 0, false
	}
	i := slot(b)
	if e.ok[i] && e.idx[i] == b {
		return e.n[i], true
	}
	return 0, false
}

// put keeps bucket b's count n when the bucket is final at the slider's
// instant.
func (cc *closedCache) put(s *slider, b, n int64) {
	if !cc.on || s.nowMS < (b+1)*s.bucketMS+closedGrace.Milliseconds() {
		return
	}
	e := cc.lookup(s)
	if e == nil {
		if len(cc.m) >= maxClosedWindows || cc.m == nil {
			cc.m = make(map[windowID]*closedCounts)
		}
		e = new(closedCounts)
		cc.m[windowID{s.prefix, s.subj}] = e
		if s.win != nil {
			s.win.e = e
		}
	}
	i := slot(b)
	e.idx[i], e.n[i], e.ok[i] = b, n, true
}

// slot is bucket b's place in closedCounts.
func slot(b int64) int {
	i := int(b % subWindows)
	if i < 0 {
		i += subWindows
	}
	return i
}

// window is one slider's counts as readWindows found them: oldest bucket
// first, the current bucket last (0 unless read).
type window struct {
	counts [subWindows]int64
	// err is a counter that does not hold a number.
	err error
}

// scratch holds a call's working slices. A wasm instance runs one call
// at a time and keeps one scratch from call to call, so that a call
// allocates nothing once they have grown; natively each call has its own.
type scratch struct {
	ss   []slider
	ctr  []int
	ops  []sdk.KVIncrOp
	ws   []window
	want []wanted
	kb   keyBuf
	keys []string
}

// wanted is a bucket readWindows reads: slider i, place j, bucket index b.
type wanted struct {
	i, j int
	b    int64
}

// kept is the scratch a wasm instance keeps.
var kept scratch

// newScratch returns a call's scratch, its slices empty.
func newScratch() *scratch {
	if !cacheClosedBuckets {
		return new(scratch)
	}
	k := &kept
	k.ss, k.ctr, k.ops, k.ws, k.want, k.keys = k.ss[:0], k.ctr[:0], k.ops[:0], k.ws[:0], k.want[:0], k.keys[:0]
	k.kb.b, k.kb.ends = k.kb.b[:0], k.kb.ends[:0]
	return k
}

// readWindows returns the bucket counts of every slider's window in
// sc.ss, the current bucket included when withCurrent is set: the final
// ones from the cache, the rest read in one host call (none when the
// cache knows them all). The result is sc.ws.
func readWindows(c *sdk.Ctx, sc *scratch, withCurrent bool) ([]window, error) {
	ss := sc.ss
	out := sc.ws[:0]
	for range ss {
		out = append(out, window{})
	}
	sc.ws = out
	n := subWindows - 1
	if withCurrent {
		n = subWindows
	}
	want, kb := sc.want[:0], &sc.kb
	for i := range ss {
		s := &ss[i]
		e := closed.lookup(s)
		for j := range n {
			b := s.idx - subWindows + 1 + int64(j)
			// The current bucket is always read: it is never final, even
			// if a clock stepped back to a bucket kept as final.
			if v, ok := e.get(b); ok && j < subWindows-1 {
				out[i].counts[j] = v
				continue
			}
			kb.b = s.appendKey(kb.b, b)
			kb.ends = append(kb.ends, len(kb.b))
			want = append(want, wanted{i, j, b})
		}
	}
	sc.want = want
	if len(want) == 0 {
		return out, nil
	}
	sc.keys = kb.keys(sc.keys[:0])
	err := getMany(c, sc.keys, func(k int, v []byte) {
		w := want[k]
		s := &ss[w.i]
		n, ok := parseCount(v)
		if !ok {
			out[w.i].err = fmt.Errorf("counter %s holds %q, not a number", s.key(w.b), v)
			return
		}
		out[w.i].counts[w.j] = n
		closed.put(s, w.b, n)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// parseCount parses a counter's decimal value (nil: a bucket never
// counted, 0) as strconv.ParseInt does, without the string it would
// allocate for a plain run of digits.
func parseCount(v []byte) (int64, bool) {
	if v == nil {
		return 0, true
	}
	d := v
	if len(d) > 0 && d[0] == '-' {
		d = d[1:]
	}
	var n int64
	for _, ch := range d {
		if ch < '0' || ch > '9' {
			n = -1
			break
		}
		n = n*10 + int64(ch-'0')
	}
	if len(d) == 0 || len(d) > 18 || n < 0 {
		// Empty, long enough to overflow, or not plain digits: strconv
		// decides.
		n, err := strconv.ParseInt(string(v), 10, 64)
		return n, err == nil
	}
	if len(d) < len(v) {
		n = -n
	}
	return n, true
}
