package filter

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
)

// breakerWindow is the span over which a plugin's failures are counted.
const breakerWindow = 10 * time.Second

// Breaker defaults for a plugin whose NAME.toml does not set them.
const (
	defaultBreakerFailures = 5
	defaultBreakerCooldown = 30 * time.Second
)

// breaker suspends a plugin whose calls keep failing (timing out, trapping,
// returning no verdict): once at least threshold calls have failed within
// breakerWindow, and they are at least half of the calls since the first
// of them, the plugin's failure policy answers every call at once for
// cooldown, without running it. Then calls run again, on probation: the
// first to fail before one succeeds suspends it again.
//
// A call that succeeds costs a load of openUntil and of probation (both
// rarely written); the counting is done on failures.
type breaker struct {
	threshold int64 // 0: never suspend
	cooldown  int64 // ns

	// openUntil is the host clock when a suspension ends, 0 when none.
	openUntil atomic.Int64
	probation atomic.Bool
	// winStart is the host clock of the window's first failure; fails
	// counts failures in it and calls0 is stats.calls at its start.
	winStart atomic.Int64
	fails    atomic.Int64
	calls0   atomic.Uint64

	// suspensions counts how often it opened, skipped the calls it
	// answered without running the plugin.
	suspensions atomic.Uint64
	skipped     atomic.Uint64
}

// allow reports whether a call at now may run. The first call after a
// suspension ends reports resumed (for the log).
func (b *breaker) allow(now int64) (ok, resumed bool) {
	u := b.openUntil.Load()
	if u == 0 {
		return true, false
	}
	if now < u {
		b.skipped.Add(1)
		return false, false
	}
	if !b.openUntil.CompareAndSwap(u, 0) {
		return true, false
	}
	b.probation.Store(true)
	b.fails.Store(0)
	b.winStart.Store(0)
	return true, true
}

// succeeded ends a probation.
func (b *breaker) succeeded() {
	if b.probation.Load() {
		b.probation.Store(false)
	}
}

// failed counts a failed call at now, calls being the plugin's calls so far
// (stats.calls); it reports whether this failure suspends the plugin, with
// the failures and calls in the window that did.
func (b *breaker) failed(now int64, calls uint64) (open bool, fails int64, inWindow uint64) {
	if b.threshold == 0 {
		return false, 0, 0
	}
	if s := b.winStart.Load(); s == 0 || now-s > int64(breakerWindow) {
		if b.winStart.CompareAndSwap(s, now) {
			b.fails.Store(0)
			b.calls0.Store(calls - 1)
		}
	}
	fails = b.fails.Add(1)
	inWindow = calls - b.calls0.Load()
	if !b.probation.Load() && (fails < b.threshold || uint64(2*fails) < inWindow) {
		return false, fails, inWindow
	}
	if !b.openUntil.CompareAndSwap(0, now+b.cooldown) {
		return false, fails, inWindow
	}
	b.probation.Store(false)
	b.suspensions.Add(1)
	return true, fails, inWindow
}

// recordFailure counts a failed call in the breaker and logs a suspension.
func (p *plugin) recordFailure(ctx context.Context, hook pluginapi.Hook, now int64) {
	open, fails, calls := p.brk.failed(now, p.stats.calls())
	if open {
		p.log.ErrorContext(ctx, "plugin suspended: its calls keep failing; its failure policy answers every call until it resumes",
			"plugin", p.name, "hook", hook.String(), "failures", fails, "calls", calls, "window", breakerWindow.String(),
			"for", time.Duration(p.brk.cooldown).String(), "policy", p.conf.FailurePolicy)
	}
}
