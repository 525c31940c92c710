// Package filter is the WebAssembly filter host: it loads the plugins in
// the plugins directory with wazero, keeps pools of instances, implements
// the host functions of pluginapi, enforces each plugin's limits and grants,
// and runs the chain of plugins at each hook. It also gives the chain's
// verdicts their meaning, once for every caller: Session applies them to an
// SMTP connection stage by stage and Deliver to a delivery attempt.
package filter

import (
	"context"
	"net/netip"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// Conn is what plugins can read about the client connection.
type Conn struct {
	ClientIP   netip.Addr
	ClientPort int
	// RDNS is the client's verified reverse DNS name, "" when none.
	// RDNSStatus says how its lookup ended (dns.ReverseConfirmed and the
	// others; "" when none was made) and PTR is the first PTR name,
	// unverified.
	RDNS       string
	RDNSStatus string
	PTR        string
	// Helo is the HELO/EHLO argument.
	Helo string
	// TLS describes the TLS session ("TLS1.3 TLS_AES_128_GCM_SHA256"), "" for none.
	TLS string
	// AuthUser is the authenticated user, "" when none.
	AuthUser string
	// Listener is "smtp" or "submission".
	Listener string
	// LocalIP is the address the client connected to.
	LocalIP netip.Addr
	// AuthResults is the Authentication-Results value computed for the message.
	AuthResults string

	// ipText is ClientIP as text, made from ipOf at the first get_prop of
	// it: every plugin's connect hook asks, and each String allocates.
	ipOf   netip.Addr
	ipText string
}

// clientIPText returns ClientIP as text, "" when it is not valid.
func (c *Conn) clientIPText() string {
	if !c.ClientIP.IsValid() {
		return ""
	}
	if c.ipText == "" || c.ipOf != c.ClientIP {
		c.ipOf, c.ipText = c.ClientIP, c.ClientIP.String()
	}
	return c.ipText
}

// Symbol is one named spam-score contribution.
type Symbol struct {
	Plugin string
	Name   string
	Score  float64
}

// Txn is one SMTP transaction, or one delivery attempt, as plugins see and
// change it. The host functions read and edit it; Session and Deliver apply
// the edits after the chain has run.
type Txn struct {
	Conn *Conn

	// From is the return path, Rcpts the accepted recipients so far (at
	// deliver: the destination's recipients). Plugins add, remove and
	// rewrite them at rcpt and data; the DSN parameters of a recipient
	// stay with it.
	From  string
	Rcpts []mail.Recipient
	// Rcpt is the recipient under consideration at the rcpt hook; a plugin
	// rewrites it, or empties it to drop the recipient.
	Rcpt string
	// QueueID is known at data (the ID the message will have) and deliver.
	QueueID string
	// CheckRcpt, when set, checks an address a plugin adds or rewrites a
	// recipient to beyond its syntax, as the server checks one given at
	// RCPT (relay control); a refusal is StatusBadArgument for the plugin.
	// MaxRcpts bounds the recipients plugins may bring the transaction to
	// (0: 1000). The SMTP server sets both.
	CheckRcpt func(addr string) *mail.Reply
	MaxRcpts  int

	// Header is the header section at data and deliver, parsed once by
	// the caller; plugins edit it in place (Header.Edited reports it).
	// Body is the rest of the message, read-only.
	Header *mail.Header
	Body   []byte

	// Notes are shared by later plugins and stages of the same transaction.
	Notes map[string]string
	// Symbols are the spam-score contributions so far; Score is their sum.
	Symbols []Symbol
	Score   float64

	// Destination and Attempt describe a delivery attempt (deliver hook);
	// Route is set by a plugin to send this attempt via "host:port".
	Destination string
	Attempt     int
	Route       string
}

// Result is the outcome of running the chain at one hook, before it is
// applied to a stage (see Session and Deliver).
type Result struct {
	Verdict pluginapi.Verdict
	// Reply is the SMTP reply for Reject, Tempfail and Disconnect, already
	// checked by the host (Decide); zero for the other verdicts.
	Reply mail.Reply
	// Plugin names the plugin that decided a verdict other than Continue.
	Plugin string
}

// Runner runs the plugin chain at one hook; *Host implements it. Hooks
// reports which hooks any plugin implements, so callers skip the work of
// building what no plugin will read.
type Runner interface {
	Hooks() uint32
	Run(ctx context.Context, hook pluginapi.Hook, txn *Txn) Result
}
