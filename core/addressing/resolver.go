package addressing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mta/sluice/core/addressing/srs"
	"github.com/sluice-mta/sluice/core/mail"
)

// Verify is how the existence of a mailbox is decided.
type Verify string

// Verification modes.
const (
	// VerifyMaps: the mailboxes and aliases files decide.
	VerifyMaps Verify = "maps"
	// VerifyLMTP: the LMTP server the domain is delivered to is asked
	// (LHLO, MAIL FROM:<>, RCPT TO, RSET); domains delivered to Maildir
	// are decided by the maps.
	VerifyLMTP Verify = "lmtp"
	// VerifyNone: any local part of a local domain is a mailbox.
	VerifyNone Verify = "none"
)

// Defaults.
const (
	DefaultPoll       = 500 * time.Millisecond
	DefaultMaxDepth   = 20
	DefaultMaxTargets = 1000
)

// Options configures a Resolver.
type Options struct {
	// LocalDomains are the configured local_domains. The domains the map
	// files name, srs_domain and the Transports' domains are local too.
	// A bare alias source ("user  target") matches at these.
	LocalDomains []string
	// Origin qualifies a target without a domain (Postfix's $myorigin);
	// empty means the first of LocalDomains.
	Origin string
	// Files are the map files.
	Files Files
	// Delimiter: alice+tag@d resolves as alice@d when "+" is one of its
	// characters (recipient_delimiter); "" turns it off.
	Delimiter string
	// Verify is "maps", "lmtp" or "none"; empty means "maps" when a
	// mailboxes or aliases file is set, else "none".
	Verify Verify
	// Local is the transport of local domains without one of their own
	// ([local] transport, lmtp).
	Local Transport
	// Transports gives domains their own LMTP server: domain → address.
	Transports map[string]string
	// SRS rewrites forwarded senders and reverses bounces; nil for none.
	SRS *srs.Rewriter
	// Poll is how often Watch looks at the files; zero means DefaultPoll.
	Poll time.Duration
	// MaxDepth bounds alias nesting; MaxTargets the recipients one
	// address expands to. Zero means the defaults.
	MaxDepth   int
	MaxTargets int
	// LMTP configures verification over LMTP.
	LMTP LMTPOptions
	// Logger receives reloads and map mistakes; nil discards them.
	Logger *slog.Logger
}

// Resolver resolves recipient addresses against the current Table. It is
// safe for concurrent use; Resolve never blocks on a reload.
type Resolver struct {
	opts       Options
	log        *slog.Logger
	table      atomic.Pointer[Table]
	cfgDomains map[string]bool
	transports map[string]Transport
	origin     string
	lmtp       *lmtpChecker

	// reload state, guarded by mu.
	mu      sync.Mutex
	loaded  []fileStamp // stamps of the files the current table came from
	seen    []fileStamp // stamps at the previous poll
	failed  []fileStamp // stamps of a load that failed, not retried
	reloads atomic.Int64
}

// New loads the map files and returns a Resolver. A mistake in a file is
// an error here (at startup there is no previous map to keep).
func New(opts Options) (*Resolver, error) {
	if opts.Poll <= 0 {
		opts.Poll = DefaultPoll
	}
	if opts.MaxDepth <= 0 {
		opts.MaxDepth = DefaultMaxDepth
	}
	if opts.MaxTargets <= 0 {
		opts.MaxTargets = DefaultMaxTargets
	}
	if opts.Verify == "" {
		opts.Verify = VerifyNone
		if opts.Files.Mailboxes != "" || opts.Files.Aliases != "" {
			opts.Verify = VerifyMaps
		}
	}
	switch opts.Verify {
	case VerifyMaps, VerifyLMTP, VerifyNone:
	default:
		return nil, fmt.Errorf("addressing: verify %q: use \"maps\", \"lmtp\" or \"none\"", opts.Verify)
	}
	if opts.Local.Kind == 0 {
		opts.Local.Kind = Maildir
	}
	r := &Resolver{
		opts:       opts,
		log:        opts.Logger,
		cfgDomains: make(map[string]bool),
		transports: make(map[string]Transport),
	}
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	for _, d := range opts.LocalDomains {
		d = mail.NormDomain(d)
		r.cfgDomains[d] = true
		if r.origin == "" {
			r.origin = d
		}
	}
	if opts.Origin != "" {
		r.origin = mail.NormDomain(opts.Origin)
	}
	for d, addr := range opts.Transports {
		r.transports[mail.NormDomain(d)] = Transport{Kind: LMTP, LMTP: addr}
	}
	if opts.Verify == VerifyLMTP {
		r.lmtp = newLMTPChecker(opts.LMTP)
	}
	stamps, err := stampFiles(opts.Files)
	if err != nil {
		return nil, err
	}
	t, err := LoadTable(opts.Files)
	if err != nil {
		return nil, err
	}
	r.table.Store(t)
	r.loaded, r.seen = stamps, stamps
	st := t.Stats()
	r.log.Info("addressing: maps loaded", "verify", string(opts.Verify), "domains", st.Domains, "mailboxes", st.Mailboxes, "aliases", st.Aliases, "catch_alls", st.CatchAlls)
	for _, w := range t.Warnings() {
		r.log.Warn("addressing: " + w)
	}
	return r, nil
}

// Close closes the pooled LMTP connections.
func (r *Resolver) Close() error {
	if r.lmtp != nil {
		r.lmtp.close()
	}
	return nil
}

// Table returns the current Table.
func (r *Resolver) Table() *Table { return r.table.Load() }

// Verify returns the verification mode in force.
func (r *Resolver) Verify() Verify { return r.opts.Verify }

