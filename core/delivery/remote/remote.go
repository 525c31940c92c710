// Package remote delivers queued mail to other domains over SMTP. It finds
// each recipient domain's mail exchangers (or uses a configured relay),
// connects with opportunistic STARTTLS, sends one transaction per message
// and destination carrying all of its recipients there, turns every reply
// into a per-recipient mail.Result, reuses connections between messages
// and bounds how many run at once, in total and per destination.
package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

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

// TLS policies.
const (
	// TLSOpportunistic uses STARTTLS when the peer offers it, without
	// verifying the certificate; a failed handshake is retried in plain
	// text.
	TLSOpportunistic = "opportunistic"
	// TLSNone never uses STARTTLS.
	TLSNone = "none"
)

// Resolver is the DNS the Deliverer asks; *dns.Resolver satisfies it.
// LookupMX and LookupIP report a domain that does not exist with an error
// wrapping dns.ErrNotFound and a temporary failure with an error that has a
// Temporary() method returning true.
type Resolver interface {
	LookupMX(ctx context.Context, domain string) ([]dns.MX, error)
	LookupIP(ctx context.Context, host string) ([]netip.Addr, error)
}

var _ Resolver = (*dns.Resolver)(nil)

// Options configures a Deliverer. Zero values take the defaults above.
type Options struct {
	// Hostname is the name sent in EHLO; "localhost" when empty.
	Hostname string
	// Resolver finds mail exchangers and addresses. Required unless every
	// message goes through RelayHost given as an IP address.
	Resolver Resolver
	// Port is where mail exchangers are connected to; 25 when zero.
	Port int
	// RelayHost, as "host:port", sends all mail there (a smarthost).
	RelayHost string
	// RelayUser and RelayPassword, when RelayUser is set, authenticate to
	// RelayHost with AUTH PLAIN, only over TLS unless the relay is on a
	// loopback address.
	RelayUser, RelayPassword string
	// Routes sends the mail of a domain (the key, any case) to a relay
	// "host:port" instead of its MX hosts; they win over RelayHost.
	Routes map[string]string
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
	// TLS is TLSOpportunistic (when empty) or TLSNone.
	TLS string
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
	// TLSReport, when set, is told each session's TLS outcome (RFC 8460).
	TLSReport tlsrpt.Recorder
}

// Deliverer delivers messages to remote domains over SMTP. It is safe for
// concurrent use.
type Deliverer struct {
	opts   Options
	log    *slog.Logger
	routes map[string]string
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
	switch opts.TLS {
	case "":
		opts.TLS = TLSOpportunistic
	case TLSOpportunistic, TLSNone:
	default:
		return nil, fmt.Errorf("remote: TLS policy %q is not known; use %q or %q", opts.TLS, TLSOpportunistic, TLSNone)
	}
	if opts.Port > 65535 {
		return nil, fmt.Errorf("remote: port %d is not a TCP port", opts.Port)
	}
	d := &Deliverer{
		opts:   opts,
		log:    opts.Logger,
		routes: make(map[string]string, len(opts.Routes)),
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
		d.relay = hp
	}
	for dom, relay := range opts.Routes {
		if _, err := parseHostPort(relay); err != nil {
			return nil, fmt.Errorf("remote: route for %s: relay %w", dom, err)
		}
		d.routes[mail.NormDomain(dom)] = relay
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

// Close closes the idle pooled connections (with QUIT). Deliveries in
// progress finish; their connections are closed rather than pooled.
func (d *Deliverer) Close() error {
	d.pool.close()
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
		wg.Go(func() { res[i] = d.deliverDomain(ctx, m, g.Domain, g.Rcpts) })
	}
	wg.Wait()
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
	for _, r := range results {
		d.log.Log(ctx, slog.LevelDebug, "remote transport",
			"id", m.ID, "to", r.Rcpt, "relay", r.Relay, "dsn", r.Reply.Enhanced.String(), "status", r.Status.String(), "text", r.Reply.Text)
	}
}

// distinct returns addrs without repeats, in order of first appearance.
func distinct(addrs []string) []string {
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
}

// result is f for rcpt.
func (f failure) result(rcpt string) mail.Result {
	return mail.Result{Rcpt: rcpt, Status: f.status, Reply: f.reply, Relay: f.relay}
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
	return &failure{mail.Deferred, mail.Reply{Code: 451, Enhanced: mail.MustEnhanced(dsn), Text: fmt.Sprintf(format, args...)}, relay}
}

func bounced(code int, dsn, relay, format string, args ...any) *failure {
	return &failure{mail.Bounced, mail.Reply{Code: code, Enhanced: mail.MustEnhanced(dsn), Text: fmt.Sprintf(format, args...)}, relay}
}

// deliverDomain delivers m to the recipients of one domain.
func (d *Deliverer) deliverDomain(ctx context.Context, m *mail.Message, domain string, rcpts []string) []mail.Result {
	if domain == "" {
		return bounced(553, "5.1.3", "none", "recipient address has no domain").all(rcpts)
	}
	targets, auth, f := d.targets(ctx, m, domain)
	if f != nil {
		return f.all(rcpts)
	}
	release, err := d.acquire(ctx, domain)
	if err != nil {
		return deferred("4.4.1", "none", "delivery to %s interrupted while waiting for a connection slot: %v", domain, err).all(rcpts)
	}
	defer release()
	return d.send(ctx, m, domain, targets, auth, rcpts)
}
