package mail

import (
	"context"
	"time"
)

// RcptState is where one recipient of a queued message stands.
type RcptState int

// Recipient states.
const (
	// Pending recipients are due for (another) delivery attempt.
	Pending RcptState = iota
	// Delivered recipients are done.
	Delivered
	// Failed recipients failed permanently (or expired) and were bounced.
	Failed
)

// String names the state for logs and `sluice queue ls`.
func (s RcptState) String() string {
	switch s {
	case Pending:
		return "pending"
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	}
	return "unknown"
}

// Recipient is one envelope recipient with its delivery state and the DSN
// parameters given at RCPT (RFC 3461).
type Recipient struct {
	Addr string `json:"addr"`
	// Notify is the DSN NOTIFY list (NEVER, SUCCESS, FAILURE, DELAY); empty
	// means the default, which Sluice takes as FAILURE,DELAY (RFC 3461
	// leaves it to the implementation; Postfix does the same).
	Notify []string `json:"notify,omitempty"`
	// ORCPT is the original recipient, "rfc822;addr".
	ORCPT string `json:"orcpt,omitempty"`
	// Forward marks a remote target of a local alias: it is relayed with
	// the envelope sender rewritten (SRS) when forwarding is configured,
	// so that SPF passes at the next hop.
	Forward bool `json:"forward,omitempty"`

	State RcptState `json:"state"`
	// Attempts counts the delivery attempts made to this recipient,
	// whatever their outcome (a hold counts none).
	Attempts int `json:"attempts"`
	// LastError is the last failure's text (remote reply or local reason).
	LastError string `json:"last_error,omitempty"`
	// DSNCode is the last enhanced status code, e.g. "4.4.1" or "5.1.1".
	DSNCode string `json:"dsn_code,omitempty"`
	// Relay names where the last attempt went ("local", "mx.example[1.2.3.4]:25").
	Relay string `json:"relay,omitempty"`
	// TLS is how the last attempt's session was secured, as Result.TLS
	// and Result.Verified say it: "TLSv1.3 verified=dane", "none".
	TLS string `json:"tls,omitempty"`
	// TLSPolicy is the TLS policy that applied to the last attempt over
	// outbound SMTP, as Result.TLSPolicy says it.
	TLSPolicy string `json:"tls_policy,omitempty"`
}

// Envelope is everything the queue keeps about a message except its bytes.
type Envelope struct {
	ID string `json:"id"`
	// From is the return path; "" is the null sender (bounces).
	From  string      `json:"from"`
	Rcpts []Recipient `json:"rcpts"`

	// DSN parameters from MAIL (RFC 3461): RET is "FULL" or "HDRS".
	Ret   string `json:"ret,omitempty"`
	EnvID string `json:"envid,omitempty"`
	// SMTPUTF8 and Body8Bit record what MAIL declared.
	SMTPUTF8 bool `json:"smtputf8,omitempty"`
	Body8Bit bool `json:"body_8bit,omitempty"`

	// ClientIP and Helo describe who handed us the message.
	ClientIP string `json:"client_ip,omitempty"`
	Helo     string `json:"helo,omitempty"`
	// AuthUser is the submission login that sent it; Trusted is set when
	// the client was in trusted_networks. Either makes it our own mail,
	// DKIM-signed on the way out.
	AuthUser string `json:"auth_user,omitempty"`
	Trusted  bool   `json:"trusted,omitempty"`
	// What else the deliver-stage plugins read of the connection the
	// message came in on (their get_prop): the client's port and verified
	// reverse DNS name, the TLS session, the listener ("smtp",
	// "submission"), the local address, and the Authentication-Results
	// value computed for it.
	ClientPort  int    `json:"client_port,omitempty"`
	ClientRDNS  string `json:"client_rdns,omitempty"`
	TLS         string `json:"tls,omitempty"`
	Listener    string `json:"listener,omitempty"`
	LocalIP     string `json:"local_ip,omitempty"`
	AuthResults string `json:"auth_results,omitempty"`

	Received    time.Time `json:"received"`
	NextAttempt time.Time `json:"next_attempt"`
	Attempts    int       `json:"attempts"`
	Held        bool      `json:"held,omitempty"`
	// HoldReason says why a held message is held ("plugin NAME: text",
	// a spam score, "held by the administrator"); HeldAt is when. A held
	// message expires the queue's hold lifetime after HeldAt.
	HoldReason string    `json:"hold_reason,omitempty"`
	HeldAt     time.Time `json:"held_at,omitzero"`
	// DelayWarned records that the sender got the one delay warning
	// (Options.DelayWarning) this message may cause.
	DelayWarned bool `json:"delay_warned,omitempty"`
	// Notes are the transaction notes plugins set, for the deliver stage.
	Notes map[string]string `json:"notes,omitempty"`
	Size  int64             `json:"size"`
}

