package filter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/pluginapi"
)

// watchdogTick is how often the watchdog looks for calls past their
// deadline; a call overruns its timeout by at most about this much.
const watchdogTick = 2 * time.Millisecond

// maintainPeriod is how often pools are topped up and shrunk.
const maintainPeriod = 500 * time.Millisecond

// idleTicks is how many watchdog ticks in a row without a call in flight
// park the watchdog (100 ms): an idle server then wakes it only for pool
// maintenance, not 500 times a second (RATIONALE.md, "The watchdog
// parks while no call runs").
const idleTicks = 50

// closeGrace is how long Close lets calls in flight run on: a call still
// running that long after Close began is killed by the watchdog, even
// before its own deadline.
const closeGrace = time.Second

// Options configures a Host.
type Options struct {
	// Dir is the plugins directory: every *.wasm, ordered by file name,
	// with an optional NAME.toml beside it.
	Dir string
	// CacheDir holds wazero's on-disk compilation cache ("" = none).
	CacheDir string
	// KV backs the "kv" grant; nil makes it unusable (StatusDenied).
	KV KV
	// Resolver backs the "dns" grant; nil makes it unusable.
	Resolver Resolver
	// Metrics backs the "metrics" grant; nil makes it unusable.
	Metrics Metrics
	// Observer is told of every hook call and plugin failure (metrics);
	// nil: none, at no cost.
	Observer Observer
	// Logger receives load, failure and plugin log lines; nil discards. The
	// lines of a hook call carry what its context carries (core/logctx).
	Logger *slog.Logger
	// Now is the clock plugins see; nil means time.Now.
	Now func() time.Time
	// ReloadInterval is the directory poll period; 0 means 1s (changes
	// apply within 2s).
	ReloadInterval time.Duration
	// MemoryBudget bounds what all the plugins' pools together may take:
	// the sum over plugins of pool_max × (memory_limit + tables at their
	// bound). A plugin that would go over it is refused at load (0: no
	// budget).
	MemoryBudget int64
}

// Host loads the plugins of a directory and runs them at each hook.
type Host struct {
	opts  Options
	log   *slog.Logger
	cache wazero.CompilationCache
	base  time.Time
	// runtimes shares a runtime between plugins of one module (bundles).
	runtimes runtimes

	chain atomic.Pointer[chain]

	// mu serializes reloads and guards failed: files that failed to
	// load, not retried until they change.
	mu     sync.Mutex
	failed map[string]fingerprint
	// pmu guards pools: every pool not yet drained, including those of
	// replaced plugins with calls in flight and of plugins being loaded.
	pmu   sync.Mutex
	pools map[*pool]struct{}
	// wake wakes a parked watchdog: a pool was added, or a call started
	// while wdParked was set.
	wake chan struct{}
	// wdParked is set while the watchdog waits without ticking; wdWoken
	// counts the times a wake ended such a wait.
	wdParked atomic.Bool
	wdWoken  atomic.Int64

	// cancel stops the directory watcher, wg waits for it.
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stopWatchdog stops the watchdog, wdWG waits for it.
	stopWatchdog context.CancelFunc
	wdWG         sync.WaitGroup
	// closeBy is the host clock (ns) after which the watchdog kills every
	// call in flight; 0 until Close. killAll, once set, makes a call that
	// starts afterwards kill itself (the watchdog may be gone).
	closeBy atomic.Int64
	killAll atomic.Bool

	closeOnce sync.Once
	closeErr  error
}

// chain is an immutable set of loaded plugins in run order.
type chain struct {
	plugins []*plugin
	byHook  [pluginapi.NumHooks][]*plugin
	hooks   uint32
}

// PluginInfo describes a loaded plugin and its statistics.
type PluginInfo struct {
	Name  string
	File  string
	Order int
	// Hooks is the bit set (1<<pluginapi.Hook) of hooks it implements.
	Hooks         uint32
	Grants        []string
	FailurePolicy string
	Calls         uint64
	Errors        uint64
	P50, P99      time.Duration
	// Pool is the number of live instances; PoolMin and PoolMax its bounds.
	Pool, PoolMin, PoolMax int
	// Suspended reports that its calls kept failing and its failure policy
	// answers for it for a while; Suspensions counts the times it was
	// suspended and Skipped the calls answered so.
	Suspended            bool
	Suspensions, Skipped uint64
	// QuotaRefused counts the log lines and KV writes its quotas refused.
	QuotaRefused uint64
}

