package plugintool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/sluice-mta/sluice/core/filter"
)

// CheckOptions configure Check.
type CheckOptions struct {
	// Config is the plugin's NAME.toml ("": the one beside FILE.wasm, if
	// any).
	Config string
	// Resolver serves the "dns" grant during the plugin's sluice_init
	// (nil: none, and a lookup fails saying so).
	Resolver filter.Resolver
}

// Check validates the module at path with its NAME.toml (opts.Config, or
// the one beside it) as the host would load it — limits, imports, exports,
// ABI, its sluice_init with an in-memory KV store and the given resolver —
// without running a hook, and prints what it found: ABI version, hooks,
// imports, declared sizes and the limits it runs under.
func Check(ctx context.Context, w io.Writer, path string, opts CheckOptions) error {
	sink := &logSink{}
	res := opts.Resolver
	var offline *offlineResolver
	if res == nil {
		offline = &offlineResolver{sink: sink}
		res = offline
	}
	info, err := filter.CheckWith(ctx, path, filter.CheckOptions{Config: opts.Config, KV: filter.NewMemKV(nil), Resolver: res,
		Metrics: sink, Logger: slog.New(sink)})
	if err != nil {
		if offline != nil && offline.used.Load() {
			err = fmt.Errorf("%w\n  (%s)", err, errOffline)
		}
		return err
	}
	hooks := strings.Join(info.HookNames(), ", ")
	if hooks == "" {
		hooks = "(none: the plugin never runs)"
	}
	mem := fmt.Sprintf("%d pages (%d KiB) minimum", info.MemoryMinPages, info.MemoryMinPages*64)
	if info.MemoryMaxPages != 0 {
		mem += fmt.Sprintf(", %d pages maximum", info.MemoryMaxPages)
	}
	grants := strings.Join(info.Grants, ", ")
	if grants == "" {
		grants = "(none)"
	}
	_, err = fmt.Fprintf(w, "%s: ok\n  abi version %d\n  hooks       %s\n  grants      %s\n  memory      %s\n"+
		"  table       %d elements minimum in %d table(s), bounded at %d\n"+
		"  size        %d bytes, %d functions, %d globals, %d bytes of data\n"+
		"  instance    up to %d MiB (memory_limit and tables); %d at most: %d MiB of the server's plugin memory budget\n"+
		"  imports     %s\n",
		path, info.ABIVersion, hooks, grants, mem, info.TableMin, info.Tables, info.TableLimit,
		info.ModuleBytes, info.Functions, info.Globals, info.DataBytes,
		info.InstanceMemory>>20, info.PoolMax, int64(info.PoolMax)*info.InstanceMemory>>20,
		strings.Join(info.Imports, "\n              "))
	if err == nil && offline != nil && offline.used.Load() {
		_, err = fmt.Fprintf(w, "  note        %s\n", errOffline)
	}
	return err
}

// errOffline says why a DNS lookup of an offline run failed.
var errOffline = errors.New("the plugin is granted dns, but this offline run has no resolver, so its lookups fail as temporary failures (-5); give --dns ADDR to use a DNS server")

// offlineResolver stands in for DNS in an offline run without --dns: a
// lookup fails (the plugin sees a temporary failure) and the log says why,
// instead of the "capability not granted" a missing resolver would give.
type offlineResolver struct {
	sink *logSink
	used atomic.Bool
}

var _ filter.Resolver = (*offlineResolver)(nil)

// Lookup fails, saying why in the run's log.
func (r *offlineResolver) Lookup(_ context.Context, _ uint16, name string) ([]string, error) {
	if !r.used.Swap(true) {
		r.sink.Append("DNS " + name + ": not looked up: " + errOffline.Error())
	}
	return nil, errOffline
}
