package smtpd

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// Spam holds the score thresholds applied after the data hook to the sum
// of the plugins' scores. Zero switches a threshold off.
type Spam struct {
	// AddHeader adds an X-Spam-Status header listing score and symbols.
	AddHeader float64
	// Quarantine keeps the message held in the queue.
	Quarantine float64
	// Reject refuses the message with 550 5.7.1.
	Reject float64
}

// ConnInfo describes the client of a session.
type ConnInfo struct {
	// Service is Options.Name ("smtp", "submission").
	Service string
	// ClientIP is the client's address.
	ClientIP netip.Addr
	// Helo is the name given in HELO or EHLO.
	Helo string
	// AuthUser is the authenticated user, "" when none.
	AuthUser string
}

// fsession is a session's state for the filter chain: one filter.Txn for
// the connection's life, so notes set at connect or helo reach every later
// transaction, and notes of a transaction reach its later stages (and,
// stored with the message, the deliver stage).
type fsession struct {
	f         filter.Runner
	txn       filter.Txn
	connNotes map[string]string
	// connSymbols are the scores added at connect and helo: they count in
	// every transaction of the connection.
	connSymbols []filter.Symbol
	// discardAll is set by a Discard at connect or helo: every message of
	// the connection is answered 250 and dropped.
	discardAll bool
	// discard and quarantine are the current transaction's fate.
	discard, quarantine bool
}

// newFsession starts the chain's view of a connection; nil without filters.
func newFsession(f filter.Runner, service string, c net.Conn) *fsession {
	if f == nil || f.Hooks() == 0 {
		return nil
	}
	fs := &fsession{f: f}
	conn := &filter.Conn{Listener: service}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		conn.ClientIP, conn.ClientPort = ap.Addr().Unmap(), int(ap.Port())
	}
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		conn.LocalIP = ap.Addr().Unmap()
	}
	fs.txn.Conn = conn
	fs.txn.Notes = map[string]string{}
	return fs
}

// run runs one hook and turns its verdict into the session's answer: nil
// to go on (Discard and Quarantine are remembered), or the reply to send.
func (ss *session) run(hook pluginapi.Hook) *smtp.SMTPError {
	fs := ss.fs
	if fs.f.Hooks()&(1<<hook) == 0 {
		return nil
	}
	res := fs.f.Run(ss.s.ctx, hook, &fs.txn)
	switch res.Verdict {
	case pluginapi.Discard:
		fs.discard = true
	case pluginapi.Quarantine:
		fs.quarantine = true
	case pluginapi.Reject:
		return ss.filterReject(hook, res, 550, "5.7.1", "Rejected by policy")
	case pluginapi.Tempfail:
		return ss.filterReject(hook, res, 451, "4.7.1", "Try again later")
	case pluginapi.Disconnect:
		if g, ok := ss.conn.Conn().(*guardConn); ok {
			g.closeAfterReply.Store(true)
		}
		res.Code = 421
		return ss.filterReject(hook, res, 421, "4.7.0", "Closing connection")
	}
	return nil
}

// filterReject builds the reply for a refusing verdict; the host has
// checked the plugin's code and text, the defaults cover a missing one.
func (ss *session) filterReject(hook pluginapi.Hook, res filter.Result, code int, enh, text string) *smtp.SMTPError {
	if res.Code == 0 || res.Text == "" {
		res.Code, res.Enhanced, res.Text = code, enh, text
	}
	if res.Enhanced == "" {
		res.Enhanced = enh
	}
	reply := &smtp.SMTPError{Code: res.Code, EnhancedCode: parseEnhanced(res.Enhanced), Message: res.Text}
	ss.log.Info("reject", "stage", hook.String(), "code", reply.Code, "reason", reply.Message, "plugin", res.Plugin)
	return reply
}

func parseEnhanced(s string) smtp.EnhancedCode {
	var ec smtp.EnhancedCode
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return smtp.EnhancedCodeNotSet
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return smtp.EnhancedCodeNotSet
		}
		ec[i] = n
	}
	return ec
}

