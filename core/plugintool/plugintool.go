// Package plugintool runs filter plugins offline for their authors: it
// drives one plugin, or a whole plugins directory, through every stage of a
// message (`sluice plugin test`) and validates a module without running it
// (`sluice plugin check`).
package plugintool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// TestOptions describe one offline run.
type TestOptions struct {
	// Wasm is one plugin module; Config its NAME.toml ("" = the NAME.toml
	// beside it, if any). Dir instead runs a whole plugins directory.
	Wasm   string
	Config string
	Dir    string

	// Message is the message (CRLF or bare LF line endings).
	Message  []byte
	From     string
	Rcpts    []string
	ClientIP netip.Addr // default 127.0.0.1
	Helo     string     // default "localhost"
	// AuthUser plays an authenticated session ("" none); TLS one over TLS
	// (the TLS property reads TLSDescription); Listener is "smtp"
	// (default) or "submission".
	AuthUser string
	TLS      bool
	Listener string
	// Spam are the thresholds the data stage applies, as the server's
	// [spam] table (zero: none).
	Spam filter.Spam

	// KV and Resolver serve the "kv" and "dns" grants; nil KV is an
	// in-memory store; without a Resolver a plugin's lookups fail as
	// temporary failures (-5) and the log says why.
	KV       filter.KV
	Resolver filter.Resolver
	// Now is the clock plugins see (nil: time.Now).
	Now func() time.Time
	// CacheDir keeps wazero's compiled modules between runs ("": none).
	CacheDir string
}

// Stage is the outcome of one hook.
type Stage struct {
	// Name is "connect", "rcpt b@example.com", "deliver example.com", ….
	Name   string
	Hook   pluginapi.Hook
	Result filter.Result
	// Outcome is the verdict applied as the server applies it (core/filter's
	// Session and Deliver): reply, recipient dropped, message discarded or
	// held, connection closed. Results are a deliver stage's recipients'
	// fate when a plugin decided it (nil: the message goes on to its
	// transport).
	Outcome filter.Outcome
	Results []mail.Result
	// Symbols are the score contributions added at this stage; Score the
	// total after it.
	Symbols []filter.Symbol
	Score   float64
	// HeaderDiff lists header fields removed ("- Name: value") and added
	// ("+ Name: value") by this stage.
	HeaderDiff []string
	// Rcpts are the recipients after the stage; Route the route chosen
	// (deliver).
	Rcpts []string
	Route string
	// Notes are the notes set or changed at this stage.
	Notes map[string]string
	// Logs are the lines logged during the stage.
	Logs []string
}

