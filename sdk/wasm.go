//go:build wasip1

package sdk

import (
	"strings"
	"unsafe"

	"github.com/sluice-mta/sluice/pluginapi"
)

//go:wasmexport sluice_abi_version
func exportABIVersion() int32 { return int32(pluginapi.Version) }

// exportFeatures answers the host's feature negotiation: the features this
// plugin requires. The SDK uses no optional host feature yet, so the host's
// set is not kept.
//
//go:wasmexport sluice_features
func exportFeatures(hostFeatures int32) int32 { return int32(Features()) }

// exportHooks answers the hooks of the plugin this instance runs: in a
// bundle, the one the host names (pick).
//
//go:wasmexport sluice_hooks
func exportHooks() int32 {
	if r := running(); r != nil {
		return int32(r.hooks())
	}
	return 0
}

//go:wasmexport sluice_init
func exportInit() int32 {
	if DispatchInit(wasm) != nil {
		return 1
	}
	return 0
}

//go:wasmexport sluice_on_hook
func exportOnHook(hook int32) int32 {
	r := running()
	if r == nil {
		return int32(pluginapi.Continue)
	}
	c := &hookCtx
	if c.host == nil {
		c.host = wasm
	}
	c.hook = pluginapi.Hook(hook)
	h := r.handler(c.hook)
	if h == nil {
		return int32(pluginapi.Continue)
	}
	// The verdict is read where the handler left it and not passed on as
	// a Verdict: each copy of one is a 48-byte memory.copy in a wasm
	// guest, a call to memmove in wazero (three a call before;
	// BENCHMARKS.md, "The hook path: the host's share").
	v := h(c)
	if !settle(c, v.Kind, v.Code, v.Enhanced, v.Text) {
		return int32(pluginapi.Continue)
	}
	return int32(v.Kind)
}

// active is the plugin this instance runs, picked at its first call: the
// host's answer does not change for the instance's life.
var active *registry

// running returns the plugin this instance runs, or nil when the module
// cannot say (DispatchInit has refused the load with the reason).
func running() *registry {
	if active == nil {
		active, _ = pick(wasm)
	}
	return active
}

// hookCtx is the Ctx of the call running: an instance runs one call at a
// time, and a Ctx is only valid during its call.
var hookCtx Ctx

// wasm is this instance's host. An instance runs one call at a time, so
// one reusable receive buffer serves every call.
var wasm = &wasmHost{buf: make([]byte, 4096)}

// wasmHost implements Host with the functions imported from the "sluice"
// module.
type wasmHost struct {
	buf []byte
	// props holds the value of each property last handed out, so that one
	// read again unchanged (the client's address at every hook of a
	// session, the sender at every hook of a transaction) is returned
	// without allocating a string: an allocation is the dearest part of a
	// small hook in a Go guest (BENCHMARKS.md, "The hook path").
	props [pluginapi.NumProps]string
	// keys is kv_get_many's joined key list and vals the values it
	// returned, kept from call to call (no allocation once grown).
	keys []byte
	vals [][]byte
	// counts is kv_incr_many's new values, kept likewise.
	counts []int64
}

// maxCachedProp is the longest property value props keeps.
const maxCachedProp = 256

var _ Host = (*wasmHost)(nil)

// recv calls a host function that fills a guest buffer, growing the buffer
// and retrying while the value does not fit. The result aliases the buffer:
// copy it before the next call.
func (h *wasmHost) recv(call func(buf *byte, cap int32) int32) ([]byte, pluginapi.Status) {
	for range 4 {
		n := call(unsafe.SliceData(h.buf), int32(len(h.buf)))
		if n < 0 {
			return nil, pluginapi.Status(n)
		}
		if int(n) <= len(h.buf) {
			return h.buf[:n], pluginapi.StatusOK
		}
		h.buf = make([]byte, n)
	}
	return nil, pluginapi.StatusTooLarge
}

func (h *wasmHost) recvString(call func(buf *byte, cap int32) int32) (string, pluginapi.Status) {
	b, st := h.recv(call)
	return string(b), st
}

func status(n int32) pluginapi.Status {
	if n < 0 {
		return pluginapi.Status(n)
	}
	return pluginapi.StatusOK
}

func bytesPtr(b []byte) (*byte, int32) { return unsafe.SliceData(b), int32(len(b)) }

func (h *wasmHost) Prop(p pluginapi.Prop) (string, pluginapi.Status) {
	b, st := h.recv(func(buf *byte, cap int32) int32 { return getProp(int32(p), buf, cap) })
	if st != pluginapi.StatusOK || p < 0 || p >= pluginapi.NumProps || len(b) > maxCachedProp {
		return string(b), st
	}
	if !same(b, h.props[p]) {
		h.props[p] = string(b)
	}
	return h.props[p], st
}

// same reports whether b holds s. A loop, not string(b) == s: a property
// is short, and the runtime's memequal is two calls in a wasm guest,
// which cost more than comparing a few dozen bytes in place.
func same(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	s = s[:len(b)]
	for i, c := range b {
		if s[i] != c {
			return false
		}
	}
	return true
}

func (h *wasmHost) Header(name string, index int) (string, pluginapi.Status) {
	return h.recvString(func(buf *byte, cap int32) int32 { return getHeader(name, int32(index), buf, cap) })
}

// Headers aliases the receive buffer: Ctx.Headers copies, and
// Ctx.AppendHeaders copies into the caller's buffer.
func (h *wasmHost) Headers() ([]byte, pluginapi.Status) { return h.recv(getHeaders) }