// New loads every plugin in opts.Dir and starts watching it. A module that
// fails to load is logged and skipped.
func New(ctx context.Context, opts Options) (*Host, error) {
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = time.Second
	}
	// The logger adds what the caller's context carries (logctx: the SMTP
	// session ID) to the lines of calls made for it.
	h := &Host{opts: opts, log: logctx.Logger(opts.Logger), base: time.Now(), pools: map[*pool]struct{}{}, wake: make(chan struct{}, 1), failed: map[string]fingerprint{}}
	if opts.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(opts.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("plugin compilation cache %s: %w", opts.CacheDir, err)
		}
		h.cache = c
	} else {
		h.cache = wazero.NewCompilationCache()
	}
	h.chain.Store(&chain{})
	if opts.Dir != "" {
		if _, err := os.Stat(opts.Dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("plugins directory: %w", err)
		}
	}
	h.startWatchdog(ctx)
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	h.reload(ctx)
	if opts.Dir != "" {
		h.wg.Add(1)
		go h.watchDir(lctx)
	}
	return h, nil
}

// addPool lets the watchdog see a pool's calls.
func (h *Host) addPool(pl *pool) {
	h.pmu.Lock()
	h.pools[pl] = struct{}{}
	h.pmu.Unlock()
	h.wakeWatchdog()
}

// wakeWatchdog wakes the watchdog if it is parked (or about to park).
func (h *Host) wakeWatchdog() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// nanotime is the host's monotonic clock in nanoseconds (never 0 or less).
func (h *Host) nanotime() int64 { return int64(time.Since(h.base)) + 1 }

// Run runs the chain at hook: each plugin implementing it, in order, until
// one returns a verdict other than Continue. Accept ends the stage with
// Continue; any other verdict is returned with its checked reply.
func (h *Host) Run(ctx context.Context, hook pluginapi.Hook, txn *Txn) Result {
	if hook < 0 || hook >= pluginapi.NumHooks {
		return Result{}
	}
	var t int64 // the previous call's end: the next one starts there
	for _, p := range h.chain.Load().byHook[hook] {
		var r Result
		switch r, t = p.call(ctx, hook, txn, t); r.Verdict {
		case pluginapi.Continue:
		case pluginapi.Accept:
			return Result{}
		default:
			return r
		}
	}
	return Result{}
}

// Hooks returns the union of the hooks of every loaded plugin.
func (h *Host) Hooks() uint32 { return h.chain.Load().hooks }

// Plugins describes the loaded plugins in run order.
func (h *Host) Plugins() []PluginInfo {
	c := h.chain.Load()
	out := make([]PluginInfo, 0, len(c.plugins))
	now := h.nanotime()
	for _, p := range c.plugins {
		out = append(out, PluginInfo{
			Name: p.name, File: p.file, Order: p.conf.Order, Hooks: p.hooks,
			Grants: append([]string(nil), p.conf.Grants...), FailurePolicy: p.conf.FailurePolicy,
			Calls: p.stats.calls(), Errors: p.stats.errors.Load(),
			P50: p.stats.quantile(0.5), P99: p.stats.quantile(0.99),
			Pool: p.pool.size(), PoolMin: p.pool.min, PoolMax: p.pool.max,
			Suspended: p.brk.openUntil.Load() > now, Suspensions: p.brk.suspensions.Load(), Skipped: p.brk.skipped.Load(),
			QuotaRefused: p.spec.Quota.Refused(),
		})
	}
	return out
}

// Close unloads every plugin. Calls in flight may run on until their
// deadline, but for at most closeGrace: the watchdog, which runs until every
// plugin is unloaded, then kills them, so a guest looping in a hook cannot
// hold Close. When ctx ends first, every call in flight is killed at once
// and Close returns ctx's error without waiting for them to unwind. Calls
// after Close continue (as for an empty chain). Close is idempotent.
func (h *Host) Close(ctx context.Context) error {
	h.closeOnce.Do(func() { h.closeErr = h.close(ctx) })
	return h.closeErr
}