// beginTxn resets the transaction part of the chain's state at MAIL.
func (fs *fsession) beginTxn(from string) {
	fs.txn.From = from
	fs.txn.Rcpts, fs.txn.Rcpt, fs.txn.QueueID = nil, "", ""
	fs.txn.Header, fs.txn.Body, fs.txn.HeaderEdited = nil, nil, false
	fs.txn.Symbols, fs.txn.Score = slices.Clone(fs.connSymbols), 0
	for _, s := range fs.connSymbols {
		fs.txn.Score += s.Score
	}
	fs.txn.Notes = maps.Clone(fs.connNotes)
	if fs.txn.Notes == nil {
		fs.txn.Notes = map[string]string{}
	}
	fs.discard, fs.quarantine = fs.discardAll, false
}

// rcptAddrs lists the envelope's recipients for the chain.
func rcptAddrs(rs []mail.Recipient) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Addr
	}
	return out
}

// syncRcpts makes the envelope's recipients those the chain left in
// txn.Rcpts, keeping the DSN parameters of the ones that stayed.
func syncRcpts(env *mail.Envelope, addrs []string) {
	old := env.Rcpts
	env.Rcpts = make([]mail.Recipient, 0, len(addrs))
	for _, a := range addrs {
		r := mail.Recipient{Addr: a}
		for _, o := range old {
			if strings.EqualFold(o.Addr, a) {
				r = o
				break
			}
		}
		env.Rcpts = append(env.Rcpts, r)
	}
}

// applySpam applies the score thresholds after the data hook: it returns
// a reply when the message is refused, and may add a header or quarantine.
func (ss *session) applySpam(msg []byte) ([]byte, *smtp.SMTPError) {
	fs, sp := ss.fs, ss.s.opts.Spam
	score := fs.txn.Score
	if len(fs.txn.Symbols) == 0 {
		return msg, nil
	}
	if sp.Reject > 0 && score >= sp.Reject {
		ss.log.Info("reject", "stage", "data", "code", 550, "reason", "spam", "score", score, "symbols", symbolList(fs.txn.Symbols))
		return nil, &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: fmt.Sprintf("Message rejected as spam (score %.1f)", score)}
	}
	if sp.Quarantine > 0 && score >= sp.Quarantine {
		fs.quarantine = true
	}
	if sp.AddHeader > 0 && score >= sp.AddHeader {
		h := fmt.Sprintf("X-Spam-Status: Yes, score=%.1f symbols=%s\r\n", score, symbolList(fs.txn.Symbols))
		msg = append([]byte(h), msg...)
	}
	return msg, nil
}

// symbolList writes symbols as "NAME(score),NAME(score)".
func symbolList(syms []filter.Symbol) string {
	var b strings.Builder
	for i, s := range syms {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s(%s)", s.Name, strconv.FormatFloat(s.Score, 'f', -1, 64))
	}
	return b.String()
}

// filterData runs the data hook on the whole message and applies what the
// plugins did: header edits, recipient changes, score thresholds,
// quarantine and notes. It returns the message to queue, or a reply.
func (ss *session) filterData(env *mail.Envelope, msg []byte) ([]byte, *smtp.SMTPError) {
	fs := ss.fs
	fs.txn.QueueID, fs.txn.Rcpts = env.ID, rcptAddrs(env.Rcpts)
	if fs.f.Hooks()&(1<<pluginapi.HookData) != 0 {
		fs.txn.Header, fs.txn.Body = filter.ParseHeader(msg)
		fs.txn.HeaderEdited = false
		if reply := ss.run(pluginapi.HookData); reply != nil {
			return nil, reply
		}
		if fs.txn.HeaderEdited {
			hdr := filter.FormatHeader(fs.txn.Header)
			out := make([]byte, 0, len(hdr)+2+len(fs.txn.Body))
			out = append(append(append(out, hdr...), '\r', '\n'), fs.txn.Body...)
			msg = out
		}
		fs.txn.Header, fs.txn.Body = nil, nil
		syncRcpts(env, fs.txn.Rcpts)
	}
	msg, reply := ss.applySpam(msg)
	if reply != nil {
		return nil, reply
	}
	env.Held = env.Held || fs.quarantine
	if env.Held {
		ss.log.Info("quarantined", "id", env.ID, "score", fs.txn.Score)
	}
	if len(fs.txn.Notes) > 0 {
		env.Notes = maps.Clone(fs.txn.Notes)
	}
	return msg, nil
}