func (h *wasmHost) ReadBody(off int64, p []byte) (int, pluginapi.Status) {
	ptr, n := bytesPtr(p)
	r := readBody(off, ptr, n)
	if r < 0 {
		return 0, pluginapi.Status(r)
	}
	return int(r), pluginapi.StatusOK
}

func (h *wasmHost) AddHeader(name, value string) pluginapi.Status {
	return status(addHeader(name, value))
}

func (h *wasmHost) SetHeader(name, value string) pluginapi.Status {
	return status(setHeader(name, value))
}

func (h *wasmHost) DelHeader(name string) pluginapi.Status { return status(delHeader(name)) }

func (h *wasmHost) AddRcpt(addr string) pluginapi.Status { return status(addRcpt(addr)) }

func (h *wasmHost) DelRcpt(addr string) pluginapi.Status { return status(delRcpt(addr)) }

func (h *wasmHost) RewriteRcpt(old, new string) pluginapi.Status {
	return status(rewriteRcpt(old, new))
}

func (h *wasmHost) Note(key string) (string, pluginapi.Status) {
	return h.recvString(func(buf *byte, cap int32) int32 { return getNote(key, buf, cap) })
}

func (h *wasmHost) SetNote(key, value string) pluginapi.Status { return status(setNote(key, value)) }

// Config aliases the receive buffer (see Ctx.ConfigJSON): ConfigCache
// compares it at every call, which a copy would make an allocation.
func (h *wasmHost) Config(key string) ([]byte, pluginapi.Status) {
	return h.recv(func(buf *byte, cap int32) int32 { return getConfig(key, buf, cap) })
}

func (h *wasmHost) Log(level int32, msg string) { hostLog(level, msg) }

func (h *wasmHost) Now() int64 { return now() }

func (h *wasmHost) AddScore(symbol string, score float64) pluginapi.Status {
	return status(addScore(symbol, score))
}

func (h *wasmHost) SetReply(code int32, enhanced, text string) pluginapi.Status {
	return status(setReply(code, enhanced, text))
}

func (h *wasmHost) SetRoute(route string) pluginapi.Status { return status(setRoute(route)) }

func (h *wasmHost) DNSLookup(qtype int32, name string) ([]byte, pluginapi.Status) {
	b, st := h.recv(func(buf *byte, cap int32) int32 { return dnsLookup(qtype, name, buf, cap) })
	return append([]byte(nil), b...), st
}

// KVGet aliases the receive buffer: Ctx.KVGet copies.
func (h *wasmHost) KVGet(key string) ([]byte, pluginapi.Status) {
	return h.recv(func(buf *byte, cap int32) int32 { return kvGet(key, buf, cap) })
}

// KVGetMany reads the keys in one kv_get_many call; the values, and the
// slice holding them, alias buffers kept for the next call: Ctx.KVGetMany
// copies.
func (h *wasmHost) KVGetMany(keys []string) ([][]byte, pluginapi.Status) {
	s, ok := h.joinKeys(keys)
	if !ok {
		return nil, pluginapi.StatusBadArgument
	}
	b, st := h.recv(func(buf *byte, cap int32) int32 { return kvGetMany(s, buf, cap) })
	if st != pluginapi.StatusOK {
		return nil, st
	}
	vs, err := pluginapi.AppendKVValues(h.vals[:0], b, len(keys))
	if err != nil {
		return nil, pluginapi.StatusBadArgument
	}
	h.vals = vs
	return vs, pluginapi.StatusOK
}

func (h *wasmHost) KVSet(key string, value []byte, ttlMS int64) pluginapi.Status {
	ptr, n := bytesPtr(value)
	return status(kvSet(key, ptr, n, ttlMS))
}

func (h *wasmHost) KVIncr(key string, delta, ttlMS int64) (int64, pluginapi.Status) {
	var out int64
	st := status(kvIncr(key, delta, ttlMS, &out))
	return out, st
}

// joinKeys joins keys with "\n" in the buffer kept for it and returns
// them as a string aliasing it, valid until the next call; false when a
// key holds a newline.
func (h *wasmHost) joinKeys(keys []string) (string, bool) {
	joined := h.keys[:0]
	for i, k := range keys {
		if strings.IndexByte(k, '\n') >= 0 {
			return "", false
		}
		if i > 0 {
			joined = append(joined, '\n')
		}
		joined = append(joined, k...)
	}
	h.keys = joined
	return unsafe.String(unsafe.SliceData(joined), len(joined)), true
}

// KVIncrMany makes the increments in one kv_incr_many call; the values
// alias a buffer kept for the next call: Ctx.KVIncrMany copies them.
func (h *wasmHost) KVIncrMany(keys []string, args []int64) ([]int64, pluginapi.Status) {
	if len(keys) == 0 || len(args) != 2*len(keys) {
		return nil, pluginapi.StatusBadArgument
	}
	s, ok := h.joinKeys(keys)
	if !ok {
		return nil, pluginapi.StatusBadArgument
	}
	if cap(h.counts) < len(keys) {
		h.counts = make([]int64, len(keys))
	}
	out := h.counts[:len(keys)]
	if st := status(kvIncrMany(s, unsafe.SliceData(args), unsafe.SliceData(out))); st != pluginapi.StatusOK {
		return nil, st
	}
	return out, pluginapi.StatusOK
}

func (h *wasmHost) KVDel(key string) pluginapi.Status { return status(kvDel(key)) }

func (h *wasmHost) MetricAdd(name string, delta float64) pluginapi.Status {
	return status(metricAdd(name, delta))
}