// Pending returns the recipients still to be delivered.
func (e *Envelope) Pending() []*Recipient {
	var out []*Recipient
	for i := range e.Rcpts {
		if e.Rcpts[i].State == Pending {
			out = append(out, &e.Rcpts[i])
		}
	}
	return out
}

// Message is an envelope with its bytes, as handed to a Deliverer.
type Message struct {
	Envelope
	Body []byte
	// Route, when a deliver-stage plugin set one, sends this attempt via
	// "host:port" instead of the normal route. It is not stored.
	Route string
}

// Status is the outcome of delivering to one recipient.
type Status int

// Delivery outcomes.
const (
	// Sent: the recipient is done.
	Sent Status = iota
	// Deferred: try again later with backoff.
	Deferred
	// Bounced: permanent failure; a DSN goes to the sender.
	Bounced
	// Held: the message is put on hold (a deliver-stage quarantine) and
	// waits, its recipients pending, for a release or its hold lifetime;
	// the Reply's text is the reason. No attempt is counted.
	Held
)

// String names the outcome as Postfix logs do.
func (s Status) String() string {
	switch s {
	case Sent:
		return "sent"
	case Deferred:
		return "deferred"
	case Bounced:
		return "bounced"
	case Held:
		return "held"
	}
	return "unknown"
}

// Result is a Deliverer's answer for one recipient.
type Result struct {
	Rcpt   string
	Status Status
	// Reply is the remote server's reply, or the local transport's reason
	// in the same form (250 2.0.0, 451 4.4.1, 550 5.1.1…). Its code is 0
	// when there was no reply at all.
	Reply Reply
	// Relay names where it went: "local", "lmtp[127.0.0.1]:24", "mx[ip]:25".
	Relay string
	// TLS is the outbound SMTP session's TLS version ("TLSv1.3"), "none"
	// for a session in plain text, "" when no session carried it (local
	// delivery, a failure before a session).
	TLS string
	// Verified says how the peer's certificate was verified when TLS is a
	// version: "dane", "mta-sts", "pkix" (against CA roots for the host
	// name), or "no" (opportunistic TLS, not verified).
	Verified string
	// TLSPolicy is the TLS policy that applied to an attempt over outbound
	// SMTP, whether or not a session was had: "dane", "dane-only" (required
	// but not published), "mta-sts", "mta-sts-testing", "verify", "relay",
	// "opportunistic", "none" or "tls-required-no" (the message's
	// TLS-Required: No field set the domain's policy aside); "" otherwise.
	TLSPolicy string
	// Ours says that Reply is Sluice's own decision, not a server's answer
	// (a recipient no relay could take without SMTPUTF8, a TLS policy not
	// met): a report gives it as an x-sluice diagnostic, not as an SMTP
	// reply the remote server sent, as Postfix writes X-Postfix.
	Ours bool
}

// TLSText is r's TLS and Verified as logs and `sluice queue ls` show
// them, "TLSv1.3 verified=dane" or "none"; "" without a session.
func (r Result) TLSText() string {
	if r.Verified == "" {
		return r.TLS
	}
	return r.TLS + " verified=" + r.Verified
}

// SentResult, DeferredResult and BouncedResult build Results, one
// constructor each, shared by every transport.
//
// SentResult builds a Sent Result.
func SentResult(rcpt, relay string, r Reply) Result {
	return Result{Rcpt: rcpt, Status: Sent, Reply: r, Relay: relay}
}

// DeferredResult builds a Deferred Result.
func DeferredResult(rcpt, relay string, r Reply) Result {
	return Result{Rcpt: rcpt, Status: Deferred, Reply: r, Relay: relay}
}

// BouncedResult builds a Bounced Result.
func BouncedResult(rcpt, relay string, r Reply) Result {
	return Result{Rcpt: rcpt, Status: Bounced, Reply: r, Relay: relay}
}

// HeldResult builds a Held Result; r's text is the reason.
func HeldResult(rcpt, relay string, r Reply) Result {
	return Result{Rcpt: rcpt, Status: Held, Reply: r, Relay: relay}
}

// Deliverer delivers one message to some of its recipients. The queue calls
// it with the recipients still pending and records a Result for each; a
// recipient with no Result is deferred. Transports implement it; the queue
// imports only this package to call them. Implementations must be safe for
// concurrent use.
type Deliverer interface {
	Deliver(ctx context.Context, m *Message, rcpts []string) []Result
}

// DelivererFunc adapts a function to the Deliverer interface.
type DelivererFunc func(ctx context.Context, m *Message, rcpts []string) []Result

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, m *Message, rcpts []string) []Result {
	return f(ctx, m, rcpts)
}
