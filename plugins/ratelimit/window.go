package ratelimit

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk"
)

// Kinds of counters.
const (
	kindMessages   = 'm'
	kindRecipients = 'r'
)

// maxSubjectLen is the longest subject kept verbatim in a store key; longer
// ones are hashed so that keys stay under the host's 256-byte limit.
const maxSubjectLen = 128

// who is what the limits of one call count by, read from the host once
// per call (each property is a host call).
type who struct {
	c                 *sdk.Ctx
	read              bool
	user, sender, dom string
	ip                string
}

// subject is the value a limit counts by for this session ("" when the
// key does not apply: no login, the null sender, no client address).
// Addresses and users are compared in lower case; an IPv6 client counts by
// its /64, which is what one host usually controls.
func (w *who) subject(key string) string {
	if !w.read {
		w.read = true
		w.user = strings.ToLower(w.c.AuthUser())
		w.sender = strings.ToLower(w.c.MailFrom())
		w.dom = sdk.Domain(w.sender)
		ip := w.c.ClientIP()
		switch {
		case !ip.IsValid():
		case ip.Is4() || ip.Is4In6():
			w.ip = ip.Unmap().String()
		default:
			w.ip = netip.PrefixFrom(ip, 64).Masked().String()
		}
	}
	switch key {
	case keyUser:
		return w.user
	case keySender:
		return w.sender
	case keySenderDomain:
		return w.dom
	case keyIP:
		return w.ip
	}
	return ""
}

// slider is one limit's sliding window for one subject at one instant.
//
// The window is cut into subWindows buckets of window/6, each a store
// counter keyed by its index since the epoch, which expires window+bucket
// after it was created. The count is the sum of the current bucket and the
// five before it, so it covers between 5/6 of the window and the whole
// window: an event stops counting at most window/6 early, never late.
type slider struct {
	kind     byte
	l        limit
	subj     string
	bucketMS int64
	nowMS    int64
	idx      int64
	// prefix is every bucket key's text before its index.
	prefix string
}

// newSlider places limit l for subj at the instant now.
func newSlider(kind byte, l limit, subj string, now time.Time) slider {
	b := l.window.Milliseconds() / subWindows
	ms := now.UnixMilli()
	idx := ms / b
	if ms < 0 && ms%b != 0 {
		idx-- // floor, for clocks before 1970
	}
	if len(subj) > maxSubjectLen {
		h := fnv.New64a()
		h.Write([]byte(subj))
		subj = fmt.Sprintf("#%016x", h.Sum64())
	}
	return slider{kind: kind, l: l, subj: subj, bucketMS: b, nowMS: ms, idx: idx, prefix: l.prefix[kindIndex(kind)]}
}

// max is the configured limit for the slider's kind.
func (s slider) max() int64 {
	if s.kind == kindMessages {
		return s.l.Messages
	}
	return s.l.Recipients
}

// key is the store key of bucket idx.
func (s slider) key(idx int64) string { return string(s.appendKey(nil, idx)) }

// appendKey appends the store key of bucket idx to dst.
func (s slider) appendKey(dst []byte, idx int64) []byte {
	dst = append(dst, s.prefix...)
	dst = strconv.AppendInt(dst, idx, 10)
	dst = append(dst, '/')
	return append(dst, s.subj...)
}

// sameCounter reports whether s and o count in the same store counter
// now: two limits with the same key and window.
func (s slider) sameCounter(o slider) bool {
	return s.prefix == o.prefix && s.subj == o.subj && s.idx == o.idx
}

// kindIndex is kind's index in limit.prefix.
func kindIndex(kind byte) int {
	if kind == kindMessages {
		return 0
	}
	return 1
}

// ttl is how long a bucket counter must live: until its bucket has left
// the window.
func (s slider) ttl() time.Duration {
	return s.l.window + time.Duration(s.bucketMS)*time.Millisecond
}

// keyBuf builds the store keys of one call in one buffer and makes them
// substrings of one string: a few allocations instead of two a key,
// which a guest pays dearly for.
type keyBuf struct {
	b    []byte
	ends []int
}

// addWindow adds the keys of the window's buckets, oldest first; the
// current bucket's is last unless withCurrent is false.
func (k *keyBuf) addWindow(s slider, withCurrent bool) {
	n := int64(subWindows)
	if !withCurrent {
		n--
	}
	for i := range n {
		k.b = s.appendKey(k.b, s.idx-subWindows+1+i)
		k.ends = append(k.ends, len(k.b))
	}
}

// keys returns the keys added, in order.
func (k *keyBuf) keys() []string {
	all, out, start := string(k.b), make([]string, len(k.ends)), 0
	for i, e := range k.ends {
		out[i], start = all[start:e], e
	}
	return out
}

// parse turns the values of the window's buckets, oldest first (nil for
// a bucket never counted), into counts.
func (s slider) parse(vals [][]byte) ([subWindows]int64, error) {
	var out [subWindows]int64
	for i, v := range vals {
		if v == nil {
			continue
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return out, fmt.Errorf("counter %s holds %q, not a number", s.key(s.idx-subWindows+1+int64(i)), v)
		}
		out[i] = n
	}
	return out, nil
}

// getMany reads keys in as few host calls as the host's per-call limit
// allows: one for every configuration of a reasonable size.
func getMany(c *sdk.Ctx, keys []string) ([][]byte, error) {
	out := make([][]byte, 0, len(keys))
	for len(keys) > 0 {
		n := min(len(keys), pluginapi.MaxKVGetMany)
		vs, err := c.KVGetMany(keys[:n]...)
		if err != nil {
			return nil, fmt.Errorf("reading %d window counters: %w", len(keys), err)
		}
		out, keys = append(out, vs...), keys[n:]
	}
	return out, nil
}

// incr adds delta to the current bucket and returns its new count.
func (s slider) incr(c *sdk.Ctx, delta int64) (int64, error) {
	k := s.key(s.idx)
	n, err := c.KVIncr(k, delta, s.ttl())
	if err != nil {
		return 0, fmt.Errorf("counting %s: %w", k, err)
	}
	return n, nil
}

// retryAfter is how long until the window, counted as counts, has room for
// one more event: when enough of the oldest buckets have slid out. It is
// at least one second.
func (s slider) retryAfter(counts [subWindows]int64) time.Duration {
	var total int64
	for _, n := range counts {
		total += n
	}
	for i, n := range counts {
		total -= n
		if total < s.max() {
			// Bucket idx-5+i leaves when the current index reaches idx+i+1.
			wait := (s.idx+int64(i)+1)*s.bucketMS - s.nowMS
			return max(time.Duration(wait)*time.Millisecond, time.Second)
		}
	}
	return s.l.window
}

// sum adds up counts.
func sum(counts [subWindows]int64) int64 {
	var t int64
	for _, n := range counts {
		t += n
	}
	return t
}
