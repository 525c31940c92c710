package filter

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-mta/sluice/pluginapi"
)

// idleTimeout is how long an instance above pool_min may sit unused before
// the pool closes it.
const idleTimeout = 30 * time.Second

// errPoolClosed is returned by get once the plugin was replaced or removed.
var errPoolClosed = errors.New("plugin unloaded")

// errWaitDeadline is returned by get when the call's deadline passed while
// it waited for an instance.
var errWaitDeadline = errors.New("deadline exceeded waiting for an idle instance (every instance busy)")

// instance is one instantiated module. It is also the context.Context of
// every call into it, so host functions find it (and the call's Env)
// without a map lookup or a context.WithValue allocation per call; its
// Done is nil, as deadlines are enforced by the Host's watchdog.
type instance struct {
	p      *plugin
	mod    api.Module
	mem    api.Memory
	onHook api.Function
	fuse   api.MutableGlobal
	fuel   api.MutableGlobal
	// grown is set by the guest's table.grow (see instrument).
	grown api.Global
	stack [1]uint64
	// features are the ABI features the guest requires (sluice_features).
	features pluginapi.Features

	// start is the host clock (ns) when the running call began, 0 when
	// idle, -1 once the watchdog fired. limit is the running call's
	// deadline (ns after start), written before start.
	start atomic.Int64
	limit atomic.Int64

	// env is the running call's Env; its ctx is the caller's context.
	env Env

	lastUsed int64 // host clock, under the pool's mutex
	// keep is the largest linear memory (bytes) put keeps in the pool:
	// what the instance had after _initialize plus releaseGrowth.
	keep uint32
}

// releaseGrowth is how much a guest's memory may grow past its size after
// _initialize and the instance still go back to the pool: one that grew
// more (a call that needed much memory, a large message) is closed when
// its call returns, so that its memory goes back to the kernel at once
// instead of staying with an idle instance, and the pool makes a fresh
// one when it needs one (about 5 ms for a first-party Go plugin). A Go
// guest's runtime takes memory in 4 MiB arenas: normal calls stay within
// the first (BENCHMARKS.md, "Memory").
const releaseGrowth = 8 << 20

type instKey struct{}

// Deadline implements context.Context: none (the watchdog enforces it).
func (in *instance) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done implements context.Context: nil, so the runtime starts nothing per call.
func (in *instance) Done() <-chan struct{} { return nil }

// Err implements context.Context.
func (in *instance) Err() error { return nil }

// Value implements context.Context, answering instKey with the instance
// and nothing else. It does not hand other keys to the caller's context:
// wazero asks the context for its snapshotter key at every call, which
// would walk the session's whole chain of contexts (logging values,
// cancellations) to find nothing, and no one else reads values from it —
// the host functions take the caller's context from the call's Env.
func (in *instance) Value(key any) any {
	if key == (instKey{}) {
		return in
	}
	return nil
}

// guarded calls fn with the watchdog armed for limit.
func (in *instance) guarded(fn api.Function, stack []uint64, limit time.Duration) (err error, killed bool) {
	return in.run(fn, stack, in.p.h.nanotime(), int64(limit))
}

// run calls fn, started at t0 (host clock, taken just before), with the
// watchdog and the guest's ticks armed for limit ns.
func (in *instance) run(fn api.Function, stack []uint64, t0, limit int64) (err error, killed bool) {
	h := in.p.h
	in.limit.Store(limit)
	in.start.Store(t0)
	if h.wdParked.Load() {
		h.wakeWatchdog() // after the start is stored: see Host.park
	}
	if h.killAll.Load() {
		in.fire(t0) // the Host is closing and its watchdog may be gone
	}
	err = fn.CallWithStack(in, stack)
	killed = !in.start.CompareAndSwap(t0, 0)
	return err, killed
}

// pool keeps a plugin's idle instances (a stack, so the coldest sink and are
// closed first), grows to max on demand and shrinks to min when idle.
// The warmest idle instance may sit in hot instead, handed from a call to
// the next with one atomic swap each way and no lock.
type pool struct {
	p   *plugin
	min int
	max int
	// hot is an idle instance outside idle (nil: none); put fills it when
	// empty, take empties it first.
	hot     atomic.Pointer[instance]
	mu      sync.Mutex
	idle    []*instance
	total   int          // live instances, including ones being created
	waiters atomic.Int32 // takers waiting for an instance
	closed  atomic.Bool  // set under mu
	avail   chan struct{}
	stop    chan struct{} // closed by close, wakes every waiter
	filling atomic.Bool
	// all lists every live instance for the watchdog (copy on write).
	all atomic.Pointer[[]*instance]
	// drained is closed when the pool is closed and its last instance gone.
	drained chan struct{}
}

