// Package smtpd is Sluice's inbound SMTP server: a go-smtp backend whose
// sessions check every address (relay control, no address tricks), enforce
// the listener's limits, refuse SMTP smuggling (bare CR or LF), add a
// Received header and hand each accepted message to the queue before
// answering 250.
package smtpd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sluice-mta/sluice/core/addressing"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/core/mail"
)

// Enqueuer is what the SMTP server needs from the queue.
type Enqueuer interface {
	// NewID returns a fresh queue ID, named in the Received header before
	// the message is stored.
	NewID() string
	// Enqueue stores the message durably and returns its queue ID. The
	// server sets env.ID (from NewID) before the call; an Enqueuer keeps it.
	Enqueue(ctx context.Context, env *mail.Envelope, body []byte) (string, error)
}

// Options configure a Server.
type Options struct {
	Name            string          // "smtp" or "submission", for logs
	Hostname        string          // banner, Received
	NodeID          string          // Received's comment ("Sluice node ID"); "" for none
	Listener        config.Listener // limits and timeouts; zero values take the defaults below
	LocalDomains    []string
	TrustedNetworks []netip.Prefix
	Queue           Enqueuer
	Logger          *slog.Logger
	// Filters is the plugin chain run at each stage of a session; nil
	// means none.
	Filters filter.Runner
	// Spam holds the score thresholds applied after the data hook.
	Spam filter.Spam
	// Auth checks SPF, DKIM and DMARC of mail from outside (not
	// authenticated, not from trusted networks) and writes the
	// Authentication-Results header; nil means no checks.
	Auth Checker
	// DMARCEnforce refuses mail whose DMARC disposition is reject.
	DMARCEnforce bool

	// TLSConfig enables STARTTLS (and is required by ServeTLS); nil
	// means plain text only. tlsconf.Store.Config gives one.
	TLSConfig *tls.Config
	// RequireAuth refuses MAIL before a successful AUTH with 530 5.7.0;
	// it is always on when Name is "submission".
	RequireAuth bool
	// Users checks AUTH PLAIN and LOGIN; nil means AUTH is not offered.
	Users Authenticator
	// AllowInsecureAuth offers AUTH without TLS (for loopback testing).
	AllowInsecureAuth bool
	// RestrictSender limits an authenticated user's MAIL FROM to the
	// domain of its login (a local domain for a login without '@'),
	// refusing others with 553 5.7.1.
	RestrictSender bool
	// AuthLimits throttle failed logins (see AuthThrottle).
	AuthLimits AuthLimits
	// AuthKV keeps the failure counts, shared by every service and node
	// using the same store; nil keeps them in this process's memory.
	AuthKV filter.KV
	// Recipients resolves recipients at RCPT (core/addressing): it says
	// which domains are local (with LocalDomains), refuses unknown users
	// before DATA and expands aliases into the recipients queued. nil:
	// LocalDomains alone are local, and any local part is taken.
	Recipients *addressing.Resolver
	// Observer is told of connections, sessions, messages, refusals, TLS
	// handshakes and logins (metrics); nil for none.
	Observer Observer
	// Resolver looks up each client's reverse DNS from connect on, within
	// Listener.RDNSTimeout; nil makes no lookups (every client "unknown").
	Resolver ReverseResolver
}

// Defaults for zero values in Options.Listener.
const (
	DefaultMaxMessageSize = 50 << 20
	DefaultMaxRecipients  = 100
	DefaultMaxLineLength  = 2000
	DefaultCommandTimeout = 5 * time.Minute
	DefaultDataTimeout    = 10 * time.Minute
	DefaultSessionTimeout = time.Hour
)

// handshakeTimeout bounds a TLS handshake (less when CommandTimeout is).
const handshakeTimeout = 30 * time.Second

// Server is one SMTP service (port 25 or submission), serving any number of
// listeners with shared limits. A Server's options do not change: Replace
// gives the service a Server with new ones (see front.go).
type Server struct {
	opts      Options
	lc        config.Listener // opts.Listener with defaults filled in
	log       *slog.Logger
	smtp      *smtp.Server
	local     []string // lowercased local domains
	normalize bool     // BareNewline == "normalize"
	ctx       context.Context
	cancel    context.CancelFunc
	// requireAuth is Options.RequireAuth or a submission service.
	requireAuth  bool
	authThrottle *AuthThrottle

	// fr is what every Server of the service shares; feed hands this one's
	// go-smtp server its connections.
	fr         *front
	feed       *connFeed
	startOnce  sync.Once
	started    atomic.Bool
	served     chan struct{} // closed when go-smtp's Serve has returned
	retireOnce sync.Once
	retired    chan struct{} // closed when retire is done
}

