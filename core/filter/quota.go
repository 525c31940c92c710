package filter

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Quota bounds what a plugin writes to the log (log, and its stdout and
// stderr) and to the key-value store (keys and values of kv_set and
// kv_incr), per call and, over all its calls, per minute. The excess is
// refused — a log line dropped, a KV write StatusTooLarge — and counted. A
// nil *Quota in EnvSpec bounds nothing.
type Quota struct {
	// LogLines and LogBytes bound one call's log; KVBytes its KV writes
	// (0: no bound).
	LogLines, LogBytes, KVBytes int
	// LogBytesPerMinute and KVBytesPerMinute bound the plugin's over time
	// (a bucket refilled at that rate, holding at most a minute's worth;
	// 0: no bound).
	LogBytesPerMinute, KVBytesPerMinute int64

	log, kv byteBucket
	refused atomic.Uint64
	// onRefuse, when set, is told of the first refusal of each call
	// (metrics).
	onRefuse func()
	warned   atomic.Int64 // Unix ns of the last line saying so
}

// Refused returns how many log lines and KV writes were refused.
func (q *Quota) Refused() uint64 { return q.refused.Load() }

// byteBucket is a token bucket of bytes.
type byteBucket struct {
	mu    sync.Mutex
	avail float64
	last  int64
}

// take takes n bytes at now (Unix ns) from a bucket refilled at perMinute
// bytes a minute, reporting false, taking nothing, when they are not
// there.
func (b *byteBucket) take(now int64, n int, perMinute int64) bool {
	if perMinute <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == 0 {
		b.avail = float64(perMinute)
	} else if now > b.last {
		b.avail = min(float64(perMinute), b.avail+float64(now-b.last)*float64(perMinute)/float64(time.Minute))
	}
	b.last = now
	if float64(n) > b.avail {
		return false
	}
	b.avail -= float64(n)
	return true
}

// quotaWarnEvery spaces the lines saying a plugin's writes are refused.
const quotaWarnEvery = 10 * time.Second

// allowLog counts a log line of n bytes against the call's and the
// plugin's quota.
func (e *Env) allowLog(n int) bool {
	q := e.spec.Quota
	if q == nil {
		return true
	}
	e.logLines++
	e.logBytes += n
	switch {
	case q.LogLines > 0 && e.logLines > q.LogLines, q.LogBytes > 0 && e.logBytes > q.LogBytes:
		e.refuse(q, "log", "per call")
		return false
	case !q.log.take(time.Now().UnixNano(), n, q.LogBytesPerMinute):
		e.refuse(q, "log", "per minute")
		return false
	}
	return true
}

// allowKV counts a KV write of n bytes against the call's and the
// plugin's quota.
func (e *Env) allowKV(n int) bool {
	q := e.spec.Quota
	if q == nil {
		return true
	}
	e.kvBytes += n
	switch {
	case q.KVBytes > 0 && e.kvBytes > q.KVBytes:
		e.refuse(q, "kv", "per call")
		return false
	case !q.kv.take(time.Now().UnixNano(), n, q.KVBytesPerMinute):
		e.refuse(q, "kv", "per minute")
		return false
	}
	return true
}

// refuse counts a refused write; the first of a call is reported to
// onRefuse and said in the log, at most every quotaWarnEvery for the
// plugin.
func (e *Env) refuse(q *Quota, what, per string) {
	q.refused.Add(1)
	if e.quotaNoted {
		return
	}
	e.quotaNoted = true
	if q.onRefuse != nil {
		q.onRefuse()
	}
	if e.spec.Logger == nil {
		return
	}
	now := time.Now().UnixNano()
	if w := q.warned.Load(); now-w < int64(quotaWarnEvery) || !q.warned.CompareAndSwap(w, now) {
		return
	}
	e.spec.Logger.Log(e.ctx, slog.LevelWarn, "plugin over its "+what+" quota; the excess is refused",
		withID([]any{"plugin", e.spec.Plugin, "hook", e.hook.String(), "quota", per, "refused", q.refused.Load()}, e.txn)...)
}
