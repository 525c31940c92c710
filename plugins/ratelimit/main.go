// Command ratelimit is a Sluice plugin that limits how many messages and
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
// is the host's (c.Now). Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o ratelimit.wasm .
package main

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
	sdk.OnInit(onInit)
	sdk.OnMail(onMail)
	sdk.OnRcpt(onRcpt)
	sdk.OnData(onData)
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
// one more recipient under any limit.
func onMail(c *sdk.Ctx) sdk.Verdict {
	ls, ok := limits(c)
	if !ok {
		return sdk.Continue()
	}
	now := c.Now()
	for _, l := range ls {
		subj := subject(c, l.Key)
		if subj == "" {
			continue
		}
		for _, kind := range []byte{kindMessages, kindRecipients} {
			s := newSlider(kind, l, subj, now)
			if s.max() == 0 {
				continue
			}
			counts, err := s.counts(c)
			if err != nil {
				c.KVFailed(err, "ratelimit: %v; not limiting", err)
				continue
			}
			if sum(counts) >= s.max() {
				return exceeded(c, s, sum(counts), s.retryAfter(counts))
			}
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

// count adds one event of kind to every applicable limit, checks each, and
// on the first one over undoes the counts made.
func count(c *sdk.Ctx, kind byte) sdk.Verdict {
	ls, ok := limits(c)
	if !ok {
		return sdk.Continue()
	}
	now := c.Now()
	var done []slider
	// counted is the current bucket's count after our increment, by key:
	// two limits sharing key and window share a counter.
	counted := map[string]int64{}
	undo := func() {
		for _, s := range done {
			if _, err := s.incr(c, -1); err != nil {
				c.KVFailed(err, "ratelimit: taking back a count: %v", err)
			}
		}
	}
	for _, l := range ls {
		subj := subject(c, l.Key)
		if subj == "" {
			continue
		}
		s := newSlider(kind, l, subj, now)
		if s.max() == 0 {
			continue
		}
		k := s.key(s.idx)
		mine, ok := counted[k]
		if !ok {
			n, err := s.incr(c, 1)
			if err != nil {
				c.KVFailed(err, "ratelimit: %v; not limiting", err)
				continue
			}
			mine, counted[k] = n, n
			done = append(done, s)
		}
		counts, err := s.counts(c)
		if err != nil {
			c.KVFailed(err, "ratelimit: %v; not limiting", err)
			continue
		}
		// The current bucket counts as the increment returned it: this
		// event's place in the bucket, which the store's atomic increment
		// gives each concurrent event once, on every node sharing it. A
		// fresh read would also see increments made after ours, some of
		// them about to be taken back, and refuse events that fit.
		counts[subWindows-1] = mine
		if sum(counts) > s.max() {
			undo()
			return exceeded(c, s, sum(counts)-1, s.retryAfter(counts))
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
func main() {}
