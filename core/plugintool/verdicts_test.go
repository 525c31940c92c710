package plugintool

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/queue"
	"github.com/sluice-mta/sluice/core/server"
	"github.com/sluice-mta/sluice/core/servertest"
	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// The verdict table: every verdict at every stage, run the same way
// through the real server over SMTP, through `sluice plugin test` (Test)
// and through sdktest, which must agree with each other and with the
// semantics written down here. The plugin is the server tests' policy
// plugin: each case has its own rule, matched by a token only that case's
// transaction carries at the stage under test.

var tableVerdicts = []string{"continue", "accept", "reject", "tempfail", "discard", "quarantine", "disconnect"}

var tableStages = []pluginapi.Hook{pluginapi.HookConnect, pluginapi.HookHelo, pluginapi.HookMail,
	pluginapi.HookRcpt, pluginapi.HookData, pluginapi.HookDeliver}

// verdictCase is one verdict at one stage.
type verdictCase struct {
	verdict string
	n       int // index in tableVerdicts, for the client address
	stage   pluginapi.Hook
}

func (c verdictCase) String() string { return c.verdict + "@" + c.stage.String() }

// The transaction of a case: only the stage under test carries the token.
func (c verdictCase) clientIP() string {
	if c.stage == pluginapi.HookConnect {
		return fmt.Sprintf("127.0.7.%d", c.n+1)
	}
	return "127.0.0.1"
}

func (c verdictCase) helo() string {
	if c.stage == pluginapi.HookHelo {
		return "h-" + c.verdict + ".test"
	}
	return "client.test"
}

func (c verdictCase) from() string {
	if c.stage == pluginapi.HookMail {
		return "m-" + c.verdict + "@localhost"
	}
	return "s@localhost"
}

func (c verdictCase) rcpts() []string {
	switch c.stage {
	case pluginapi.HookRcpt:
		return []string{"r-" + c.verdict + "@localhost", "other@localhost"}
	case pluginapi.HookDeliver:
		return []string{"u@" + c.domain(), "other@localhost"}
	}
	return []string{"other@localhost"}
}

func (c verdictCase) domain() string { return "x-" + c.verdict + ".test" }

func (c verdictCase) subject() string {
	if c.stage == pluginapi.HookData {
		return "d-" + c.verdict
	}
	return "plain"
}

func (c verdictCase) message() string {
	return servertest.Message(c.from(), c.rcpts()[0], c.subject(), "text\r\n")
}

// rule is the policy plugin's rule for the case.
func (c verdictCase) rule() map[string]any {
	match := map[pluginapi.Hook]string{
		pluginapi.HookConnect: c.clientIP(), pluginapi.HookHelo: "h-" + c.verdict + ".",
		pluginapi.HookMail: "m-" + c.verdict + "@", pluginapi.HookRcpt: "r-" + c.verdict + "@",
		pluginapi.HookData: "d-" + c.verdict, pluginapi.HookDeliver: c.domain(),
	}[c.stage]
	r := map[string]any{"hook": c.stage.String(), "match": match, "verdict": c.verdict}
	switch c.verdict {
	case "reject":
		r["code"], r["enh"], r["text"] = 550, "5.7.1", "no"
	case "tempfail":
		r["code"], r["enh"], r["text"] = 451, "4.7.1", "later"
	case "disconnect":
		r["text"] = "bye"
	}
	return r
}

// outcome is what a client and an operator see of one transaction.
type outcome struct {
	// Refused is the first refusing reply, after the command it answered:
	// "MAIL 550 5.7.1 no". Connect and helo both answer EHLO.
	Refused string
	// Closed: the server hung up after it.
	Closed bool
	// Queued are the recipients of the queued message, sorted; nil when
	// nothing was queued (refused or discarded).
	Queued []string
	Held   bool
	// Deliver is each queued recipient's first delivery attempt, sorted:
	// "rcpt transport" when the deliver stage let the message go on to its
	// transport, else "rcpt STATUS DSN TEXT" as the plugin decided. Empty
	// for a held message.
	Deliver []string
}

