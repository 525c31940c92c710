package filter

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// Header returns the index-th (0-based) value of the named field, with
// folding removed and surrounding space trimmed.
func (e *Env) Header(name string, index int) (string, pluginapi.Status) {
	if st := e.permit(rowGetHeader); st != pluginapi.StatusOK {
		return "", st
	}
	if e.txn.Header != nil {
		if f, ok := e.txn.Header.Get(name, index); ok {
			return f.Unfolded(), pluginapi.StatusOK
		}
	}
	return "", pluginapi.StatusNotFound
}

// Headers returns the header section as it stands, without the empty line
// that ends it.
func (e *Env) Headers() ([]byte, pluginapi.Status) {
	h, st := e.headerSection()
	if st != pluginapi.StatusOK {
		return nil, st
	}
	return h.Bytes(), pluginapi.StatusOK
}

// headerSection is the header that Headers hands out, or the status that
// refuses it: get_headers writes its bytes straight into guest memory.
func (e *Env) headerSection() (*mail.Header, pluginapi.Status) {
	if st := e.permit(rowGetHeaders); st != pluginapi.StatusOK {
		return nil, st
	}
	return e.header(), pluginapi.StatusOK
}

// header returns the transaction's header, empty when there is none.
func (e *Env) header() *mail.Header {
	if e.txn.Header == nil {
		e.txn.Header = &mail.Header{}
	}
	return e.txn.Header
}

// ReadBody copies body bytes from off into p.
func (e *Env) ReadBody(off int64, p []byte) (int, pluginapi.Status) {
	if st := e.permit(rowReadBody); st != pluginapi.StatusOK {
		return 0, st
	}
	if off < 0 {
		return 0, pluginapi.StatusBadArgument
	}
	if off >= int64(len(e.txn.Body)) {
		return 0, pluginapi.StatusOK
	}
	return copy(p, e.txn.Body[off:]), pluginapi.StatusOK
}

// AddHeader prepends a field (as trace and filter headers are).
func (e *Env) AddHeader(name, value string) pluginapi.Status {
	if st := e.checkField(rowAddHeader, name, value); st != pluginapi.StatusOK {
		return st
	}
	e.header().Add(name, value)
	return pluginapi.StatusOK
}

// SetHeader replaces every occurrence of a field with one, in the place of
// the first, or prepends it when absent.
func (e *Env) SetHeader(name, value string) pluginapi.Status {
	if st := e.checkField(rowSetHeader, name, value); st != pluginapi.StatusOK {
		return st
	}
	e.header().Set(name, value)
	return pluginapi.StatusOK
}

// DelHeader deletes every occurrence of a field; StatusNotFound if none.
func (e *Env) DelHeader(name string) pluginapi.Status {
	if st := e.permit(rowDelHeader); st != pluginapi.StatusOK {
		return st
	}
	if e.header().Del(name) == 0 {
		return pluginapi.StatusNotFound
	}
	return pluginapi.StatusOK
}

// checkField checks the permission for fn and a field it would write
// (mail.CheckField: no control characters or line breaks but folding, no
// line over 998 octets), at most maxValueLen bytes: a plugin cannot inject
// fields, end the header section or break a line limit.
func (e *Env) checkField(fn *pluginapi.Func, name, value string) pluginapi.Status {
	if st := e.permit(fn); st != pluginapi.StatusOK {
		return st
	}
	if len(value) > maxValueLen || mail.CheckField(name, value) != nil {
		return pluginapi.StatusBadArgument
	}
	return pluginapi.StatusOK
}