// New checks opts and builds a Server; call Serve for each listener.
func New(opts Options) (*Server, error) {
	if opts.Queue == nil {
		return nil, errors.New("smtpd: Options.Queue is nil: the server needs a queue to accept mail into")
	}
	if opts.Hostname == "" {
		return nil, errors.New("smtpd: Options.Hostname is empty: set hostname in the config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.Name == "" {
		opts.Name = "smtp"
	}
	lc := opts.Listener
	if lc.MaxMessageSize == 0 {
		lc.MaxMessageSize = DefaultMaxMessageSize
	}
	if lc.MaxRecipients == 0 {
		lc.MaxRecipients = DefaultMaxRecipients
	}
	if lc.MaxLineLength == 0 {
		lc.MaxLineLength = DefaultMaxLineLength
	}
	if lc.CommandTimeout == 0 {
		lc.CommandTimeout = config.Duration(DefaultCommandTimeout)
	}
	if lc.DataTimeout == 0 {
		lc.DataTimeout = config.Duration(DefaultDataTimeout)
	}
	if lc.SessionTimeout == 0 {
		lc.SessionTimeout = config.Duration(DefaultSessionTimeout)
	}
	if lc.MinDataRate == 0 {
		lc.MinDataRate = DefaultMinDataRate
	}
	if lc.StressTimeout == 0 {
		lc.StressTimeout = config.Duration(DefaultStressTimeout)
	}
	if lc.StressThreshold == 0 && lc.MaxConnections > 0 {
		lc.StressThreshold = max(1, lc.MaxConnections*DefaultStressPercent/100)
	}
	if lc.RDNSTimeout == 0 {
		lc.RDNSTimeout = config.Duration(DefaultRDNSTimeout)
	}
	s := &Server{opts: opts, lc: lc, feed: newConnFeed(),
		served: make(chan struct{}), retired: make(chan struct{}),
		requireAuth:  opts.RequireAuth || opts.Name == "submission",
		authThrottle: NewAuthThrottle(opts.AuthKV, opts.AuthLimits, opts.TrustedNetworks)}
	s.log = opts.Logger.With("service", opts.Name)
	switch lc.BareNewline {
	case "", "reject":
	case "normalize":
		s.normalize = true
	default:
		return nil, fmt.Errorf("smtpd: [%s] bare_newline = %q: use \"reject\" or \"normalize\"", opts.Name, lc.BareNewline)
	}
	for _, d := range opts.LocalDomains {
		ld, err := checkDomain(strings.TrimSuffix(d, "."))
		if err != nil {
			return nil, fmt.Errorf("smtpd: local_domains entry %q is not a valid domain name", d)
		}
		s.local = append(s.local, ld)
	}

	srv := smtp.NewServer(&backend{s})
	srv.Domain = opts.Hostname
	srv.MaxMessageBytes = int64(lc.MaxMessageSize)
	srv.MaxLineLength = 0 // enforced by guardConn, which knows BDAT chunks
	srv.MaxRecipients = 0 // enforced in the session, with 452 4.5.3 "Too many recipients"
	srv.ReadTimeout = lc.CommandTimeout.D()
	srv.WriteTimeout = lc.CommandTimeout.D()
	srv.EnableSMTPUTF8 = true
	srv.EnableDSN = true
	// No srv.TLSConfig: the guard advertises and runs STARTTLS (see
	// protoshim.go). AUTH is offered and refused by the session.
	srv.AllowInsecureAuth = true
	srv.ErrorLog = slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	s.smtp = srv
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.fr = newFront(s)
	return s, nil
}

// Serve accepts connections on l until Close; it may be called for several
// listeners at once. It returns nil after Close. STARTTLS is offered when
// Options.TLSConfig is set.
func (s *Server) Serve(l net.Listener) error {
	return s.serve(l, false)
}

// ServeTLS is Serve for an implicit-TLS listener (port 465): every
// connection starts with the TLS handshake. It needs Options.TLSConfig.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.opts.TLSConfig == nil {
		l.Close()
		return fmt.Errorf("smtpd: [%s] implicit TLS listener %s without a TLS configuration", s.opts.Name, l.Addr())
	}
	return s.serve(l, true)
}

func (s *Server) serve(l net.Listener, implicitTLS bool) error {
	f := s.fr
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		l.Close()
		return nil
	}
	f.listeners[l] = true
	if cur := f.cur; !cur.started.Load() {
		f.gens[cur] = struct{}{}
		cur.start()
	}
	f.mu.Unlock()
	return f.acceptLoop(&limitListener{Listener: newProxyListener(l, f), s: s, implicitTLS: implicitTLS})
}