func (o outcome) String() string {
	return fmt.Sprintf("refused=%q closed=%v queued=%q held=%v deliver=%q", o.Refused, o.Closed, o.Queued, o.Held, o.Deliver)
}

func (o outcome) equal(p outcome) bool {
	return o.Refused == p.Refused && o.Closed == p.Closed && slices.Equal(o.Queued, p.Queued) &&
		(o.Queued == nil) == (p.Queued == nil) && o.Held == p.Held && slices.Equal(o.Deliver, p.Deliver)
}

// want is the semantics: what each verdict does at each stage.
func (c verdictCase) want() outcome {
	all := slices.Sorted(slices.Values(c.rcpts()))
	var delivered []string
	for _, r := range all {
		delivered = append(delivered, r+" transport")
	}
	cmd := command(c.stage)
	switch c.verdict {
	case "continue", "accept":
		return outcome{Queued: all, Deliver: delivered}
	case "reject", "tempfail":
		reply := map[string]string{"reject": "550 5.7.1 no", "tempfail": "451 4.7.1 later"}[c.verdict]
		switch c.stage {
		case pluginapi.HookRcpt: // the other recipient goes on
			return outcome{Refused: cmd + " " + reply, Queued: []string{"other@localhost"}, Deliver: []string{"other@localhost transport"}}
		case pluginapi.HookDeliver:
			status := map[string]string{"reject": "bounced", "tempfail": "deferred"}[c.verdict]
			_, dsn, _ := strings.Cut(reply, " ")
			return outcome{Queued: all, Deliver: []string{"other@localhost transport", "u@" + c.domain() + " " + status + " " + dsn}}
		}
		return outcome{Refused: cmd + " " + reply}
	case "discard":
		switch c.stage {
		case pluginapi.HookRcpt: // the recipient, not the message
			return outcome{Queued: []string{"other@localhost"}, Deliver: []string{"other@localhost transport"}}
		case pluginapi.HookDeliver:
			return outcome{Queued: all, Deliver: []string{"other@localhost transport",
				"u@" + c.domain() + " sent 2.0.0 discarded by a deliver-stage plugin"}}
		}
		return outcome{} // answered 250, never queued
	case "quarantine":
		if c.stage == pluginapi.HookDeliver { // the queued message is put on hold
			return outcome{Queued: all, Deliver: []string{"other@localhost transport",
				"u@" + c.domain() + " held 4.7.0 quarantined by plugin policy"}}
		}
		return outcome{Queued: all, Held: true} // every recipient kept
	case "disconnect":
		if c.stage == pluginapi.HookDeliver {
			return outcome{Queued: all, Deliver: []string{"other@localhost transport", "u@" + c.domain() + " deferred 4.7.0 bye"}}
		}
		return outcome{Refused: cmd + " 421 4.7.0 bye", Closed: true}
	}
	panic("unknown verdict " + c.verdict)
}

// command is the SMTP command a stage answers.
func command(h pluginapi.Hook) string {
	switch h {
	case pluginapi.HookConnect, pluginapi.HookHelo:
		return "EHLO"
	case pluginapi.HookMail:
		return "MAIL"
	case pluginapi.HookRcpt:
		return "RCPT"
	}
	return "DATA"
}

// step is one stage as the offline tools report it.
type step struct {
	hook pluginapi.Hook
	o    filter.Outcome
	// rcpts are the recipients after data.
	rcpts []string
	// fate is the deliver stage's: recipient -> "transport" or the result.
	fate map[string]string
}

// fateOf describes a deliver-stage outcome for rcpts.
func fateOf(o filter.Outcome, rcpts []string) map[string]string {
	out := map[string]string{}
	results := o.Fate(rcpts)
	for _, r := range rcpts {
		out[r] = "transport"
	}
	for _, r := range results {
		out[r.Rcpt] = r.Status.String() + " " + r.Reply.Enhanced.String() + " " + r.Reply.Text
	}
	return out
}

