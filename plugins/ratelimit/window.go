package main

import (
	"fmt"
	"hash/fnv"
	"net/netip"
	"strconv"
	"strings"
	"time"

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

// subject is the value a limit counts by for this session ("" when the
// key does not apply: no login, the null sender, no client address).
// Addresses and users are compared in lower case; an IPv6 client counts by
// its /64, which is what one host usually controls.
func subject(c *sdk.Ctx, key string) string {
	switch key {
	case keyUser:
		return strings.ToLower(c.AuthUser())
	case keySender:
		return strings.ToLower(c.MailFrom())
	case keySenderDomain:
		return sdk.Domain(c.MailFrom())
	case keyIP:
		ip := c.ClientIP()
		switch {
		case !ip.IsValid():
			return ""
		case ip.Is4() || ip.Is4In6():
			return ip.Unmap().String()
		default:
			return netip.PrefixFrom(ip, 64).Masked().String()
		}
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
	prefix := string(kind) + "/" + l.Key + "/" + strconv.FormatInt(l.window.Milliseconds(), 10) + "/"
	return slider{kind: kind, l: l, subj: subj, bucketMS: b, nowMS: ms, idx: idx, prefix: prefix}
}

// max is the configured limit for the slider's kind.
func (s slider) max() int64 {
	if s.kind == kindMessages {
		return s.l.Messages
	}
	return s.l.Recipients
}

// key is the store key of bucket idx.
func (s slider) key(idx int64) string {
	return s.prefix + strconv.FormatInt(idx, 10) + "/" + s.subj
}

// ttl is how long a bucket counter must live: until its bucket has left
// the window.
func (s slider) ttl() time.Duration {
	return s.l.window + time.Duration(s.bucketMS)*time.Millisecond
}

// counts reads the buckets of the window, oldest first.
func (s slider) counts(c *sdk.Ctx) ([subWindows]int64, error) {
	var out [subWindows]int64
	for i := range out {
		k := s.key(s.idx - subWindows + 1 + int64(i))
		v, ok, err := c.KVGet(k)
		if err != nil {
			return out, fmt.Errorf("reading %s: %w", k, err)
		}
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(string(v), 10, 64)
		if err != nil {
			return out, fmt.Errorf("counter %s holds %q, not a number", k, v)
		}
		out[i] = n
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
