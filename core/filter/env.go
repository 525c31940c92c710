package filter

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// KV is the persistent key-value store behind the "kv" grant. Keys are
// already namespaced per plugin by the host.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// GetMany reads several keys in one operation (one round trip to a
	// shared store), each read atomic on its own: the value of each key in
	// order, nil for a missing one, non-nil (maybe empty) for a present one.
	GetMany(ctx context.Context, keys []string) ([][]byte, error)
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Incr(ctx context.Context, key string, delta int64, ttl time.Duration) (int64, error)
	// IncrMany adds deltas[i] to the counter keys[i] (ttls[i] for a
	// counter it creates) for every i, as Incr does each, in one operation
	// (one round trip to a shared store), and returns the new values in
	// order. On an error some of the increments may have been made.
	IncrMany(ctx context.Context, keys []string, deltas []int64, ttls []time.Duration) ([]int64, error)
	Del(ctx context.Context, key string) error
}

// ErrAbortHook, wrapped in an error a KV returns, aborts the calling hook
// as a plugin failure (its failure_policy applies) instead of handing the
// plugin a temporary-failure status: a shared store configured
// on_error = "fail_closed" wraps its outage errors in it.
var ErrAbortHook = errors.New("filter: the KV store is unavailable and fails closed")

// ErrKVUnavailable, wrapped in an error a KV returns, marks an outage of
// a shared store configured on_error = "fail_open". The store logs such an
// outage once when it starts and once when it ends and counts every failed
// call, so a caller that goes on without the answer need not log it again.
var ErrKVUnavailable = errors.New("filter: the KV store is unavailable")

// Resolver answers DNS lookups behind the "dns" grant: each answer as text
// (an address, a host name, "pref host" for MX, the joined strings of a TXT
// record). A name that does not exist returns no answers and no error.
type Resolver interface {
	Lookup(ctx context.Context, qtype uint16, name string) ([]string, error)
}

// Metrics counts behind the "metrics" grant.
type Metrics interface {
	Add(plugin, name string, delta float64)
}

// Limits on what a plugin may hand the host.
const (
	maxNameLen  = 256
	maxValueLen = 64 << 10
	maxNotes    = 256
)

// EnvSpec is everything an Env needs besides the hook and the transaction.
type EnvSpec struct {
	// Plugin names the plugin, for logs, symbols and key namespaces.
	Plugin string
	// Entry is the plugin a module holding several runs (PropPlugin; the
	// entry key of NAME.toml); "" means Plugin.
	Entry string
	// Config is the plugin's [config] table.
	Config map[string]any
	// Grants are the capabilities granted (pluginapi.Cap…).
	Grants   []string
	KV       KV
	Resolver Resolver
	Metrics  Metrics
	Logger   *slog.Logger
	// Now is the clock plugins see; nil means time.Now.
	Now func() time.Time
	// Quota bounds what the plugin logs and writes to KV (nil: nothing).
	Quota *Quota

	// wholeConfig, when set, keeps Config as JSON once made: plugins ask
	// for the whole table at every call, and Config does not change (a
	// reload builds a new spec). A copy of the spec shares it.
	wholeConfig *configJSON
}

// configJSON is a JSON encoding made once.
type configJSON struct {
	once sync.Once
	b    []byte
	err  error
}

// Env is one hook call's view of the host: the semantics of every host
// function, on a transaction. The wasm binding layer calls it after reading
// guest memory; the SDK's native test mode calls it directly, so a plugin's
// unit test runs against the real host semantics.
type Env struct {
	ctx  context.Context
	hook pluginapi.Hook
	txn  *Txn
	spec *EnvSpec
	// deadline is the call's (zero: none): host functions that can block
	// end at it, given cctx (set up at its first use).
	deadline time.Time
	cctx     *callContext
	// What the call wrote so far, against EnvSpec.Quota; quotaNoted once
	// a refusal was logged.
	logLines, logBytes, kvBytes int
	quotaNoted                  bool

	reply *mail.Reply
}

