package server

import (
	"crypto/x509"
	"fmt"

	"net"
	"net/netip"
	"time"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/dns"

	"github.com/sluice-mta/sluice/core/delivery"
	"github.com/sluice-mta/sluice/core/delivery/local"
	"github.com/sluice-mta/sluice/core/delivery/mtasts"
	"github.com/sluice-mta/sluice/core/delivery/remote"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/tlsconf"
)

// newRouter assembles delivery: the local transports (Maildir, LMTP
// servers per domain as [addressing] says), outbound SMTP to other
// domains' mail exchangers (or a smarthost) with SRS for forwards, and the
// deliver-stage plugins in front of them.
func (s *Server) newRouter() (*delivery.Router, error) {
	cfg := s.cfg
	dc := cfg.Delivery
	relayRoots, err := caPool("delivery.relay_ca_file", cfg.Path(dc.RelayCAFile))
	if err != nil {
		return nil, err
	}
	roots, err := caPool("delivery.ca_file", cfg.Path(dc.CAFile))
	if err != nil {
		return nil, err
	}
	opts := remote.Options{
		Hostname:          cfg.Hostname,
		Resolver:          s.resolver,
		Port:              dc.Port,
		RelayHost:         dc.RelayHost,
		RelayUser:         dc.RelayUser,
		RelayPassword:     dc.RelayPassword,
		RelayTLS:          dc.RelayTLS,
		RelayRoots:        relayRoots,
		Roots:             roots,
		DANE:              dc.DANE,
		Routes:            map[string]remote.Route{},
		MaxConnections:    dc.MaxConnections,
		MaxPerDestination: dc.MaxPerDestination,
		PerDomainLimit:    map[string]int{},
		MaxRcptsPerTxn:    dc.MaxRcptsPerTransaction,
		MaxMsgsPerConn:    dc.MaxMessagesPerConnection,
		IdleTimeout:       dc.IdleTimeout.D(),
		TLS:               dc.TLS,
		OwnAddrs:          s.ownAddrs(),
		MaxReceived:       dc.MaxReceivedHeaders,
		Logger:            s.log,
		TLSReport:         s.tlsrpt,
	}
	for i, r := range dc.Routes {
		if r.Relay != "" || r.TLS != "" {
			roots, err := caPool(fmt.Sprintf("delivery.route[%d].relay_ca_file", i), cfg.Path(r.RelayCAFile))
			if err != nil {
				return nil, err
			}
			opts.Routes[r.Domain] = remote.Route{Relay: r.Relay, User: r.RelayUser, Password: r.RelayPassword, RelayTLS: r.RelayTLS, TLS: r.TLS, Roots: roots}
		}
		if r.MaxConnections > 0 {
			opts.PerDomainLimit[r.Domain] = r.MaxConnections
		}
	}
	if cfg.Metrics.Enabled {
		opts.TLSObserver = s.metrics.DeliveryTLS
	}
	if dc.MTASTS {
		// Policies are kept in the node's own KV database whatever [kv]
		// says: they are this node's cache, not state to share.
		opts.MTASTS = mtasts.New(mtasts.Options{Resolver: s.resolver, Store: s.kvLocal, Roots: roots,
			Port: s.stsPort, Logger: s.log})
	}
	if s.remote, err = remote.New(opts); err != nil {
		return nil, fmt.Errorf("[delivery]: %w", err)
	}
	ro := delivery.RouterOptions{Addressing: s.addressing, Local: s.newMaildir(), NewLMTP: s.newLMTP, Remote: s.remote, Logger: s.log}
	if s.filters != nil {
		ro.Filters = s.filters
	}
	if s.signer != nil {
		ro.Signer = s.signer
	}
	return delivery.NewRouter(ro), nil
}

// ownAddrs lists where this server listens, for loop detection; an
// unspecified address (0.0.0.0, ::) stands for every local interface.
func (s *Server) ownAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, svc := range s.services {
		for _, a := range svc.Addrs {
			ap, err := netip.ParseAddrPort(a.String())
			if err != nil {
				continue
			}
			if !ap.Addr().IsUnspecified() {
				out = append(out, ap)
				continue
			}
			ifaddrs, _ := net.InterfaceAddrs()
			for _, ia := range ifaddrs {
				if pfx, err := netip.ParsePrefix(ia.String()); err == nil {
					out = append(out, netip.AddrPortFrom(pfx.Addr(), ap.Port()))
				}
			}
		}
	}
	return out
}

// newMaildir returns the Maildir transport ([local] maildir).
func (s *Server) newMaildir() mail.Deliverer {
	return local.NewMaildir(local.MaildirOptions{
		Template: s.cfg.Local.Maildir,
		Create:   s.cfg.Local.CreateMailboxes,
		Logger:   s.log,
	})
}

// newLMTP returns the transport to one LMTP server: [local] lmtp, or a
// domain's own ([[addressing.transport]]).
func (s *Server) newLMTP(addr string) mail.Deliverer {
	return local.NewLMTP(local.LMTPOptions{
		Addr:     addr,
		Hostname: s.cfg.Hostname,
		Timeout:  5 * time.Minute,
		Logger:   s.log,
	})
}

// newResolver is the DNS resolver of [dns].
func newResolver(cfg *config.Config) (*dns.Resolver, error) {
	r, err := dns.New(dns.Options{Servers: cfg.DNS.Servers, Timeout: cfg.DNS.Timeout.D(), Trusted: cfg.DNS.TrustedServers})
	if err != nil {
		return nil, fmt.Errorf("[dns]: %w", err)
	}
	return r, nil
}

// caPool is the pool of a CA-file key's file; nil (the system's roots)
// for "".
func caPool(key, file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pool, err := tlsconf.CAPool(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return pool, nil
}
