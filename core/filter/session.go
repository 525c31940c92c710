package filter

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// Verdicts are given their meaning here, once, in the manner of maddy's
// check_runner.applyResults: Apply says what a chain Result means at a
// stage, Session carries what holds for the rest of a connection or a
// transaction, and Deliver runs the deliver stage. The SMTP server, the
// deliver hook of the router, `sluice plugin test` and sdktest all call
// these, so a plugin author's tests predict what the server does.

// Spam holds the score thresholds the data stage applies to the sum of
// the plugins' scores. Zero switches a threshold off.
type Spam struct {
	// AddHeader adds an X-Spam-Status header listing score and symbols.
	AddHeader float64
	// Quarantine holds the message in the queue.
	Quarantine float64
	// Reject refuses the message with 550 5.7.1.
	Reject float64
}

// Outcome is one stage's verdict applied: what the caller does next. The
// zero Outcome means go on.
type Outcome struct {
	// Result is the chain's result at the stage: verdict, checked reply
	// and deciding plugin.
	Result Result
	// Reply refuses the command (Reject, Tempfail, Disconnect, or the spam
	// reject threshold at data); nil goes on. At deliver it is the reply
	// the recipients are deferred or bounced with (see Fate).
	Reply *mail.Reply
	// Close asks for the connection to be closed after Reply (Disconnect).
	Close bool
	// Drop (rcpt): answer 250 but do not add the recipient (Discard at
	// rcpt, or a plugin removed the recipient under consideration).
	Drop bool
	// Discard: the transaction's message is answered 250 and dropped; at
	// data, do not queue it. At deliver: the recipients count as sent.
	Discard bool
	// Hold: the transaction's message goes into the queue held, or, at
	// deliver, the queued message is put on hold (Quarantine at any stage,
	// or the spam quarantine threshold); HoldReason says why, for the
	// queue to store and show.
	Hold       bool
	HoldReason string
	// Spam reports that Reply is the spam reject threshold's.
	Spam bool
}

// discarded is the reply of the deliver stage's Discard.
var discarded = mail.Reply{Code: 250, Enhanced: mail.EnhancedCode{2, 0, 0}, Text: "discarded by a deliver-stage plugin"}

// holdReason says why a Quarantine holds a message: the plugin, and the
// text of the reply it set, if any.
func holdReason(res Result) string {
	r := "quarantined by plugin " + res.Plugin
	if res.Reply.Text != "" {
		r += ": " + res.Reply.Text
	}
	return r
}

// Apply gives a chain Result its meaning at a stage:
//
//   - Continue and Accept go on.
//   - Reject and Tempfail refuse with the plugin's checked reply (or the
//     verdict's default); Disconnect too, and closes the connection, as
//     does any 421 reply.
//   - Discard drops the recipient at rcpt, else the message (answered 250).
//   - Quarantine holds the message, at every stage alike: a message taken
//     over SMTP is queued held, a queued one is put on hold (see Fate);
//     Outcome.HoldReason names the plugin and the text of a reply it set.
//
// At deliver a refusal is the recipients' fate: see Outcome.Fate.
func Apply(hook pluginapi.Hook, res Result) Outcome {
	o := Outcome{Result: res}
	switch res.Verdict {
	case pluginapi.Reject, pluginapi.Tempfail, pluginapi.Disconnect:
		r, _ := Decide(res.Verdict, &res.Reply, res.Plugin) // the host checked it; other Runners may not
		o.Result = r
		reply := r.Reply
		o.Reply = &reply
		// A 421 closes the connection whatever the verdict that sent it
		// (RFC 5321 4.2.2: the server is closing the channel).
		o.Close = (res.Verdict == pluginapi.Disconnect || reply.Code == 421) && hook != pluginapi.HookDeliver
	case pluginapi.Discard:
		if hook == pluginapi.HookRcpt {
			o.Drop = true
		} else {
			o.Discard = true
		}
	case pluginapi.Quarantine:
		o.Hold, o.HoldReason = true, holdReason(res)
	}
	return o
}