// NewEnv returns the environment for one call of hook on txn.
func NewEnv(ctx context.Context, hook pluginapi.Hook, txn *Txn, spec *EnvSpec) *Env {
	if txn.Notes == nil {
		txn.Notes = map[string]string{}
	}
	if txn.Conn == nil {
		txn.Conn = &Conn{}
	}
	return &Env{ctx: ctx, hook: hook, txn: txn, spec: spec}
}

// blockingCtx returns the context for a host call that can block: the
// call's, ending at its deadline (cancel does nothing: the call's end
// releases it). ok is false once the deadline has passed.
func (e *Env) blockingCtx() (ctx context.Context, cancel context.CancelFunc, ok bool) {
	if e.deadline.IsZero() {
		return e.ctx, nop, true
	}
	if !time.Now().Before(e.deadline) {
		return nil, nil, false
	}
	if e.cctx == nil {
		// On the heap: a timer Done started may fire after the call.
		e.cctx = &callContext{Context: e.ctx, deadline: e.deadline}
	}
	return e.cctx, nop, true
}

func nop() {}

// release ends what the call's blocking host calls started.
func (e *Env) release() {
	if e.cctx != nil {
		e.cctx.release()
	}
}

// Reply returns the reply set by SetReply, or nil.
func (e *Env) Reply() *mail.Reply { return e.reply }

// row returns the row of pluginapi.Funcs for the host function named fn:
// the hooks and the grant permit enforces. It panics, at package
// initialization, when the table has no such row.
func row(fn string) *pluginapi.Func {
	for _, f := range funcTable {
		if f.Name == fn {
			return &f
		}
	}
	panic("filter: pluginapi.Funcs has no row for " + fn)
}

var funcTable = pluginapi.Funcs()

// The rows the Env methods check, looked up once so that the check costs a
// few instructions per call. Each method names its own function; the data
// (hooks, grant) is the table's.
var (
	rowGetProp     = row(pluginapi.FuncGetProp)
	rowGetHeader   = row(pluginapi.FuncGetHeader)
	rowGetHeaders  = row(pluginapi.FuncGetHeaders)
	rowReadBody    = row(pluginapi.FuncReadBody)
	rowAddHeader   = row(pluginapi.FuncAddHeader)
	rowSetHeader   = row(pluginapi.FuncSetHeader)
	rowDelHeader   = row(pluginapi.FuncDelHeader)
	rowAddRcpt     = row(pluginapi.FuncAddRcpt)
	rowDelRcpt     = row(pluginapi.FuncDelRcpt)
	rowRewriteRcpt = row(pluginapi.FuncRewriteRcpt)
	rowGetNote     = row(pluginapi.FuncGetNote)
	rowSetNote     = row(pluginapi.FuncSetNote)
	rowGetConfig   = row(pluginapi.FuncGetConfig)
	rowAddScore    = row(pluginapi.FuncAddScore)
	rowSetReply    = row(pluginapi.FuncSetReply)
	rowSetRoute    = row(pluginapi.FuncSetRoute)
	rowDNSLookup   = row(pluginapi.FuncDNSLookup)
	rowKVGet       = row(pluginapi.FuncKVGet)
	rowKVGetMany   = row(pluginapi.FuncKVGetMany)
	rowKVSet       = row(pluginapi.FuncKVSet)
	rowKVIncr      = row(pluginapi.FuncKVIncr)
	rowKVIncrMany  = row(pluginapi.FuncKVIncrMany)
	rowKVDel       = row(pluginapi.FuncKVDel)
	rowMetricAdd   = row(pluginapi.FuncMetricAdd)
)

// permit reports whether this call may use the host function of row f:
// StatusWrongStage at a hook the row does not allow, StatusDenied without
// the grant it names. Every Env method that returns a status checks it
// first; log and now cannot report a refusal, and pluginapi's tests keep
// them unrestricted.
func (e *Env) permit(f *pluginapi.Func) pluginapi.Status {
	if !f.AllowedAt(e.hook) {
		return pluginapi.StatusWrongStage
	}
	if f.Cap != "" && !slices.Contains(e.spec.Grants, f.Cap) {
		return pluginapi.StatusDenied
	}
	return pluginapi.StatusOK
}

