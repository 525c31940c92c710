package metrics

import (
	"strings"
	"time"
)

// Delivery is one recipient's recorded delivery attempt.
type Delivery struct {
	// ID is the queue ID, Rcpt the recipient.
	ID, Rcpt string
	// Result is "delivered", "deferred" or "bounced".
	Result string
	// Relay names where it went (mail.Result.Relay: "local",
	// "lmtp[127.0.0.1]:24", "mx.example[192.0.2.1]:25"; "" for nowhere).
	Relay string
	// DSN is the enhanced status code, Text the reply or reason.
	DSN, Text string
	// Delay is the time since the message arrived.
	Delay time.Duration
	// Time is when the attempt was recorded (zero: now).
	Time time.Time
}

// Delivery results.
const (
	Delivered = "delivered"
	Deferred  = "deferred"
	Bounced   = "bounced"
)

var deliveryResults = []string{Delivered, Deferred, Bounced}

// Transport classifies a Relay as the transport label: "maildir" (local
// Maildir delivery), "lmtp", "smtp" (a remote host or relay) or "none"
// (deferred before any transport was reached: no route, DNS failure).
func Transport(relay string) string {
	switch {
	case relay == "":
		return "none"
	case relay == "local":
		return "maildir"
	case strings.HasPrefix(relay, "lmtp"):
		return "lmtp"
	}
	return "smtp"
}

// Delivery records one recipient's attempt: the attempts counters, the
// arrival-to-final histogram when the result is final, and the dashboard's
// recent activity.
func (r *Registry) Delivery(d Delivery) {
	d.Result = oneOf(d.Result, deliveryResults, Deferred)
	if d.Time.IsZero() {
		d.Time = r.opts.Now()
	}
	r.deliveryAttempts.WithLabelValues(Transport(d.Relay), d.Result).Inc()
	domain := ""
	if i := strings.LastIndexByte(d.Rcpt, '@'); i >= 0 {
		domain = d.Rcpt[i+1:]
	}
	r.destAttempts.WithLabelValues(r.dests.label(domain), d.Result).Inc()
	if d.Result != Deferred {
		r.deliverySeconds.Observe(d.Delay.Seconds())
	}
	r.activity.delivery(d)
}

// QueueCommit records the time one new message took to become durable.
func (r *Registry) QueueCommit(d time.Duration) { r.queueCommit.Observe(d.Seconds()) }

// tlsPolicies and tlsResults bound the labels of DeliveryTLS.
var (
	tlsPolicies = []string{"dane", "mta-sts", "verify", "relay", "opportunistic"}
	tlsResults  = []string{"success", "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
		"certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid", "dane-required",
		"sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid"}
)

// DeliveryTLS records one outbound session attempt's TLS outcome: the
// policy that applied and "success" or the RFC 8460 result type of the
// failure; anything else is counted as "opportunistic" or
// "validation-failure".
func (r *Registry) DeliveryTLS(policy, result string) {
	r.deliveryTLS.WithLabelValues(oneOf(policy, tlsPolicies, "opportunistic"), oneOf(result, tlsResults, "validation-failure")).Inc()
}