// Fate lists the results of a deliver-stage outcome for rcpts: bounced
// on a permanent reply, deferred on a temporary one, sent when a plugin
// discarded the message, held (the queue puts the message on hold, with
// the reason as the reply's text) when one quarantined it. It returns nil
// when the message goes on to its transport.
func (o Outcome) Fate(rcpts []string) []mail.Result {
	var mk func(rcpt, relay string, r mail.Reply) mail.Result
	var reply mail.Reply
	switch {
	case o.Reply != nil && o.Reply.Permanent():
		mk, reply = mail.BouncedResult, *o.Reply
	case o.Reply != nil:
		mk, reply = mail.DeferredResult, *o.Reply
	case o.Discard:
		mk, reply = mail.SentResult, discarded
	case o.Hold:
		mk, reply = mail.HeldResult, mail.Reply{Code: 451, Enhanced: mail.EnhancedCode{4, 7, 0}, Text: o.HoldReason}
	default:
		return nil
	}
	relay := "plugin " + o.Result.Plugin
	out := make([]mail.Result, len(rcpts))
	for i, rc := range rcpts {
		out[i] = mk(rc, relay, reply)
	}
	return out
}

// Session is one SMTP connection's run of the chain: one Txn for the
// connection's life, so that notes and scores of connect and helo reach
// every transaction, and a transaction's reach its later stages (and,
// stored with the message, the deliver stage). Call Connect and Helo once,
// then Mail, Rcpt for each recipient and Data for each transaction. It is
// not safe for concurrent use.
type Session struct {
	r    Runner
	spam Spam
	txn  Txn

	// connNotes and connSymbols are the state after helo, which every
	// transaction of the connection starts from.
	connNotes   map[string]string
	connSymbols []Symbol
	// discardAll and holdAll are a Discard or Quarantine at connect or
	// helo: they apply to every message of the connection.
	discardAll, holdAll bool
	// discard and hold are the current transaction's.
	discard, hold bool
	// holdReason is the first hold's reason, holdAllReason that of a hold
	// at connect or helo.
	holdReason, holdAllReason string
}

// NewSession starts the chain's view of a connection described by conn
// (nil: an empty one), with the spam thresholds the data stage applies.
func NewSession(r Runner, conn *Conn, spam Spam) *Session {
	if conn == nil {
		conn = &Conn{}
	}
	return &Session{r: r, spam: spam, txn: Txn{Conn: conn, Notes: map[string]string{}}}
}

// Txn returns the transaction the session works on; the caller keeps its
// Conn up to date (TLS, AuthUser, AuthResults) as the connection goes on.
func (s *Session) Txn() *Txn { return &s.txn }

// Run runs the chain at hook on the transaction as it stands and applies
// the verdict (Apply). A Discard or Quarantine holds for the rest of the
// transaction: Outcome.Discard and Hold report what holds so far. The
// stage methods below prepare the transaction and call it; sdktest calls
// it directly on a scenario.
func (s *Session) Run(ctx context.Context, hook pluginapi.Hook) Outcome {
	var o Outcome
	if hook >= 0 && hook < pluginapi.NumHooks && s.r.Hooks()&(1<<hook) != 0 {
		o = Apply(hook, s.r.Run(ctx, hook, &s.txn))
	}
	if hook != pluginapi.HookDeliver {
		if o.Hold && !s.hold {
			s.holdReason = o.HoldReason
		}
		s.discard = s.discard || o.Discard
		s.hold = s.hold || o.Hold
		o.Discard, o.Hold, o.HoldReason = s.discard, s.hold, s.holdReason
	}
	return o
}

// Connect runs the connect stage.
func (s *Session) Connect(ctx context.Context) Outcome {
	return s.Run(ctx, pluginapi.HookConnect)
}

