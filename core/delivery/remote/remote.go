// Package remote delivers queued mail to other domains over SMTP. It finds
// each recipient domain's mail exchangers (or uses a configured relay),
// connects with opportunistic STARTTLS, sends one transaction per message
// and destination carrying all of its recipients there, turns every reply
// into a per-recipient mail.Result, reuses connections between messages
// and bounds how many run at once, in total and per destination.
package remote

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/core/delivery/mtasts"
	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/tlsrpt"
)

// Defaults for the zero values of Options.
const (
	DefaultPort              = 25
	DefaultMaxConnections    = 100
	DefaultMaxPerDestination = 20
	DefaultMaxRcptsPerTxn    = 100
	DefaultMaxMsgsPerConn    = 100
	DefaultIdleTimeout       = 30 * time.Second
	DefaultMaxReceived       = 50
	DefaultConnectTimeout    = 30 * time.Second
	DefaultCommandTimeout    = 5 * time.Minute
	DefaultDataTimeout       = 10 * time.Minute
)

// TLS policies: how a destination's sessions are secured (Options.TLS,
// Route.TLS).
const (
	// TLSOpportunistic uses STARTTLS when the peer offers it, without
	// verifying the certificate, and plain text when the handshake fails;
	// a domain publishing DANE or MTA-STS gets what it publishes.
	TLSOpportunistic = "opportunistic"
	// TLSNone never uses STARTTLS.
	TLSNone = "none"
	// TLSVerify requires STARTTLS and a certificate that verifies for the
	// host name (against Roots; DANE when the host publishes TLSA).
	TLSVerify = "verify"
	// TLSDANEOnly requires DANE: DNSSEC-validated TLSA records that the
	// certificate matches.
	TLSDANEOnly = "dane-only"
)

// How a relay's session starts (Options.RelayTLS, Route.RelayTLS).
const (
	// RelayStartTLS says STARTTLS on a plain connection (port 587 or 25).
	RelayStartTLS = "starttls"
	// RelayImplicit speaks TLS from the first byte (port 465).
	RelayImplicit = "implicit"
	// RelayNone speaks plain text; only to a relay on a loopback address.
	RelayNone = "none"
)

// Resolver is the DNS the Deliverer asks; *dns.Resolver satisfies it.
// The lookups report a domain that does not exist with an error wrapping
// dns.ErrNotFound and a temporary failure with an error that has a
// Temporary() method returning true; secure says a trusted validating
// resolver vouched for the answer (DNSSEC, for DANE).
type Resolver interface {
	LookupMXSecure(ctx context.Context, domain string) ([]dns.MX, bool, error)
	LookupIPSecure(ctx context.Context, host string) ([]netip.Addr, bool, error)
	LookupTLSA(ctx context.Context, port int, host string) ([]dns.TLSA, bool, error)
}

var _ Resolver = (*dns.Resolver)(nil)

// STSPolicies finds the MTA-STS policy of a domain; *mtasts.Cache
// satisfies it. A nil policy means none; a *mtasts.FetchError, none
// either, reported to TLS-RPT.
type STSPolicies interface {
	Get(ctx context.Context, domain string) (*mtasts.Policy, error)
}

var _ STSPolicies = (*mtasts.Cache)(nil)

// Route overrides delivery for one domain.
type Route struct {
	// Relay, "host:port", receives the domain's mail instead of its MX
	// hosts; "" keeps MX delivery.
	Relay string
	// User and Password log in to Relay (AUTH PLAIN or LOGIN), only over a
	// verified session (or in plain text with RelayNone to loopback).
	User, Password string
	// RelayTLS is RelayStartTLS (when empty), RelayImplicit or RelayNone.
	RelayTLS string
	// TLS is the route's TLS policy: for MX delivery Options.TLS when
	// empty; for a relay TLSVerify with credentials, else Options.TLS
	// (TLSDANEOnly is refused: DANE is for MX hosts). A route without a
	// Relay is refused with a RelayHost, which takes the domain's mail.
	TLS string
	// Roots verify Relay's certificate instead of Options.RelayRoots; nil
	// takes those.
	Roots *x509.CertPool
}