// validFieldName checks RFC 5322 ftext: printable ASCII except ':'.
func validFieldName(name string) bool {
	if name == "" || len(name) > maxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// maxRcpts bounds the recipients plugins may bring a transaction to when
// the caller sets no Txn.MaxRcpts.
const maxRcpts = 1000

// AddRcpt adds a recipient.
func (e *Env) AddRcpt(addr string) pluginapi.Status {
	if st := e.checkRcpt(rowAddRcpt, addr); st != pluginapi.StatusOK {
		return st
	}
	for _, r := range e.txn.Rcpts {
		if mail.SameAddress(r.Addr, addr) {
			return pluginapi.StatusOK
		}
	}
	if limit := cmp.Or(e.txn.MaxRcpts, maxRcpts); len(e.txn.Rcpts) >= limit {
		return pluginapi.StatusTooLarge
	}
	e.txn.Rcpts = append(e.txn.Rcpts, mail.Recipient{Addr: addr})
	return pluginapi.StatusOK
}

// DelRcpt removes a recipient; at the rcpt hook removing the recipient under
// consideration drops it.
func (e *Env) DelRcpt(addr string) pluginapi.Status {
	if st := e.permit(rowDelRcpt); st != pluginapi.StatusOK {
		return st
	}
	if e.hook == pluginapi.HookRcpt && mail.SameAddress(e.txn.Rcpt, addr) {
		e.txn.Rcpt = ""
		return pluginapi.StatusOK
	}
	for i, r := range e.txn.Rcpts {
		if mail.SameAddress(r.Addr, addr) {
			// A new slice: the caller's envelope may share the old one.
			e.txn.Rcpts = append(e.txn.Rcpts[:i:i], e.txn.Rcpts[i+1:]...)
			return pluginapi.StatusOK
		}
	}
	return pluginapi.StatusNotFound
}

// RewriteRcpt replaces a recipient, keeping its DSN parameters.
func (e *Env) RewriteRcpt(old, new string) pluginapi.Status {
	if st := e.checkRcpt(rowRewriteRcpt, new); st != pluginapi.StatusOK {
		return st
	}
	if e.hook == pluginapi.HookRcpt && mail.SameAddress(e.txn.Rcpt, old) {
		e.txn.Rcpt = new
		return pluginapi.StatusOK
	}
	for i, r := range e.txn.Rcpts {
		if mail.SameAddress(r.Addr, old) {
			// A copy: the caller's envelope may share the old slice, and
			// keeps it when the stage refuses.
			e.txn.Rcpts = slices.Clone(e.txn.Rcpts)
			e.txn.Rcpts[i].Addr = new
			return pluginapi.StatusOK
		}
	}
	return pluginapi.StatusNotFound
}

// checkRcpt checks the permission for fn and an address it would add or
// rewrite a recipient to, as an RCPT from the client is checked: its
// syntax (mail.CheckAddress: no routing characters, nothing that escapes a
// mailbox path), in ASCII, then the caller's Txn.CheckRcpt (relay control).
func (e *Env) checkRcpt(fn *pluginapi.Func, addr string) pluginapi.Status {
	if st := e.permit(fn); st != pluginapi.StatusOK {
		return st
	}
	if len(addr) > 254 || !printable(addr) {
		return pluginapi.StatusBadArgument
	}
	if _, _, reply := mail.CheckAddress(addr); reply != nil {
		return pluginapi.StatusBadArgument
	}
	if e.txn.CheckRcpt != nil && e.txn.CheckRcpt(addr) != nil {
		return pluginapi.StatusBadArgument
	}
	return pluginapi.StatusOK
}

// DNSLookup answers a query; needs the "dns" grant.
func (e *Env) DNSLookup(qtype int32, name string) ([]byte, pluginapi.Status) {
	if st := e.permit(rowDNSLookup); st != pluginapi.StatusOK {
		return nil, st
	}
	if e.spec.Resolver == nil {
		return nil, pluginapi.StatusDenied
	}
	switch qtype {
	case pluginapi.DNSA, pluginapi.DNSAAAA, pluginapi.DNSMX, pluginapi.DNSTXT, pluginapi.DNSPTR:
	default:
		return nil, pluginapi.StatusBadArgument
	}
	if name == "" || len(name) > 255 || !printable(name) {
		return nil, pluginapi.StatusBadArgument
	}
	ctx, cancel, ok := e.blockingCtx()
	if !ok {
		return nil, pluginapi.StatusTempFail
	}
	answers, err := e.spec.Resolver.Lookup(ctx, uint16(qtype), name)
	cancel()
	if err != nil {
		return nil, pluginapi.StatusTempFail
	}
	if len(answers) == 0 {
		return nil, pluginapi.StatusNotFound
	}
	var b strings.Builder
	for _, a := range answers {
		b.WriteString(a)
		b.WriteByte('\n')
	}
	return []byte(b.String()), pluginapi.StatusOK
}

// kvKey checks the permission for fn and namespaces key.
func (e *Env) kvKey(fn *pluginapi.Func, key string) (string, pluginapi.Status) {
	if st := e.kvPermit(fn); st != pluginapi.StatusOK {
		return "", st
	}
	return e.nsKey(key)
}

// kvPermit checks that the plugin may call fn and has a store.
func (e *Env) kvPermit(fn *pluginapi.Func) pluginapi.Status {
	if st := e.permit(fn); st != pluginapi.StatusOK {
		return st
	}
	if e.spec.KV == nil {
		return pluginapi.StatusDenied
	}
	return pluginapi.StatusOK
}

// nsKey checks key and puts it in the plugin's namespace.
func (e *Env) nsKey(key string) (string, pluginapi.Status) {
	if key == "" || len(key) > maxNameLen {
		return "", pluginapi.StatusBadArgument
	}
	return e.spec.Plugin + "/" + key, pluginapi.StatusOK
}

// nsKeys checks the keys of a call that takes at most max of them and
// puts each in the plugin's namespace.
func (e *Env) nsKeys(keys []string, max int) ([]string, pluginapi.Status) {
	if len(keys) == 0 || len(keys) > max {
		return nil, pluginapi.StatusBadArgument
	}
	ks := make([]string, len(keys))
	for i, key := range keys {
		if strings.IndexByte(key, '\n') >= 0 { // the wire separates keys with it
			return nil, pluginapi.StatusBadArgument
		}
		k, st := e.nsKey(key)
		if st != pluginapi.StatusOK {
			return nil, st
		}
		ks[i] = k
	}
	return ks, pluginapi.StatusOK
}

// kvFailed turns a KV error into the plugin's status: StatusTempFail, or,
// for an error wrapping ErrAbortHook, a panic that ends the guest's call
// (the host function traps), so the hook fails as a plugin failure.
func (e *Env) kvFailed(err error) pluginapi.Status {
	if errors.Is(err, ErrAbortHook) {
		panic(err)
	}
	return pluginapi.StatusTempFail
}

// KVGet reads a key of the plugin's store.
func (e *Env) KVGet(key string) ([]byte, pluginapi.Status) {
	k, st := e.kvKey(rowKVGet, key)
	if st != pluginapi.StatusOK {
		return nil, st
	}
	ctx, cancel, live := e.blockingCtx()
	if !live {
		return nil, pluginapi.StatusTempFail
	}
	v, ok, err := e.spec.KV.Get(ctx, k)
	cancel()
	switch {
	case err != nil:
		return nil, e.kvFailed(err)
	case !ok:
		return nil, pluginapi.StatusNotFound
	}
	return v, pluginapi.StatusOK
}

// KVGetMany reads several keys of the plugin's store in one operation:
// each value in order, nil for a missing key. More than
// pluginapi.MaxKVGetMany keys, or a bad one, is StatusBadArgument.
func (e *Env) KVGetMany(keys []string) ([][]byte, pluginapi.Status) {
	if st := e.kvPermit(rowKVGetMany); st != pluginapi.StatusOK {
		return nil, st
	}
	ks, st := e.nsKeys(keys, pluginapi.MaxKVGetMany)
	if st != pluginapi.StatusOK {
		return nil, st
	}
	ctx, cancel, live := e.blockingCtx()
	if !live {
		return nil, pluginapi.StatusTempFail
	}
	vs, err := e.spec.KV.GetMany(ctx, ks)
	cancel()
	if err != nil {
		return nil, e.kvFailed(err)
	}
	return vs, pluginapi.StatusOK
}

// KVSet writes a key with a time to live (0: none).
func (e *Env) KVSet(key string, value []byte, ttlMS int64) pluginapi.Status {
	k, st := e.kvKey(rowKVSet, key)
	if st != pluginapi.StatusOK {
		return st
	}
	if len(value) > maxValueLen || ttlMS < 0 {
		return pluginapi.StatusBadArgument
	}
	if !e.allowKV(len(key) + len(value)) {
		return pluginapi.StatusTooLarge
	}
	ctx, cancel, ok := e.blockingCtx()
	if !ok {
		return pluginapi.StatusTempFail
	}
	defer cancel()
	if err := e.spec.KV.Set(ctx, k, value, time.Duration(ttlMS)*time.Millisecond); err != nil {
		return e.kvFailed(err)
	}
	return pluginapi.StatusOK
}

// KVIncr atomically adds delta to a counter and returns the new value.
func (e *Env) KVIncr(key string, delta, ttlMS int64) (int64, pluginapi.Status) {
	k, st := e.kvKey(rowKVIncr, key)
	if st != pluginapi.StatusOK {
		return 0, st
	}
	if ttlMS < 0 {
		return 0, pluginapi.StatusBadArgument
	}
	if !e.allowKV(len(key) + 8) {
		return 0, pluginapi.StatusTooLarge
	}
	ctx, cancel, ok := e.blockingCtx()
	if !ok {
		return 0, pluginapi.StatusTempFail
	}
	defer cancel()
	n, err := e.spec.KV.Incr(ctx, k, delta, time.Duration(ttlMS)*time.Millisecond)
	if err != nil {
		return 0, e.kvFailed(err)
	}
	return n, pluginapi.StatusOK
}

// KVIncrMany atomically adds to several counters in one operation: args
// holds each key's delta and TTL in milliseconds in turn; it returns the
// new values in order. More than pluginapi.MaxKVIncrMany keys, a bad key
// or a negative TTL is StatusBadArgument.
func (e *Env) KVIncrMany(keys []string, args []int64) ([]int64, pluginapi.Status) {
	if st := e.kvPermit(rowKVIncrMany); st != pluginapi.StatusOK {
		return nil, st
	}
	if len(args) != 2*len(keys) {
		return nil, pluginapi.StatusBadArgument
	}
	ks, st := e.nsKeys(keys, pluginapi.MaxKVIncrMany)
	if st != pluginapi.StatusOK {
		return nil, st
	}
	deltas := make([]int64, len(keys))
	ttls := make([]time.Duration, len(keys))
	n := 0
	for i, key := range keys {
		if args[2*i+1] < 0 {
			return nil, pluginapi.StatusBadArgument
		}
		deltas[i], ttls[i] = args[2*i], time.Duration(args[2*i+1])*time.Millisecond
		n += len(key) + 8
	}
	if !e.allowKV(n) {
		return nil, pluginapi.StatusTooLarge
	}
	ctx, cancel, ok := e.blockingCtx()
	if !ok {
		return nil, pluginapi.StatusTempFail
	}
	defer cancel()
	vs, err := e.spec.KV.IncrMany(ctx, ks, deltas, ttls)
	if err != nil {
		return nil, e.kvFailed(err)
	}
	return vs, pluginapi.StatusOK
}

// KVDel deletes a key.
func (e *Env) KVDel(key string) pluginapi.Status {
	k, st := e.kvKey(rowKVDel, key)
	if st != pluginapi.StatusOK {
		return st
	}
	ctx, cancel, ok := e.blockingCtx()
	if !ok {
		return pluginapi.StatusTempFail
	}
	defer cancel()
	if err := e.spec.KV.Del(ctx, k); err != nil {
		return e.kvFailed(err)
	}
	return pluginapi.StatusOK
}

// MetricAdd adds to a counter; needs the "metrics" grant.
func (e *Env) MetricAdd(name string, delta float64) pluginapi.Status {
	if st := e.permit(rowMetricAdd); st != pluginapi.StatusOK {
		return st
	}
	if e.spec.Metrics == nil {
		return pluginapi.StatusDenied
	}
	if !validFieldName(name) || delta != delta {
		return pluginapi.StatusBadArgument
	}
	e.spec.Metrics.Add(e.spec.Plugin, name, delta)
	return pluginapi.StatusOK
}