func newPool(p *plugin, min, max int) *pool {
	return &pool{p: p, min: min, max: max, avail: make(chan struct{}, 1), stop: make(chan struct{}), drained: make(chan struct{})}
}

// get returns an idle instance, creates one when none is idle and the pool
// is below max, or waits for one until deadline (host clock; 0: none).
func (pl *pool) get(ctx context.Context, deadline int64) (*instance, error) {
	in, _, err := pl.take(ctx, deadline)
	return in, err
}

// take is get, and reports whether it took an idle instance at once
// (idle): otherwise it waited for one or made one, and the time that took
// counts against the call's deadline.
func (pl *pool) take(ctx context.Context, deadline int64) (_ *instance, idle bool, _ error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	var expired <-chan time.Time
	waited := false
	for {
		if in := pl.takeHot(); in != nil {
			return in, !waited, nil
		}
		pl.mu.Lock()
		if pl.closed.Load() {
			pl.mu.Unlock()
			return nil, false, errPoolClosed
		}
		if n := len(pl.idle); n > 0 {
			in := pl.idle[n-1]
			pl.idle = pl.idle[:n-1]
			more := n > 1 && pl.waiters.Load() > 0
			pl.mu.Unlock()
			if more {
				pl.signal()
			}
			return in, !waited, nil
		}
		if pl.total < pl.max {
			pl.total++
			pl.mu.Unlock()
			in, err := pl.p.newInstance(ctx)
			if err != nil {
				pl.release()
				return nil, false, err
			}
			return in, false, nil
		}
		pl.waiters.Add(1)
		pl.mu.Unlock()
		waited = true
		// A put that filled hot before it saw this waiter signals no one:
		// look again (waiters is written before hot is read here, and hot
		// before waiters is read in putAt, so one of the two sees the other).
		if in := pl.takeHot(); in != nil {
			pl.waiters.Add(-1)
			return in, false, nil
		}
		if deadline > 0 && timer == nil {
			timer = time.NewTimer(time.Duration(deadline - pl.p.h.nanotime()))
			expired = timer.C
		}
		timedOut := false
		select {
		case <-pl.avail:
		case <-pl.stop:
		case <-ctx.Done():
		case <-expired:
			timedOut = true
		}
		pl.waiters.Add(-1)
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		if timedOut {
			return nil, false, errWaitDeadline
		}
	}
}

// takeHot empties hot; nil if it was empty. An instance taken from a
// closed pool is discarded (close may have missed it) and nil returned.
func (pl *pool) takeHot() *instance {
	if pl.hot.Load() == nil {
		return nil
	}
	in := pl.hot.Swap(nil)
	if in != nil && pl.closed.Load() {
		pl.discard(in)
		return nil
	}
	return in
}

func (pl *pool) signal() {
	select {
	case pl.avail <- struct{}{}:
	default:
	}
}

// put returns a healthy instance after a call; one whose memory grew past
// keep is closed instead.
func (pl *pool) put(in *instance) { pl.putAt(in, pl.p.h.nanotime()) }

// putAt is put at host clock now (the end of the call just made). It
// reports whether the instance went back to the pool (false: it was
// closed).
func (pl *pool) putAt(in *instance, now int64) bool {
	if in.mem != nil && in.mem.Size() > in.keep {
		pl.discard(in)
		return false
	}
	in.lastUsed = now
	if !pl.closed.Load() && pl.hot.CompareAndSwap(nil, in) {
		if pl.closed.Load() {
			// close may have emptied hot before in went in.
			if x := pl.hot.Swap(nil); x != nil {
				pl.discard(x)
			}
			return false // in is closed, or a take has it (and closes it)
		}
		if pl.waiters.Load() > 0 {
			pl.signal()
		}
		return true
	}
	pl.mu.Lock()
	if pl.closed.Load() {
		pl.mu.Unlock()
		pl.discard(in)
		return false
	}
	pl.idle = append(pl.idle, in)
	w := pl.waiters.Load() > 0
	pl.mu.Unlock()
	if w {
		pl.signal()
	}
	return true
}

// discard closes an instance that trapped, timed out or misbehaved (or of a
// closed pool); the maintenance loop replaces it later.
func (pl *pool) discard(in *instance) {
	pl.unregister(in)
	_ = in.mod.Close(context.Background())
	pl.release()
}

// release gives back the slot of an instance that is gone.
func (pl *pool) release() {
	pl.mu.Lock()
	pl.total--
	last := pl.closed.Load() && pl.total == 0
	w := pl.waiters.Load() > 0
	pl.mu.Unlock()
	if w {
		pl.signal()
	}
	if last {
		pl.finish()
	}
}

func (pl *pool) register(in *instance) {
	for {
		old := pl.all.Load()
		var list []*instance
		if old != nil {
			list = append(list, *old...)
		}
		list = append(list, in)
		if pl.all.CompareAndSwap(old, &list) {
			return
		}
	}
}