// TLSObserver is told each session attempt's TLS outcome, for the
// metrics: policy is "dane", "mta-sts", "verify", "relay",
// "opportunistic" or "none"; result "success" or an RFC 8460 result type.
type TLSObserver func(policy, result string)

// Options configures a Deliverer. Zero values take the defaults above.
type Options struct {
	// Hostname is the name sent in EHLO; "localhost" when empty.
	Hostname string
	// Resolver finds mail exchangers and addresses. Required unless every
	// message goes through RelayHost given as an IP address.
	Resolver Resolver
	// Port is where mail exchangers are connected to; 25 when zero.
	Port int
	// RelayHost, as "host:port", sends all mail there (a smarthost). Its
	// certificate is verified against RelayRoots for its host name.
	RelayHost string
	// RelayUser and RelayPassword, when RelayUser is set, log in to
	// RelayHost with AUTH PLAIN (or LOGIN), only over a verified session,
	// or in plain text with RelayTLS = RelayNone to a loopback relay.
	RelayUser, RelayPassword string
	// RelayTLS is RelayStartTLS (when empty), RelayImplicit or RelayNone.
	RelayTLS string
	// RelayRoots verify relays' certificates; nil means the system roots.
	RelayRoots *x509.CertPool
	// Roots verify mail exchangers' certificates (TLSVerify, MTA-STS);
	// nil means the system roots.
	Roots *x509.CertPool
	// Routes override delivery for the domains they name (the key, any
	// case); they win over RelayHost.
	Routes map[string]Route
	// MaxConnections bounds the deliveries in progress at once.
	MaxConnections int
	// MaxPerDestination bounds the deliveries in progress to one domain;
	// PerDomainLimit overrides it for the domains it names.
	MaxPerDestination int
	PerDomainLimit    map[string]int
	// MaxRcptsPerTxn bounds the recipients of one transaction; more go in
	// further transactions on the same connection.
	MaxRcptsPerTxn int
	// MaxMsgsPerConn is how many transactions a connection carries before
	// it is closed rather than pooled.
	MaxMsgsPerConn int
	// IdleTimeout closes a pooled connection left unused this long.
	IdleTimeout time.Duration
	// TLS is the TLS policy of MX delivery: TLSOpportunistic (when
	// empty), TLSNone, TLSVerify or TLSDANEOnly.
	TLS string
	// DANE applies DANE (RFC 7672) to MX hosts publishing DNSSEC-validated
	// TLSA records, whatever the policy (but TLSNone).
	DANE bool
	// MTASTS finds MTA-STS policies; nil applies none.
	MTASTS STSPolicies
	// TLSReport receives each MX session attempt's TLS outcome (RFC
	// 8460); nil reports nothing.
	TLSReport tlsrpt.Recorder
	// TLSObserver, when set, is told every session attempt's TLS outcome.
	TLSObserver TLSObserver
	// OwnAddrs are the addresses this server listens on: a mail exchanger
	// resolving to one of them (on the same port) is a mail loop.
	OwnAddrs []netip.AddrPort
	// MaxReceived is how many Received: headers a message may carry before
	// it is taken for a loop and bounced.
	MaxReceived int
	// ConnectTimeout bounds connecting; CommandTimeout each command's
	// reply (and the greeting); DataTimeout the reply after the message.
	ConnectTimeout, CommandTimeout, DataTimeout time.Duration
	// Logger receives debug lines; nil discards them. The queue writes the
	// one delivery line per recipient.
	Logger *slog.Logger
	// Dial opens connections; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Deliverer delivers messages to remote domains over SMTP. It is safe for
// concurrent use.
type Deliverer struct {
	opts   Options
	log    *slog.Logger
	routes map[string]Route
	limits map[string]int
	// relay is the parsed RelayHost, nil without one.
	relay *hostPort

	global chan struct{}
	dests  *semaphores
	pool   *pool
}

var _ mail.Deliverer = (*Deliverer)(nil)

// hostPort is a parsed "host:port".
type hostPort struct {
	host string
	port int
}

// parseHostPort parses a relay address.
func parseHostPort(s string) (*hostPort, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return nil, fmt.Errorf("%q is not host:port; write it like \"smtp.example.com:587\"", s)
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("%q: port must be a number from 1 to 65535", s)
	}
	return &hostPort{host: mail.NormDomain(host), port: n}, nil
}

