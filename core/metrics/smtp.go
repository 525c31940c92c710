package metrics

import (
	"crypto/tls"
	"strings"
)

// Reasons are the values of sluice_smtp_rejects_total's reason label: a
// small fixed set, so that a refusal's free text never becomes a label.
var reasons = []string{"relay", "unknown_user", "size", "syntax", "bare_newline", "rate", "auth",
	"tls_required", "spam", "dmarc", "plugin", "limits"}

// reasonList is reasons joined for a HELP text.
func reasonList() string { return strings.Join(reasons, ", ") }

// Reasons returns the reject reasons, in the order the issue and the README
// list them.
func Reasons() []string { return append([]string(nil), reasons...) }

// oneOf returns v when it is in set, else def.
func oneOf(v string, set []string, def string) string {
	for _, s := range set {
		if v == s {
			return v
		}
	}
	return def
}

var (
	services     = []string{"smtp", "submission"}
	stages       = []string{"connect", "command", "helo", "auth", "mail", "rcpt", "data"}
	msgResults   = []string{"accepted", "rejected", "tempfailed", "discarded", "held"}
	connResults  = []string{"accepted", "refused", "evicted"}
	authResults  = []string{"success", "failure", "refused"}
	authMechs    = []string{"plain", "login"}
	otherService = "other"
)

// SMTPConnection counts a connection to service: result "accepted",
// "refused" (over a connection limit) or "evicted" (its slot given to a
// newcomer in stress mode).
func (r *Registry) SMTPConnection(service, result string) {
	r.smtpConns.WithLabelValues(oneOf(service, services, otherService), oneOf(result, connResults, "refused")).Inc()
}

// SMTPStress sets the stress gauge of service, and counts entering.
func (r *Registry) SMTPStress(service string, on bool) {
	service = oneOf(service, services, otherService)
	if on {
		r.smtpStress.WithLabelValues(service).Set(1)
		r.smtpStressN.WithLabelValues(service).Inc()
	} else {
		r.smtpStress.WithLabelValues(service).Set(0)
	}
}

// SMTPSession adds delta (+1 at connect, -1 at disconnect) to the sessions
// open on service.
func (r *Registry) SMTPSession(service string, delta int) {
	r.smtpSessions.WithLabelValues(oneOf(service, services, otherService)).Add(float64(delta))
}

// SMTPMessage counts a message at the end of DATA on service: result is
// accepted, rejected, tempfailed, discarded or held.
func (r *Registry) SMTPMessage(service, result string) {
	result = oneOf(result, msgResults, "rejected")
	r.smtpMessages.WithLabelValues(oneOf(service, services, otherService), result).Inc()
	switch result {
	case "accepted", "held":
		r.activity.count(seriesAccepted)
	}
}

// SMTPReject counts a refusal on service at stage for reason, one of
// Reasons. The caller classifies (smtpd does, with a listed reason for every
// refusal it makes); a value outside the set is counted as "other" rather
// than let free text into the label.
func (r *Registry) SMTPReject(service, stage, reason string) {
	r.smtpRejects.WithLabelValues(oneOf(service, services, otherService), oneOf(stage, stages, "other"),
		oneOf(reason, reasons, "other")).Inc()
}

// SMTPTLS counts a completed inbound TLS handshake on service: version
// (crypto/tls's VersionTLS12…, labelled as TLSVersion names it), cipher
// suite (its crypto/tls name; the server negotiates only suites Go knows,
// so the set is bounded) and whether the client presented a certificate
// (client_cert "presented" or "none").
func (r *Registry) SMTPTLS(service string, version, cipher uint16, clientCert bool) {
	cc := "none"
	if clientCert {
		cc = "presented"
	}
	r.smtpTLS.WithLabelValues(oneOf(service, services, otherService), TLSVersion(version), cipherName(cipher), cc).Inc()
}

// tlsFailureReasons are the values of sluice_smtp_tls_failures_total's
// reason label (smtpd classifies; its test checks it uses only these).
var tlsFailureReasons = []string{"version", "cipher", "certificate_rejected", "alert", "client_certificate",
	"not_tls", "timeout", "closed", "other"}

// TLSFailureReasons returns the reasons a failed inbound TLS handshake is
// counted by.
func TLSFailureReasons() []string { return append([]string(nil), tlsFailureReasons...) }

// SMTPTLSFailure counts a failed inbound TLS handshake on service by
// reason, one of TLSFailureReasons (anything else is "other").
func (r *Registry) SMTPTLSFailure(service, reason string) {
	r.smtpTLSFail.WithLabelValues(oneOf(service, services, otherService), oneOf(reason, tlsFailureReasons, "other")).Inc()
}

// cipherName is the cipher label: crypto/tls's name of the suite, or
// "other" for one it has no name for.
func cipherName(id uint16) string {
	name := tls.CipherSuiteName(id)
	if strings.HasPrefix(name, "0x") {
		return "other"
	}
	return name
}

// AuthAttempt counts an SMTP AUTH attempt with mechanism (any case; other
// than PLAIN and LOGIN counts as "other") and result: success, failure
// (bad credentials) or refused (not offered here, throttled, unknown
// mechanism).
func (r *Registry) AuthAttempt(mechanism, result string) {
	r.authAttempts.WithLabelValues(oneOf(strings.ToLower(mechanism), authMechs, "other"),
		oneOf(result, authResults, "refused")).Inc()
}

// TLSVersion names a TLS protocol version (crypto/tls's VersionTLS12…) as
// the version label does.
func TLSVersion(v uint16) string {
	switch v {
	case 0x0301:
		return "tls1.0"
	case 0x0302:
		return "tls1.1"
	case 0x0303:
		return "tls1.2"
	case 0x0304:
		return "tls1.3"
	}
	return "other"
}
