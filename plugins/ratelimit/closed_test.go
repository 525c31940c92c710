package ratelimit

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/kvstore/redistest"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/core/testclock"
)

// TestClosedCache: a bucket's count is kept only once the bucket closed
// closedGrace ago, is found only for its own index (not for one six
// buckets later in the same slot), and the cache starts afresh when full.
func TestClosedCache(t *testing.T) {
	l := limit{Key: keyIP, Window: "1m", Messages: 3, window: time.Minute, prefix: [2]string{"m/ip/60000/", "r/ip/60000/"}}
	s := newSlider(kindMessages, &l, "192.0.2.1", t0) // 03:04:05, bucket [03:04:00, 03:04:10)
	cc := closedCache{on: true}
	cc.put(&s, s.idx, 7)   // the current bucket: never final
	cc.put(&s, s.idx-1, 2) // closed at 03:04:00, 5 s ago: final
	e := cc.lookup(&s)
	if _, ok := e.get(s.idx); ok {
		t.Error("the current bucket was kept")
	}
	if n, ok := e.get(s.idx - 1); !ok || n != 2 {
		t.Errorf("closed bucket: %d, %v; want 2, true", n, ok)
	}
	if _, ok := e.get(s.idx - 1 + subWindows); ok {
		t.Error("a later bucket in the same slot found the closed one's count")
	}
	early := newSlider(kindMessages, &l, "192.0.2.1", t0.Add(-time.Second)) // 4 s after the close
	cc.put(&early, early.idx-1, 9)
	if n, _ := cc.lookup(&early).get(early.idx - 1); n != 2 {
		t.Errorf("a count read within the grace replaced the final one: %d", n)
	}
	if (&closedCache{}).lookup(&s) != nil {
		t.Error("a cache that is off found an entry")
	}
	for i := range maxClosedWindows {
		o := newSlider(kindMessages, &l, fmt.Sprintf("198.51.100.%d/%d", i%250, i), t0)
		cc.put(&o, s.idx-1, 1)
	}
	if len(cc.m) > maxClosedWindows {
		t.Errorf("%d windows kept, over %d", len(cc.m), maxClosedWindows)
	}
	if cc.lookup(&s) != nil {
		t.Error("the first window survived the cache starting afresh")
	}
}

// TestWindowSlidesWithCache: one node whose instance keeps the final
// counts of closed buckets refuses and accepts as the window slides,
// with counts made by another node sharing the store in between, and
// counts made in a bucket just after it closed (a node whose clock lags
// by two seconds) are not missed.
func TestWindowSlidesWithCache(t *testing.T) {
	rd := redistest.StartT(t)
	kv := config.KV{Backend: config.KVRedis, Redis: []string{rd.Addr}, Prefix: "slide:",
		Timeout: config.Duration(time.Second), OnError: config.KVFailOpen}
	now := testclock.New(t0) // 03:04:05
	toml := fmt.Sprintf(senderLimit, "continue", 3)
	a, b := kvNode(t, kv, toml, now), kvNode(t, kv, toml, now)
	send := func(nd *servertest.Server) error {
		return sendAs(nd.Addr, "", "bulk@remote.test", []string{"alice@localhost"})
	}
	expect := func(step string, nd *servertest.Server, code int) {
		t.Helper()
		if err := send(nd); servertest.Code(err) != code {
			t.Fatalf("%s: %v, want %d", step, err, code)
		}
	}
	expect("A's first, 03:04:05", a, 0)
	now.Add(6 * time.Second) // 03:04:11: [03:04:00, 03:04:10) closed 1 s ago
	expect("A's second, 03:04:11", a, 0)
	now.Add(-2 * time.Second) // B's clock 2 s behind: 03:04:09, in the closed bucket
	expect("B's, 03:04:09", b, 0)
	now.Add(3 * time.Second) // 03:04:12
	expect("A at the limit, 03:04:12", a, 451)
	now.Add(10 * time.Second) // 03:04:22: every older bucket final, the cache answers
	expect("A, 03:04:22", a, 451)
	expect("B, 03:04:22", b, 451)
	now.Add(40 * time.Second) // 03:05:02: [03:04:00, 03:04:10), with two, left the window
	expect("A after the slide, 03:05:02", a, 0)
	expect("A at the limit again, 03:05:02", a, 0)
	expect("A over it, 03:05:02", a, 451)
	now.Add(10 * time.Second) // 03:05:12: the message of 03:04:11 left too
	expect("B after the next slide, 03:05:12", b, 0)
	expect("A over it, 03:05:12", a, 451)
}

// FuzzParseCount: parseCount agrees with strconv.ParseInt.
func FuzzParseCount(f *testing.F) {
	for _, s := range []string{"0", "7", "-3", "+5", "", "-", "12a", "999999999999999999", "9223372036854775807", "-9223372036854775808", "9223372036854775808", " 1"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		if v == nil {
			v = []byte{} // nil is a bucket never counted, not a value
		}
		n, ok := parseCount(v)
		want, err := strconv.ParseInt(string(v), 10, 64)
		if ok != (err == nil) || ok && n != want {
			t.Fatalf("parseCount(%q) = %d, %v; strconv: %d, %v", v, n, ok, want, err)
		}
	})
}

// TestKeyForms: a bucket's key is the same whether built alone (key, for
// an increment) or among others (appendKey, for a read).
func TestKeyForms(t *testing.T) {
	l := limit{Key: keySender, window: 24 * time.Hour, prefix: [2]string{"m/sender/86400000/", "r/sender/86400000/"}}
	for _, subj := range []string{"a@example.org", ""} {
		s := newSlider(kindRecipients, &l, subj, t0)
		for _, idx := range []int64{s.idx, -1, 0} {
			if got, want := s.key(idx), string(s.appendKey([]byte("x"), idx)[1:]); got != want {
				t.Errorf("key(%d) = %q, appendKey %q", idx, got, want)
			}
		}
	}
	if s := newSlider(kindMessages, &l, "a@example.org", t0); s.key(3) != "m/sender/86400000/3/a@example.org" {
		t.Errorf("key(3) = %q", s.key(3))
	}
	// The increment's key kept in a window's state follows the bucket.
	var win winState
	for _, at := range []time.Time{t0, t0, t0.Add(4 * time.Hour), t0.Add(4 * time.Hour), t0} {
		s := newSliderIn(kindMessages, &l, "a@example.org", at, &win)
		if got, want := s.incrKey(), s.key(s.idx); got != want {
			t.Errorf("at %v: incrKey %q, key %q", at, got, want)
		}
	}
}