// Prop returns a property of the connection or transaction.
func (e *Env) Prop(p pluginapi.Prop) (string, pluginapi.Status) {
	if st := e.permit(rowGetProp); st != pluginapi.StatusOK {
		return "", st
	}
	if p >= 0 && p < pluginapi.NumProps && !p.AllowedAt(e.hook) {
		return "", pluginapi.StatusWrongStage
	}
	c, t := e.txn.Conn, e.txn
	switch p {
	case pluginapi.PropClientIP:
		return c.clientIPText(), pluginapi.StatusOK
	case pluginapi.PropClientPort:
		return strconv.Itoa(c.ClientPort), pluginapi.StatusOK
	case pluginapi.PropClientRDNS:
		return c.RDNS, pluginapi.StatusOK
	case pluginapi.PropHelo:
		return c.Helo, pluginapi.StatusOK
	case pluginapi.PropTLS:
		return c.TLS, pluginapi.StatusOK
	case pluginapi.PropAuthUser:
		return c.AuthUser, pluginapi.StatusOK
	case pluginapi.PropMailFrom:
		return t.From, pluginapi.StatusOK
	case pluginapi.PropRcpt:
		return t.Rcpt, pluginapi.StatusOK
	case pluginapi.PropRcpts:
		var b strings.Builder
		for _, r := range t.Rcpts {
			b.WriteString(r.Addr)
			b.WriteByte('\n')
		}
		return b.String(), pluginapi.StatusOK
	case pluginapi.PropQueueID:
		return t.QueueID, pluginapi.StatusOK
	case pluginapi.PropHook:
		return e.hook.String(), pluginapi.StatusOK
	case pluginapi.PropListener:
		return c.Listener, pluginapi.StatusOK
	case pluginapi.PropBodySize:
		n := len(t.Body)
		if t.Header != nil {
			n += t.Header.Len()
		}
		return strconv.Itoa(n + 2), pluginapi.StatusOK
	case pluginapi.PropDestination:
		return t.Destination, pluginapi.StatusOK
	case pluginapi.PropAttempt:
		return strconv.Itoa(t.Attempt), pluginapi.StatusOK
	case pluginapi.PropLocalIP:
		if !c.LocalIP.IsValid() {
			return "", pluginapi.StatusOK
		}
		return c.LocalIP.String(), pluginapi.StatusOK
	case pluginapi.PropAuthResults:
		return c.AuthResults, pluginapi.StatusOK
	case pluginapi.PropRDNSStatus:
		return c.RDNSStatus, pluginapi.StatusOK
	case pluginapi.PropClientPTR:
		return c.PTR, pluginapi.StatusOK
	case pluginapi.PropPlugin:
		if e.spec.Entry != "" {
			return e.spec.Entry, pluginapi.StatusOK
		}
		return e.spec.Plugin, pluginapi.StatusOK
	}
	return "", pluginapi.StatusNotFound
}

// Log writes a line tagged with the plugin, the hook and the queue ID once
// the transaction has one; it is logged with the call's context, which
// carries the SMTP session's ID during a session's hooks.
func (e *Env) Log(level int32, msg string) {
	if e.spec.Logger == nil || !e.spec.Logger.Enabled(e.ctx, slog.Level(level)) {
		return
	}
	if len(msg) > maxValueLen {
		msg = msg[:maxValueLen]
	}
	if !e.allowLog(len(msg)) {
		return
	}
	e.spec.Logger.Log(e.ctx, slog.Level(level), msg, withID([]any{"plugin", e.spec.Plugin, "hook", e.hook.String()}, e.txn)...)
}

// withID appends the transaction's queue ID to a line's attributes when
// it has one (from the data stage on).
func withID(args []any, txn *Txn) []any {
	if txn != nil && txn.QueueID != "" {
		args = append(args, "id", txn.QueueID)
	}
	return args
}

// Now returns the host clock in Unix nanoseconds.
func (e *Env) Now() int64 {
	if e.spec.Now != nil {
		return e.spec.Now().UnixNano()
	}
	return time.Now().UnixNano()
}

// Note returns a transaction note.
func (e *Env) Note(key string) (string, pluginapi.Status) {
	if st := e.permit(rowGetNote); st != pluginapi.StatusOK {
		return "", st
	}
	v, ok := e.txn.Notes[key]
	if !ok {
		return "", pluginapi.StatusNotFound
	}
	return v, pluginapi.StatusOK
}

