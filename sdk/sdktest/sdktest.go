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
	"bytes"
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
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
	RDNS       string // the verified reverse DNS name
	RDNSStatus string // "confirmed", "unconfirmed", "none", "tempfail" or ""
	PTR        string // the first PTR name, unverified
	Helo       string
	TLS        string
	AuthUser   string
	Listener   string // default "smtp"
	LocalIP    string // the address the client connected to; parsed like ClientIP

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
	// Verdict, Code, Enhanced and Text are the chain's result: the verdict
	// (Accept comes back as Continue, as the chain ends the stage with
	// it) and the reply the host checked.
	Verdict  pluginapi.Verdict
	Code     int
	Enhanced string
	Text     string
	// Outcome is the verdict applied as the server applies it at this
	// stage (core/filter's Session, the code the server runs): the reply,
	// whether the recipient is dropped, the message discarded or held, the
	// connection closed. At deliver, Outcome.Fate lists the recipients'
	// results.
	Outcome filter.Outcome
	// Score is the message's spam score so far: the sum of Symbols. Each
	// Symbol is one add_score call (sdk.Ctx.AddScore) of this or an
	// earlier hook: Plugin (the plugin's name), Name (the symbol, e.g.
	// "MISSING_SUBJECT") and Score (the amount added, possibly negative).
	// The server compares the total with its [spam] thresholds after the
	// data stage (X-Spam-Status, quarantine, reject: see sdk.Ctx.AddScore
	// and add_score in pluginapi/ABI.md); a Runner applies none.
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
// state (notes, recipients, header edits, score, a Discard or Quarantine)
// carries over from hook to hook as it does in the server. A Runner is one
// connection with one transaction: Run at mail does not start another
// (the scenario's recipients and message stay).
type Runner struct {
	t       testing.TB
	name    string
	sess    *filter.Session
	logs    *filter.LogLines
	metrics *Metrics
	call    func(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result
	// init runs the plugin's OnInit function natively; nil for a module
	// the real host has loaded (and so already initialised).
	init func() error
	// tx is the scenario and msg its message with CRLF line endings, for
	// Reset.
	tx  Txn
	msg []byte
}

// Reset starts the scenario's transaction again on the same plugin
// instance pool, as a new connection would: the header edits, notes,
// recipients and score of earlier hooks are gone. A benchmark of a whole
// message's hooks calls it once per message.
func (r *Runner) Reset() { r.start() }

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
func (r *Runner) Txn() *filter.Txn { return r.sess.Txn() }

// Run runs the plugin at hook on the transaction as it stands and applies
// the verdict as the server does at that stage (filter.Session.Run; at data
// filter.Session.Data, with no spam thresholds: a message left without
// recipients is discarded, recipient edits of a refused message are not
// kept).
func (r *Runner) Run(hook pluginapi.Hook) Result {
	r.t.Helper()
	mark := r.logs.Len()
	var o filter.Outcome
	if hook == pluginapi.HookData {
		o = r.data()
	} else {
		o = r.sess.Run(context.Background(), hook)
	}
	return r.result(o, mark)
}

// RunRcpt runs the rcpt stage for addr as the server does
// (filter.Session.Rcpt), with addr in the form the server gives plugins
// (mail.RcptForm: its domain in lower case, so that RCPT
// TO:<Bob@Example.COM> reads Bob@example.com): the recipient, possibly
// rewritten, joins the accepted recipients unless the stage refused it or
// dropped it (a Discard, or the plugin removed it). A Quarantine keeps it
// and holds the message (Outcome.Hold).
func (r *Runner) RunRcpt(addr string) Result {
	r.t.Helper()
	mark := r.logs.Len()
	txn := r.sess.Txn()
	var o filter.Outcome
	txn.Rcpts, o = r.sess.Rcpt(context.Background(), txn.Rcpts, mail.Recipient{Addr: mail.RcptForm(addr)})
	res := r.result(o, mark)
	txn.Rcpt = ""
	return res
}

// data runs the data stage on the scenario's message and keeps the
// header, body and recipients in the transaction for later hooks.
func (r *Runner) data() filter.Outcome {
	txn := r.sess.Txn()
	h, body := txn.Header, txn.Body
	if h == nil {
		h = &mail.Header{}
	}
	env := &mail.Envelope{ID: txn.QueueID, From: txn.From, Rcpts: txn.Rcpts}
	o := r.sess.Data(context.Background(), env, h, body)
	txn.Header, txn.Body, txn.Rcpts = h, body, env.Rcpts
	return o
}

// result describes the transaction after a stage with outcome o.
func (r *Runner) result(o filter.Outcome, mark int) Result {
	txn := r.sess.Txn()
	res := o.Result
	out := Result{
		Verdict: res.Verdict, Code: res.Reply.Code, Enhanced: res.Reply.Enhanced.String(), Text: res.Reply.Text,
		Outcome: o, Score: txn.Score, Symbols: append([]filter.Symbol(nil), txn.Symbols...),
		Rcpt: txn.Rcpt, Notes: maps.Clone(txn.Notes), Route: txn.Route,
		Metrics: r.metrics.Snapshot(), Logs: r.logs.Since(mark),
	}
	if out.Verdict == pluginapi.Accept {
		out.Verdict = pluginapi.Continue // as the chain does: Accept only ends the stage
	}
	if out.Notes == nil {
		out.Notes = map[string]string{}
	}
	if txn.Header != nil {
		out.Header = string(txn.Header.Bytes())
	}
	for _, rc := range txn.Rcpts {
		out.Rcpts = append(out.Rcpts, rc.Addr)
	}
	return out
}

// chain is the plugin under test as the filter.Runner a Session runs: it
// is called at every hook, and answers Continue at the hooks the plugin
// does not implement.
type chain struct{ r *Runner }

func (c chain) Hooks() uint32 { return 1<<pluginapi.NumHooks - 1 }

func (c chain) Run(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result {
	return c.r.call(ctx, hook, txn)
}

func newRunner(t testing.TB, name string, tx Txn) *Runner {
	t.Helper()
	r := &Runner{t: t, name: name, logs: &filter.LogLines{}, metrics: NewMetrics(), tx: tx}
	if tx.Message != nil {
		r.msg = CRLF(tx.Message)
	}
	r.start()
	return r
}

// start opens the scenario's connection and transaction.
func (r *Runner) start() {
	t, tx := r.t, r.tx
	t.Helper()
	conn := &filter.Conn{ClientPort: tx.ClientPort, RDNS: tx.RDNS, RDNSStatus: tx.RDNSStatus, PTR: tx.PTR,
		Helo: tx.Helo, TLS: tx.TLS, AuthUser: tx.AuthUser, Listener: tx.Listener}
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
	if tx.LocalIP != "" {
		ip, err := netip.ParseAddr(tx.LocalIP)
		if err != nil {
			t.Fatalf("sdktest: Txn.LocalIP: %v", err)
		}
		conn.LocalIP = ip
	}
	r.sess = filter.NewSession(chain{r}, conn, filter.Spam{})
	txn := r.sess.Txn()
	txn.From, txn.Rcpt, txn.QueueID = tx.From, tx.Rcpt, tx.QueueID
	txn.Destination, txn.Attempt = tx.Destination, tx.Attempt
	for _, a := range tx.Rcpts {
		txn.Rcpts = append(txn.Rcpts, mail.Recipient{Addr: a})
	}
	maps.Copy(txn.Notes, tx.Notes)
	if r.msg != nil {
		h, body := mail.ParseHeader(bytes.Clone(r.msg))
		txn.Header, txn.Body = &h, body
	}
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
func decide(ctx context.Context, spec *filter.EnvSpec, hook pluginapi.Hook, v pluginapi.Verdict, reply *mail.Reply) filter.Result {
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
