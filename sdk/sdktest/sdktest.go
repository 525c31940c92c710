// Package sdktest runs a plugin's unit tests twice with one scenario:
// natively, by calling the plugin's registered handlers against the real
// host semantics (filter.Env), and as the compiled .wasm module in the real
// filter host. Both return the same Result, so one assertion checks both:
//
//	tx := sdktest.Txn{From: "a@example.org", Rcpt: "b@example.com",
//		Config: map[string]any{"deny": []string{"b@example.com"}}}
//	for _, r := range []*sdktest.Runner{sdktest.Native(t, tx), sdktest.Wasm(t, ".", tx)} {
//		res := r.Run(pluginapi.HookRcpt)
//		if res.Verdict != pluginapi.Reject { … }
//	}
package sdktest

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk"
)

// The host's Env is the SDK's native host.
var _ sdk.Host = (*filter.Env)(nil)

// Txn is a test scenario: the connection, the transaction and the plugin's
// configuration. Zero fields are empty, except where noted.
type Txn struct {
	// Plugin names the plugin (symbols, logs, KV namespace). Default: the
	// base name of the package directory (Native: the working directory).
	Plugin string

	ClientIP   string // "192.0.2.1"; parsed, a bad address fails the test
	ClientPort int
	RDNS       string
	Helo       string
	TLS        string
	AuthUser   string
	Listener   string // default "smtp"

	From    string
	Rcpts   []string // recipients accepted so far
	Rcpt    string   // the recipient at the rcpt hook
	QueueID string
	// Message is the whole message; bare LF line endings are turned into CRLF.
	Message []byte
	Notes   map[string]string

	Destination string // deliver hook
	Attempt     int

	// Config is the plugin's [config] table; Grants its capabilities.
	Config map[string]any
	Grants []string
	// Settings are other NAME.toml keys (failure_policy, …; timeout defaults
	// to 10s so that tests do not depend on speed); Wasm only.
	Settings map[string]any

	// KV and Resolver default to an empty MemKV and MemResolver.
	KV       filter.KV
	Resolver filter.Resolver
	// Now is the plugin's clock; zero means 2025-01-02T03:04:05Z.
	Now time.Time
}

// Result is the outcome of one hook and the transaction after it.
type Result struct {
	Verdict  pluginapi.Verdict
	Code     int
	Enhanced string
	Text     string
	// Score and Symbols are the spam score so far.
	Score   float64
	Symbols []filter.Symbol
	// Header is the header section after edits (CRLF, "Name: value" lines).
	Header string
	Rcpts  []string
	// Rcpt is the recipient under consideration after a rcpt hook ("" if
	// the plugin dropped it).
	Rcpt    string
	Notes   map[string]string
	Route   string
	Metrics map[string]float64
	// Logs are the lines logged during the hook, "LEVEL message".
	Logs []string
}

// Reply is the SMTP reply, "550 5.7.1 text", or "" for none.
func (r Result) Reply() string {
	if r.Code == 0 {
		return ""
	}
	return strings.TrimSpace(strings.Join([]string{strconv.Itoa(r.Code), r.Enhanced, r.Text}, " "))
}

