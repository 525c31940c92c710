package smtpd

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"

	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/core/mail"
)

// Every log line of a session carries its session ID ("session"): the
// connection's lines (connect, TLS, the guard's, disconnect) through the
// logger the listener gives the guard, the session's through the same
// logger, and the lines the plugin host and the queue write for the
// session through the session's context (logctx). A line about a message
// carries its queue ID ("id") once it has one, from DATA on.

// sessionIDLen is the length of a session ID: 12 lowercase base-36
// characters, fixed so that no ID is a prefix of another (a grep for one
// finds only it), and lowercase so that it is not read as a queue ID.
const sessionIDLen = 12

// sessionIDSpace is 36^12, the number of session IDs (about 2^62).
const sessionIDSpace = 36 * 36 * 36 * 36 * 36 * 36 * 36 * 36 * 36 * 36 * 36 * 36

// newSessionID returns a random session ID. At 62 bits two sessions share
// one with a chance of about 1 in 10^5 over ten million sessions.
func newSessionID() string {
	s := strconv.FormatUint(rand.Uint64N(sessionIDSpace), 36)
	return strings.Repeat("0", sessionIDLen-len(s)) + s
}

// connLogger returns the session ID and logger of a new connection from
// client: every line it writes carries both.
func connLogger(log *slog.Logger, client string) (string, *slog.Logger) {
	id := newSessionID()
	return id, log.With("session", id, "client", client)
}

// sessionLog returns the session ID and logger the listener gave
// connection c, or new ones for a connection that did not come through it.
func (s *Server) sessionLog(c net.Conn) (string, *slog.Logger) {
	if g, ok := c.(*guardConn); ok && g.session != "" {
		return g.session, g.line.log
	}
	return connLogger(s.log, remoteIP(c).String())
}

// sessionContext is ctx carrying the session ID for the lines other
// packages log during the session.
func sessionContext(ctx context.Context, id string) context.Context {
	return logctx.With(ctx, slog.String("session", id))
}

// ruleOf names the check behind each of the session's own refusals in
// its "reject" line; plugins are named by "plugin", the spam thresholds
// by rule=spam.
var ruleOf = map[*mail.Reply]string{
	errAddrSyntax:      "address_syntax",
	errDomainSyntax:    "address_syntax",
	errLocalUnsafe:     "address_syntax",
	errRouting:         "address_routing",
	errRelayDenied:     "relay",
	errTooManyRcpts:    "max_recipients",
	errBareNewline:     "bare_newline",
	errAuthRequired:    "auth_required",
	errAuthUnavailable: "auth",
	errAuthEncryption:  "auth",
	errAuthMechanism:   "auth",
	errSenderNotOwned:  "restrict_sender",
	errDMARCReject:     "dmarc",
}

// logReject writes the one "reject" line of a refusal: the stage, the
// reply as sent, the rule behind it (when it is one of the session's
// own), the queue ID once the message has one, the sender once MAIL gave
// it, then attrs (the recipient, the plugin, …).
func (ss *session) logReject(stage string, reply *mail.Reply, attrs ...any) {
	args := make([]any, 0, 10+len(attrs))
	args = append(args, "stage", stage, "reply", reply.String())
	if rule, ok := ruleOf[reply]; ok {
		args = append(args, "rule", rule)
	}
	if env := ss.env; env != nil {
		if env.ID != "" {
			args = append(args, "id", env.ID)
		}
		args = append(args, "from", env.From)
	}
	ss.log.Info("reject", append(args, attrs...)...)
	ss.observeReject(stage, reply, attrs)
}
