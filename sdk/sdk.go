// Package sdk is the Go guest SDK for Sluice filter plugins.
//
// A plugin is a main package that registers handlers in init and is built
// with standard Go for WASI:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o hello.wasm .
//
//	func init() {
//		sdk.OnData(func(c *sdk.Ctx) sdk.Verdict {
//			c.AddHeader("X-Hello", "world")
//			return sdk.Continue()
//		})
//	}
//
//	func main() {}
//
// A package may instead register its handlers inside Plugin, under a name,
// so that one module can hold several plugins (see Plugin; the first-party
// plugins are built that way into plugins/firstparty).
//
// On wasip1 the SDK exports sluice_abi_version, sluice_features,
// sluice_hooks, sluice_init and sluice_on_hook and reaches the host through
// the functions it imports from the "sluice" module. It declares the ABI
// features the plugin needs by itself (see Features): a plugin with an
// OnInit function requires pluginapi.FeatureInit, so a host that would not
// call it refuses the plugin instead of loading it unchecked. In native builds there is no host: Dispatch runs a
// registered handler against any Host, which is how sdk/sdktest runs a
// plugin's unit tests against the real host semantics.
package sdk

import (
	"github.com/sluice-mta/sluice/pluginapi"
)

// Host is the host side of the ABI as the SDK sees it: one method per host
// function, with Go types. The wasm build implements it with the imported
// host functions; the filter host's Env implements it natively. A []byte a
// method returns may alias a buffer the next call reuses: Ctx copies what
// it hands a plugin to keep.
type Host interface {
	Prop(p pluginapi.Prop) (string, pluginapi.Status)
	Header(name string, index int) (string, pluginapi.Status)
	Headers() ([]byte, pluginapi.Status)
	ReadBody(off int64, p []byte) (int, pluginapi.Status)
	AddHeader(name, value string) pluginapi.Status
	SetHeader(name, value string) pluginapi.Status
	DelHeader(name string) pluginapi.Status
	AddRcpt(addr string) pluginapi.Status
	DelRcpt(addr string) pluginapi.Status
	RewriteRcpt(old, new string) pluginapi.Status
	Note(key string) (string, pluginapi.Status)
	SetNote(key, value string) pluginapi.Status
	Config(key string) ([]byte, pluginapi.Status)
	Log(level int32, msg string)
	Now() int64
	AddScore(symbol string, score float64) pluginapi.Status
	SetReply(code int32, enhanced, text string) pluginapi.Status
	SetRoute(route string) pluginapi.Status
	DNSLookup(qtype int32, name string) ([]byte, pluginapi.Status)
	KVGet(key string) ([]byte, pluginapi.Status)
	KVGetMany(keys []string) ([][]byte, pluginapi.Status)
	KVSet(key string, value []byte, ttlMS int64) pluginapi.Status
	KVIncr(key string, delta, ttlMS int64) (int64, pluginapi.Status)
	// KVIncrMany adds to several counters in one call: args holds each
	// key's delta and TTL in milliseconds in turn. The result may alias a
	// buffer the next call reuses.
	KVIncrMany(keys []string, args []int64) ([]int64, pluginapi.Status)
	KVDel(key string) pluginapi.Status
	MetricAdd(name string, delta float64) pluginapi.Status
}

// Handler handles one hook and returns the plugin's verdict.
type Handler func(c *Ctx) Verdict

// OnConnect registers the handler for the connect hook: a new SMTP session.
// The server starts the session at the client's first HELO or EHLO (not at
// the TCP connection), so the handler runs then, after the banner and just
// before the helo handler, with Helo still empty. It runs again when the
// client greets again after a refusal, and after STARTTLS (a new session).
func OnConnect(fn Handler) { register(pluginapi.HookConnect, fn) }

// OnHelo registers the handler for the helo hook: the HELO or EHLO that
// started the session (see OnConnect). A later EHLO in the same session
// does not run it again.
func OnHelo(fn Handler) { register(pluginapi.HookHelo, fn) }

// OnMail registers the handler for the mail hook (MAIL FROM).
func OnMail(fn Handler) { register(pluginapi.HookMail, fn) }

// OnRcpt registers the handler for the rcpt hook (each RCPT TO).
func OnRcpt(fn Handler) { register(pluginapi.HookRcpt, fn) }

// OnData registers the handler for the data hook (the whole message, after
// end of data and before the reply).
func OnData(fn Handler) { register(pluginapi.HookData, fn) }

