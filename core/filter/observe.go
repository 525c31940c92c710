package filter

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/pluginapi"
)

// Observer is told of every plugin hook call and every plugin failure, for
// metrics (the server hands it its metrics registry: Options.Observer).
// Its methods run on the call path, from many goroutines at once: they
// must be safe for concurrent use, quick, and should not allocate.
type Observer interface {
	// PluginCall reports a call of plugin at hook that ran to a verdict:
	// the verdict the chain goes on with (after Decide) and the call's
	// time, waiting for an instance included.
	PluginCall(plugin string, hook pluginapi.Hook, verdict pluginapi.Verdict, d time.Duration)
	// PluginFailure reports a failure of plugin of kind FailTrap,
	// FailTimeout, FailMemory, FailLoad, FailSuspended or FailQuota. A failed call gives its hook
	// and time (its failure policy answered for it); a module that failed
	// to load gives pluginapi.HookInit and 0.
	PluginFailure(plugin string, hook pluginapi.Hook, kind string, d time.Duration)
}

// Kinds of plugin failure (Observer.PluginFailure).
const (
	// FailTrap: the guest trapped or exited (a Go guest's panic, an
	// unreachable, an out-of-bounds access), or returned no known verdict.
	FailTrap = "trap"
	// FailTimeout: the call ran past its timeout and was killed, or no
	// instance was free within it.
	FailTimeout = "timeout"
	// FailMemory: the call failed after the guest hit its memory_limit (or
	// its tables' bound). wazero does not trap there: memory.grow returns
	// -1 and the guest gives up (Go's runtime exits with "out of memory",
	// others trap); the instrumentation flags the failed grow (oomExport).
	FailMemory = "memory"
	// FailLoad: the module failed to load, or an instance of it failed to
	// start (instantiate, _initialize, ABI negotiation).
	FailLoad = "load"
	// FailSuspended: the plugin is suspended, its calls having kept
	// failing (see breaker): its failure policy answered the call
	// without running it (time 0).
	FailSuspended = "suspended"
	// FailQuota: a call of the plugin had a log line or KV write refused
	// by its quota (Quota), reported once per call. It is not a failed
	// call: it is reported with pluginapi.HookInit and 0.
	FailQuota = "quota"
)

// observe reports a call that ran to verdict v in d ns.
func (p *plugin) observe(hook pluginapi.Hook, v pluginapi.Verdict, d int64) {
	if o := p.h.opts.Observer; o != nil {
		o.PluginCall(p.name, hook, v, time.Duration(d))
	}
}

// observeFailure reports a failure of kind at hook after d ns.
func (p *plugin) observeFailure(hook pluginapi.Hook, kind string, d int64) {
	if o := p.h.opts.Observer; o != nil {
		o.PluginFailure(p.name, hook, kind, time.Duration(d))
	}
}

// observeLoadFailure reports that the module at path failed to load.
func (h *Host) observeLoadFailure(path string) {
	if o := h.opts.Observer; o != nil {
		o.PluginFailure(strings.TrimSuffix(filepath.Base(path), ".wasm"), pluginapi.HookInit, FailLoad, 0)
	}
}

// trapKind tells a call that failed with an error (a trap or an exit)
// after the guest hit its memory limit (FailMemory) from any other
// (FailTrap). It reads the instance, so it runs before the instance is
// discarded.
func (in *instance) trapKind() string {
	if g := in.mod.ExportedGlobal(oomExport); g != nil && g.Get() != 0 {
		return FailMemory
	}
	return FailTrap
}

// notRunKind is the kind of failure of a call that got no instance: none
// was free within its timeout (or its caller gave up), or none could be
// started.
func notRunKind(err error) string {
	if errors.Is(err, errWaitDeadline) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return FailTimeout
	}
	return FailLoad
}