func (pl *pool) unregister(in *instance) {
	for {
		old := pl.all.Load()
		if old == nil {
			return
		}
		list := make([]*instance, 0, len(*old))
		for _, x := range *old {
			if x != in {
				list = append(list, x)
			}
		}
		if pl.all.CompareAndSwap(old, &list) {
			return
		}
	}
}

// watch fires the fuse of every call in this pool past its deadline, or
// running at all after closeBy (host clock; 0: not closing), and reports
// whether a call was in flight.
func (pl *pool) watch(now, closeBy int64) (busy bool) {
	list := pl.all.Load()
	if list == nil {
		return false
	}
	closing := closeBy > 0 && now >= closeBy
	for _, in := range *list {
		s := in.start.Load()
		if s == 0 {
			continue
		}
		busy = true
		if s > 0 && (closing || now-s > in.limit.Load()) {
			in.fire(s)
		}
	}
	return busy
}


// yieldAfter is how long a call runs before its ticks yield the thread:
// a call of a well-behaved plugin never does; one that runs longer shares
// the CPUs with the other goroutines (sessions, other calls, the
// watchdog) every fuelPeriod checks.
const yieldAfter = time.Millisecond

// tick is the guest's own check, every fuelPeriod checks (instrument): it
// stops the running call once it is past its deadline (or the Host is
// closing), else, once it has run for yieldAfter, yields the thread.
func (in *instance) tick() {
	s := in.start.Load()
	if s <= 0 {
		return // no call, or stopped already
	}
	h := in.p.h
	now := h.nanotime()
	if cb := h.closeBy.Load(); now-s > in.limit.Load() || cb > 0 && now >= cb {
		in.fire(s)
		return
	}
	if now-s > int64(yieldAfter) {
		runtime.Gosched()
	}
}

// fire stops the call that started at s, unless it already ended or was
// stopped: the guest traps at its next loop iteration or call, and the
// caller sees the call as killed.
func (in *instance) fire(s int64) {
	if in.start.CompareAndSwap(s, -1) {
		in.fuse.Set(1)
		in.fuel.Set(0)
	}
}

// maintain tops the pool up to min in the background and closes one
// instance idle for longer than idleTimeout while above min.
func (pl *pool) maintain(now int64) {
	pl.mu.Lock()
	if pl.closed.Load() {
		pl.mu.Unlock()
		return
	}
	short := pl.total < pl.min
	var victim *instance
	if pl.total > pl.min && len(pl.idle) > 0 && now-pl.idle[0].lastUsed > int64(idleTimeout) {
		victim = pl.idle[0]
		pl.idle = pl.idle[1:]
	}
	pl.mu.Unlock()
	if victim != nil {
		pl.discard(victim)
	}
	if short && pl.filling.CompareAndSwap(false, true) {
		go func() {
			defer pl.filling.Store(false)
			if err := pl.fill(context.Background()); err != nil {
				pl.p.observeFailure(pluginapi.HookInit, pluginapi.FailLoad, 0)
			}
		}()
	}
}

// fill creates instances until the pool holds min.
func (pl *pool) fill(ctx context.Context) error {
	for {
		pl.mu.Lock()
		if pl.closed.Load() || pl.total >= pl.min {
			pl.mu.Unlock()
			return nil
		}
		pl.total++
		pl.mu.Unlock()
		in, err := pl.p.newInstance(ctx)
		if err != nil {
			pl.release()
			pl.p.log.Error("plugin instance failed to start", "plugin", pl.p.name, "err", err)
			return err
		}
		pl.put(in)
	}
}

// idleCount returns the number of idle instances (hot included).
func (pl *pool) idleCount() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	n := len(pl.idle)
	if pl.hot.Load() != nil {
		n++
	}
	return n
}

// size returns the number of live instances.
func (pl *pool) size() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.total
}

// close stops handing out instances and closes the idle ones; busy ones
// are closed as their calls finish, then the plugin's runtime.
func (pl *pool) close() {
	pl.mu.Lock()
	if pl.closed.Load() {
		pl.mu.Unlock()
		return
	}
	pl.closed.Store(true)
	idle := pl.idle
	pl.idle = nil
	empty := pl.total == 0
	pl.mu.Unlock()
	close(pl.stop) // wake every waiter; get sees closed
	if in := pl.hot.Swap(nil); in != nil {
		idle = append(idle, in)
	}
	for _, in := range idle {
		pl.discard(in)
	}
	if empty {
		pl.finish()
	}
}

func (pl *pool) finish() {
	pl.p.h.runtimes.release(context.Background(), pl.p.shared)
	close(pl.drained)
}

// String names the pool for logs.
func (pl *pool) String() string { return fmt.Sprintf("pool(%s)", pl.p.name) }
