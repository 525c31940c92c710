// Package auth authenticates mail: it checks inbound messages with SPF
// (RFC 7208), DKIM (RFC 6376, RFC 8463) and DMARC (RFC 7489), writes the
// outcome as one Authentication-Results header naming this server (RFC 8601),
// and DKIM-signs outbound mail with the operator's keys.
//
// SPF is evaluated by blitiri.com.ar/go/spf; DKIM, DMARC records and
// Authentication-Results by github.com/emersion/go-msgauth. Every DNS query
// goes through the caller's Resolver (core/dns), never the system resolver.
package auth

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dkim"

	"github.com/sluice-mta/sluice/core/mail"
)

// Result is the outcome of one method, as Authentication-Results writes it.
type Result string

// The results SPF, DKIM and DMARC use (RFC 8601 section 2.7).
const (
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	Neutral   Result = "neutral"
	None      Result = "none"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// MaxSignatures is how many DKIM signatures of one message are verified;
// later ones are ignored (each costs a DNS query and a public-key operation).
const MaxSignatures = 5

// CheckerOptions configure a Checker.
type CheckerOptions struct {
	// Hostname is the authserv-id written in Authentication-Results and
	// whose forged copies are removed: this server's hostname.
	Hostname string
	// Resolver answers every DNS query of the checks.
	Resolver Resolver
	// Logger receives one debug line per check; nil means slog.Default().
	Logger *slog.Logger
	// SkipSPF, SkipDKIM and SkipDMARC turn a check off; its result is then
	// left out of Results.Header. DMARC is evaluated from the SPF and DKIM
	// results there are.
	SkipSPF, SkipDKIM, SkipDMARC bool
}

// Checker runs the inbound checks; it is safe for concurrent use.
type Checker struct {
	opts CheckerOptions
	log  *slog.Logger
}

// NewChecker returns a Checker configured by opts.
func NewChecker(opts CheckerOptions) *Checker {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	opts.Hostname = strings.TrimSuffix(opts.Hostname, ".")
	return &Checker{opts: opts, log: log}
}

// CheckInput is what the checks look at: the SMTP transaction and the message
// as received.
type CheckInput struct {
	// ID is the queue ID, for the log line.
	ID string
	// ClientIP is the connecting client's address.
	ClientIP netip.Addr
	// Helo is the name the client gave in EHLO or HELO.
	Helo string
	// MailFrom is the envelope sender ("" for the null sender <>).
	MailFrom string
	// Message is the whole message, header and body, with CRLF line ends.
	Message []byte
	// Header is Message's header as the caller parsed it, so that it is
	// parsed once; nil means Check parses Message.
	Header *mail.Header
}

// Check runs the enabled checks on in. It returns an error only when ctx
// ends; DNS failures become temperror results.
func (c *Checker) Check(ctx context.Context, in CheckInput) (*Results, error) {
	res := &Results{Hostname: c.opts.Hostname}
	h := in.Header
	if h == nil {
		parsed, _ := mail.ParseHeader(in.Message)
		h = &parsed
	}
	if !c.opts.SkipSPF {
		res.SPF = c.checkSPF(ctx, in)
	}
	if !c.opts.SkipDKIM {
		res.DKIM = c.checkDKIM(ctx, in.Message)
	}
	if !c.opts.SkipDMARC {
		res.DMARC = c.checkDMARC(ctx, h.Values("From"), res)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.log.Debug("auth checked", "id", in.ID, "spf", spfValue(res.SPF), "dkim", dkimSummary(res.DKIM),
		"dmarc", dmarcValue(res.DMARC), "disposition", dispositionOf(res.DMARC))
	return res, nil
}

// SPFResult is the outcome of the SPF check of the envelope sender.
type SPFResult struct {
	Result Result
	// Domain is the domain checked: the MAIL FROM domain, or the HELO
	// name for the null sender.
	Domain string
	// MailFrom and Helo are the identities as the client gave them.
	MailFrom, Helo string
	// Reason explains a result other than pass, for people.
	Reason string
}

// checkSPF evaluates the SPF record of the sender's domain (RFC 7208
// section 2.4), or of the HELO name for the null sender.
func (c *Checker) checkSPF(ctx context.Context, in CheckInput) *SPFResult {
	r := &SPFResult{MailFrom: in.MailFrom, Helo: in.Helo}
	sender := in.MailFrom
	if sender == "" {
		sender = "postmaster@" + in.Helo
	}
	r.Domain = strings.ToLower(domainOf(sender))
	if r.Domain == "" || !in.ClientIP.IsValid() {
		r.Result, r.Reason = None, "no domain to check"
		return r
	}
	ip := net.IP(in.ClientIP.Unmap().AsSlice())
	res, err := spf.CheckHostWithSender(ip, in.Helo, sender,
		spf.WithContext(ctx), spf.WithResolver(spfResolver{c.opts.Resolver}))
	r.Result = Result(res)
	if r.Result != Pass && err != nil && err != spf.ErrNoResult {
		r.Reason = err.Error()
	}
	return r
}

// DKIMResult is the outcome of verifying one DKIM-Signature.
type DKIMResult struct {
	Result Result
	// Domain is the signing domain (d=), Identifier the agent (i=).
	Domain, Identifier string
	// Reason explains a result other than pass, for people.
	Reason string
}

// checkDKIM verifies the message's signatures, at most MaxSignatures.
// A message without signatures has no results.
func (c *Checker) checkDKIM(ctx context.Context, msg []byte) []*DKIMResult {
	verifs, err := dkim.VerifyWithOptions(bytes.NewReader(msg), &dkim.VerifyOptions{
		LookupTXT:        txtLookup(ctx, c.opts.Resolver),
		MaxVerifications: MaxSignatures,
	})
	if err != nil && err != dkim.ErrTooManySignatures && len(verifs) == 0 {
		// The header could not be read at all.
		return []*DKIMResult{{Result: PermError, Reason: err.Error()}}
	}
	out := make([]*DKIMResult, 0, len(verifs))
	for _, v := range verifs {
		r := &DKIMResult{Result: Pass, Domain: strings.ToLower(v.Domain), Identifier: v.Identifier}
		if v.Err != nil {
			r.Reason = v.Err.Error()
			switch {
			case dkim.IsTempFail(v.Err):
				r.Result = TempError
			case dkim.IsPermFail(v.Err):
				r.Result = PermError
			default: // the signature or body hash does not verify
				r.Result = Fail
			}
		}
		out = append(out, r)
	}
	return out
}

// domainOf returns the domain of an address, or "" if it has none.
func domainOf(addr string) string {
	return mail.Domain(strings.Trim(strings.TrimSpace(addr), "<>"))
}
