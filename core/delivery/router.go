// Package delivery takes queued messages to their recipients: it routes
// each recipient to local delivery (subpackage local: Maildir or LMTP) or to
// remote delivery by MX, and gathers one mail.Result per recipient.
package delivery

import (
	"context"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// RouterOptions configures a Router.
type RouterOptions struct {
	// LocalDomains are the domains delivered on this host, compared
	// case-insensitively.
	LocalDomains []string
	// Local delivers to recipients in LocalDomains; nil defers them.
	Local mail.Deliverer
	// Remote delivers to every other recipient; nil defers them (outbound
	// MX delivery is not configured yet).
	Remote mail.Deliverer
	// Filters runs the deliver-stage plugins before each attempt, once per
	// destination domain; nil means none.
	Filters filter.Runner
	// Signer DKIM-signs outbound mail from authenticated users and trusted
	// networks; nil means no signing. *auth.Signer implements it.
	Signer Signer
}

// Signer signs a message with the keys for its From (or envelope) domain,
// returning it unchanged when there is none.
type Signer interface {
	Sign(msg []byte, envDomain string) ([]byte, error)
}

// Router is a mail.Deliverer that splits a message's recipients between
// the local and the remote deliverer by domain.
type Router struct {
	local  mail.Deliverer
	remote mail.Deliverer
	// filters runs the deliver stage; nil means none.
	filters filter.Runner
	signer  Signer
	// domains holds the local domains, normalised (mail.NormDomain).
	domains map[string]bool
}

var _ mail.Deliverer = (*Router)(nil)

// NewRouter returns a Router for opts.
func NewRouter(opts RouterOptions) *Router {
	r := &Router{local: opts.Local, remote: opts.Remote, filters: opts.Filters, signer: opts.Signer, domains: make(map[string]bool)}
	for _, d := range opts.LocalDomains {
		r.domains[mail.NormDomain(d)] = true
	}
	return r
}

// IsLocal reports whether rcpt is delivered locally: its domain is one of
// the local domains, or it has no domain at all (as <postmaster> may).
func (r *Router) IsLocal(rcpt string) bool {
	_, domain, ok := mail.Split(rcpt)
	if !ok {
		return true
	}
	return r.domains[mail.NormDomain(domain)]
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

// split hands local recipients to the local deliverer, the rest to the
// remote one.
func (r *Router) split(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	var local, remote []string
	for _, rc := range rcpts {
		if r.IsLocal(rc) {
			local = append(local, rc)
		} else {
			remote = append(remote, rc)
		}
	}
	results := make([]mail.Result, 0, len(rcpts))
	results = append(results, route(ctx, r.local, m, local,
		"4.3.0", "no local delivery configured; set a local transport in the config")...)
	if len(remote) > 0 {
		out, err := r.sign(m)
		if err != nil {
			return append(results, deferAll(remote, "4.3.0", "DKIM signing failed: "+err.Error())...)
		}
		results = append(results, route(ctx, r.remote, out, remote,
			"4.4.1", "no remote delivery configured yet")...)
	}
	return results
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