// Helo runs the helo stage for the name the client gave and fixes the
// connection's state: the notes and scores so far start every
// transaction, and a Discard or Quarantine so far applies to all of them.
func (s *Session) Helo(ctx context.Context, helo string) Outcome {
	s.txn.Conn.Helo = helo
	o := s.Run(ctx, pluginapi.HookHelo)
	s.connNotes = maps.Clone(s.txn.Notes)
	s.connSymbols = slices.Clone(s.txn.Symbols)
	s.discardAll, s.holdAll, s.holdAllReason = s.discard, s.hold, s.holdReason
	return o
}

// Mail starts a transaction from the connection's state and runs the mail
// stage.
func (s *Session) Mail(ctx context.Context, from string) Outcome {
	t := &s.txn
	t.From = from
	t.Rcpts, t.Rcpt, t.QueueID = nil, "", ""
	t.Header, t.Body = nil, nil
	t.Destination, t.Attempt, t.Route = "", 0, ""
	if t.Notes == nil {
		t.Notes = map[string]string{}
	}
	clear(t.Notes) // Data stored a copy
	maps.Copy(t.Notes, s.connNotes)
	t.Symbols, t.Score = slices.Clone(s.connSymbols), 0
	for _, sym := range s.connSymbols {
		t.Score += sym.Score
	}
	s.discard, s.hold, s.holdReason = s.discardAll, s.holdAll, s.holdAllReason
	return s.Run(ctx, pluginapi.HookMail)
}

// Rcpt runs the rcpt stage for rcpt. rcpts are the recipients accepted so
// far (the transaction shares the slice, it does not copy it); Rcpt
// returns them with the plugins' edits and, unless the stage refused or
// dropped it, rcpt appended, possibly rewritten, its DSN parameters kept.
// On a refusal rcpts come back as they were, and Txn().Rcpt is rcpt as
// given (the refusal's log line names it).
func (s *Session) Rcpt(ctx context.Context, rcpts []mail.Recipient, rcpt mail.Recipient) ([]mail.Recipient, Outcome) {
	t := &s.txn
	t.Rcpt, t.Rcpts = rcpt.Addr, rcpts
	o := s.Run(ctx, pluginapi.HookRcpt)
	switch {
	case o.Reply != nil: // the refusing stage's edits are dropped
		t.Rcpt, t.Rcpts = rcpt.Addr, rcpts
	case o.Drop || t.Rcpt == "":
		o.Drop = true
	default:
		rcpt.Addr = t.Rcpt
		t.Rcpts = append(t.Rcpts, rcpt)
	}
	return t.Rcpts, o
}

// Data runs the data stage on the message whose envelope is env (ID and
// recipients set), whose header h was parsed once by the caller and whose
// body follows it. It applies what the plugins did — header edits (in h),
// recipient changes (env.Rcpts), notes (env.Notes) — then the spam
// thresholds (a field added to h, a hold, or a refusal), and sets
// env.Held. Outcome.Discard means answer 250 and queue nothing (a Discard
// in the transaction, or no recipient left).
func (s *Session) Data(ctx context.Context, env *mail.Envelope, h *mail.Header, body []byte) Outcome {
	t := &s.txn
	t.QueueID, t.Rcpts, t.Rcpt = env.ID, env.Rcpts, ""
	t.Header, t.Body = h, body
	o := s.Run(ctx, pluginapi.HookData)
	t.Header, t.Body = nil, nil
	if o.Reply != nil {
		return o
	}
	env.Rcpts = t.Rcpts
	if reply := s.applySpam(h); reply != nil {
		o.Reply, o.Spam = reply, true
		return o
	}
	if s.hold && !env.Held {
		env.Held, env.HoldReason = true, s.holdReason
	}
	if len(t.Notes) > 0 {
		env.Notes = maps.Clone(t.Notes)
	}
	s.keepConn(env)
	o.Hold, o.HoldReason = env.Held, env.HoldReason
	o.Discard = s.discard || len(env.Rcpts) == 0
	return o
}