// HasLog reports whether a log line contains s.
func (r Result) HasLog(s string) bool {
	for _, l := range r.Logs {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// Runner runs hooks of one plugin on one transaction; the transaction's
// state (notes, recipients, header edits, score) carries over from hook to
// hook as it does in the server.
type Runner struct {
	t       testing.TB
	name    string
	txn     *filter.Txn
	logs    *filter.LogLines
	metrics *Metrics
	call    func(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result
	// init runs the plugin's OnInit function natively; nil for a module
	// the real host has loaded (and so already initialised).
	init func() error
}

// Init runs the plugin's OnInit (configuration check) and returns its
// error. A wasm Runner's module was initialised when it loaded: use
// LoadError to see a refusal there.
func (r *Runner) Init() error {
	if r.init == nil {
		return nil
	}
	return r.init()
}

// Txn returns the transaction the runner works on, to inspect or change it
// between hooks.
func (r *Runner) Txn() *filter.Txn { return r.txn }

// Run runs the plugin at hook and returns the result.
func (r *Runner) Run(hook pluginapi.Hook) Result {
	r.t.Helper()
	mark := r.logs.Len()
	res := r.call(context.Background(), hook, r.txn)
	out := Result{
		Verdict: res.Verdict, Code: res.Code, Enhanced: res.Enhanced, Text: res.Text,
		Score: r.txn.Score, Symbols: append([]filter.Symbol(nil), r.txn.Symbols...),
		Header: string(filter.FormatHeader(r.txn.Header)),
		Rcpts:  append([]string(nil), r.txn.Rcpts...), Rcpt: r.txn.Rcpt,
		Notes: map[string]string{}, Route: r.txn.Route,
		Metrics: r.metrics.Snapshot(), Logs: r.logs.Since(mark),
	}
	for k, v := range r.txn.Notes {
		out.Notes[k] = v
	}
	return out
}

// RunRcpt runs the rcpt hook for addr and, as the server does, adds the
// recipient (possibly rewritten) to the accepted recipients when the
// verdict is Continue or Accept.
func (r *Runner) RunRcpt(addr string) Result {
	r.t.Helper()
	r.txn.Rcpt = addr
	res := r.Run(pluginapi.HookRcpt)
	if (res.Verdict == pluginapi.Continue || res.Verdict == pluginapi.Accept) && r.txn.Rcpt != "" {
		r.txn.Rcpts = append(r.txn.Rcpts, r.txn.Rcpt)
		res.Rcpts = append([]string(nil), r.txn.Rcpts...)
	}
	r.txn.Rcpt = ""
	return res
}

func newRunner(t testing.TB, name string, tx Txn) *Runner {
	t.Helper()
	conn := &filter.Conn{ClientPort: tx.ClientPort, RDNS: tx.RDNS, Helo: tx.Helo, TLS: tx.TLS,
		AuthUser: tx.AuthUser, Listener: tx.Listener}
	if conn.Listener == "" {
		conn.Listener = "smtp"
	}
	if tx.ClientIP != "" {
		ip, err := netip.ParseAddr(tx.ClientIP)
		if err != nil {
			t.Fatalf("sdktest: Txn.ClientIP: %v", err)
		}
		conn.ClientIP = ip
	}
	txn := &filter.Txn{Conn: conn, From: tx.From, Rcpts: append([]string(nil), tx.Rcpts...), Rcpt: tx.Rcpt,
		QueueID: tx.QueueID, Destination: tx.Destination, Attempt: tx.Attempt, Notes: map[string]string{}}
	for k, v := range tx.Notes {
		txn.Notes[k] = v
	}
	if tx.Message != nil {
		txn.Header, txn.Body = filter.ParseHeader(CRLF(tx.Message))
	}
	return &Runner{t: t, name: name, txn: txn, logs: &filter.LogLines{}, metrics: NewMetrics()}
}

func (tx *Txn) defaults() {
	if tx.KV == nil {
		tx.KV = NewMemKV(nil)
	}
	if tx.Resolver == nil {
		tx.Resolver = MemResolver{}
	}
	if tx.Now.IsZero() {
		tx.Now = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	}
}

// CRLF turns bare LF line endings into CRLF.
func CRLF(msg []byte) []byte {
	s := strings.ReplaceAll(string(msg), "\r\n", "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// Native runs the handlers registered (in init) by the package under test,
// with a filter.Env as their host: the real host semantics without wasm.
func Native(t testing.TB, tx Txn) *Runner {
	t.Helper()
	tx.defaults()
	name := tx.Plugin
	if name == "" {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatalf("sdktest: %v", err)
		}
		name = filepath.Base(wd)
	}
	r := newRunner(t, name, tx)
	now := tx.Now
	spec := &filter.EnvSpec{Plugin: name, Config: tx.Config, Grants: tx.Grants, KV: tx.KV,
		Resolver: tx.Resolver, Metrics: r.metrics, Logger: slog.New(r.logs),
		Now: func() time.Time { return now }}
	r.init = func() error {
		return sdk.DispatchInit(filter.NewEnv(context.Background(), pluginapi.HookInit, &filter.Txn{}, spec))
	}
	r.call = func(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result {
		if sdk.Hooks()&(1<<hook) == 0 {
			return filter.Result{Verdict: pluginapi.Continue}
		}
		env := filter.NewEnv(ctx, hook, txn, spec)
		v := sdk.Dispatch(hook, env)
		return decide(ctx, spec, hook, v.Kind, env.Reply())
	}
	return r
}

// decide applies the host's own rule (filter.Decide) and logs a reply
// that does not fit its verdict, as the host does.
func decide(ctx context.Context, spec *filter.EnvSpec, hook pluginapi.Hook, v pluginapi.Verdict, reply *filter.Result) filter.Result {
	r, ok := filter.Decide(v, reply, spec.Plugin)
	if !ok && reply != nil {
		spec.Logger.Log(ctx, slog.LevelWarn, "plugin reply does not match its verdict; using the default reply",
			"plugin", spec.Plugin, "hook", hook.String(), "verdict", v.String(), "code", reply.Code)
	}
	if r.Verdict == pluginapi.Accept {
		r.Verdict = pluginapi.Continue // as the chain does: Accept only ends the stage
	}
	return r
}