// derive reads an outcome from the stages as a client would meet them: a
// refusal ends the transaction except at rcpt, DATA is sent only with an
// accepted recipient, and a queued message that is not held is delivered.
func derive(steps []step) outcome {
	var out outcome
	accepted := 0
	for _, s := range steps {
		switch {
		case s.hook == pluginapi.HookDeliver:
			if out.Queued == nil || out.Held {
				continue
			}
			for r, f := range s.fate {
				out.Deliver = append(out.Deliver, r+" "+f)
			}
			continue
		case s.hook == pluginapi.HookData && accepted == 0:
			return out
		case s.o.Reply != nil:
			if out.Refused == "" {
				out.Refused = command(s.hook) + " " + s.o.Reply.String()
			}
			if s.o.Close {
				out.Closed = true
				return out
			}
			if s.hook != pluginapi.HookRcpt {
				return out
			}
		case s.hook == pluginapi.HookRcpt:
			accepted++
		case s.hook == pluginapi.HookData:
			if s.o.Discard {
				return out
			}
			out.Queued = slices.Sorted(slices.Values(s.rcpts))
			out.Held = s.o.Hold
		}
	}
	slices.Sort(out.Deliver)
	return out
}

func TestVerdictTable(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a plugin and starts a server")
	}
	var cases []verdictCase
	for n, v := range tableVerdicts {
		for _, st := range tableStages {
			cases = append(cases, verdictCase{verdict: v, n: n, stage: st})
		}
	}
	var rules []any
	for _, c := range cases {
		rules = append(rules, c.rule())
	}
	config := map[string]any{"rules": rules}
	toml, err := sdktest.PluginTOML(config, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	wasm := sdktest.Build(t, "../server/testdata/policy")
	dir := t.TempDir()
	wasmPath := filepath.Join(dir, "policy.wasm")
	if err := os.WriteFile(wasmPath, wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "policy.toml"), toml, 0o644); err != nil {
		t.Fatal(err)
	}

	srv := startVerdictServer(t, cases, wasm, string(toml))
	// The server's transactions run first and one after the other; their
	// deliveries are awaited at the end, all at once.
	serverRuns := make([]*smtpRun, len(cases))
	for i, c := range cases {
		serverRuns[i] = srv.transact(t, c)
	}
	cache := t.TempDir()
	for i, c := range cases {
		t.Run(c.String(), func(t *testing.T) {
			t.Parallel() // each case has its own hosts; the server is shared
			want := c.want()
			got := map[string]outcome{
				"server":      srv.outcome(t, serverRuns[i]),
				"plugin test": pluginTestOutcome(t, c, wasmPath, cache),
				"sdktest":     sdktestOutcome(t, c, wasmPath, config),
			}
			for _, path := range []string{"server", "plugin test", "sdktest"} {
				if !got[path].equal(want) {
					t.Errorf("%s:\n got %v\nwant %v", path, got[path], want)
				}
			}
		})
	}
}

