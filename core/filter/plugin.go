package filter

import (
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/sluice-mta/sluice/pluginapi"
)

// wasiAllowed are the WASI functions a guest may import: what Go's wasip1
// runtime and syscall package reference. They run with no preopened
// directories, no environment, no arguments and no sockets, so the file
// and socket calls among them fail cleanly.
var wasiAllowed = map[string]bool{}

func init() {
	for _, n := range strings.Fields(`args_get args_sizes_get clock_time_get environ_get
		environ_sizes_get fd_close fd_fdstat_get fd_fdstat_set_flags fd_fdstat_set_rights
		fd_filestat_get fd_filestat_set_size fd_pread fd_prestat_dir_name fd_prestat_get
		fd_pwrite fd_read fd_readdir fd_seek fd_sync fd_write path_create_directory
		path_filestat_get path_filestat_set_times path_link path_open path_readlink
		path_remove_directory path_rename path_symlink path_unlink_file poll_oneoff
		proc_exit random_get sched_yield sock_accept sock_shutdown`) {
		wasiAllowed[n] = true
	}
}

const wasiModule = "wasi_snapshot_preview1"

// initTimeout bounds _initialize (Go's runtime start-up) and each
// load-time export (the ABI version, the features, sluice_hooks,
// sluice_init) in every instance: NAME.toml's init_timeout.
func (p *plugin) initTimeout() time.Duration {
	if d := p.conf.InitTimeout.D(); d > 0 {
		return d
	}
	return defaultInitTimeout
}

// plugin is one loaded module with its configuration, runtime and pool.
// It is immutable once loaded except for its pool and stats.
type plugin struct {
	h        *Host
	name     string // file name without .wasm
	file     string
	conf     pluginConf
	hooks    uint32
	spec     EnvSpec
	rt       wazero.Runtime
	compiled wazero.CompiledModule
	shared   *sharedRuntime // rt and compiled, maybe shared with other plugins
	modCfg   wazero.ModuleConfig
	pool     *pool
	stats    stats
	obs      PluginObserver // h's Observer's for this plugin; nil without one
	brk      breaker
	log      *slog.Logger
	timeout  time.Duration
	info     *ModuleInfo
	finger   fingerprint
}

// fingerprint identifies the version of a plugin's files on disk.
type fingerprint struct {
	wasmMod, tomlMod   time.Time
	wasmSize, tomlSize int64
}

// loadOpts adjust how a plugin is loaded.
type loadOpts struct {
	// conf is its NAME.toml ("": the one beside the module, if any).
	conf string
	// adjust changes the configuration read (nil: none).
	adjust func(*pluginConf)
	// budget is what is left of the server's plugin memory budget, when
	// limited: pool_max instances at their largest must fit in it.
	budget  int64
	limited bool
}