// New returns a Deliverer for opts, or an error naming the option that is
// wrong.
func New(opts Options) (*Deliverer, error) {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	def(&opts.Port, DefaultPort)
	def(&opts.MaxConnections, DefaultMaxConnections)
	def(&opts.MaxPerDestination, DefaultMaxPerDestination)
	def(&opts.MaxRcptsPerTxn, DefaultMaxRcptsPerTxn)
	def(&opts.MaxMsgsPerConn, DefaultMaxMsgsPerConn)
	def(&opts.MaxReceived, DefaultMaxReceived)
	defDur(&opts.IdleTimeout, DefaultIdleTimeout)
	defDur(&opts.ConnectTimeout, DefaultConnectTimeout)
	defDur(&opts.CommandTimeout, DefaultCommandTimeout)
	defDur(&opts.DataTimeout, DefaultDataTimeout)
	opts.TLS = cmp.Or(opts.TLS, TLSOpportunistic)
	opts.RelayTLS = cmp.Or(opts.RelayTLS, RelayStartTLS)
	if err := checkPolicy(opts.TLS); err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	if opts.Port > 65535 {
		return nil, fmt.Errorf("remote: port %d is not a TCP port", opts.Port)
	}
	d := &Deliverer{
		opts:   opts,
		log:    opts.Logger,
		routes: make(map[string]Route, len(opts.Routes)),
		limits: make(map[string]int, len(opts.PerDomainLimit)),
		global: make(chan struct{}, opts.MaxConnections),
		dests:  newSemaphores(),
	}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if opts.RelayHost != "" {
		hp, err := parseHostPort(opts.RelayHost)
		if err != nil {
			return nil, fmt.Errorf("remote: relay host %w", err)
		}
		if err := checkRelay(hp, opts.RelayTLS, TLSVerify, opts.RelayUser); err != nil {
			return nil, fmt.Errorf("remote: relay host: %w", err)
		}
		d.relay = hp
	}
	for dom, r := range opts.Routes {
		r.RelayTLS = cmp.Or(r.RelayTLS, RelayStartTLS)
		if r.TLS == "" {
			r.TLS = opts.TLS
			if r.Relay != "" && r.User != "" {
				r.TLS = TLSVerify
			}
		}
		if err := checkPolicy(r.TLS); err != nil {
			return nil, fmt.Errorf("remote: route for %s: %w", dom, err)
		}
		switch {
		case r.Relay == "" && opts.RelayHost != "":
			return nil, fmt.Errorf("remote: route for %s sets a TLS policy for MX delivery, but its mail goes to the relay host %s; give the route a relay of its own or drop it", dom, opts.RelayHost)
		case r.Relay != "" && r.TLS == TLSDANEOnly:
			return nil, fmt.Errorf("remote: route for %s: tls %q applies to MX hosts, not to relay %s; use %q", dom, TLSDANEOnly, r.Relay, TLSVerify)
		}
		if r.Relay != "" {
			hp, err := parseHostPort(r.Relay)
			if err != nil {
				return nil, fmt.Errorf("remote: route for %s: relay %w", dom, err)
			}
			if err := checkRelay(hp, r.RelayTLS, r.TLS, r.User); err != nil {
				return nil, fmt.Errorf("remote: route for %s: %w", dom, err)
			}
		} else if r.User != "" {
			return nil, fmt.Errorf("remote: route for %s has credentials but no relay", dom)
		}
		d.routes[mail.NormDomain(dom)] = r
	}
	for dom, n := range opts.PerDomainLimit {
		if n > 0 {
			d.limits[mail.NormDomain(dom)] = n
		}
	}
	if opts.Resolver == nil && (d.relay == nil || !isIP(d.relay.host)) {
		return nil, errors.New("remote: no DNS resolver given; outbound delivery needs one to find MX hosts")
	}
	if d.opts.Dial == nil {
		dialer := &net.Dialer{Timeout: opts.ConnectTimeout}
		d.opts.Dial = dialer.DialContext
	}
	d.pool = newPool(opts.IdleTimeout, opts.MaxConnections, opts.CommandTimeout)
	return d, nil
}