func (h *Host) close(ctx context.Context) error {
	if h.cancel != nil {
		h.cancel() // no more reloads
	}
	h.wg.Wait()
	h.mu.Lock()
	old := h.chain.Swap(&chain{})
	h.mu.Unlock()
	h.closeBy.Store(h.nanotime() + int64(closeGrace))
	for _, p := range old.plugins {
		p.pool.close()
	}
	h.pmu.Lock()
	pools := make([]*pool, 0, len(h.pools))
	for pl := range h.pools {
		pools = append(pools, pl)
	}
	h.pmu.Unlock()
	for _, pl := range pools {
		select {
		case <-pl.drained:
		case <-ctx.Done():
			// Kill every call now; one starting after this kills itself.
			// The fuse stops a guest at its next loop iteration or call;
			// the pools then close themselves as the calls return.
			h.killAll.Store(true)
			h.closeBy.Store(1)
			now := h.nanotime()
			for _, pl := range pools {
				pl.watch(now, 1)
			}
			h.stopWatchdog()
			h.wdWG.Wait()
			return ctx.Err()
		}
	}
	h.stopWatchdog()
	h.wdWG.Wait()
	if h.cache == nil {
		return nil
	}
	return h.cache.Close(ctx)
}

// startWatchdog starts the Host's watchdog goroutine; Close stops it.
func (h *Host) startWatchdog(ctx context.Context) {
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.stopWatchdog = stop
	h.wdWG.Add(1)
	go h.watchdog(wctx)
}

// watchdog fires the fuse of calls past their deadline (or, once Close
// began, past closeBy) every tick and maintains the pools every
// maintainPeriod. After idleTicks ticks without a call in flight it parks
// (park). One goroutine per Host.
func (h *Host) watchdog(ctx context.Context) {
	defer h.wdWG.Done()
	t := time.NewTicker(watchdogTick)
	defer t.Stop()
	var pools []*pool
	maintained := h.nanotime() - int64(maintainPeriod) // at the first tick
	idle := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pools = h.livePools(pools[:0])
		now, closeBy := h.nanotime(), h.closeBy.Load()
		busy := false
		for _, pl := range pools {
			if pl.watch(now, closeBy) {
				busy = true
			}
		}
		if now-maintained >= int64(maintainPeriod) {
			for _, pl := range pools {
				pl.maintain(now)
			}
			maintained = now
		}
		if busy {
			idle = 0
			continue
		}
		if idle++; idle < idleTicks {
			continue
		}
		t.Stop()
		if !h.park(ctx, &maintained) {
			return
		}
		t.Reset(watchdogTick)
		idle = 0
	}
}

// park waits while no call is in flight, maintaining the pools every
// maintainPeriod, until a call starts (run sees wdParked and wakes it), a
// pool is added, or ctx ends (false). The flag is set before the pools
// are watched, and a call stores its start before it reads the flag, so
// either park sees the call or the call sees the flag: none runs
// unwatched.
func (h *Host) park(ctx context.Context, maintained *int64) bool {
	timer := time.NewTimer(maintainPeriod)
	defer timer.Stop()
	defer h.wdParked.Store(false)
	// A wake sent while the watchdog ticked (addPool's at load) is stale:
	// the pools are watched below, after the flag is set.
	select {
	case <-h.wake:
	default:
	}
	var pools []*pool
	for {
		h.wdParked.Store(true)
		pools = h.livePools(pools[:0])
		now, closeBy := h.nanotime(), h.closeBy.Load()
		for _, pl := range pools {
			if pl.watch(now, closeBy) {
				return true
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-h.wake:
			h.wdWoken.Add(1)
			return true
		case <-timer.C:
			now := h.nanotime()
			for _, pl := range pools {
				pl.maintain(now)
			}
			*maintained = now
			timer.Reset(maintainPeriod)
		}
	}
}

// livePools appends the pools not yet drained to pools, forgetting the
// drained ones.
func (h *Host) livePools(pools []*pool) []*pool {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	for pl := range h.pools {
		select {
		case <-pl.drained:
			delete(h.pools, pl)
		default:
			pools = append(pools, pl)
		}
	}
	return pools
}

// watchDir reloads the directory every ReloadInterval.
func (h *Host) watchDir(ctx context.Context) {
	defer h.wg.Done()
	t := time.NewTicker(h.opts.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			h.reload(ctx)
		}
	}
}

