package smtpd

import (
	"net"
	"net/netip"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
)

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

// smtpReply is the one conversion from the core's reply type to go-smtp's.
// An unset enhanced code is go-smtp's EnhancedCodeNotSet, which it
// derives from the basic code.
func smtpReply(r *mail.Reply) *smtp.SMTPError {
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text}
}

// newFilterSession starts the chain's view of connection c; nil without
// filters. filter.Session applies the verdicts; the session only answers.
func newFilterSession(f filter.Runner, service string, spam filter.Spam, c net.Conn) *filter.Session {
	if f == nil || f.Hooks() == 0 {
		return nil
	}
	conn := &filter.Conn{Listener: service}
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		conn.ClientIP, conn.ClientPort = ap.Addr().Unmap(), int(ap.Port())
	}
	if ap, err := netip.ParseAddrPort(c.LocalAddr().String()); err == nil {
		conn.LocalIP = ap.Addr().Unmap()
	}
	return filter.NewSession(f, conn, spam)
}

// checkPluginRcpt checks an address a plugin adds or rewrites a recipient
// to as Rcpt checks the client's beyond the syntax, which the filter host
// checks (mail.CheckAddress): a domain not ours needs a client allowed to
// relay.
func (ss *session) checkPluginRcpt(addr string) *mail.Reply {
	if !ss.s.isLocal(mail.Domain(addr)) && !ss.relayAllowed() {
		return errRelayDenied
	}
	return nil
}

// answer turns a stage's outcome into the session's answer: nil to go on,
// or the reply, logged, with the connection closing after it on a
// Disconnect.
func (ss *session) answer(stage string, o filter.Outcome) error {
	if o.Reply == nil {
		return nil
	}
	if o.Close {
		ss.closeAfterReply()
	}
	switch t := ss.fs.Txn(); {
	case o.Spam:
		ss.logReject(stage, o.Reply, "rule", "spam", "score", t.Score, "symbols", filter.SymbolList(t.Symbols))
	case stage == "rcpt":
		ss.logReject(stage, o.Reply, "rcpt", t.Rcpt, "plugin", o.Result.Plugin)
	default:
		ss.logReject(stage, o.Reply, "plugin", o.Result.Plugin)
	}
	return smtpReply(o.Reply)
}