// Close closes the idle pooled connections (with QUIT), and MTASTS when
// it has a Close method (its background refreshes end). Deliveries in
// progress finish; their connections are closed rather than pooled.
func (d *Deliverer) Close() error {
	d.pool.close()
	if c, ok := d.opts.MTASTS.(interface{ Close() }); ok {
		c.Close()
	}
	return nil
}

// Deliver sends m to rcpts and returns one Result per recipient, in the
// order of rcpts. Recipients are grouped by domain; the domains are
// delivered in parallel, each in as few transactions as the limits allow.
func (d *Deliverer) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	results := make([]mail.Result, len(rcpts))
	if len(rcpts) == 0 {
		return results
	}
	if h, _ := mail.ParseHeader(m.Body); h.Count("Received") > d.opts.MaxReceived {
		f := bounced(554, "5.4.6", "none", "message has %d Received: headers, more than the %d allowed: mail forwarding loop",
			h.Count("Received"), d.opts.MaxReceived)
		for i, rc := range rcpts {
			results[i] = f.result(rc)
		}
		d.logResults(ctx, m, results)
		return results
	}
	// Each domain's distinct addresses go out once; the results are
	// spread back over rcpts, duplicates included.
	groups := mail.GroupByDomain(rcpts)
	res := make([][]mail.Result, len(groups))
	var wg sync.WaitGroup
	for i, g := range groups {
		g.Rcpts = distinct(g.Rcpts)
		groups[i] = g
		if len(groups) == 1 {
			// One domain runs on the caller's goroutine: a new one would
			// start with a small stack and grow it (copying it) on the
			// way down to the dial, every message.
			res[i] = d.deliverDomain(ctx, m, g.Domain, g.Rcpts)
			break
		}
		wg.Go(func() { res[i] = d.deliverDomain(ctx, m, g.Domain, g.Rcpts) })
	}
	wg.Wait()
	if len(groups) == 1 && slices.Equal(groups[0].Rcpts, rcpts) {
		copy(results, res[0]) // one domain, no repeats: no map needed
		d.logResults(ctx, m, results)
		return results
	}
	byAddr := make(map[string]mail.Result, len(rcpts))
	for i, g := range groups {
		for j, rc := range g.Rcpts {
			byAddr[rc] = res[i][j]
		}
	}
	for i, rc := range rcpts {
		results[i] = byAddr[rc]
	}
	d.logResults(ctx, m, results)
	return results
}

// logResults writes one debug line per recipient.
func (d *Deliverer) logResults(ctx context.Context, m *mail.Message, results []mail.Result) {
	if !d.log.Enabled(ctx, slog.LevelDebug) {
		return // the arguments below cost allocations for every message
	}
	for _, r := range results {
		d.log.Log(ctx, slog.LevelDebug, "remote transport",
			"id", m.ID, "to", r.Rcpt, "relay", r.Relay, "dsn", r.Reply.Enhanced.String(), "status", r.Status.String(), "text", r.Reply.Text)
	}
}

