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
// The host asks it once for each plugin it loads (and for each module
// that fails to load) and keeps the PluginObserver it gets, so that a call
// finds its plugin's series without a lookup by name.
type Observer interface {
	// Plugin returns the recorder of the calls and failures of the plugin
	// named name (its file name without .wasm). It may be asked again for
	// the same name (a reload) and should then record to the same series.
	Plugin(name string) PluginObserver
}

// PluginObserver records one plugin's calls and failures. Its methods run
// on the call path, from many goroutines at once: they must be safe for
// concurrent use, quick, and should not allocate.
type PluginObserver interface {
	// Call reports a call at hook that ran to a verdict: the verdict the
	// chain goes on with (after Decide) and the call's time, waiting for
	// an instance included.
	Call(hook pluginapi.Hook, verdict pluginapi.Verdict, d time.Duration)
	// Failure reports a failure of a kind in pluginapi.FailureKinds. A
	// failed call gives its hook and time (its failure policy answered
	// for it); a module that failed to load gives pluginapi.HookInit and 0.
	Failure(hook pluginapi.Hook, kind string, d time.Duration)
}

// observer returns the recorder of the plugin named name, or nil without
// an Observer.
func (h *Host) observer(name string) PluginObserver {
	if h.opts.Observer == nil {
		return nil
	}
	return h.opts.Observer.Plugin(name)
}

// observe reports a call that ran to verdict v in d ns.
func (p *plugin) observe(hook pluginapi.Hook, v pluginapi.Verdict, d int64) {
	if p.obs != nil {
		p.obs.Call(hook, v, time.Duration(d))
	}
}

// observeFailure reports a failure of kind at hook after d ns.
func (p *plugin) observeFailure(hook pluginapi.Hook, kind string, d int64) {
	if p.obs != nil {
		p.obs.Failure(hook, kind, time.Duration(d))
	}
}

// observeLoadFailure reports that the module at path failed to load.
func (h *Host) observeLoadFailure(path string) {
	if o := h.observer(strings.TrimSuffix(filepath.Base(path), ".wasm")); o != nil {
		o.Failure(pluginapi.HookInit, pluginapi.FailLoad, 0)
	}
}

// trapKind tells a call that failed with an error (a trap or an exit)
// after the guest hit its memory limit (pluginapi.FailMemory) from any
// other (pluginapi.FailTrap). It reads the instance, so it runs before the instance is
// discarded.
func (in *instance) trapKind() string {
	if g := in.mod.ExportedGlobal(oomExport); g != nil && g.Get() != 0 {
		return pluginapi.FailMemory
	}
	return pluginapi.FailTrap
}

// notRunKind is the kind of failure of a call that got no instance: none
// was free within its timeout (or its caller gave up), or none could be
// started.
func notRunKind(err error) string {
	if errors.Is(err, errWaitDeadline) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return pluginapi.FailTimeout
	}
	return pluginapi.FailLoad
}