// scan lists the directory's modules with their fingerprints.
func (h *Host) scan() (map[string]fingerprint, error) {
	ents, err := os.ReadDir(h.opts.Dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	out := map[string]fingerprint{}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".wasm") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(h.opts.Dir, e.Name())
		fi, err := os.Stat(path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		fp := fingerprint{wasmMod: fi.ModTime(), wasmSize: fi.Size()}
		if ti, err := os.Stat(strings.TrimSuffix(path, ".wasm") + ".toml"); err == nil {
			fp.tomlMod, fp.tomlSize = ti.ModTime(), ti.Size()
		}
		out[path] = fp
	}
	return out, nil
}

// reload brings the chain in line with the directory: new and changed
// files are loaded, removed ones dropped. A file that fails to load is
// logged once and skipped; if it replaced a working version, that version
// keeps running until a good replacement loads. Calls in flight finish on
// the version they started with.
func (h *Host) reload(ctx context.Context) {
	if h.opts.Dir == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	files, err := h.scan()
	if err != nil {
		h.log.Error("cannot read plugins directory", "dir", h.opts.Dir, "err", err)
		return
	}
	cur := h.chain.Load()
	byFile := map[string]*plugin{}
	for _, p := range cur.plugins {
		byFile[p.file] = p
	}
	changed := false
	var next []*plugin
	var retired []*plugin
	// The plugins that stay as they are count against the memory budget
	// first; new and changed ones then load in file-name order while they
	// fit.
	paths := make([]string, 0, len(files))
	var used int64
	for path, fp := range files {
		paths = append(paths, path)
		if old := byFile[path]; old != nil && (old.finger == fp || h.failed[path] == fp) {
			used += old.memory()
		}
	}
	sort.Strings(paths)
	for _, path := range paths {
		fp := files[path]
		old := byFile[path]
		if old != nil && old.finger == fp {
			next = append(next, old)
			continue
		}
		if f, ok := h.failed[path]; ok && f == fp {
			if old != nil {
				next = append(next, old)
			}
			continue
		}
		p, err := h.loadPlugin(ctx, path, fp, loadOpts{limited: h.opts.MemoryBudget > 0, budget: h.opts.MemoryBudget - used})
		if err != nil {
			h.failed[path] = fp
			h.observeLoadFailure(path)
			if old != nil {
				next = append(next, old)
				used += old.memory()
				h.log.Error("plugin failed to load; the previous version keeps running", "plugin", old.name, "err", err)
			} else {
				h.log.Error("plugin failed to load; skipped", "file", path, "err", err)
			}
			continue
		}
		used += p.memory()
		delete(h.failed, path)
		next = append(next, p)
		changed = true
		if old != nil {
			retired = append(retired, old)
		}
		h.log.Info("plugin loaded", "plugin", p.name, "file", path, "hooks", hookList(p.hooks),
			"grants", strings.Join(p.conf.Grants, ","), "replaced", old != nil)
	}
	for path, p := range byFile {
		if _, ok := files[path]; !ok {
			retired = append(retired, p)
			changed = true
			h.log.Info("plugin removed", "plugin", p.name, "file", path)
		}
	}
	for path := range h.failed {
		if _, ok := files[path]; !ok {
			delete(h.failed, path)
		}
	}
	if !changed {
		return
	}
	h.chain.Store(newChain(next))
	for _, p := range retired {
		p.pool.close()
	}
	// Compiling a Go guest allocates several times its compiled size, all
	// garbage once it is done; the Go runtime would hand that memory back
	// to the system only slowly (seven first-party plugins left the
	// server at about 400 MiB RSS instead of 250). A load is rare, so the
	// forced collection it costs (tens of milliseconds) does not matter.
	debug.FreeOSMemory()
}

func newChain(ps []*plugin) *chain {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].conf.Order != ps[j].conf.Order {
			return ps[i].conf.Order < ps[j].conf.Order
		}
		return filepath.Base(ps[i].file) < filepath.Base(ps[j].file)
	})
	c := &chain{plugins: ps}
	for _, p := range ps {
		c.hooks |= p.hooks
		for hk := pluginapi.Hook(0); hk < pluginapi.NumHooks; hk++ {
			if p.hooks&(1<<hk) != 0 {
				c.byHook[hk] = append(c.byHook[hk], p)
			}
		}
	}
	return c
}

// hookList names the hooks of a bit set, comma-separated.
func hookList(hooks uint32) string {
	var names []string
	for hk := pluginapi.Hook(0); hk < pluginapi.NumHooks; hk++ {
		if hooks&(1<<hk) != 0 {
			names = append(names, hk.String())
		}
	}
	return strings.Join(names, ",")
}