// distinct returns addrs without repeats, in order of first appearance.
func distinct(addrs []string) []string {
	if len(addrs) < 2 {
		return addrs
	}
	seen := make(map[string]bool, len(addrs))
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	return out
}

// checkPolicy says what is wrong with a TLS policy's name.
func checkPolicy(p string) error {
	switch p {
	case TLSOpportunistic, TLSNone, TLSVerify, TLSDANEOnly:
		return nil
	}
	return fmt.Errorf("TLS policy %q is not known; use %q, %q, %q or %q", p, TLSNone, TLSOpportunistic, TLSVerify, TLSDANEOnly)
}

// checkRelay says what is wrong with how a relay is to be reached: plain
// text with credentials only to loopback, credentials only over a session
// that is verified.
func checkRelay(hp *hostPort, relayTLS, policy, user string) error {
	switch relayTLS {
	case RelayStartTLS, RelayImplicit:
	case RelayNone:
		if !isLoopbackHost(hp.host) {
			return fmt.Errorf("relay_tls %q is allowed only to a relay on a loopback address, not %s", RelayNone, hp.host)
		}
		return nil
	default:
		return fmt.Errorf("relay_tls %q is not known; use %q, %q or %q", relayTLS, RelayStartTLS, RelayImplicit, RelayNone)
	}
	if user != "" && policy != TLSVerify && policy != TLSDANEOnly {
		return fmt.Errorf("credentials with tls = %q would go over a session that is not verified; use tls = %q", policy, TLSVerify)
	}
	return nil
}

// isLoopbackHost reports whether host is "localhost" or a loopback address.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// isIP reports whether host is an IP address literal.
func isIP(host string) bool {
	_, err := netip.ParseAddr(host)
	return err == nil
}

// failure is one outcome for all recipients of an attempt: a status and
// the reply in the transport's words.
type failure struct {
	status mail.Status
	reply  mail.Reply
	relay  string
	// tlsPolicy names the TLS policy that could not be met (tlsPlan.name).
	tlsPolicy string
}

// result is f for rcpt.
func (f failure) result(rcpt string) mail.Result {
	return mail.Result{Rcpt: rcpt, Status: f.status, Reply: f.reply, Relay: f.relay, TLSPolicy: f.tlsPolicy, Ours: true}
}

// all is f for every recipient.
func (f failure) all(rcpts []string) []mail.Result {
	out := make([]mail.Result, len(rcpts))
	for i, rc := range rcpts {
		out[i] = f.result(rc)
	}
	return out
}

// deferred and bounced build failures; dsn is a constant enhanced code.
func deferred(dsn, relay, format string, args ...any) *failure {
	return &failure{status: mail.Deferred, reply: mail.Reply{Code: 451, Enhanced: mail.MustEnhanced(dsn), Text: fmt.Sprintf(format, args...)}, relay: relay}
}

func bounced(code int, dsn, relay, format string, args ...any) *failure {
	return &failure{status: mail.Bounced, reply: mail.Reply{Code: code, Enhanced: mail.MustEnhanced(dsn), Text: fmt.Sprintf(format, args...)}, relay: relay}
}

// deliverDomain delivers m to the recipients of one domain.
func (d *Deliverer) deliverDomain(ctx context.Context, m *mail.Message, domain string, rcpts []string) []mail.Result {
	if domain == "" {
		return bounced(553, "5.1.3", "none", "recipient address has no domain").all(rcpts)
	}
	ds, f := d.targets(ctx, m, domain)
	if f != nil {
		return f.all(rcpts)
	}
	release, err := d.acquire(ctx, domain)
	if err != nil {
		return deferred("4.4.1", "none", "delivery to %s interrupted while waiting for a connection slot: %v", domain, err).all(rcpts)
	}
	defer release()
	return d.send(ctx, m, ds, rcpts)
}
