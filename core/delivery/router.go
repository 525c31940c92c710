// Package delivery takes queued messages to their recipients: it routes
// each recipient to local delivery (subpackage local: Maildir or LMTP,
// per domain as core/addressing says) or to remote delivery by MX, and
// gathers one mail.Result per recipient.
package delivery

import (
	"context"
	"log/slog"
	"sync"

	"github.com/sluice-mta/sluice/core/addressing"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// RouterOptions configures a Router.
type RouterOptions struct {
	// LocalDomains are the domains delivered on this host, compared
	// case-insensitively; Addressing, when set, decides instead.
	LocalDomains []string
	// Local delivers to recipients in LocalDomains (with Addressing: to
	// those whose transport is Maildir); nil defers them.
	Local mail.Deliverer
	// Remote delivers to every other recipient; nil defers them (outbound
	// MX delivery is not configured yet).
	Remote mail.Deliverer
	// Addressing, when set, gives each recipient its transport by domain
	// (Resolver.Transport): Maildir goes to Local, LMTP to the deliverer
	// NewLMTP made for that server, Relay to Remote. Forwarded recipients
	// (mail.Recipient.Forward) are relayed in a transaction of their own
	// with the sender Resolver.ForwardSender gives (SRS).
	Addressing *addressing.Resolver
	// NewLMTP returns the deliverer for one LMTP server ("host:port" or
	// "unix:/path"); the Router calls it once per server and keeps the
	// deliverer. nil defers the recipients of LMTP domains.
	NewLMTP func(addr string) mail.Deliverer
	// Filters runs the deliver-stage plugins before each attempt, once per
	// destination domain; nil means none.
	Filters filter.Runner
	// Signer DKIM-signs outbound mail from authenticated users and trusted
	// networks; nil means no signing. *auth.Signer implements it.
	Signer Signer
	// Logger receives what the Router decides on its own (a sender SRS
	// could not rewrite); nil discards it.
	Logger *slog.Logger
}

// Signer signs a message with the keys for its From (or envelope) domain,
// returning it unchanged when there is none.
type Signer interface {
	Sign(msg []byte, envDomain string) ([]byte, error)
}

// Router is a mail.Deliverer that splits a message's recipients between
// the transports by domain: local Maildir, per-domain LMTP servers and
// remote delivery.
type Router struct {
	local  mail.Deliverer
	remote mail.Deliverer
	// filters runs the deliver stage; nil means none.
	filters filter.Runner
	signer  Signer
	// domains holds the local domains, normalised (mail.NormDomain).
	domains    map[string]bool
	addressing *addressing.Resolver
	newLMTP    func(addr string) mail.Deliverer
	log        *slog.Logger

	mu   sync.Mutex
	lmtp map[string]mail.Deliverer // by server address, made by newLMTP
}

var _ mail.Deliverer = (*Router)(nil)

// NewRouter returns a Router for opts.
func NewRouter(opts RouterOptions) *Router {
	r := &Router{local: opts.Local, remote: opts.Remote, filters: opts.Filters, signer: opts.Signer,
		domains: make(map[string]bool), addressing: opts.Addressing, newLMTP: opts.NewLMTP,
		log: opts.Logger, lmtp: make(map[string]mail.Deliverer)}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	for _, d := range opts.LocalDomains {
		r.domains[mail.NormDomain(d)] = true
	}
	return r
}

// IsLocal reports whether rcpt is delivered locally: its domain is one of
// the local domains, or it has no domain at all (as <postmaster> may).
func (r *Router) IsLocal(rcpt string) bool {
	return r.transport(rcpt).Kind != addressing.Relay
}

// transport returns where rcpt goes: by Addressing when set, else Maildir
// (the Local deliverer, whatever it is) for the local domains and an
// address without a domain, Relay for the rest.
func (r *Router) transport(rcpt string) addressing.Transport {
	_, domain, ok := mail.Split(rcpt)
	switch {
	case !ok:
		return addressing.Transport{Kind: addressing.Maildir}
	case r.addressing != nil:
		return r.addressing.Transport(domain)
	case r.domains[mail.NormDomain(domain)]:
		return addressing.Transport{Kind: addressing.Maildir}
	}
	return addressing.Transport{Kind: addressing.Relay}
}

// Deliver hands the local recipients of rcpts to the local deliverer and
// the others to the remote one, and returns both sets of Results. With
// deliver-stage plugins, they run first for each destination domain and
// may decide its recipients' fate, edit the headers or pick a route.
func (r *Router) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	if r.filters == nil || r.filters.Hooks()&(1<<pluginapi.HookDeliver) == 0 {
		return r.split(ctx, m, rcpts)
	}
	results := make([]mail.Result, 0, len(rcpts))
	for _, g := range mail.GroupByDomain(rcpts) {
		dm, decided := r.deliverHook(ctx, m, g.Domain, g.Rcpts)
		if decided != nil {
			results = append(results, decided...)
			continue
		}
		results = append(results, r.split(ctx, dm, g.Rcpts)...)
	}
	return results
}

