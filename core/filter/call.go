package filter

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// Default replies for verdicts whose reply is missing or of the wrong class.
var (
	defaultReject     = Result{Verdict: pluginapi.Reject, Reply: mail.Reply{Code: 550, Enhanced: mail.EnhancedCode{5, 7, 1}, Text: "rejected by policy"}}
	defaultTempfail   = Result{Verdict: pluginapi.Tempfail, Reply: mail.Reply{Code: 451, Enhanced: mail.EnhancedCode{4, 7, 1}, Text: "try again later"}}
	defaultDisconnect = Result{Verdict: pluginapi.Disconnect, Reply: mail.Reply{Code: 421, Enhanced: mail.EnhancedCode{4, 7, 0}, Text: "closing connection"}}
	failureTempfail   = Result{Verdict: pluginapi.Tempfail, Reply: mail.Reply{Code: 451, Enhanced: mail.EnhancedCode{4, 3, 0}, Text: "filter failure, try again later"}}
)

// call runs one hook in one instance and maps the outcome to a Result. A
// failure discards the instance and applies the failure policy. The
// plugin's timeout counts from the call's start: waiting for an instance
// uses it up, and the host functions that can block (DNS, KV) end at it.
// A suspended plugin (see breaker) is not run: its failure policy answers.
//
// t0 is the host clock at the call's start when the caller has it (the
// chain's previous call just ended at it: Host.Run), 0 to read it. end is
// the clock at the call's end for the chain's next call, 0 after a call
// that failed or logged (a log line may wait on its writer, which is not
// the next plugin's time).
func (p *plugin) call(ctx context.Context, hook pluginapi.Hook, txn *Txn, t0 int64) (_ Result, end int64) {
	if t0 == 0 {
		t0 = p.h.nanotime()
	}
	if ok, resumed := p.brk.allow(t0); !ok {
		p.observeFailure(hook, pluginapi.FailSuspended, p.h.nanotime()-t0)
		return p.policy(), 0
	} else if resumed {
		p.log.InfoContext(ctx, "plugin resumed after its suspension", "plugin", p.name, "hook", hook.String())
	}
	deadline := t0 + int64(p.timeout)
	in, idle, err := p.pool.take(ctx, deadline)
	if err != nil {
		if errors.Is(err, errPoolClosed) {
			return Result{}, 0 // replaced or removed under us: the new chain runs it
		}
		t1 := p.h.nanotime()
		p.stats.observe(t1 - t0)
		p.observeFailure(hook, notRunKind(err), t1-t0)
		return p.notRun(ctx, hook, txn, err.Error()), 0
	}
	// An instance taken idle at once starts the call at t0: a clock read
	// less (one costs tens of nanoseconds in a VM).
	start := t0
	if !idle {
		start = p.h.nanotime()
	}
	if start >= deadline {
		p.pool.putAt(in, start)
		p.stats.observe(start - t0)
		p.observeFailure(hook, pluginapi.FailTimeout, start-t0)
		return p.notRun(ctx, hook, txn, errWaitDeadline.Error()), 0
	}
	in.env = Env{ctx: ctx, hook: hook, txn: txn, spec: &p.spec, deadline: p.h.base.Add(time.Duration(deadline))}
	in.stack[0] = uint64(uint32(hook))
	err, killed := in.run(in.onHook, in.stack[:], start, deadline-start)
	t1 := p.h.nanotime()
	p.stats.observe(t1 - t0)
	v := pluginapi.Verdict(int32(uint32(in.stack[0])))
	reply := in.env.reply
	in.env.release()
	in.env = Env{}
	switch {
	case killed:
		p.observeFailure(hook, pluginapi.FailTimeout, t1-t0)
		p.pool.discard(in)
		p.recordFailure(ctx, hook, t1)
		return p.fail(ctx, hook, txn, fmt.Sprintf("deadline of %v exceeded (%v)", p.timeout, err)), 0
	case err != nil:
		p.observeFailure(hook, in.trapKind(), t1-t0) // reads in: before discard
		p.pool.discard(in)
		p.recordFailure(ctx, hook, t1)
		return p.fail(ctx, hook, txn, "trap: "+err.Error()), 0
	case !v.Valid():
		p.observeFailure(hook, pluginapi.FailTrap, t1-t0)
		p.pool.discard(in)
		p.recordFailure(ctx, hook, t1)
		return p.fail(ctx, hook, txn, fmt.Sprintf("invalid verdict %d", int32(v))), 0
	case in.grown.Get() != 0:
		// Its table grew: what it took goes back now, not when the pool
		// shrinks.
		p.pool.discard(in)
	default:
		if p.pool.putAt(in, t1) {
			end = t1 // not after closing it, which takes time
		}
	}
	p.brk.succeeded()
	if v == pluginapi.Continue {
		p.observe(hook, v, t1-t0)
		return Result{}, end
	}
	r := p.result(ctx, v, reply, txn)
	p.observe(hook, r.Verdict, t1-t0)
	return r, 0
}