// OnDeliver registers the handler for the deliver hook (before each
// delivery attempt, per destination).
func OnDeliver(fn Handler) { register(pluginapi.HookDeliver, fn) }

// OnInit registers the function the host calls once when it loads the
// plugin, before any hook, to check the plugin's configuration (c.Config).
// A non-nil error refuses the load: the host logs "plugin NAME refused to
// load: <error>" and keeps running without it (or with its previous
// version). Only c.Config, c.Now, logging and the granted capabilities
// answer during init. Registering it makes the plugin require
// pluginapi.FeatureInit (see Features).
func OnInit(fn func(c *Ctx) error) {
	if fn == nil {
		panic("sdk: nil init function")
	}
	if current.initFn != nil {
		panic("sdk: an init function is already registered; register it once")
	}
	current.initFn = fn
}

// DispatchInit runs the registered init function with a Ctx bound to host:
// nil when there is none or it accepted the configuration. A refusal is
// also logged at error level, which is how the wasm host learns the reason.
// In a module holding several plugins (Plugin) it runs the init function
// of the one the host names, and refuses a name the module does not hold.
func DispatchInit(host Host) error {
	c := &Ctx{host: host, hook: pluginapi.HookInit}
	r, err := pick(host)
	if err != nil {
		c.Error("%v", err)
		return err
	}
	if r.initFn == nil {
		return nil
	}
	if err := r.initFn(c); err != nil {
		c.Error("%v", err)
		return err
	}
	return nil
}

// Features returns the ABI features the plugin requires, the value of the
// sluice_features export: pluginapi.FeatureInit when an OnInit function is
// registered, so that a host that would not call it refuses the plugin,
// and for a module holding several plugins pluginapi.FeatureEntry (the host
// names the one to run) and FeatureInit (a name the module does not hold is
// refused at load).
func Features() pluginapi.Features {
	if bundle() {
		return pluginapi.FeatureEntry | pluginapi.FeatureInit
	}
	var f pluginapi.Features
	if r, _ := pick(nil); r != nil && r.initFn != nil {
		f |= pluginapi.FeatureInit
	}
	return f
}

// Hooks returns the set of hooks with a registered handler (bit 1<<hook),
// the value of the sluice_hooks export; for a module holding several
// plugins, of all of them (the wasm export answers for the one the host
// names).
func Hooks() uint32 {
	if r, _ := pick(nil); r != nil {
		return r.hooks()
	}
	var set uint32
	for _, r := range named {
		set |= r.hooks()
	}
	return set
}

// Dispatch runs the handler registered for hook with a Ctx bound to host and
// returns its verdict. A Reject, Tempfail or Disconnect verdict's reply is
// handed to the host (set_reply) first; when the host refuses it the host's
// default reply applies and a warning is logged. A hook without a handler
// continues.
func Dispatch(hook pluginapi.Hook, host Host) Verdict {
	c := &Ctx{host: host, hook: hook}
	r, err := pick(host)
	if err != nil {
		c.Error("%v", err)
		return Continue()
	}
	return dispatch(r, c)
}

// dispatch is Dispatch with the plugin and the Ctx given.
func dispatch(r *registry, c *Ctx) Verdict {
	h := r.handler(c.hook)
	if h == nil {
		return Continue()
	}
	v := h(c)
	if !settle(c, v.Kind, v.Code, v.Enhanced, v.Text) {
		return Continue()
	}
	return v
}

// handler is the handler registered for hook, nil if none.
func (r *registry) handler(hook pluginapi.Hook) Handler {
	if hook < 0 || hook >= pluginapi.NumHooks {
		return nil
	}
	return r.handlers[hook]
}

// settle checks a handler's verdict and hands the reply of one that
// carries it to the host (set_reply); false for an invalid verdict, which
// continues. It takes the verdict's fields, not the Verdict: a wasm
// guest copies a 48-byte struct with memory.copy (wazero: a call to
// memmove), and the hook's export reads the handler's answer in place
// (wasm.go).
func settle(c *Ctx, kind pluginapi.Verdict, code int, enhanced, text string) bool {
	if !kind.Valid() {
		c.Error("sdk: handler for %s returned an invalid verdict %d; continuing", c.hook, kind)
		return false
	}
	if code != 0 {
		if st := c.host.SetReply(int32(code), enhanced, text); st != pluginapi.StatusOK {
			c.Warn("sdk: reply %d %s %q refused (%v); the host's default reply applies", code, enhanced, text, st)
		}
	}
	return true
}
