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
// call (its final buckets from the instance's cache).
func onMail(c *sdk.Ctx) sdk.Verdict {
	ls, ok := limits(c)
	if !ok {
		return sdk.Continue()
	}
	now := c.Now()
	w := sessionSubjects(c, ls)
	sc := newScratch()
	for li := range ls {
		l := &ls[li]
		subj := w.subject(l.Key)
		if subj == "" {
			continue
		}
		for _, kind := range [...]byte{kindMessages, kindRecipients} {
			if l.max(kind) != 0 {
				sc.ss = append(sc.ss, newSliderIn(kind, l, subj, now, w.win(li, kind)))
			}
		}
	}
	if len(sc.ss) == 0 {
		return sdk.Continue()
	}
	ws, err := readWindows(c, sc, true)
	if err != nil {
		c.KVFailed(err, "ratelimit: %v; not limiting", err)
		return sdk.Continue()
	}
	for i := range sc.ss {
		s := &sc.ss[i]
		if ws[i].err != nil {
			c.KVFailed(ws[i].err, "ratelimit: %v; not limiting", ws[i].err)
			continue
		}
		counts := ws[i].counts
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

// count adds one event of kind to every applicable limit (one increment
// per distinct counter, all in one host call), reads the older buckets of
// every window in one host call (none once they are final and cached),
// checks each limit in order, and on the first one over takes back the
// counts made (again in one call).
func count(c *sdk.Ctx, kind byte) sdk.Verdict {
	ls, ok := limits(c)
	if !ok {
		return sdk.Continue()
	}
	now := c.Now()
	w := sessionSubjects(c, ls)
	// sc.ss are the limits counted, sc.ctr[i] the index in sc.ops of the
	// counter limit i counts in (two limits sharing key and window share
	// one), sc.ops the increments.
	sc := newScratch()
	for li := range ls {
		l := &ls[li]
		subj := w.subject(l.Key)
		if subj == "" || l.max(kind) == 0 {
			continue
		}
		s := newSliderIn(kind, l, subj, now, w.win(li, kind))
		ctr := len(sc.ops)
		for i := range sc.ss {
			if sc.ss[i].sameCounter(&s) {
				ctr = sc.ctr[i]
				break
			}
		}
		if ctr == len(sc.ops) {
			sc.ops = append(sc.ops, sdk.KVIncrOp{Key: s.incrKey(), Delta: 1, TTL: s.ttl()})
		}
		sc.ss, sc.ctr = append(sc.ss, s), append(sc.ctr, ctr)
	}
	if len(sc.ss) == 0 {
		return sdk.Continue()
	}
	if err := incrMany(c, sc.ops); err != nil {
		c.KVFailed(err, "ratelimit: %v; not limiting", err)
		return sdk.Continue()
	}
	ss := sc.ss
	ws, err := readWindows(c, sc, false)
	if err != nil {
		c.KVFailed(err, "ratelimit: %v; not limiting", err)
		return sdk.Continue()
	}
	for i := range ss {
		if ws[i].err != nil {
			c.KVFailed(ws[i].err, "ratelimit: %v; not limiting", ws[i].err)
			continue
		}
		counts := ws[i].counts
		// The current bucket counts as the increment returned it: this
		// event's place in the bucket, which the store's atomic increment
		// gives each concurrent event once, on every node sharing it. A
		// fresh read would also see increments made after ours, some of
		// them about to be taken back, and refuse events that fit.
		counts[subWindows-1] = sc.ops[sc.ctr[i]].N
		if sum(counts) > ss[i].max() {
			for j := range sc.ops {
				sc.ops[j].Delta = -1
			}
			if err := incrMany(c, sc.ops); err != nil {
				c.KVFailed(err, "ratelimit: taking back a count: %v", err)
			}
			return exceeded(c, &ss[i], sum(counts)-1, ss[i].retryAfter(counts))
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
func exceeded(c *sdk.Ctx, s *slider, n int64, retry time.Duration) sdk.Verdict {
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