// IsLocal reports whether domain is one of ours: configured, named by the
// map files, a Transports domain or the SRS domain.
func (r *Resolver) IsLocal(domain string) bool {
	return r.isLocal(r.table.Load(), mail.NormDomain(domain))
}

func (r *Resolver) isLocal(t *Table, d string) bool {
	if r.cfgDomains[d] || t.HasDomain(d) {
		return true
	}
	if _, ok := r.transports[d]; ok {
		return true
	}
	return r.opts.SRS != nil && d == r.opts.SRS.Domain()
}

// Transport returns where mail for a local domain's mailboxes goes, and
// Relay for other domains; the delivery router asks it per recipient.
func (r *Resolver) Transport(domain string) Transport {
	d := mail.NormDomain(domain)
	if !r.isLocal(r.table.Load(), d) {
		return Transport{Kind: Relay}
	}
	return r.transport(d)
}

func (r *Resolver) transport(d string) Transport {
	if t, ok := r.transports[d]; ok {
		return t
	}
	return r.opts.Local
}

// SRS returns the rewriter, nil when srs_domain is not set.
func (r *Resolver) SRS() *srs.Rewriter { return r.opts.SRS }

// ForwardSender is the envelope sender to use when relaying mail from
// sender to a Forward target: its SRS rewrite, or sender unchanged when
// SRS is off.
func (r *Resolver) ForwardSender(sender string) (string, error) {
	if r.opts.SRS == nil {
		return sender, nil
	}
	return r.opts.SRS.Forward(sender)
}

// Resolve resolves addr, as given at RCPT. It returns the Resolution and,
// for an address to refuse, a *Refusal with the reply to give (550 5.1.1
// for an unknown user, the LMTP server's own 5xx, 451 4.3.0 when the LMTP
// server cannot tell, 550 5.4.6 for an alias loop). The Resolution is
// returned in both cases, for its Steps.
func (r *Resolver) Resolve(ctx context.Context, addr string) (*Resolution, error) {
	return r.resolve(ctx, addr, false)
}

// Explain is Resolve with the Steps of the resolution filled in, for
// `sluice address test` and for logging a refusal.
func (r *Resolver) Explain(ctx context.Context, addr string) (*Resolution, error) {
	return r.resolve(ctx, addr, true)
}

func (r *Resolver) resolve(ctx context.Context, addr string, trace bool) (*Resolution, error) {
	t := r.table.Load()
	res := &Resolution{Original: addr}
	full := addr
	if _, _, ok := mail.Split(addr); !ok && r.origin != "" {
		full = addr + "@" + r.origin // <postmaster>
	}
	d := mail.Domain(full)
	if r.opts.SRS != nil && d == r.opts.SRS.Domain() && srs.IsSRS(full) {
		return r.reverseSRS(ctx, res, full, trace)
	}
	if !r.isLocal(t, d) {
		res.Kind = Remote
		res.Targets = []Target{{Addr: mail.Normalize(full), Transport: Transport{Kind: Relay}}}
		if trace {
			res.Steps = []Step{{Addr: full, Rule: "not a local domain"}}
		}
		return res, nil
	}
	x := &expander{r: r, t: t, ctx: ctx, res: res, trace: trace}
	found, err := x.expand(full, nil, 0)
	if err != nil {
		res.Kind = Unknown
		res.Targets = nil
		var ref *Refusal
		if errors.As(err, &ref) {
			return res, ref
		}
		var loop *LoopError
		if errors.As(err, &loop) {
			return res, rejected(550, "5.4.6", addr, "mail forwarding loop", err)
		}
		return res, rejected(451, "4.3.0", addr, "alias expansion failed, try again later", err)
	}
	if !found || len(res.Targets) == 0 {
		res.Kind = Unknown
		res.Targets = nil
		if x.lmtpNo != nil {
			return res, &Refusal{Reply: *x.lmtpNo, Err: ErrUnknownUser}
		}
		err := ErrUnknownUser
		if found {
			err = fmt.Errorf("%w: no target of the alias is deliverable", ErrUnknownUser)
		}
		return res, unknownUser(addr, err)
	}
	return res, nil
}

// reverseSRS resolves an SRS address of ours to the address it stands for.
func (r *Resolver) reverseSRS(ctx context.Context, res *Resolution, addr string, trace bool) (*Resolution, error) {
	orig, err := r.opts.SRS.Reverse(addr)
	if err != nil {
		res.Kind = Unknown
		res.Steps = []Step{{Addr: addr, Rule: "srs: " + err.Error()}}
		return res, rejected(550, "5.1.1", res.Original, "invalid SRS address", fmt.Errorf("%w: %v", ErrBadSRS, err))
	}
	res.Kind = Bounce
	res.Steps = []Step{{Addr: addr, Rule: "srs", To: []string{orig}}}
	if !r.IsLocal(mail.Domain(orig)) {
		res.Targets = []Target{{Addr: mail.Normalize(orig), Forward: true, Transport: Transport{Kind: Relay}}}
		return res, nil
	}
	// The sender was one of our own addresses: resolve it as any other.
	x := &expander{r: r, t: r.table.Load(), ctx: ctx, res: res, trace: trace}
	if found, err := x.expand(orig, nil, 1); err != nil || !found || len(res.Targets) == 0 {
		res.Kind = Unknown
		res.Targets = nil
		return res, unknownUser(res.Original, fmt.Errorf("%w: SRS address of %s, which does not resolve", ErrUnknownUser, orig))
	}
	return res, nil
}

// stripDetail returns local without its extension: up to the first
// delimiter character ("alice+tag" → "alice"). A local part that starts
// with the delimiter keeps it.
func (r *Resolver) stripDetail(local string) string {
	if r.opts.Delimiter == "" {
		return local
	}
	if i := strings.IndexAny(local, r.opts.Delimiter); i > 0 {
		return local[:i]
	}
	return local
}
