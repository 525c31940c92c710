// Package ratelimit is a Sluice plugin that limits how many messages and
// recipients an authenticated user, a sender address, a client IP or a
// sender domain may send within sliding windows (per minute, hour, day),
// the first defence against a compromised hosting account. Over a limit
// the client gets "451 4.7.1 Rate limit exceeded for <key>, try again in N
// seconds" and the metric ratelimit_exceeded grows by one.
//
// Recipients are counted at RCPT and messages at the data stage; limits are
// checked at MAIL (room for one more message and one more recipient) and
// at RCPT, so an over-limit sender is refused before it sends the message.
// Counters live in the host's key-value store (grant "kv"); the only clock
// is the host's (c.Now).
// It registers itself as the plugin ratelimit (sdk.Plugin); `make plugins`
// builds it into the first-party module, plugins/firstparty, with the
// others.
package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/sluice-mta/sluice/sdk"
)

// metricExceeded counts refusals.
const metricExceeded = "ratelimit_exceeded"

func init() {
	sdk.Plugin("ratelimit", func() {
		sdk.OnInit(onInit)
		sdk.OnMail(onMail)
		sdk.OnRcpt(onRcpt)
		sdk.OnData(onData)
	})
}

// onInit refuses to load with a bad configuration or without the grants.
func onInit(c *sdk.Ctx) error {
	if _, err := loadLimits(c); err != nil {
		return err
	}
	if _, _, err := c.KVGet("probe"); errors.Is(err, sdk.ErrDenied) {
		return errors.New(`the key-value store is not granted: add grants = ["kv", "metrics"] to ratelimit.toml`)
	}
	if err := c.Metric(metricExceeded, 0); errors.Is(err, sdk.ErrDenied) {
		return errors.New(`metrics are not granted: add grants = ["kv", "metrics"] to ratelimit.toml`)
	}
	return nil
}

// onMail refuses a sender that has no room left for one more message or
// one more recipient under any limit. Every window is read in one host
// call.
func onMail(c *sdk.Ctx) sdk.Verdict {
	ls, ok := limits(c)
	if !ok {
		return sdk.Continue()
	}
	now := c.Now()
	w := who{c: c}
	var ss []slider
	kb := keyBuf{b: make([]byte, 0, 2048), ends: make([]int, 0, 64)}
	for _, l := range ls {
		subj := w.subject(l.Key)
		if subj == "" {
			continue
		}
		for _, kind := range [...]byte{kindMessages, kindRecipients} {
			s := newSlider(kind, l, subj, now)
			if s.max() == 0 {
				continue
			}
			ss = append(ss, s)
			kb.addWindow(s, true)
		}
	}
	if len(ss) == 0 {
		return sdk.Continue()
	}
	vals, err := getMany(c, kb.keys())
	if err != nil {
		c.KVFailed(err, "ratelimit: %v; not limiting", err)
		return sdk.Continue()
	}
	for i, s := range ss {
		counts, err := s.parse(vals[i*subWindows : (i+1)*subWindows])
		if err != nil {
			c.KVFailed(err, "ratelimit: %v; not limiting", err)
			continue
		}
		if sum(counts) >= s.max() {
			return exceeded(c, s, sum(counts), s.retryAfter(counts))
		}
	}
	return sdk.Continue()
}

// onRcpt counts the recipient under every recipient limit and refuses it
// when that goes over one (and then takes the counts back).
func onRcpt(c *sdk.Ctx) sdk.Verdict {
	return count(c, kindRecipients)
}

// onData counts the message under every message limit; a sender that went
// over since MAIL (parallel sessions) is refused here.
func onData(c *sdk.Ctx) sdk.Verdict {
	return count(c, kindMessages)
}

// counted is one limit's window after this event's increment.
type counted struct {
	s slider
	// mine is the current bucket's count as our increment returned it.
	mine int64
}

// count adds one event of kind to every applicable limit (one increment
// per distinct counter), reads the older buckets of every window in one
// host call, checks each limit in order, and on the first one over takes
// back the counts made.
func count(c *sdk.Ctx, kind byte) sdk.Verdict {
	ls, ok := limits(c)
	if !ok {
		return sdk.Continue()
	}
	now := c.Now()
	w := who{c: c}
	var cs []counted
	var done []slider // the counters incremented, each once
	for _, l := range ls {
		subj := w.subject(l.Key)
		if subj == "" {
			continue
		}
		s := newSlider(kind, l, subj, now)
		if s.max() == 0 {
			continue
		}
		// Two limits sharing key and window share a counter: count once.
		shared := false
		for _, d := range cs {
			if d.s.sameCounter(s) {
				cs, shared = append(cs, counted{s: s, mine: d.mine}), true
				break
			}
		}
		if shared {
			continue
		}
		n, err := s.incr(c, 1)
		if err != nil {
			c.KVFailed(err, "ratelimit: %v; not limiting", err)
			continue
		}
		cs, done = append(cs, counted{s: s, mine: n}), append(done, s)
	}
	if len(cs) == 0 {
		return sdk.Continue()
	}
	kb := keyBuf{b: make([]byte, 0, 2048), ends: make([]int, 0, 64)}
	for _, d := range cs {
		kb.addWindow(d.s, false)
	}
	vals, err := getMany(c, kb.keys())
	if err != nil {
		c.KVFailed(err, "ratelimit: %v; not limiting", err)
		return sdk.Continue()
	}
	const older = subWindows - 1
	for i, d := range cs {
		counts, err := d.s.parse(vals[i*older : (i+1)*older])
		if err != nil {
			c.KVFailed(err, "ratelimit: %v; not limiting", err)
			continue
		}
		// The current bucket counts as the increment returned it: this
		// event's place in the bucket, which the store's atomic increment
		// gives each concurrent event once, on every node sharing it. A
		// fresh read would also see increments made after ours, some of
		// them about to be taken back, and refuse events that fit.
		counts[subWindows-1] = d.mine
		if sum(counts) > d.s.max() {
			for _, s := range done {
				if _, err := s.incr(c, -1); err != nil {
					c.KVFailed(err, "ratelimit: taking back a count: %v", err)
				}
			}
			return exceeded(c, d.s, sum(counts)-1, d.s.retryAfter(counts))
		}
	}
	return sdk.Continue()
}

// limits loads the configuration; a bad one (which the init check keeps
// from loading) is logged and limits nothing.
func limits(c *sdk.Ctx) ([]limit, bool) {
	ls, err := cfgCache.Get(c)
	if err != nil {
		c.Error("ratelimit: bad configuration, not limiting: %v", err)
		return nil, false
	}
	return ls, true
}

// cfgCache is the configuration, decoded once per instance.
var cfgCache = sdk.ConfigCache[[]limit]{Load: loadLimits}

// exceeded logs the refusal, counts it and returns the 451 reply.
func exceeded(c *sdk.Ctx, s slider, n int64, retry time.Duration) sdk.Verdict {
	what := "messages"
	if s.kind == kindRecipients {
		what = "recipients"
	}
	secs := int64(math.Ceil(retry.Seconds()))
	c.Warn("ratelimit: %s %s at %d of %d %s per %s; retry in %ds", s.l.Key, s.subj, n, s.max(), what, s.l.Window, secs)
	if err := c.Metric(metricExceeded, 1); err != nil {
		c.Error("ratelimit: metric %s: %v", metricExceeded, err)
	}
	return sdk.Tempfail(451, "4.7.1", fmt.Sprintf("Rate limit exceeded for %s, try again in %d seconds", s.l.Key, secs))
}

// main is not called: the host calls the exported hooks.
