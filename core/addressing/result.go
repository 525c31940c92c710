package addressing

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/sluice-mta/sluice/core/mail"
)

// Kind is how a recipient address resolved.
type Kind int

// Kinds of resolution.
const (
	// Unknown is no mailbox, alias or catch-all: refused at RCPT.
	Unknown Kind = iota
	// Mailbox is a local mailbox.
	Mailbox
	// Alias is an alias, catch-all or domain alias, expanded into the
	// Targets (local mailboxes and remote forwards).
	Alias
	// Remote is an address at a domain that is not local: relayed as it
	// is (whether the client may relay is the SMTP server's business).
	Remote
	// Bounce is an SRS address of ours: mail (normally a bounce) going
	// back to the original sender of forwarded mail.
	Bounce
)

// String names the kind for logs and `sluice address test`.
func (k Kind) String() string {
	switch k {
	case Mailbox:
		return "mailbox"
	case Alias:
		return "alias"
	case Remote:
		return "remote"
	case Bounce:
		return "srs bounce"
	}
	return "unknown"
}

// TransportKind is how a target is delivered.
type TransportKind int

// Transport kinds.
const (
	// Maildir is local delivery into a Maildir ([local] maildir).
	Maildir TransportKind = iota + 1
	// LMTP is local delivery to an LMTP server (Transport.LMTP).
	LMTP
	// Relay is outbound SMTP to the address's domain.
	Relay
)

// Transport is where a target is delivered.
type Transport struct {
	Kind TransportKind
	// LMTP is "host:port" or "unix:/path" when Kind is LMTP.
	LMTP string
}

// String describes the transport: "maildir", "lmtp 127.0.0.1:24", "relay".
func (t Transport) String() string {
	switch t.Kind {
	case Maildir:
		return "maildir"
	case LMTP:
		return "lmtp " + t.LMTP
	case Relay:
		return "relay"
	}
	return "none"
}

// Target is one recipient an address expands to.
type Target struct {
	// Addr is the address to deliver to (domain normalised).
	Addr string
	// Forward marks a remote target of a local alias: it is relayed,
	// with the envelope sender rewritten by SRS when srs_domain is set.
	Forward bool
	// Transport is where Addr is delivered.
	Transport Transport
}

// Step is one lookup of a resolution, for `sluice address test` and logs.
type Step struct {
	// Depth is 0 for the address as given, 1 for its targets, …
	Depth int
	// Addr is the address looked up.
	Addr string
	// Rule is what matched: "alias", "mailbox", "catch-all @d",
	// "detail dropped", "bare user", "srs", "unknown", ….
	Rule string
	// To are the addresses it led to.
	To []string
}

// Resolution is what an address resolves to.
type Resolution struct {
	// Original is the address as the client sent it: the ORCPT of every
	// target.
	Original string
	// Kind is how Original resolved.
	Kind Kind
	// Targets are the recipients to queue, duplicates removed, in order.
	Targets []Target
	// Steps trace the lookups.
	Steps []Step
	// Problems are configuration mistakes met on the way (an alias
	// target that is unknown, a target the LMTP server refused): the
	// address still resolves to the other targets. Log them.
	Problems []string
}

// Addrs returns the target addresses.
func (r *Resolution) Addrs() []string {
	out := make([]string, len(r.Targets))
	for i, t := range r.Targets {
		out[i] = t.Addr
	}
	return out
}

// Recipients returns the targets as queue recipients, each with the DSN
// NOTIFY given at RCPT and the original recipient, so that a DSN names
// what the sender wrote: orcpt when the client gave one
// ("rfc822;addr"), else "rfc822;" + Original for a target that is not
// Original itself. Forward targets are marked Forward, for the SRS
// sender at delivery.
func (r *Resolution) Recipients(notify []string, orcpt string) []mail.Recipient {
	out := make([]mail.Recipient, len(r.Targets))
	for i, t := range r.Targets {
		o := orcpt
		if o == "" && r.Original != "" && !mail.SameAddress(t.Addr, r.Original) {
			o = "rfc822;" + r.Original
		}
		out[i] = mail.Recipient{Addr: t.Addr, Notify: slices.Clone(notify), ORCPT: o, Forward: t.Forward}
	}
	return out
}