// split hands each recipient to its transport: Maildir recipients to the
// local deliverer, each LMTP server's to its deliverer, the rest to the
// remote one, forwarded recipients in a transaction of their own with the
// SRS sender.
func (r *Router) split(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	var local, remote, forward []string
	var servers []string // LMTP servers, in order of first recipient
	byServer := map[string][]string{}
	var fwd map[string]bool
	for _, rc := range rcpts {
		switch tr := r.transport(rc); tr.Kind {
		case addressing.Maildir:
			local = append(local, rc)
		case addressing.LMTP:
			if _, ok := byServer[tr.LMTP]; !ok {
				servers = append(servers, tr.LMTP)
			}
			byServer[tr.LMTP] = append(byServer[tr.LMTP], rc)
		default:
			if fwd == nil {
				fwd = forwarded(m)
			}
			if fwd[rc] && r.addressing != nil {
				forward = append(forward, rc)
			} else {
				remote = append(remote, rc)
			}
		}
	}
	results := make([]mail.Result, 0, len(rcpts))
	results = append(results, route(ctx, r.local, m, local,
		"4.3.0", "no local delivery configured; set a local transport in the config")...)
	for _, srv := range servers {
		results = append(results, route(ctx, r.lmtpFor(srv), m, byServer[srv],
			"4.3.0", "no LMTP delivery configured for "+srv)...)
	}
	if len(remote)+len(forward) == 0 {
		return results
	}
	out, err := r.sign(m)
	if err != nil {
		return append(results, deferAll(append(remote, forward...), "4.3.0", "DKIM signing failed: "+err.Error())...)
	}
	results = append(results, route(ctx, r.remote, out, remote,
		"4.4.1", "no remote delivery configured yet")...)
	if len(forward) > 0 {
		results = append(results, route(ctx, r.remote, r.forwardMessage(ctx, out, len(forward)), forward,
			"4.4.1", "no remote delivery configured yet")...)
	}
	return results
}

// forwarded returns the addresses of m's recipients marked Forward, nil
// when there is none.
func forwarded(m *mail.Message) map[string]bool {
	fwd := map[string]bool{}
	for _, rc := range m.Rcpts {
		if rc.Forward {
			fwd[rc.Addr] = true
		}
	}
	return fwd
}

// forwardMessage returns m with the envelope sender its n forwarded
// recipients are relayed with: its SRS rewrite, so that SPF passes at the
// next hop and bounces come back to us to be reversed. A sender SRS cannot
// rewrite is kept (and logged): the mail still goes.
func (r *Router) forwardMessage(ctx context.Context, m *mail.Message, n int) *mail.Message {
	from, err := r.addressing.ForwardSender(m.From)
	if err != nil {
		r.log.WarnContext(ctx, "forwarding with the original sender: SRS cannot rewrite it", "id", m.ID, "from", m.From, "err", err)
		return m
	}
	if from == m.From {
		return m
	}
	r.log.InfoContext(ctx, "forward", "id", m.ID, "from", m.From, "srs_from", from, "nrcpt", n)
	fm := *m
	fm.From = from
	return &fm
}

// lmtpFor returns the deliverer of the LMTP server addr, made once; nil
// without NewLMTP.
func (r *Router) lmtpFor(addr string) mail.Deliverer {
	if r.newLMTP == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d, ok := r.lmtp[addr]
	if !ok {
		d = r.newLMTP(addr)
		r.lmtp[addr] = d
	}
	return d
}

// sign DKIM-signs our own outbound mail (from an authenticated user or a
// trusted network) with the keys of its From domain, after the deliver-stage
// plugins made their last header edit. Others' mail passes unchanged.
func (r *Router) sign(m *mail.Message) (*mail.Message, error) {
	if r.signer == nil || (m.AuthUser == "" && !m.Trusted) {
		return m, nil
	}
	_, envDomain, _ := mail.Split(m.From)
	signed, err := r.signer.Sign(m.Body, envDomain)
	if err != nil {
		return nil, err
	}
	out := *m
	out.Body = signed
	return &out, nil
}

// deferAll defers every recipient with dsn and text.
func deferAll(rcpts []string, dsn, text string) []mail.Result {
	out := make([]mail.Result, len(rcpts))
	for i, rc := range rcpts {
		out[i] = mail.DeferredResult(rc, "", mail.Reply{Code: 451, Enhanced: mail.MustEnhanced(dsn), Text: text})
	}
	return out
}

// route delivers rcpts with d, or defers them all with dsn and text when d
// is nil.
func route(ctx context.Context, d mail.Deliverer, m *mail.Message, rcpts []string, dsn, text string) []mail.Result {
	if len(rcpts) == 0 {
		return nil
	}
	if d != nil {
		return d.Deliver(ctx, m, rcpts)
	}
	return deferAll(rcpts, dsn, text)
}