// keepConn stores in env what the deliver stage's plugins read of the
// connection (get_prop at deliver), as Deliver gives it back to them.
func (s *Session) keepConn(env *mail.Envelope) {
	c := s.txn.Conn
	env.ClientPort, env.ClientRDNS, env.TLS = c.ClientPort, c.RDNS, c.TLS
	env.Listener, env.AuthResults = c.Listener, c.AuthResults
	if env.AuthUser == "" {
		env.AuthUser = c.AuthUser
	}
	if c.LocalIP.IsValid() {
		env.LocalIP = c.LocalIP.String()
	}
}

// applySpam applies the score thresholds after the data hook: it returns
// the reply refusing the message, or nil after maybe adding the
// X-Spam-Status field to h or holding the message.
func (s *Session) applySpam(h *mail.Header) *mail.Reply {
	t, sp := &s.txn, s.spam
	if len(t.Symbols) == 0 {
		return nil
	}
	if sp.Reject > 0 && t.Score >= sp.Reject {
		return &mail.Reply{Code: 550, Enhanced: mail.EnhancedCode{5, 7, 1},
			Text: fmt.Sprintf("Message rejected as spam (score %.1f)", t.Score)}
	}
	if sp.Quarantine > 0 && t.Score >= sp.Quarantine && !s.hold {
		s.hold = true
		s.holdReason = fmt.Sprintf("spam score %.1f at or over the quarantine threshold %.1f (symbols %s)",
			t.Score, sp.Quarantine, SymbolList(t.Symbols))
	}
	if sp.AddHeader > 0 && t.Score >= sp.AddHeader {
		h.Add("X-Spam-Status", fmt.Sprintf("Yes, score=%.1f symbols=%s", t.Score, SymbolList(t.Symbols)))
	}
	return nil
}

// SymbolList writes symbols as "NAME(score),NAME(score)", for the
// X-Spam-Status field and the log.
func SymbolList(syms []Symbol) string {
	var b strings.Builder
	for i, s := range syms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.Name)
		b.WriteByte('(')
		b.WriteString(strconv.FormatFloat(s.Score, 'f', -1, 64))
		b.WriteByte(')')
	}
	return b.String()
}

// Deliver runs the deliver stage for rcpts, the recipients of queued
// message m that go to one destination domain. It returns the message to
// hand to the transport — a copy of m with the plugins' header edits and
// route — or nil when a plugin decided the recipients' fate (refused,
// discarded, held), which Outcome.Fate(rcpts) then lists. m is not
// changed. The plugins see the connection the message came in on as the
// envelope recorded it (Session.Data stores it).
func Deliver(ctx context.Context, r Runner, m *mail.Message, domain string, rcpts []string) (*mail.Message, Outcome) {
	conn := &Conn{Helo: m.Helo, ClientPort: m.ClientPort, RDNS: m.ClientRDNS, TLS: m.TLS, AuthUser: m.AuthUser,
		Listener: m.Listener, AuthResults: m.AuthResults}
	if ip, err := netip.ParseAddr(m.ClientIP); err == nil {
		conn.ClientIP = ip
	}
	if ip, err := netip.ParseAddr(m.LocalIP); err == nil {
		conn.LocalIP = ip
	}
	attempt := 1
	for _, rc := range m.Rcpts {
		attempt = max(attempt, rc.Attempts+1)
	}
	rs := make([]mail.Recipient, len(rcpts))
	for i, rc := range rcpts {
		rs[i].Addr = rc
	}
	h, body := mail.ParseHeader(m.Body)
	txn := &Txn{Conn: conn, From: m.From, Rcpts: rs, QueueID: m.ID, Notes: maps.Clone(m.Notes),
		Header: &h, Body: body, Destination: domain, Attempt: attempt}
	o := Apply(pluginapi.HookDeliver, r.Run(ctx, pluginapi.HookDeliver, txn))
	if o.Reply != nil || o.Discard || o.Hold {
		return nil, o
	}
	out := *m
	out.Route = txn.Route
	if h.Edited() {
		out.Body = h.Message(body)
	}
	return &out, o
}