// SetNote sets a transaction note; an empty value deletes it.
func (e *Env) SetNote(key, value string) pluginapi.Status {
	if st := e.permit(rowSetNote); st != pluginapi.StatusOK {
		return st
	}
	if key == "" || len(key) > maxNameLen || len(value) > maxValueLen {
		return pluginapi.StatusBadArgument
	}
	if value == "" {
		delete(e.txn.Notes, key)
		return pluginapi.StatusOK
	}
	if _, ok := e.txn.Notes[key]; !ok && len(e.txn.Notes) >= maxNotes {
		return pluginapi.StatusTooLarge
	}
	if e.txn.Notes == nil {
		e.txn.Notes = map[string]string{}
	}
	e.txn.Notes[key] = value
	return pluginapi.StatusOK
}

// Config returns the JSON encoding of the plugin's config value at a
// dotted key; "" is the whole table.
func (e *Env) Config(key string) ([]byte, pluginapi.Status) {
	if st := e.permit(rowGetConfig); st != pluginapi.StatusOK {
		return nil, st
	}
	if key == "" && e.spec.wholeConfig != nil {
		c := e.spec.wholeConfig
		c.once.Do(func() { c.b, c.err = marshalConfig(e.spec.Config) })
		if c.err != nil {
			return nil, pluginapi.StatusBadArgument
		}
		return c.b, pluginapi.StatusOK
	}
	var v any = e.spec.Config
	if key != "" {
		for _, part := range strings.Split(key, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, pluginapi.StatusNotFound
			}
			if v, ok = m[part]; !ok {
				return nil, pluginapi.StatusNotFound
			}
		}
	}
	b, err := marshalConfig(v)
	if err != nil {
		return nil, pluginapi.StatusBadArgument
	}
	return b, pluginapi.StatusOK
}

// marshalConfig encodes a configuration value as get_config returns it:
// an absent table is {}.
func marshalConfig(v any) ([]byte, error) {
	if m, ok := v.(map[string]any); v == nil || ok && m == nil {
		v = map[string]any{}
	}
	return json.Marshal(v)
}

// AddScore adds to the message's spam score under a symbol.
func (e *Env) AddScore(symbol string, score float64) pluginapi.Status {
	if st := e.permit(rowAddScore); st != pluginapi.StatusOK {
		return st
	}
	if symbol == "" || len(symbol) > maxNameLen || !printable(symbol) || score != score || score > 1e6 || score < -1e6 {
		return pluginapi.StatusBadArgument
	}
	e.txn.Symbols = append(e.txn.Symbols, Symbol{Plugin: e.spec.Plugin, Name: symbol, Score: score})
	e.txn.Score += score
	return pluginapi.StatusOK
}

// SetReply sets the SMTP reply for a Reject, Tempfail or Disconnect
// verdict. The code must be 4xx or 5xx, the enhanced code "c.s.d" of the
// same class (or empty), the text printable ASCII without line breaks
// (mail.Reply.Check).
func (e *Env) SetReply(code int32, enhanced, text string) pluginapi.Status {
	if st := e.permit(rowSetReply); st != pluginapi.StatusOK {
		return st
	}
	if code < 400 || code > 599 {
		return pluginapi.StatusBadArgument
	}
	r := mail.Reply{Code: int(code), Text: text}
	if enhanced != "" {
		var err error
		if r.Enhanced, err = mail.ParseEnhanced(enhanced); err != nil {
			return pluginapi.StatusBadArgument
		}
	}
	if r.Check() != nil {
		return pluginapi.StatusBadArgument
	}
	e.reply = &r
	return pluginapi.StatusOK
}

// SetRoute sends this delivery attempt via host:port.
func (e *Env) SetRoute(route string) pluginapi.Status {
	if st := e.permit(rowSetRoute); st != pluginapi.StatusOK {
		return st
	}
	if len(route) > maxNameLen || !printable(route) || strings.ContainsAny(route, " \t") {
		return pluginapi.StatusBadArgument
	}
	e.txn.Route = route
	return pluginapi.StatusOK
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