// Close stops accepting and closes all sessions at once; messages not yet
// acknowledged are not queued. Shutdown is the graceful way.
func (s *Server) Close() error {
	f := s.fr
	f.mu.Lock()
	lns, gens, open := f.closeLocked()
	f.mu.Unlock()
	var errs []error
	for l := range lns {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for _, g := range gens {
		g.cancel()
		g.feed.Close()
	}
	s.cancel()
	for _, g := range open {
		g.Close()
	}
	return errors.Join(errs...)
}

// postmaster is the address a bare "<postmaster>" stands for, or "".
func (s *Server) postmaster() string {
	if len(s.local) == 0 {
		return ""
	}
	return "postmaster@" + s.local[0]
}

// isLocal reports whether domain (already lowercased) is a local domain:
// configured, or made local by Options.Recipients (its map files, the SRS
// domain, the domains with a transport of their own).
func (s *Server) isLocal(domain string) bool {
	if s.opts.Recipients != nil && s.opts.Recipients.IsLocal(domain) {
		return true
	}
	for _, d := range s.local {
		if d == domain {
			return true
		}
	}
	return false
}

// isTrusted reports whether ip is in the trusted networks.
func (s *Server) isTrusted(ip netip.Addr) bool {
	for _, p := range s.opts.TrustedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// limitListener enforces the connection limits and wraps every admitted
// connection in a guardConn with the session timeout.
type limitListener struct {
	net.Listener
	s           *Server
	implicitTLS bool
	closeOnce   sync.Once
}

// Accept returns the next admitted connection; over-limit ones get a 421
// and are closed without a session.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		s := l.s.fr.current() // the service's options as they are now
		ip := remoteIP(c)
		obs, name := s.opts.Observer, s.opts.Name
		if !s.admit(ip) { // logged there
			obs.SMTPConnection(name, "refused")
			obs.SMTPReject(name, "connect", "limits")
			go refuse(c, s.opts.Hostname)
			continue
		}
		obs.SMTPConnection(name, "accepted")
		obs.SMTPSession(name, 1)
		start := time.Now()
		session, log := connLogger(s.log, ip.String())
		logctx.Info(context.Background(), log, "connect")
		var timer atomic.Pointer[time.Timer]
		var g *guardConn
		g = newGuardConn(c, s.opts.Hostname, s.lc.MaxLineLength, s.lc.DataTimeout.D(), s.postmaster(),
			func() {
				if t := timer.Load(); t != nil {
					t.Stop()
				}
				s.release(ip)
				obs.SMTPSession(name, -1)
				logctx.Info(context.Background(), log, "disconnect", append([]any{"duration", time.Since(start).Round(time.Millisecond)}, sessionTLSAttrs(g.secured.Load())...)...)
			})
		g.session, g.line.log, g.line.pace = session, log, s.newPace()
		g.rdns = s.startRDNS(ip)
		g.line.observe = func(stage, rule string) { obs.SMTPReject(name, stage, reasonOfRule[rule]) }
		g.onTLS = func(st *tls.ConnectionState) {
			obs.SMTPTLS(name, st.Version, st.CipherSuite, len(st.PeerCertificates) > 0)
		}
		g.onTLSFailure = func(reason string) { obs.SMTPTLSFailure(name, reason) }
		hs := min(s.lc.CommandTimeout.D(), handshakeTimeout)
		switch {
		case l.implicitTLS:
			g.implicitTLS(s.opts.TLSConfig, hs)
		case s.opts.TLSConfig != nil:
			g.enableTLS(s.opts.TLSConfig, hs)
		}
		timer.Store(time.AfterFunc(s.lc.SessionTimeout.D(), func() {
			log.Warn("session timeout, closing connection", "timeout", s.lc.SessionTimeout.D())
			g.Close()
		}))
		return g, nil
	}
}

// Close closes the listener once.
func (l *limitListener) Close() error {
	var err error
	l.closeOnce.Do(func() { err = l.Listener.Close() })
	return err
}

// refuse tells an over-limit client to come back later and hangs up.
func refuse(c net.Conn, hostname string) {
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "421 4.7.0 %s Too many connections, try again later\r\n", hostname)
	c.Close()
}

// remoteIP returns the client address of c, unmapped from IPv4-in-IPv6.
func remoteIP(c net.Conn) netip.Addr {
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return ta.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(c.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// backend creates sessions for go-smtp.
type backend struct{ s *Server }

var _ smtp.Backend = (*backend)(nil)

// NewSession runs the connect and helo filter stages and starts a session.
func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return newSession(b.s, c)
}