// Test runs the plugin (or directory) through connect, helo, mail, each
// recipient, data, and deliver for each destination domain, applying the
// verdicts with the server's own code (filter.Session, filter.Deliver):
// a recipient the rcpt stage refuses or drops is not added, one it
// quarantines is kept and the message held; the deliver stage starts from
// the message as data left it, as the queue would hand it over. Every
// stage runs whatever the verdicts, so that each plugin's behaviour is
// shown; Stage.Outcome says what the server would do. The error reports
// only failures of the tool itself (a module that does not load, an
// unreadable file).
func Test(ctx context.Context, opts TestOptions) ([]Stage, error) {
	dir, conf, cleanup, want, err := pluginsDir(opts)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	sink := &logSink{LogLines: filter.LogLines{WithValues: true}}
	kv := opts.KV
	if kv == nil {
		kv = filter.NewMemKV(opts.Now)
	}
	res := opts.Resolver
	if res == nil {
		res = &offlineResolver{sink: sink}
	}
	host, err := filter.New(ctx, filter.Options{Dir: dir, CacheDir: opts.CacheDir, KV: kv, Resolver: res,
		Metrics: sink, Logger: slog.New(sink), Now: opts.Now, ReloadInterval: time.Hour})
	if err != nil {
		return nil, err
	}
	defer host.Close(context.Background())
	if got := len(host.Plugins()); got < want {
		if opts.Wasm != "" {
			// Load the author's own files again, so that the error names
			// them (file and line) rather than the temporary copies.
			if _, err := filter.CheckWith(ctx, opts.Wasm, filter.CheckOptions{Config: conf, KV: filter.NewMemKV(opts.Now),
				Resolver: res, Metrics: sink, Logger: slog.New(sink), Now: opts.Now}); err != nil {
				return nil, err
			}
		}
		return nil, fmt.Errorf("%d of %d plugins did not load:\n%s", want-got, want, strings.Join(sink.Since(0), "\n"))
	}

	if !opts.ClientIP.IsValid() {
		opts.ClientIP = netip.MustParseAddr("127.0.0.1")
	}
	if opts.Helo == "" {
		opts.Helo = "localhost"
	}
	if opts.Listener == "" {
		opts.Listener = "smtp"
	}
	conn := &filter.Conn{ClientIP: opts.ClientIP, ClientPort: 40000, Listener: opts.Listener,
		LocalIP: netip.MustParseAddr("127.0.0.1"), AuthUser: opts.AuthUser}
	if opts.TLS {
		conn.TLS = TLSDescription
	}
	rec := &recorder{host: host, sink: sink}
	sess := filter.NewSession(rec, conn, opts.Spam)
	env := &mail.Envelope{ID: "TEST0001", From: opts.From, ClientIP: opts.ClientIP.String(), Helo: opts.Helo,
		AuthUser: opts.AuthUser}
	for _, stage := range []func() filter.Outcome{
		func() filter.Outcome { return sess.Connect(ctx) },
		func() filter.Outcome { return sess.Helo(ctx, opts.Helo) },
		func() filter.Outcome { return sess.Mail(ctx, opts.From) },
	} {
		o := stage()
		rec.last().Outcome = o
	}
	for _, r := range opts.Rcpts {
		var o filter.Outcome
		// The address as the server hands it to plugins: domain in lower case.
		env.Rcpts, o = sess.Rcpt(ctx, env.Rcpts, mail.Recipient{Addr: mail.RcptForm(r)})
		st := rec.last()
		st.Outcome, st.Rcpts = o, addrs(env.Rcpts)
	}
	header, body := mail.ParseHeader(crlf(opts.Message))
	o := sess.Data(ctx, env, &header, body)
	st := rec.last()
	st.Outcome, st.Rcpts = o, addrs(env.Rcpts)
	// The diff from before the data hook to after the spam thresholds: the
	// X-Spam-Status field the server adds shows with the plugins' edits.
	st.HeaderDiff = diff(rec.before.header, fields(&header))
	m := &mail.Message{Envelope: *env, Body: header.Message(body)}
	for _, g := range mail.GroupByDomain(addrs(env.Rcpts)) {
		_, o := filter.Deliver(ctx, rec, m, g.Domain, g.Rcpts)
		st := rec.last()
		st.Outcome, st.Results = o, o.Fate(g.Rcpts)
	}
	return rec.stages, nil
}

// recorder is the chain as the session and the deliver stage run it: it
// runs the host at every hook and records a Stage for each run.
type recorder struct {
	host   *filter.Host
	sink   *logSink
	stages []Stage
	// before is the state before the last run.
	before state
}

var _ filter.Runner = (*recorder)(nil)

// Hooks claims every hook, so that every stage runs and is shown.
func (r *recorder) Hooks() uint32 { return 1<<pluginapi.NumHooks - 1 }

// Run runs the host's chain and records what it changed.
func (r *recorder) Run(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result {
	name := hook.String()
	switch hook {
	case pluginapi.HookRcpt:
		name += " " + txn.Rcpt
	case pluginapi.HookDeliver:
		name += " " + txn.Destination
	}
	before := snapshot(txn)
	r.before = before
	mark := r.sink.Len()
	res := r.host.Run(ctx, hook, txn)
	r.stages = append(r.stages, stageOf(name, hook, res, before, txn, r.sink.Since(mark)))
	return res
}

// last is the stage recorded last.
func (r *recorder) last() *Stage { return &r.stages[len(r.stages)-1] }

// addrs lists the recipients' addresses.
func addrs(rs []mail.Recipient) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Addr
	}
	return out
}

