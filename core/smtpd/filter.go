package smtpd

import (
	"context"
	"net/netip"

	"github.com/sluice-mta/sluice/core/queue"
)

// ConnInfo describes the client of a session to the filter chain.
type ConnInfo struct {
	// Service is Options.Name ("smtp", "submission").
	Service string
	// ClientIP is the client's address.
	ClientIP netip.Addr
	// Helo is the name given in HELO or EHLO ("" at the connect stage).
	Helo string
	// AuthUser is the authenticated user, "" when none.
	AuthUser string
}

// FilterChain is the seam for the filter chain: the session calls one
// method per stage. A method returning an *smtp.SMTPError sends that reply
// (4xx tempfails, 5xx rejects); any other error is a temporary failure
// (451 4.3.0). nil continues. The Envelope is the transaction so far and
// must not be kept past the call.
//
// Because go-smtp creates a session at the first HELO or EHLO, Connect runs
// then, immediately before Helo; a Connect rejection is repeated at every
// later greeting of that connection.
type FilterChain interface {
	Connect(ctx context.Context, c ConnInfo) error
	Helo(ctx context.Context, c ConnInfo) error
	Mail(ctx context.Context, c ConnInfo, env *queue.Envelope) error
	Rcpt(ctx context.Context, c ConnInfo, env *queue.Envelope, rcpt *queue.Recipient) error
	// Data sees the whole message with its Received header, after the end
	// of data and before the reply. It returns the message to queue: msg
	// itself, or a new slice when it edited headers.
	Data(ctx context.Context, c ConnInfo, env *queue.Envelope, msg []byte) ([]byte, error)
}
