package smtpd

import (
	"errors"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/mail"
)

// Observer is told what an SMTP service does, for metrics
// (core/metrics.Registry implements it). Its methods must return quickly;
// every label it is given comes from a small fixed set.
type Observer interface {
	// SMTPConnection counts a connection: result "accepted", "refused"
	// (over a connection limit) or "evicted" (in stress mode, for a
	// newcomer).
	SMTPConnection(service, result string)
	// SMTPSession adds +1 at connect and -1 at disconnect.
	SMTPSession(service string, delta int)
	// SMTPMessage counts a message at the end of DATA: accepted, rejected,
	// tempfailed, discarded or held.
	SMTPMessage(service, result string)
	// SMTPReject counts a refusal at stage (connect, command, helo, auth,
	// mail, rcpt, data) for a reason of rejectReasons.
	SMTPReject(service, stage, reason string)
	// SMTPTLS counts a completed TLS handshake: its version
	// (tls.VersionTLS12…), cipher suite (tls.TLS_…) and whether the client
	// presented a certificate.
	SMTPTLS(service string, version, cipher uint16, clientCert bool)
	// SMTPTLSFailure counts a failed TLS handshake by reason (version,
	// cipher, certificate_rejected, alert, client_certificate, not_tls,
	// timeout, closed, other).
	SMTPTLSFailure(service, reason string)
	// SMTPStress reports a service entering (on) or leaving stress mode.
	SMTPStress(service string, on bool)
	// AuthAttempt counts a login: mechanism as given, result success,
	// failure (bad credentials) or refused (not offered, throttled,
	// unknown mechanism).
	AuthAttempt(mechanism, result string)
}

// nopObserver is the Observer of a server without metrics.
type nopObserver struct{}

func (nopObserver) SMTPConnection(string, string)        {}
func (nopObserver) SMTPSession(string, int)              {}
func (nopObserver) SMTPMessage(string, string)           {}
func (nopObserver) SMTPReject(string, string, string)    {}
func (nopObserver) SMTPTLS(string, uint16, uint16, bool) {}
func (nopObserver) SMTPTLSFailure(string, string)        {}
func (nopObserver) AuthAttempt(string, string)           {}
func (nopObserver) SMTPStress(string, bool)              {}

// reasonOfRule maps the rules the session and the guard name in their
// "reject" lines to the small fixed set of reasons of the metric
// (relay, unknown_user, size, syntax, bare_newline, rate, auth,
// tls_required, spam, dmarc, plugin, limits). TestRejectReasons checks
// that every rule has one.
var reasonOfRule = map[string]string{
	"address_syntax":      "syntax",
	"address_routing":     "relay",
	"relay":               "relay",
	"max_recipients":      "limits",
	"bare_newline":        "bare_newline",
	"auth_required":       "auth",
	"auth":                "auth",
	"restrict_sender":     "auth",
	"dmarc":               "dmarc",
	"spam":                "spam",
	"max_message_size":    "size",
	"addressing":          "unknown_user",
	"max_line_length":     "limits",
	"helo_after_starttls": "syntax",
	"max_connections":     "limits",
	"command_timeout":     "limits",
	"data_timeout":        "limits",
	"min_data_rate":       "limits",
	"stress_evict":        "limits",
}

// rateLimitPlugin is the first-party plugin whose refusals count as
// reason "rate" rather than "plugin".
const rateLimitPlugin = "ratelimit"

// rejectReason classifies a refusal for the metric from the reply and the
// attributes of its "reject" line ("rule", "plugin").
func rejectReason(reply *mail.Reply, attrs []any) string {
	if reply == errAuthEncryption {
		return "tls_required"
	}
	rule, plugin := ruleOf[reply], ""
	for i := 0; i+1 < len(attrs); i += 2 {
		switch attrs[i] {
		case "rule":
			rule, _ = attrs[i+1].(string)
		case "plugin":
			plugin, _ = attrs[i+1].(string)
		}
	}
	switch {
	case rule != "":
		if r, ok := reasonOfRule[rule]; ok {
			return r
		}
	case plugin == rateLimitPlugin:
		return "rate"
	case plugin != "":
		return "plugin"
	}
	if reply.Enhanced[1] == 5 { // X.5.Y: a protocol or syntax error
		return "syntax"
	}
	return "limits"
}

// observeReject counts a refusal the session logged.
func (ss *session) observeReject(stage string, reply *mail.Reply, attrs []any) {
	ss.s.opts.Observer.SMTPReject(ss.s.opts.Name, stage, rejectReason(reply, attrs))
}

// messageResult names what became of a message from Data's answer, ""
// when there was no answer to a whole message (a broken connection, a
// BDAT reset).
func messageResult(err error, held, discarded bool) string {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return ""
	}
	switch {
	case se.Code/100 == 2 && discarded:
		return "discarded"
	case se.Code/100 == 2 && held:
		return "held"
	case se.Code/100 == 2:
		return "accepted"
	case se.Code/100 == 4:
		return "tempfailed"
	}
	return "rejected"
}