// pluginTestOutcome runs the case through Test.
func pluginTestOutcome(t *testing.T, c verdictCase, wasmPath, cache string) outcome {
	t.Helper()
	stages, err := Test(context.Background(), TestOptions{Wasm: wasmPath, Message: []byte(c.message()),
		From: c.from(), Rcpts: c.rcpts(), ClientIP: netip.MustParseAddr(c.clientIP()), Helo: c.helo(), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	var steps []step
	for _, st := range stages {
		s := step{hook: st.Hook, o: st.Outcome, rcpts: st.Rcpts}
		if st.Hook == pluginapi.HookDeliver {
			s.fate = fateOf(st.Outcome, st.Rcpts)
		}
		steps = append(steps, s)
	}
	return derive(steps)
}

// sdktestOutcome runs the case through sdktest, stage by stage, with the
// deliver stage once per destination domain as the router runs it.
func sdktestOutcome(t *testing.T, c verdictCase, wasmPath string, config map[string]any) outcome {
	t.Helper()
	r := sdktest.WasmFile(t, wasmPath, sdktest.Txn{Plugin: "policy", ClientIP: c.clientIP(), Helo: c.helo(),
		From: c.from(), QueueID: "Q1", Message: []byte(c.message()), Config: config})
	var steps []step
	for _, h := range []pluginapi.Hook{pluginapi.HookConnect, pluginapi.HookHelo, pluginapi.HookMail} {
		steps = append(steps, step{hook: h, o: r.Run(h).Outcome})
	}
	for _, rcpt := range c.rcpts() {
		steps = append(steps, step{hook: pluginapi.HookRcpt, o: r.RunRcpt(rcpt).Outcome})
	}
	res := r.Run(pluginapi.HookData)
	steps = append(steps, step{hook: pluginapi.HookData, o: res.Outcome, rcpts: res.Rcpts})
	for _, g := range mail.GroupByDomain(res.Rcpts) {
		r.Txn().Destination, r.Txn().Attempt = g.Domain, 1
		o := r.Run(pluginapi.HookDeliver).Outcome
		steps = append(steps, step{hook: pluginapi.HookDeliver, o: o, fate: fateOf(o, g.Rcpts)})
	}
	return derive(steps)
}

// verdictServer is the real server with the policy plugin, its log kept.
type verdictServer struct {
	srv  *server.Server
	addr string
	log  *logRecords
}

func startVerdictServer(t *testing.T, cases []verdictCase, wasm []byte, toml string) *verdictServer {
	t.Helper()
	cfg := servertest.Config(t)
	for _, v := range tableVerdicts {
		cfg.LocalDomains = append(cfg.LocalDomains, verdictCase{verdict: v}.domain())
	}
	servertest.Install(t, cfg, "policy", wasm, toml)
	logs := &logRecords{}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg, slog.New(logs))
	if err != nil {
		cancel()
		t.Fatalf("server.New: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server.Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("server did not stop within 30s")
		}
	})
	return &verdictServer{srv: srv, addr: srv.Services()[0].Addrs[0].String(), log: logs}
}

// smtpRun is what a client saw of one case's transaction.
type smtpRun struct {
	c       verdictCase
	refused string
	closed  bool
	id      string // the queue ID the 250 after DATA named, "" when none
	err     error
}

// transact runs the case's transaction over SMTP, as a client would:
// stopping at a refusal except of a recipient, and at a hang-up.
func (s *verdictServer) transact(t *testing.T, c verdictCase) *smtpRun {
	run := &smtpRun{c: c}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(c.clientIP())}, Timeout: 10 * time.Second}
	conn, err := d.Dial("tcp", s.addr)
	if err != nil {
		run.err = err
		return run
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	r := bufio.NewReader(conn)
	reply := func(cmd string) (string, bool) {
		if cmd != "" {
			if _, err := io.WriteString(conn, cmd+"\r\n"); err != nil {
				run.err = err
				return "", false
			}
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				run.err = fmt.Errorf("after %q: %v", cmd, err)
				return "", false
			}
			if len(line) >= 4 && line[3] != '-' {
				return strings.TrimRight(line, "\r\n"), true
			}
		}
	}
	// refuse records a refusal and reports whether the transaction goes on.
	refuse := func(cmd, line string) bool {
		if run.refused == "" {
			run.refused = cmd + " " + line
		}
		if strings.HasPrefix(line, "421") {
			if _, err := r.ReadByte(); errors.Is(err, io.EOF) {
				run.closed = true
			}
			return false
		}
		return cmd == "RCPT"
	}
	if line, ok := reply(""); !ok || !strings.HasPrefix(line, "220") {
		run.err = fmt.Errorf("banner %q: %v", line, run.err)
		return run
	}
	for _, cmd := range []string{"EHLO " + c.helo(), "MAIL FROM:<" + c.from() + ">"} {
		line, ok := reply(cmd)
		if !ok {
			return run
		}
		if !strings.HasPrefix(line, "250") {
			refuse(strings.Fields(cmd)[0], line)
			return run
		}
	}
	accepted := 0
	for _, rcpt := range c.rcpts() {
		line, ok := reply("RCPT TO:<" + rcpt + ">")
		if !ok {
			return run
		}
		if !strings.HasPrefix(line, "250") {
			if !refuse("RCPT", line) {
				return run
			}
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return run
	}
	if line, ok := reply("DATA"); !ok || !strings.HasPrefix(line, "354") {
		run.err = fmt.Errorf("DATA: %q %v", line, run.err)
		return run
	}
	line, ok := reply(c.message() + ".")
	if !ok {
		return run
	}
	if !strings.HasPrefix(line, "250") {
		refuse("DATA", line)
		return run
	}
	_, run.id, _ = strings.Cut(line, "queued as ")
	reply("QUIT")
	return run
}

