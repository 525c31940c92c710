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

// subjects are what the limits of a call count by, derived from the
// session's properties (each a host call), and per limit and kind the
// state of its window in this instance.
type subjects struct {
	valid bool
	// The properties as the host gave them.
	rawUser, rawSender, rawIP string
	// What the limits count by: see subject.
	user, sender, dom, ip string
	// ls is the configuration wins was made for; wins[i][k] is limit
	// ls[i]'s window of kind k (kindIndex) for these subjects.
	ls   []limit
	wins [][2]winState
}

// winState is one window's state kept with its subjects: the subject as
// its keys hold it, its entry in the closed-bucket cache, and the key of
// the bucket last incremented.
type winState struct {
	subj   string
	e      *closedCounts
	keyIdx int64
	key    string
}

// lastSubjects is, in a wasm instance, the subjects of the call before.
// The host hands back the same property strings while a session's do not
// change (sdk's property cache), so a call of the same session — or of
// another with the same sender and client, as under a load — compares
// three strings instead of lower-casing and parsing them again and
// finds its windows' cache entries without a map lookup.
var lastSubjects subjects

// sessionSubjects reads the properties the limits ls count by and returns
// their subjects: lastSubjects when unchanged (a wasm instance), else
// derived afresh.
func sessionSubjects(c *sdk.Ctx, ls []limit) *subjects {
	user, sender := c.AuthUser(), c.MailFrom()
	rawIP, _ := c.Prop(pluginapi.PropClientIP)
	w := &lastSubjects
	if !cacheClosedBuckets {
		w = new(subjects) // natively calls run in parallel: nothing kept
	} else if w.valid && w.rawUser == user && w.rawSender == sender && w.rawIP == rawIP &&
		len(w.ls) == len(ls) && len(ls) > 0 && &w.ls[0] == &ls[0] {
		return w
	}
	*w = subjects{valid: true, rawUser: user, rawSender: sender, rawIP: rawIP, ls: ls, wins: make([][2]winState, len(ls))}
	w.user = strings.ToLower(user)
	w.sender = strings.ToLower(sender)
	w.dom = sdk.Domain(w.sender)
	ip, _ := netip.ParseAddr(rawIP)
	switch {
	case !ip.IsValid():
	case ip.Is4():
		w.ip = rawIP // already in its one textual form: no copy
	case ip.Is4In6():
		w.ip = ip.Unmap().String()
	default:
		w.ip = netip.PrefixFrom(ip, 64).Masked().String()
	}
	return w
}

