package pluginapi

import "fmt"

// ValType is a WebAssembly value type in a host function signature.
type ValType byte

// Value types, with their binary encodings.
const (
	I32 ValType = 0x7f
	I64 ValType = 0x7e
	F64 ValType = 0x7c
)

// Host function names, imported from HostModule.
const (
	// FuncGetProp (prop i32, buf i32, cap i32) -> i32 len: a Prop.
	FuncGetProp = "get_prop"
	// FuncGetHeader (name i32, name_len i32, index i32, buf i32, cap i32) -> i32 len:
	// the index-th (0-based) value of a header field, unfolded; data, deliver.
	FuncGetHeader = "get_header"
	// FuncGetHeaders (buf i32, cap i32) -> i32 len: the raw header section
	// as it stands after earlier edits, CRLF line endings; data, deliver.
	FuncGetHeaders = "get_headers"
	// FuncReadBody (offset i64, buf i32, cap i32) -> i32 n: up to cap bytes of
	// the body (after the header section) from offset; 0 at the end; data, deliver.
	FuncReadBody = "read_body"
	// FuncAddHeader (name i32, name_len i32, value i32, value_len i32) -> i32:
	// prepend a header field; data, deliver.
	FuncAddHeader = "add_header"
	// FuncSetHeader (name, name_len, value, value_len) -> i32: replace every
	// occurrence of a field with one (or add it); data, deliver.
	FuncSetHeader = "set_header"
	// FuncDelHeader (name i32, name_len i32) -> i32: delete every occurrence; data, deliver.
	FuncDelHeader = "del_header"
	// FuncAddRcpt (addr i32, addr_len i32) -> i32: add a recipient; rcpt, data.
	FuncAddRcpt = "add_rcpt"
	// FuncDelRcpt (addr i32, addr_len i32) -> i32: remove a recipient; rcpt, data.
	FuncDelRcpt = "del_rcpt"
	// FuncRewriteRcpt (old i32, old_len i32, new i32, new_len i32) -> i32:
	// replace a recipient; rcpt, data.
	FuncRewriteRcpt = "rewrite_rcpt"
	// FuncGetNote (key i32, key_len i32, buf i32, cap i32) -> i32 len: a
	// transaction note set by this or an earlier plugin or stage.
	FuncGetNote = "get_note"
	// FuncSetNote (key i32, key_len i32, value i32, value_len i32) -> i32.
	FuncSetNote = "set_note"
	// FuncGetConfig (key i32, key_len i32, buf i32, cap i32) -> i32 len: the
	// JSON encoding of the plugin's [config] value at a dotted key ("" = all).
	FuncGetConfig = "get_config"
	// FuncLog (level i32, msg i32, msg_len i32): a log line tagged with the plugin.
	FuncLog = "log"
	// FuncNow () -> i64: the host clock, Unix nanoseconds. The only clock a
	// plugin should use (tests control it).
	FuncNow = "now"
	// FuncAddScore (symbol i32, symbol_len i32, score f64) -> i32: add to the
	// message's spam score under a symbol name.
	FuncAddScore = "add_score"
	// FuncSetReply (code i32, enhanced i32, enhanced_len i32, text i32, text_len i32) -> i32:
	// the SMTP reply for a Reject, Tempfail or Disconnect verdict; checked by the host.
	FuncSetReply = "set_reply"
	// FuncSetRoute (route i32, route_len i32) -> i32: deliver: send this
	// attempt via "host:port" instead of the normal route.
	FuncSetRoute = "set_route"
	// FuncDNSLookup (type i32, name i32, name_len i32, buf i32, cap i32) -> i32 len:
	// answers "\n"-terminated; needs the "dns" grant.
	FuncDNSLookup = "dns_lookup"
	// FuncKVGet (key i32, key_len i32, buf i32, cap i32) -> i32 len; needs "kv".
	FuncKVGet = "kv_get"
	// FuncKVGetMany (keys i32, keys_len i32, buf i32, cap i32) -> i32 len:
	// several kv_get in one call (one round trip to a shared store). keys
	// are "\n"-separated, at most MaxKVGetMany of them; the result holds,
	// for each key in order, its length as a little-endian i32 (-1 for a
	// missing key) followed by that many value bytes; needs "kv".
	FuncKVGetMany = "kv_get_many"
	// FuncKVSet (key i32, key_len i32, value i32, value_len i32, ttl_ms i64) -> i32; needs "kv".
	FuncKVSet = "kv_set"
	// FuncKVIncr (key i32, key_len i32, delta i64, ttl_ms i64, out i32) -> i32:
	// atomically add delta, write the new value (i64, little-endian) at out; needs "kv".
	FuncKVIncr = "kv_incr"
	// FuncKVIncrMany (keys i32, keys_len i32, args i32, out i32) -> i32:
	// several kv_incr in one call (one round trip to a shared store). keys
	// are "\n"-separated, at most MaxKVIncrMany of them; args holds, for
	// each key in order, its delta and its ttl_ms (two little-endian i64,
	// 16 bytes a key); the new values go to out (one little-endian i64, 8
	// bytes, a key), only when every increment succeeded; needs "kv".
	FuncKVIncrMany = "kv_incr_many"
	// FuncKVDel (key i32, key_len i32) -> i32; needs "kv".
	FuncKVDel = "kv_del"
	// FuncMetricAdd (name i32, name_len i32, delta f64) -> i32; needs "metrics".
	FuncMetricAdd = "metric_add"
)

// MaxKVGetMany is the most keys one kv_get_many call may read.
const MaxKVGetMany = 64

// MaxKVIncrMany is the most counters one kv_incr_many call may add to.
const MaxKVIncrMany = 64