// loadPlugin compiles, validates and instantiates the plugin at path. On
// error nothing of it is left running.
func (h *Host) loadPlugin(ctx context.Context, path string, fp fingerprint, o loadOpts) (_ *plugin, err error) {
	name := strings.TrimSuffix(filepath.Base(path), ".wasm")
	if o.conf == "" {
		o.conf = strings.TrimSuffix(path, ".wasm") + ".toml"
	}
	conf, err := loadConf(o.conf)
	if err != nil {
		return nil, err
	}
	if o.adjust != nil {
		o.adjust(&conf)
	}
	bin, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := &plugin{h: h, name: name, file: path, conf: conf, log: h.log, timeout: conf.Timeout.D(), finger: fp, obs: h.observer(name)}
	p.brk.threshold, p.brk.cooldown = int64(conf.BreakerFailures), int64(conf.BreakerCooldown)
	p.spec = EnvSpec{Plugin: name, Entry: conf.Entry, Config: conf.Config, wholeConfig: &configJSON{}, Grants: conf.Grants, KV: h.opts.KV,
		Resolver: h.opts.Resolver, Metrics: h.opts.Metrics, Logger: h.log, Now: h.opts.Now, Quota: conf.Limits.quota()}
	p.spec.Quota.onRefuse = func() { p.observeFailure(pluginapi.HookInit, pluginapi.FailQuota, 0) }
	if err := p.compile(ctx, bin, h.cache); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := p.checkBudget(o.limited, o.budget); err != nil {
		p.h.runtimes.release(ctx, p.shared)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p.pool = newPool(p, conf.PoolMin, conf.PoolMax)
	h.addPool(p.pool)
	defer func() {
		if err != nil {
			p.pool.close() // closes the runtime once no instance is left
		}
	}()
	// The first instance answers the ABI version and the hook set.
	in, err := p.pool.get(ctx, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err = p.probe(in); err != nil {
		p.pool.discard(in)
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p.pool.put(in)
	if err = p.pool.fill(ctx); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// memory is what the plugin's pool may take at most: pool_max instances,
// each with its memory and tables at their limits.
func (p *plugin) memory() int64 { return int64(p.info.PoolMax) * p.info.InstanceMemory }

// checkBudget refuses a plugin whose pool could take more than what is
// left of the budget, when it is limited.
func (p *plugin) checkBudget(limited bool, budget int64) error {
	if !limited || p.memory() <= budget {
		return nil
	}
	budget = max(budget, 0)
	return fmt.Errorf("its pool may take %s (pool_max %d × %s per instance: memory_limit and tables), over the %s left of the server's plugin memory budget; lower pool_max or memory_limit in its .toml, or raise [plugins] memory_budget",
		sizeStr(p.memory()), p.info.PoolMax, sizeStr(p.info.InstanceMemory), sizeStr(budget))
}

// compile checks the binary, instruments it and compiles it in a runtime
// with the host modules, shared with every plugin loaded from the same
// bytes with the same memory ceiling (runtimes).
func (p *plugin) compile(ctx context.Context, bin []byte, cache wazero.CompilationCache) error {
	info, secs, err := inspectBinary(bin, &p.conf)
	if err != nil {
		return withName(err, p.name)
	}
	info.InstanceMemory, info.PoolMax = p.conf.instanceMemory(info.Tables), p.conf.PoolMax
	p.info = info
	inst, err := instrument(secs, uint32(p.conf.Limits.TableElements))
	if err != nil {
		return fmt.Errorf("cannot instrument module: %w", err)
	}
	pages := uint32(int64(p.conf.MemoryLimit) / pageSize)
	p.shared, err = p.h.runtimes.acquire(inst, pages, func() (wazero.Runtime, wazero.CompiledModule, error) {
		return newRuntime(ctx, inst, pages, cache)
	})
	if err != nil {
		return err
	}
	p.rt, p.compiled = p.shared.rt, p.shared.compiled
	if err := checkExports(p.compiled, isGoModule(secs)); err != nil {
		p.h.runtimes.release(ctx, p.shared)
		return withName(err, p.name)
	}
	p.modCfg = wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithSysWalltime().WithSysNanotime().WithRandSource(crand.Reader)
	return nil
}

// newRuntime makes a runtime (the memory ceiling is a runtime setting)
// with the host modules and compiles the instrumented module inst in it.
func newRuntime(ctx context.Context, inst []byte, memPages uint32, cache wazero.CompilationCache) (_ wazero.Runtime, _ wazero.CompiledModule, err error) {
	cfg := wazero.NewRuntimeConfig().WithMemoryLimitPages(memPages).WithCloseOnContextDone(false)
	if cache != nil {
		cfg = cfg.WithCompilationCache(cache)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	defer func() {
		if err != nil {
			_ = rt.Close(ctx)
		}
	}()
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, rt); err != nil {
		return nil, nil, err
	}
	if err := instantiateHostModule(ctx, rt); err != nil {
		return nil, nil, err
	}
	compiled, err := rt.CompileModule(ctx, inst)
	if err != nil {
		return nil, nil, fmt.Errorf("not a valid module: %w", err)
	}
	return rt, compiled, nil
}

// inspectBinary parses bin and refuses, with a message saying which key of
// NAME.toml would let it load, a module over conf's limits (size,
// functions, globals, data, tables, memory) and imports outside "sluice"
// and the WASI functions Go needs.
func inspectBinary(bin []byte, conf *pluginConf) (*ModuleInfo, []section, error) {
	lim := &conf.Limits
	if int64(len(bin)) > int64(lim.ModuleSize) {
		return nil, nil, fmt.Errorf("the module is %s, over the limit of %s; raise [limits] module_size in its .toml",
			sizeStr(int64(len(bin))), sizeStr(int64(lim.ModuleSize)))
	}
	secs, err := sections(bin)
	if err != nil {
		return nil, nil, err
	}
	if err := checkBounds(secs); err != nil {
		return nil, nil, err
	}
	bi, err := inspect(secs)
	if err != nil {
		return nil, nil, err
	}
	funcs := map[string]bool{}
	for _, f := range pluginapi.Funcs() {
		funcs[f.Name] = true
	}
	info := &ModuleInfo{MemoryMinPages: bi.memMin, TableMin: bi.tableMin, Tables: bi.tables,
		TableLimit: uint32(lim.TableElements), Functions: int(bi.functions), Globals: int(bi.globals),
		DataBytes: int64(bi.dataBytes), ModuleBytes: int64(len(bin)), memories: bi.memories}
	if bi.hasMemMax {
		info.MemoryMaxPages = bi.memMax
	}
	for _, im := range bi.imports {
		full := im.module + "." + im.name
		if !slices.Contains(info.Imports, full) { // Go's runtime imports fd_write twice
			info.Imports = append(info.Imports, full)
		}
		switch {
		case im.kind != 0:
			return nil, nil, fmt.Errorf("imports %s, which is not a function; a plugin may import only functions of %q and %q",
				full, pluginapi.HostModule, wasiModule)
		case im.module == pluginapi.HostModule && funcs[im.name], im.module == wasiModule && wasiAllowed[im.name]:
		default:
			if err := foreignImport(im.module, full); err != nil {
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("imports %s, which the host does not provide (ABI version %d): rebuild the plugin against a matching SDK",
				full, pluginapi.Version)
		}
	}
	memLimit := int64(conf.MemoryLimit)
	switch {
	case bi.functions > uint64(lim.Functions):
		return nil, nil, fmt.Errorf("declares %d functions, over the limit of %d; raise [limits] functions in its .toml", bi.functions, lim.Functions)
	case bi.globals > uint64(lim.Globals):
		return nil, nil, fmt.Errorf("declares %d globals, over the limit of %d; raise [limits] globals in its .toml", bi.globals, lim.Globals)
	case bi.dataBytes > uint64(lim.DataSize):
		return nil, nil, fmt.Errorf("has %s of data segments, over the limit of %s; raise [limits] data_size in its .toml",
			sizeStr(int64(bi.dataBytes)), sizeStr(int64(lim.DataSize)))
	case bi.memories > 1:
		return nil, nil, fmt.Errorf("declares %d memories; a plugin may have one", bi.memories)
	case int64(bi.memMin)*pageSize > memLimit:
		return nil, nil, fmt.Errorf("declares a memory of at least %d pages (%d MiB), over its memory_limit of %d MiB; raise memory_limit in its .toml or shrink the module",
			bi.memMin, int64(bi.memMin)*pageSize>>20, memLimit>>20)
	case bi.tableMin > uint32(lim.TableElements):
		return nil, nil, fmt.Errorf("declares a table of at least %d elements, over the limit of %d; raise [limits] table_elements in its .toml",
			bi.tableMin, lim.TableElements)
	}
	return info, secs, nil
}

// sizeStr writes a byte count for a message: "120 MiB", "300 KiB", "12 B".
func sizeStr(n int64) string {
	switch {
	case n >= 10<<20:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 10<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

// checkExports checks the guest exports' signatures; a WASI command is
// refused (checkCommand).
func checkExports(cm wazero.CompiledModule, goModule bool) error {
	ex := cm.ExportedFunctions()
	if err := checkCommand(ex, goModule); err != nil {
		return err
	}
	i32 := api.ValueTypeI32
	want := []struct {
		name           string
		params, result []api.ValueType
		required       bool
	}{
		{pluginapi.ExportABIVersion, nil, []api.ValueType{i32}, true},
		{pluginapi.ExportHooks, nil, []api.ValueType{i32}, true},
		{pluginapi.ExportOnHook, []api.ValueType{i32}, []api.ValueType{i32}, false},
		{pluginapi.ExportInitialize, nil, nil, false},
		{pluginapi.ExportInit, nil, []api.ValueType{i32}, false},
		{pluginapi.ExportFeatures, []api.ValueType{i32}, []api.ValueType{i32}, false},
	}
	for _, w := range want {
		f, ok := ex[w.name]
		if !ok {
			if w.required {
				return fmt.Errorf("does not export %s: not a Sluice plugin (see pluginapi/ABI.md)", w.name)
			}
			continue
		}
		if !sameTypes(f.ParamTypes(), w.params) || !sameTypes(f.ResultTypes(), w.result) {
			return fmt.Errorf("export %s has the wrong signature %v -> %v", w.name, f.ParamTypes(), f.ResultTypes())
		}
	}
	return nil
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// newInstance instantiates the module, runs _initialize under the watchdog
// and negotiates the ABI. The caller has reserved a slot in the pool.
func (p *plugin) newInstance(ctx context.Context) (*instance, error) {
	w := newLogWriter(p.log, p.name)
	// The guest's memory is mapped outside the Go heap (linmem.go).
	actx := experimental.WithMemoryAllocator(ctx, mmapAllocator{})
	mod, err := p.rt.InstantiateModule(actx, p.compiled, p.modCfg.WithStdout(w).WithStderr(w))
	if err != nil {
		return nil, fmt.Errorf("cannot instantiate: %w", err)
	}
	fuse, _ := mod.ExportedGlobal(fuseExport).(api.MutableGlobal)
	fuel, _ := mod.ExportedGlobal(fuelExport).(api.MutableGlobal)
	grown := mod.ExportedGlobal(grownExport)
	var mem api.Memory
	if p.info.memories > 0 {
		mem = mod.Memory() // without a memory, wazero's is a nil pointer in a non-nil interface
	}
	in := &instance{p: p, mod: mod, mem: mem, onHook: mod.ExportedFunction(pluginapi.ExportOnHook), fuse: fuse, fuel: fuel, grown: grown}
	w.in = in
	if fuse == nil || fuel == nil || grown == nil {
		_ = mod.Close(ctx)
		return nil, errors.New("instrumentation missing")
	}
	p.pool.register(in)
	if f := mod.ExportedFunction(pluginapi.ExportInitialize); f != nil {
		err, killed := in.guarded(f, nil, p.initTimeout())
		if err != nil || killed {
			p.pool.unregister(in)
			_ = mod.Close(ctx)
			if killed {
				return nil, fmt.Errorf("_initialize ran longer than %v (init_timeout)", p.initTimeout())
			}
			return nil, fmt.Errorf("_initialize failed: %w", err)
		}
	}
	if err := p.negotiate(in); err != nil {
		p.pool.unregister(in)
		_ = mod.Close(ctx)
		return nil, err
	}
	in.keep = ^uint32(0)
	if in.mem != nil {
		in.keep = uint32(min(uint64(in.mem.Size())+releaseGrowth, 1<<32-1))
	}
	return in, nil
}

// negotiate checks a new instance's ABI version and, when it exports
// sluice_features, tells it the host's features and checks the ones it
// requires: every one must be known to this host, and init needs the
// sluice_init export.
func (p *plugin) negotiate(in *instance) error {
	var st [1]uint64
	err, killed := in.guarded(in.mod.ExportedFunction(pluginapi.ExportABIVersion), st[:], p.initTimeout())
	if err != nil || killed {
		return fmt.Errorf("%s failed: %v", pluginapi.ExportABIVersion, err)
	}
	if v := uint32(st[0]); v != pluginapi.Version {
		return fmt.Errorf("built for plugin ABI version %d, but this host speaks version %d: rebuild it with a matching SDK", v, pluginapi.Version)
	}
	f := in.mod.ExportedFunction(pluginapi.ExportFeatures)
	if f == nil {
		return nil
	}
	st[0] = uint64(pluginapi.KnownFeatures)
	err, killed = in.guarded(f, st[:], p.initTimeout())
	if err != nil || killed {
		return fmt.Errorf("%s failed: %v", pluginapi.ExportFeatures, err)
	}
	req := pluginapi.Features(uint32(st[0]))
	if missing := req &^ pluginapi.KnownFeatures; missing != 0 {
		return fmt.Errorf("plugin %s requires ABI feature %s, which this host does not support (this host supports: %s): upgrade Sluice or rebuild the plugin for this version",
			p.name, missing, pluginapi.KnownFeatures)
	}
	if req&pluginapi.FeatureInit != 0 && in.mod.ExportedFunction(pluginapi.ExportInit) == nil {
		return fmt.Errorf("plugin %s requires ABI feature %s but does not export %s", p.name, pluginapi.FeatureInit, pluginapi.ExportInit)
	}
	in.features = req
	return nil
}

// probe reads the hook set from the first instance (newInstance has checked
// its ABI version and features) and runs the guest's init.
func (p *plugin) probe(in *instance) error {
	p.info.ABIVersion = pluginapi.Version
	p.info.Features = in.features
	var st [1]uint64
	// A module holding several plugins asks which one it is (PropPlugin)
	// before it answers.
	in.env = loadEnv(&p.spec)
	err, killed := in.guarded(in.mod.ExportedFunction(pluginapi.ExportHooks), st[:], p.initTimeout())
	in.env = Env{}
	if err != nil || killed {
		return fmt.Errorf("%s failed: %v", pluginapi.ExportHooks, err)
	}
	p.hooks = uint32(st[0]) & (1<<pluginapi.NumHooks - 1)
	if in.onHook == nil && p.hooks != 0 {
		p.log.Warn("plugin declares hooks but does not export "+pluginapi.ExportOnHook+"; it will not run", "plugin", p.name)
		p.hooks = 0
	}
	p.info.Hooks = p.hooks
	return p.init(in)
}

// loadEnv is the Env of the calls made while a plugin loads (sluice_hooks,
// sluice_init): the init hook, on an empty transaction.
func loadEnv(spec *EnvSpec) Env {
	return Env{ctx: context.Background(), hook: pluginapi.HookInit, txn: &Txn{Conn: &Conn{}, Notes: map[string]string{}}, spec: spec}
}

// init runs the guest's optional sluice_init, which validates the plugin's
// configuration; a refusal carries the last error the guest logged.
func (p *plugin) init(in *instance) error {
	f := in.mod.ExportedFunction(pluginapi.ExportInit)
	if f == nil {
		return nil
	}
	lines := &LogLines{}
	spec := p.spec
	spec.Logger = slog.New(slog.NewMultiHandler(p.log.Handler(), lines))
	in.env = loadEnv(&spec)
	var st [1]uint64
	err, killed := in.guarded(f, st[:], p.initTimeout())
	in.env = Env{}
	switch {
	case killed:
		return fmt.Errorf("%s ran longer than %v (init_timeout)", pluginapi.ExportInit, p.initTimeout())
	case err != nil:
		return fmt.Errorf("%s failed: %v", pluginapi.ExportInit, err)
	case int32(uint32(st[0])) != 0:
		reason := "it gave no reason"
		for _, l := range lines.Since(0) {
			if strings.HasPrefix(l, slog.LevelError.String()+" ") {
				reason = strings.TrimPrefix(l, slog.LevelError.String()+" ")
			}
		}
		return fmt.Errorf("refused to load: %s", reason)
	}
	return nil
}