// subject is the value a limit counts by for this session ("" when the
// key does not apply: no login, the null sender, no client address).
// Addresses and users are compared in lower case; an IPv6 client counts by
// its /64, which is what one host usually controls.
func (w *subjects) subject(key string) string {
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

// win is the state of limit ls[i]'s window of kind.
func (w *subjects) win(i int, kind byte) *winState { return &w.wins[i][kindIndex(kind)] }

// slider is one limit's sliding window for one subject at one instant.
//
// The window is cut into subWindows buckets of window/6, each a store
// counter keyed by its index since the epoch, which expires window+bucket
// after it was created. The count is the sum of the current bucket and the
// five before it, so it covers between 5/6 of the window and the whole
// window: an event stops counting at most window/6 early, never late.
type slider struct {
	kind     byte
	l        *limit
	subj     string
	bucketMS int64
	nowMS    int64
	idx      int64
	// prefix is every bucket key's text before its index.
	prefix string
	// win is the window's state kept with its subjects (nil: none kept).
	win *winState
}

// newSlider places limit l for subj at the instant now.
func newSlider(kind byte, l *limit, subj string, now time.Time) slider {
	return newSliderIn(kind, l, subj, now, nil)
}

// newSliderIn is newSlider keeping the window's state in win (nil: none):
// the hashed form of a long subject is computed once.
func newSliderIn(kind byte, l *limit, subj string, now time.Time, win *winState) slider {
	b := l.window.Milliseconds() / subWindows
	ms := now.UnixMilli()
	idx := ms / b
	if ms < 0 && ms%b != 0 {
		idx-- // floor, for clocks before 1970
	}
	if win != nil && win.subj != "" {
		subj = win.subj
	} else {
		if len(subj) > maxSubjectLen {
			h := fnv.New64a()
			h.Write([]byte(subj))
			subj = fmt.Sprintf("#%016x", h.Sum64())
		}
		if win != nil {
			win.subj = subj
		}
	}
	return slider{kind: kind, l: l, subj: subj, bucketMS: b, nowMS: ms, idx: idx, prefix: l.prefix[kindIndex(kind)], win: win}
}

// max is the configured limit for the slider's kind.
func (s *slider) max() int64 { return s.l.max(s.kind) }

// key is the store key of bucket idx, built in one allocation (appending
// to nil and converting would make four: a guest pays dearly for each).
func (s *slider) key(idx int64) string {
	var num [20]byte
	n := strconv.AppendInt(num[:0], idx, 10)
	var b strings.Builder
	b.Grow(len(s.prefix) + len(n) + 1 + len(s.subj))
	b.WriteString(s.prefix)
	b.Write(n)
	b.WriteByte('/')
	b.WriteString(s.subj)
	return b.String()
}

// incrKey is the current bucket's key, kept in the window's state so that
// the calls of one bucket build it once.
func (s *slider) incrKey() string {
	if s.win == nil {
		return s.key(s.idx)
	}
	if s.win.key == "" || s.win.keyIdx != s.idx {
		s.win.key, s.win.keyIdx = s.key(s.idx), s.idx
	}
	return s.win.key
}

// appendKey appends the store key of bucket idx to dst.
func (s *slider) appendKey(dst []byte, idx int64) []byte {
	dst = append(dst, s.prefix...)
	dst = strconv.AppendInt(dst, idx, 10)
	dst = append(dst, '/')
	return append(dst, s.subj...)
}

// sameCounter reports whether s and o count in the same store counter
// now: two limits with the same key and window.
func (s *slider) sameCounter(o *slider) bool {
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
func (s *slider) ttl() time.Duration {
	return s.l.window + time.Duration(s.bucketMS)*time.Millisecond
}

// keyBuf builds the store keys of one call in one buffer and makes them
// substrings of one string: a few allocations instead of two a key,
// which a guest pays dearly for.
type keyBuf struct {
	b    []byte
	ends []int
}

// keys appends the keys added, in order, to dst.
func (k *keyBuf) keys(dst []string) []string {
	all, start := string(k.b), 0
	for _, e := range k.ends {
		dst, start = append(dst, all[start:e]), e
	}
	return dst
}

// getMany reads keys in as few host calls as the host's per-call limit
// allows (one for every configuration of a reasonable size) and hands
// each value to fn in order, uncopied: v is valid only during fn.
func getMany(c *sdk.Ctx, keys []string, fn func(i int, v []byte)) error {
	for off := 0; off < len(keys); {
		n := min(len(keys)-off, pluginapi.MaxKVGetMany)
		base := off
		if err := c.KVGetManyFunc(keys[off:off+n], func(i int, v []byte) { fn(base+i, v) }); err != nil {
			return fmt.Errorf("reading %d window counters: %w", len(keys), err)
		}
		off += n
	}
	return nil
}

// incrMany makes the increments of ops in as few host calls as the host's
// per-call limit allows (one for every configuration of a reasonable
// size), setting each op's N.
func incrMany(c *sdk.Ctx, ops []sdk.KVIncrOp) error {
	for off := 0; off < len(ops); off += pluginapi.MaxKVIncrMany {
		part := ops[off:min(len(ops), off+pluginapi.MaxKVIncrMany)]
		if err := c.KVIncrMany(part); err != nil {
			return fmt.Errorf("counting %s and %d more: %w", part[0].Key, len(part)-1, err)
		}
	}
	return nil
}

// retryAfter is how long until the window, counted as counts, has room for
// one more event: when enough of the oldest buckets have slid out. It is
// at least one second.
func (s *slider) retryAfter(counts [subWindows]int64) time.Duration {
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