// Func describes one host function: its signature and who may call it.
// The host enforces Cap and Hooks from this table: a call at a hook not in
// Hooks returns StatusWrongStage, a call by a plugin without the Cap grant
// StatusDenied (the stage is checked first). A function with a Cap or
// Hooks returns an i32, so the guest can see the refusal.
type Func struct {
	Name    string
	Params  []ValType
	Results []ValType
	// Cap is the capability the plugin's configuration must grant
	// (CapDNS, CapKV, CapMetrics); "" for none.
	Cap string
	// Hooks is the bit set (1<<Hook) of hooks at which the function may be
	// called; 0 means every hook, HookInit included.
	Hooks uint32
}

// AllowedAt reports whether f may be called at hook h.
func (f Func) AllowedAt(h Hook) bool { return hookIn(f.Hooks, h) }

// Hook sets used in Funcs.
const (
	msgHooks  = 1<<HookData | 1<<HookDeliver
	rcptHooks = 1<<HookRcpt | 1<<HookData
)

// Funcs lists every host function of this ABI version.
func Funcs() []Func {
	i, l, f := I32, I64, F64
	return []Func{
		{Name: FuncGetProp, Params: []ValType{i, i, i}, Results: []ValType{i}},
		{Name: FuncGetHeader, Params: []ValType{i, i, i, i, i}, Results: []ValType{i}, Hooks: msgHooks},
		{Name: FuncGetHeaders, Params: []ValType{i, i}, Results: []ValType{i}, Hooks: msgHooks},
		{Name: FuncReadBody, Params: []ValType{l, i, i}, Results: []ValType{i}, Hooks: msgHooks},
		{Name: FuncAddHeader, Params: []ValType{i, i, i, i}, Results: []ValType{i}, Hooks: msgHooks},
		{Name: FuncSetHeader, Params: []ValType{i, i, i, i}, Results: []ValType{i}, Hooks: msgHooks},
		{Name: FuncDelHeader, Params: []ValType{i, i}, Results: []ValType{i}, Hooks: msgHooks},
		{Name: FuncAddRcpt, Params: []ValType{i, i}, Results: []ValType{i}, Hooks: rcptHooks},
		{Name: FuncDelRcpt, Params: []ValType{i, i}, Results: []ValType{i}, Hooks: rcptHooks},
		{Name: FuncRewriteRcpt, Params: []ValType{i, i, i, i}, Results: []ValType{i}, Hooks: rcptHooks},
		{Name: FuncGetNote, Params: []ValType{i, i, i, i}, Results: []ValType{i}},
		{Name: FuncSetNote, Params: []ValType{i, i, i, i}, Results: []ValType{i}},
		{Name: FuncGetConfig, Params: []ValType{i, i, i, i}, Results: []ValType{i}},
		{Name: FuncLog, Params: []ValType{i, i, i}},
		{Name: FuncNow, Results: []ValType{l}},
		{Name: FuncAddScore, Params: []ValType{i, i, f}, Results: []ValType{i}},
		{Name: FuncSetReply, Params: []ValType{i, i, i, i, i}, Results: []ValType{i}},
		{Name: FuncSetRoute, Params: []ValType{i, i}, Results: []ValType{i}, Hooks: 1 << HookDeliver},
		{Name: FuncDNSLookup, Params: []ValType{i, i, i, i, i}, Results: []ValType{i}, Cap: CapDNS},
		{Name: FuncKVGet, Params: []ValType{i, i, i, i}, Results: []ValType{i}, Cap: CapKV},
		{Name: FuncKVGetMany, Params: []ValType{i, i, i, i}, Results: []ValType{i}, Cap: CapKV},
		{Name: FuncKVSet, Params: []ValType{i, i, i, i, l}, Results: []ValType{i}, Cap: CapKV},
		{Name: FuncKVIncr, Params: []ValType{i, i, l, l, i}, Results: []ValType{i}, Cap: CapKV},
		{Name: FuncKVIncrMany, Params: []ValType{i, i, i, i}, Results: []ValType{i}, Cap: CapKV},
		{Name: FuncKVDel, Params: []ValType{i, i}, Results: []ValType{i}, Cap: CapKV},
		{Name: FuncMetricAdd, Params: []ValType{i, i, f}, Results: []ValType{i}, Cap: CapMetrics},
	}
}

// AppendKVValue appends one entry of a kv_get_many result to dst: the
// value's length as a little-endian i32, or -1 when the key is missing
// (value nil), then the value.
func AppendKVValue(dst, value []byte) []byte {
	n := uint32(len(value))
	if value == nil {
		n = 0xFFFFFFFF
	}
	dst = append(dst, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
	return append(dst, value...)
}

// ParseKVValues splits a kv_get_many result for n keys into their values:
// nil for a missing key, a non-nil slice (aliasing b) for a present one.
// It fails when b does not hold exactly n entries.
func ParseKVValues(b []byte, n int) ([][]byte, error) {
	return AppendKVValues(make([][]byte, 0, n), b, n)
}

// AppendKVValues is ParseKVValues appending the values to dst, so that a
// caller can reuse one slice from call to call (a wasm guest pays dearly
// for every allocation).
func AppendKVValues(dst [][]byte, b []byte, n int) ([][]byte, error) {
	for i := range n {
		if len(b) < 4 {
			return nil, fmt.Errorf("kv_get_many result: entry %d of %d missing", i+1, n)
		}
		l := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		b = b[4:]
		if l == 0xFFFFFFFF {
			dst = append(dst, nil)
			continue
		}
		if uint64(l) > uint64(len(b)) {
			return nil, fmt.Errorf("kv_get_many result: entry %d of %d is %d bytes, %d left", i+1, n, l, len(b))
		}
		dst, b = append(dst, b[:l:l]), b[l:]
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("kv_get_many result: %d bytes after %d entries", len(b), n)
	}
	return dst, nil
}