// pluginsDir returns the directory to load and how many modules it holds.
// For a single module it is a temporary directory holding NAME.wasm and its
// NAME.toml.
func pluginsDir(opts TestOptions) (dir, conf string, cleanup func(), n int, err error) {
	nop := func() {}
	if (opts.Dir == "") == (opts.Wasm == "") {
		return "", "", nop, 0, errors.New("give one plugin FILE.wasm or --dir DIR, not both")
	}
	if opts.Dir != "" {
		m, err := filepath.Glob(filepath.Join(opts.Dir, "*.wasm"))
		if err != nil {
			return "", "", nop, 0, err
		}
		if len(m) == 0 {
			return "", "", nop, 0, fmt.Errorf("%s: no *.wasm plugins in this directory", opts.Dir)
		}
		return opts.Dir, "", nop, len(m), nil
	}
	if !strings.HasSuffix(opts.Wasm, ".wasm") {
		return "", "", nop, 0, fmt.Errorf("%s: a plugin file name ends in .wasm", opts.Wasm)
	}
	wasm, err := os.ReadFile(opts.Wasm)
	if err != nil {
		return "", "", nop, 0, err
	}
	conf = opts.Config
	if conf == "" {
		conf = strings.TrimSuffix(opts.Wasm, ".wasm") + ".toml"
		if _, err := os.Stat(conf); err != nil {
			conf = ""
		}
	}
	tmp, err := os.MkdirTemp("", "sluice-plugin-test-")
	if err != nil {
		return "", "", nop, 0, err
	}
	cleanup = func() { os.RemoveAll(tmp) }
	name := filepath.Base(opts.Wasm)
	if err := os.WriteFile(filepath.Join(tmp, name), wasm, 0o600); err != nil {
		cleanup()
		return "", "", nop, 0, err
	}
	if conf != "" {
		b, err := os.ReadFile(conf)
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, strings.TrimSuffix(name, ".wasm")+".toml"), b, 0o600)
		}
		if err != nil {
			cleanup()
			return "", "", nop, 0, err
		}
	}
	return tmp, conf, cleanup, 1, nil
}

// state is what a stage may change, for diffs.
type state struct {
	header  []string
	symbols int
	notes   map[string]string
}

func snapshot(txn *filter.Txn) state {
	s := state{symbols: len(txn.Symbols), notes: map[string]string{}}
	if txn.Header != nil {
		s.header = fields(txn.Header)
	}
	for k, v := range txn.Notes {
		s.notes[k] = v
	}
	return s
}

func stageOf(name string, hook pluginapi.Hook, res filter.Result, before state, txn *filter.Txn, logs []string) Stage {
	after := snapshot(txn)
	st := Stage{Name: name, Hook: hook, Result: res, Score: txn.Score, Rcpts: addrs(txn.Rcpts),
		Route: txn.Route, Logs: logs, Symbols: slices.Clone(txn.Symbols[before.symbols:])}
	st.HeaderDiff = diff(before.header, after.header)
	for k, v := range after.notes {
		if old, ok := before.notes[k]; !ok || old != v {
			if st.Notes == nil {
				st.Notes = map[string]string{}
			}
			st.Notes[k] = v
		}
	}
	for k := range before.notes {
		if _, ok := after.notes[k]; !ok {
			if st.Notes == nil {
				st.Notes = map[string]string{}
			}
			st.Notes[k] = "(deleted)"
		}
	}
	return st
}

// fields lists h's fields as "Name: value" (unfolded).
func fields(h *mail.Header) []string {
	var out []string
	for _, f := range h.Fields {
		out = append(out, f.Name+": "+f.Unfolded())
	}
	return out
}

