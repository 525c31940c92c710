package filter

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/pluginapi"
)

// ModuleInfo is what Check learned about a module.
type ModuleInfo struct {
	// ABIVersion is what the module's sluice_abi_version returned.
	ABIVersion uint32
	// Features are the ABI features it requires (its sluice_features
	// answer; 0 without that export).
	Features pluginapi.Features
	// Hooks is the bit set (1<<pluginapi.Hook) of hooks it implements.
	Hooks uint32
	// Imports lists its imports as "module.name".
	Imports []string
	// MemoryMinPages and MemoryMaxPages are its declared memory limits in
	// 64 KiB pages (MemoryMaxPages 0: no maximum declared).
	MemoryMinPages, MemoryMaxPages uint32
	// memories counts its memories, imported or defined (0 or 1).
	memories int
	// TableMin is the largest minimum size of its tables; Tables counts
	// them. TableLimit is the bound each table gets (its [limits]
	// table_elements): table.grow fails beyond it.
	TableMin   uint32
	Tables     int
	TableLimit uint32
	// Functions and Globals count its functions and globals, imported and
	// defined; DataBytes is the size of its data segments, ModuleBytes the
	// size of the module.
	Functions, Globals     int
	DataBytes, ModuleBytes int64
	// InstanceMemory is what one instance may take at most (memory_limit
	// and its tables at their bound); PoolMax instances of it count
	// against the server's plugin memory budget.
	InstanceMemory int64
	PoolMax        int
	// Grants are the capabilities its configuration grants.
	Grants []string
}

// HookNames returns the names of the hooks in Hooks.
func (m *ModuleInfo) HookNames() []string {
	if s := hookList(m.Hooks); s != "" {
		return strings.Split(s, ",")
	}
	return nil
}

// Check validates the module at wasmPath and its NAME.toml, if any, as the
// host would load them: imports, limits, exports, ABI version and features,
// its sluice_init. It instantiates the module once to read its ABI version
// and hooks but runs no hook. Its sluice_init runs without the services of
// the grants (KV, DNS, metrics calls are denied); CheckWith gives them.
func Check(ctx context.Context, wasmPath string) (*ModuleInfo, error) {
	return CheckWith(ctx, wasmPath, CheckOptions{})
}

// CheckOptions are what CheckWith loads a module with.
type CheckOptions struct {
	// Config is the plugin's NAME.toml ("": the one beside the module, if
	// any).
	Config string
	// KV, Resolver and Metrics serve the grants during its sluice_init
	// (nil: such a call is denied, as on a host without the service).
	KV       KV
	Resolver Resolver
	Metrics  Metrics
	// Logger receives its log lines (nil: discarded); Now is its clock.
	Logger *slog.Logger
	Now    func() time.Time
}

// CheckWith is Check with the configuration file and services of opts.
func CheckWith(ctx context.Context, wasmPath string, opts CheckOptions) (*ModuleInfo, error) {
	h := &Host{opts: Options{KV: opts.KV, Resolver: opts.Resolver, Metrics: opts.Metrics, Now: opts.Now},
		log: logctx.Logger(opts.Logger), base: time.Now(), pools: map[*pool]struct{}{}}
	h.chain.Store(&chain{})
	h.startWatchdog(ctx)
	defer func() { _ = h.Close(context.WithoutCancel(ctx)) }()
	fi, err := os.Stat(wasmPath)
	if err != nil {
		return nil, err
	}
	if filepath.Ext(wasmPath) != ".wasm" {
		return nil, fmt.Errorf("%s: a plugin's file name must end in .wasm", wasmPath)
	}
	if opts.Config != "" {
		if _, err := os.Stat(opts.Config); err != nil {
			return nil, err
		}
	}
	p, err := h.loadPlugin(ctx, wasmPath, fingerprint{wasmMod: fi.ModTime(), wasmSize: fi.Size()},
		loadOpts{conf: opts.Config, adjust: func(c *pluginConf) { c.PoolMin = min(c.PoolMin, 1) }})
	if err != nil {
		return nil, err
	}
	defer p.pool.close()
	info := *p.info
	info.Grants = slices.Clone(p.conf.Grants)
	return &info, nil
}