// outcome reads what the server did with a transaction: whether the queue
// took the message (it logs "queued" before the 250 goes out), held it,
// and each recipient's first delivery attempt from the queue's log.
func (s *verdictServer) outcome(t *testing.T, run *smtpRun) outcome {
	t.Helper()
	if run.err != nil {
		t.Fatalf("SMTP: %v", run.err)
	}
	out := outcome{Refused: run.refused, Closed: run.closed}
	if run.id == "" {
		return out
	}
	queued, ok := s.log.find("queued", run.id)
	if !ok {
		return out // answered 250, never queued: discarded
	}
	m, err := s.srv.Queue().Get(context.Background(), run.id)
	switch {
	case err == nil && m.Held && len(s.log.all("delivery", run.id)) == 0: // held when queued
		for _, r := range m.Rcpts {
			out.Queued = append(out.Queued, r.Addr)
		}
		slices.Sort(out.Queued)
		out.Held = true
		return out
	case err != nil && !errors.Is(err, queue.ErrNotFound):
		t.Fatal(err)
	}
	n := 0
	fmt.Sscan(queued["rcpts"], &n)
	deadline := time.Now().Add(30 * time.Second)
	for {
		attempts := map[string]map[string]string{}
		for _, d := range s.log.all("delivery", run.id) {
			if _, seen := attempts[d["to"]]; !seen {
				attempts[d["to"]] = d
			}
		}
		if len(attempts) >= n {
			for to, d := range attempts {
				out.Queued = append(out.Queued, to)
				fate := "transport"
				if strings.HasPrefix(d["relay"], "plugin ") {
					fate = d["status"] + " " + d["dsn"] + " " + d["text"]
				}
				out.Deliver = append(out.Deliver, to+" "+fate)
			}
			slices.Sort(out.Queued)
			slices.Sort(out.Deliver)
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("message %s: %d of %d recipients attempted within 30s: %v", run.id, len(attempts), n, attempts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logRecords is a slog.Handler keeping every record's message and
// attributes, to read the server's log.
type logRecords struct {
	mu   sync.Mutex
	recs []logRecord
}

type logRecord struct {
	msg   string
	attrs map[string]string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, rec)
	l.mu.Unlock()
	return nil
}

func (l *logRecords) WithAttrs([]slog.Attr) slog.Handler { return l }

func (l *logRecords) WithGroup(string) slog.Handler { return l }

// all returns the attributes of the records with message msg and id.
func (l *logRecords) all(msg, id string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.recs {
		if r.msg == msg && r.attrs["id"] == id {
			out = append(out, r.attrs)
		}
	}
	return out
}

// find returns the first record with message msg and id.
func (l *logRecords) find(msg, id string) (map[string]string, bool) {
	all := l.all(msg, id)
	if len(all) == 0 {
		return nil, false
	}
	return all[0], true
}