// Summary is one line for logs and for the plugins at rcpt: the kind and
// the targets, e.g. "alias: bob@example.com (maildir), x@example.net
// (forward)".
func (r *Resolution) Summary() string {
	var b strings.Builder
	b.WriteString(r.Kind.String())
	for i, t := range r.Targets {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString(", ")
		}
		b.WriteString(t.Addr)
		if t.Forward {
			b.WriteString(" (forward)")
		} else {
			b.WriteString(" (" + t.Transport.String() + ")")
		}
	}
	return b.String()
}

// Format writes the resolution as `sluice address test` shows it: the
// steps indented by depth, the targets, the problems.
func (r *Resolution) Format(w io.Writer) {
	fmt.Fprintf(w, "%s: %s\n", r.Original, r.Kind)
	for _, s := range r.Steps {
		fmt.Fprintf(w, "  %s%s: %s", strings.Repeat("  ", s.Depth), s.Addr, s.Rule)
		if len(s.To) > 0 {
			fmt.Fprintf(w, " -> %s", strings.Join(s.To, ", "))
		}
		fmt.Fprintln(w)
	}
	for _, t := range r.Targets {
		kind := "mailbox"
		if t.Forward {
			kind = "forward"
		} else if t.Transport.Kind == Relay {
			kind = "relay"
		}
		fmt.Fprintf(w, "%-8s %s (%s)\n", kind, t.Addr, t.Transport)
	}
	for _, p := range r.Problems {
		fmt.Fprintf(w, "problem: %s\n", p)
	}
}

// WriteReport writes what Resolve or Explain returned, as `sluice address
// test` shows it: the resolution, then the refusal with its cause.
func WriteReport(w io.Writer, res *Resolution, err error) {
	res.Format(w)
	if err == nil {
		return
	}
	var ref *Refusal
	if errors.As(err, &ref) {
		fmt.Fprintf(w, "refused  %s\n  cause: %v\n", ref.Reply.String(), ref.Err)
		return
	}
	fmt.Fprintf(w, "error    %v\n", err)
}

// Errors a Refusal wraps; test with errors.Is.
var (
	// ErrUnknownUser: no mailbox, alias or catch-all.
	ErrUnknownUser = errors.New("unknown user")
	// ErrTooDeep: aliases nested deeper than MaxDepth.
	ErrTooDeep = errors.New("alias expansion too deep")
	// ErrTooMany: an alias expands to more than MaxTargets recipients.
	ErrTooMany = errors.New("alias expands to too many recipients")
	// ErrTempFail: the LMTP server could not say whether the mailbox
	// exists.
	ErrTempFail = errors.New("temporary failure verifying the recipient")
	// ErrBadSRS: an SRS address with a bad hash, out of date or
	// malformed.
	ErrBadSRS = errors.New("invalid SRS address")
)

// LoopError is an alias loop: Chain starts and ends with the same address.
type LoopError struct {
	Chain []string
}

// Error names the loop: "alias loop: a@d -> b@d -> a@d".
func (e *LoopError) Error() string { return "alias loop: " + strings.Join(e.Chain, " -> ") }

// Refusal is a recipient refused at RCPT: Reply is the answer to give,
// Err the cause to log (ErrUnknownUser, *LoopError, ErrTooDeep,
// ErrTooMany, ErrTempFail, ErrBadSRS, wrapped with detail).
type Refusal struct {
	Reply mail.Reply
	Err   error
}

// Error gives the reply and the cause.
func (e *Refusal) Error() string { return e.Reply.String() + " (" + e.Err.Error() + ")" }

// Unwrap returns the cause.
func (e *Refusal) Unwrap() error { return e.Err }

// Temporary reports a 4xx refusal: the client should try again later.
func (e *Refusal) Temporary() bool { return e.Reply.Temporary() }

// rejected builds "<addr>: Recipient address rejected: why" (the address
// left out when it is not printable ASCII or too long).
func rejected(code int, enhanced, addr, why string, err error) *Refusal {
	text := "<" + addr + ">: Recipient address rejected: " + why
	r := mail.Reply{Code: code, Enhanced: mail.MustEnhanced(enhanced), Text: text}
	if r.Check() != nil {
		r.Text = "Recipient address rejected: " + why
	}
	return &Refusal{Reply: r, Err: err}
}

// unknownUser is the refusal of an unknown recipient, worded as Postfix
// words it so that operators and their tools recognise it.
func unknownUser(addr string, err error) *Refusal {
	return rejected(550, "5.1.1", addr, "User unknown in virtual mailbox table", err)
}