// result checks the reply of a verdict that carries one, logging a reply
// that does not fit its verdict.
func (p *plugin) result(ctx context.Context, v pluginapi.Verdict, reply *mail.Reply, txn *Txn) Result {
	r, ok := Decide(v, reply, p.name)
	if !ok {
		p.log.WarnContext(ctx, "plugin reply does not match its verdict; using the default reply",
			withID([]any{"plugin", p.name, "verdict", v.String(), "code", reply.Code}, txn)...)
	}
	return r
}

// Decide turns a plugin's verdict and the reply it set (nil if none; Env
// has checked it with mail.Reply.Check) into the chain's Result: a Reject
// needs a 5xx reply, a Tempfail a 4xx, a Disconnect 421; a missing reply
// takes the verdict's default, and so does one of the wrong class (ok is
// then false, for the caller to log). An empty enhanced code or text takes
// the default's. Continue and Accept pass through (the chain turns Accept
// into the end of the stage). A Quarantine keeps a reply set before it,
// whose text is the reason the message is held.
func Decide(v pluginapi.Verdict, reply *mail.Reply, plugin string) (r Result, ok bool) {
	var def Result
	switch v {
	case pluginapi.Continue, pluginapi.Accept:
		return Result{Verdict: v}, true
	case pluginapi.Discard:
		return Result{Verdict: v, Plugin: plugin}, true
	case pluginapi.Quarantine:
		// A reply set before quarantine gives the reason stored with the
		// held message (its code is not used).
		r = Result{Verdict: v, Plugin: plugin}
		if reply != nil {
			r.Reply = *reply
		}
		return r, true
	case pluginapi.Reject:
		def = defaultReject
	case pluginapi.Tempfail:
		def = defaultTempfail
	case pluginapi.Disconnect:
		def = defaultDisconnect
	default:
		return Result{Verdict: pluginapi.Continue}, false
	}
	def.Plugin = plugin
	if reply == nil || reply.Code == 0 {
		return def, true
	}
	ok = reply.Code/100 == def.Reply.Code/100
	if v == pluginapi.Disconnect {
		ok = reply.Code == 421
	}
	if !ok {
		return def, false
	}
	r = Result{Verdict: v, Reply: *reply, Plugin: plugin}
	if r.Reply.Enhanced.IsZero() {
		r.Reply.Enhanced = def.Reply.Enhanced
	}
	if r.Reply.Text == "" {
		r.Reply.Text = def.Reply.Text
	}
	return r, true
}

// fail logs a failed call, counts it and applies the failure policy.
func (p *plugin) fail(ctx context.Context, hook pluginapi.Hook, txn *Txn, reason string) Result {
	p.stats.errors.Add(1)
	p.log.ErrorContext(ctx, "plugin failed; instance discarded", withID([]any{"plugin", p.name, "hook", hook.String(),
		"reason", reason, "policy", p.conf.FailurePolicy}, txn)...)
	return p.policy()
}

// notRun logs a call that could not start (no instance within its
// deadline, or none could be made), counts it and applies the failure
// policy.
func (p *plugin) notRun(ctx context.Context, hook pluginapi.Hook, txn *Txn, reason string) Result {
	p.stats.errors.Add(1)
	p.log.WarnContext(ctx, "plugin not run", withID([]any{"plugin", p.name, "hook", hook.String(),
		"reason", reason, "policy", p.conf.FailurePolicy}, txn)...)
	return p.policy()
}

// policy is the Result of the plugin's failure policy.
func (p *plugin) policy() Result {
	if p.conf.FailurePolicy == "tempfail" {
		r := failureTempfail
		r.Plugin = p.name
		return r
	}
	return Result{}
}

// stats keeps a histogram of call times (four buckets per power of two of
// nanoseconds, lock-free), whose total is the number of calls, and counts
// errors.
type stats struct {
	errors atomic.Uint64
	hist   [256]atomic.Uint64
}

// calls returns the number of calls observed: the histogram's total (a
// sum when read, not a counter more on every call).
func (s *stats) calls() uint64 {
	var n uint64
	for i := range s.hist {
		n += s.hist[i].Load()
	}
	return n
}

func bucket(ns int64) int {
	if ns < 4 {
		return int(max(ns, 0))
	}
	e := bits.Len64(uint64(ns)) - 1 // >= 2
	sub := int(uint64(ns)>>(e-2)) & 3
	return (e-1)*4 + sub
}

// bucketValue is the middle of bucket i in nanoseconds.
func bucketValue(i int) int64 {
	if i < 4 {
		return int64(i)
	}
	e, sub := i/4+1, i%4
	lo := int64(4+sub) << (e - 2)
	return lo + (int64(1)<<(e-2))/2
}

func (s *stats) observe(ns int64) {
	s.hist[bucket(ns)].Add(1)
}

// quantile returns the q-quantile (0..1) of call times.
func (s *stats) quantile(q float64) time.Duration {
	var counts [256]uint64
	var total uint64
	for i := range s.hist {
		counts[i] = s.hist[i].Load()
		total += counts[i]
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total-1)) + 1
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank {
			return time.Duration(bucketValue(i))
		}
	}
	return 0
}
