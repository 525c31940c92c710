package sdk

import (
	"errors"
	"fmt"
	"strings"

	"github.com/sluice-mta/sluice/pluginapi"
)

// registry is one plugin's registrations: a handler per hook and its init
// function.
type registry struct {
	name     string
	handlers [pluginapi.NumHooks]Handler
	initFn   func(c *Ctx) error
}

// hooks returns the set of hooks r has a handler for (bit 1<<hook).
func (r *registry) hooks() uint32 {
	var set uint32
	for h, fn := range r.handlers {
		if fn != nil {
			set |= 1 << h
		}
	}
	return set
}

// empty reports whether nothing is registered in r.
func (r *registry) empty() bool { return r.hooks() == 0 && r.initFn == nil }

// The registrations, made by the plugin's init functions and only read
// afterwards: unnamed holds what is registered outside Plugin, named the
// plugins registered with Plugin in order, and current is where the On…
// functions register (unnamed, or the plugin whose Plugin call runs).
var (
	unnamed registry
	named   []*registry
	current = &unnamed
)

// Plugin registers, as the plugin called name, the handlers that register
// registers (with OnInit, OnConnect, …), so that one module can hold
// several plugins: a bundle, like proxy-wasm's root contexts sharing one
// VM. The host runs the one named by the plugin's entry (the entry key of
// its NAME.toml, or NAME), and every plugin loaded from the same module
// bytes shares one compiled copy of its code — one Go runtime's machine
// code instead of one per plugin. Each still has its own instances,
// memory, configuration and key-value namespace. A module whose handlers
// are all registered by one Plugin call, or by none, runs them whatever
// the plugin is called; a module with several requires
// pluginapi.FeatureEntry and refuses to load under a name it does not
// hold.
//
//	func init() {
//		sdk.Plugin("ratelimit", func() {
//			sdk.OnMail(onMail)
//			sdk.OnRcpt(onRcpt)
//		})
//	}
func Plugin(name string, register func()) {
	switch {
	case name == "":
		panic("sdk: Plugin needs a name")
	case current != &unnamed:
		panic(fmt.Sprintf("sdk: Plugin(%q) called while registering %q; call Plugin from init, once per plugin", name, current.name))
	}
	for _, r := range named {
		if r.name == name {
			panic(fmt.Sprintf("sdk: a plugin named %q is already registered", name))
		}
	}
	r := &registry{name: name}
	named = append(named, r)
	current = r
	defer func() { current = &unnamed }()
	register()
}

// register sets the handler for hook h of the plugin being registered.
func register(h pluginapi.Hook, fn Handler) {
	if fn == nil {
		panic(fmt.Sprintf("sdk: nil handler for the %s hook", h))
	}
	if current.handlers[h] != nil {
		panic(fmt.Sprintf("sdk: a handler for the %s hook is already registered; register each hook once", h))
	}
	current.handlers[h] = fn
}

// bundle reports whether the module holds several plugins, so that the
// host must name the one to run.
func bundle() bool { return len(named) > 1 || len(named) == 1 && !unnamed.empty() }

// errMixed refuses a module with handlers both inside and outside Plugin.
var errMixed = errors.New("sdk: handlers registered both inside and outside sdk.Plugin; in a module holding several plugins register every handler inside sdk.Plugin")

// pick returns the plugin the module runs: the only one it holds, or, in a
// bundle, the one host names (pluginapi.PropPlugin). host may be nil when
// the module is not a bundle.
func pick(host Host) (*registry, error) {
	switch {
	case len(named) == 0:
		return &unnamed, nil
	case len(named) == 1 && unnamed.empty():
		return named[0], nil
	case !unnamed.empty():
		return nil, errMixed
	case host == nil:
		return nil, errors.New("sdk: this module holds several plugins; no host names the one to run")
	}
	names := make([]string, len(named))
	for i, r := range named {
		names[i] = r.name
	}
	entry, st := host.Prop(pluginapi.PropPlugin)
	if st != pluginapi.StatusOK {
		return nil, fmt.Errorf("sdk: this module holds the plugins %s, and the host did not say which to run (%v); it needs a host with the %q feature",
			strings.Join(names, ", "), st, pluginapi.FeatureEntry)
	}
	for _, r := range named {
		if r.name == entry {
			return r, nil
		}
	}
	return nil, fmt.Errorf("sdk: this module holds the plugins %s, none named %q: name the file after one of them (NAME.wasm) or set entry = \"NAME\" in its .toml",
		strings.Join(names, ", "), entry)
}