// diff lists the fields of a that b lacks ("- ") and of b that a lacks
// ("+ "), counting repeated fields.
func diff(a, b []string) []string {
	var out []string
	inB := map[string]int{}
	for _, f := range b {
		inB[f]++
	}
	for _, f := range a {
		if inB[f] > 0 {
			inB[f]--
			continue
		}
		out = append(out, "- "+f)
	}
	inA := map[string]int{}
	for _, f := range a {
		inA[f]++
	}
	for _, f := range b {
		if inA[f] > 0 {
			inA[f]--
			continue
		}
		out = append(out, "+ "+f)
	}
	return out
}

func crlf(msg []byte) []byte {
	s := strings.ReplaceAll(string(msg), "\r\n", "\n")
	return []byte(strings.ReplaceAll(s, "\n", "\r\n"))
}

// logSink keeps the plugins' log lines, with their attributes, and shows
// metric adds among them.
type logSink struct{ filter.LogLines }

var _ filter.Metrics = (*logSink)(nil)

// Add implements filter.Metrics by logging the change.
func (s *logSink) Add(plugin, name string, delta float64) {
	s.Append(fmt.Sprintf("METRIC %s %s %+g", plugin, name, delta))
}

// WriteStages prints stages for a person, one block per stage.
func WriteStages(w io.Writer, stages []Stage) error {
	for _, st := range stages {
		r := st.Result
		line := fmt.Sprintf("%-24s %s", st.Name, r.Verdict)
		if r.Reply.Code != 0 {
			line += " " + r.Reply.String()
		}
		if r.Plugin != "" {
			line += fmt.Sprintf(" (by %s)", r.Plugin)
		}
		if what := effect(st); what != "" {
			line += ": " + what
		}
		if _, err := fmt.Fprintln(w, line); err != nil {
			return err
		}
		var detail []string
		for _, s := range st.Symbols {
			detail = append(detail, fmt.Sprintf("score %+g %s (%s), total %g", s.Score, s.Name, s.Plugin, st.Score))
		}
		for _, d := range st.HeaderDiff {
			detail = append(detail, "header "+d)
		}
		for _, k := range sortedKeys(st.Notes) {
			detail = append(detail, fmt.Sprintf("note %s = %q", k, st.Notes[k]))
		}
		if st.Hook == pluginapi.HookRcpt || st.Hook == pluginapi.HookData {
			rcpts := strings.Join(st.Rcpts, ", ")
			if rcpts == "" {
				rcpts = "(none)"
			}
			detail = append(detail, "rcpts "+rcpts)
		}
		if st.Route != "" {
			detail = append(detail, "route "+st.Route)
		}
		for _, l := range st.Logs {
			detail = append(detail, "log "+l)
		}
		for _, d := range detail {
			if _, err := fmt.Fprintln(w, "    "+d); err != nil {
				return err
			}
		}
	}
	return nil
}

// effect says what the server does after a stage, when it is more than
// going on or the reply already shown.
func effect(st Stage) string {
	o := st.Outcome
	switch {
	case st.Hook == pluginapi.HookDeliver:
		if len(st.Results) == 0 {
			return ""
		}
		r := st.Results[0]
		if st.Result.Reply.Code != 0 {
			return r.Status.String() // with the reply shown
		}
		return r.Status.String() + " " + r.Reply.String()
	case o.Close:
		return "connection closed"
	case o.Reply != nil && o.Spam:
		return "refused " + o.Reply.String() + " ([spam] reject)"
	case o.Reply != nil:
		return ""
	case o.Drop:
		return "recipient dropped"
	case st.Result.Verdict == pluginapi.Discard || st.Hook == pluginapi.HookData && o.Discard:
		return "message discarded"
	case st.Result.Verdict == pluginapi.Quarantine || st.Hook == pluginapi.HookData && o.Hold:
		return "message held"
	}
	return ""
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
