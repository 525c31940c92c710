package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"

	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/smtpd"
	"github.com/sluice-mta/sluice/core/tlsconf"
	"github.com/sluice-mta/sluice/core/users"
)

// Service is one listening SMTP service.
type Service struct {
	// Name is "smtp" or "submission".
	Name string
	// Addrs are the STARTTLS (or plain) addresses actually bound (a ":0"
	// port resolved); TLSAddrs the implicit-TLS ones.
	Addrs, TLSAddrs []net.Addr

	srv         *smtpd.Server
	lns, tlsLns []net.Listener
	// gen is the service's configuration now (srv until a reload replaces
	// it); conf and tlsConf are the configured address of each listener.
	gen           *smtpd.Server
	conf, tlsConf []string
}

// listenAll loads the certificate and the users file and binds every SMTP
// service: port 25 with STARTTLS, and submission with STARTTLS, implicit
// TLS and required AUTH.
func (s *Server) listenAll() error {
	cfg := s.cfg
	var err error
	s.tls, err = tlsconf.New(tlsconf.Options{
		CertFile: cfg.TLS.Cert,
		KeyFile:  cfg.TLS.Key,
		Extra:    tlsExtra(cfg.TLS),
		Dir:      filepath.Join(cfg.DataDir, "tls"),
		Hostname: cfg.Hostname,
		Logger:   s.log,
	})
	if err != nil {
		return fmt.Errorf("[tls]: %w", err)
	}
	if s.users, err = users.Open(cfg.Submission.UsersFile, s.log); err != nil {
		return fmt.Errorf("submission.users_file: %w", err)
	}

	all := s.allAddrs()
	for _, name := range serviceNames {
		plain, implicitTLS := s.serviceAddrs(name)
		if len(plain)+len(implicitTLS) == 0 {
			continue
		}
		service, err := s.listen(s.serviceOptions(name), plain, implicitTLS, all)
		if err != nil {
			return err
		}
		s.services = append(s.services, service)
	}
	return nil
}

// serviceNames are the SMTP services, in configuration order.
var serviceNames = []string{"smtp", "submission"}

// serviceAddrs returns the configured addresses of service name: plain
// (or STARTTLS) and implicit TLS.
func (s *Server) serviceAddrs(name string) (plain, implicitTLS []string) {
	if name == "smtp" {
		return s.cfg.SMTP.Listen, nil
	}
	return s.cfg.Submission.Listen, s.cfg.Submission.TLSListen
}

// allAddrs is every address configured, which decides how each IPv6
// socket is made (see listenTCP).
func (s *Server) allAddrs() []string {
	cfg := s.cfg
	return append(append(append([]string(nil), cfg.SMTP.Listen...), cfg.Submission.Listen...), cfg.Submission.TLSListen...)
}

// serviceOptions are the options of service name: port 25, or submission
// with required AUTH.
func (s *Server) serviceOptions(name string) smtpd.Options {
	cfg := s.cfg
	if name == "smtp" {
		return s.smtpdOptions("smtp", cfg.SMTP)
	}
	sub := s.smtpdOptions("submission", cfg.Submission.Listener)
	sub.RequireAuth = true
	sub.Users = s.users
	sub.AllowInsecureAuth = cfg.Submission.AllowInsecureAuth
	sub.RestrictSender = cfg.Submission.RestrictSender
	sub.AuthLimits, sub.AuthKV = authLimits(cfg), s.authKV()
	return sub
}

// tlsExtra are the [[tls.extra]] certificates.
func tlsExtra(c config.TLS) []tlsconf.KeyPair {
	var out []tlsconf.KeyPair
	for _, x := range c.Extra {
		out = append(out, tlsconf.KeyPair{CertFile: x.Cert, KeyFile: x.Key})
	}
	return out
}

// tlsMinVersion is a service's oldest TLS version: its own tls_min_version,
// else [tls] min_version, else TLS 1.2 (the names are validated).
func tlsMinVersion(global, service string) uint16 {
	if service == "" {
		service = global
	}
	v, err := tlsconf.ParseVersion(service)
	if err != nil {
		return tls.VersionTLS12
	}
	return v
}

// tlsConfig is a service's TLS configuration: its oldest version, and
// whether it asks clients for a certificate (tls_ask_client_cert).
func (s *Server) tlsConfig(lc config.Listener) *tls.Config {
	c := s.tls.ConfigMin(tlsMinVersion(s.cfg.TLS.MinVersion, lc.TLSMinVersion))
	if lc.TLSAskClientCert {
		c.ClientAuth = tls.RequestClientCert
	}
	return c
}

// smtpdOptions are the options every SMTP service shares.
func (s *Server) smtpdOptions(name string, lc config.Listener) smtpd.Options {
	opts := smtpd.Options{
		Name:            name,
		Hostname:        s.cfg.Hostname,
		NodeID:          s.cfg.NodeID,
		Listener:        lc,
		LocalDomains:    s.cfg.LocalDomains,
		TrustedNetworks: s.cfg.TrustedNetworks,
		Queue:           s.queue,
		Logger:          s.log,
		Spam:            filter.Spam(s.cfg.Spam),
		TLSConfig:       s.tlsConfig(lc),
		DMARCEnforce:    s.cfg.Auth.DMARCEnforce,
		Observer:        s.observers().smtp,
		Recipients:      s.addressing,
		Resolver:        s.resolver,
	}
	if s.filters != nil {
		opts.Filters = s.filters
	}
	if s.checker != nil {
		opts.Auth = s.checker
	}
	return opts
}

// listen builds one service and binds its plain and implicit-TLS addresses;
// all is every address the server binds (see listenTCP).
func (s *Server) listen(opts smtpd.Options, plain, implicitTLS, all []string) (*Service, error) {
	srv, err := smtpd.New(opts)
	if err != nil {
		return nil, fmt.Errorf("[%s]: %w", opts.Name, err)
	}
	svc := &Service{Name: opts.Name, srv: srv, gen: srv, conf: plain, tlsConf: implicitTLS}
	bind := func(addrs []string, lns *[]net.Listener, bound *[]net.Addr, key string) error {
		for _, addr := range addrs {
			ln, err := listenTCP(context.Background(), addr, all)
			if err != nil {
				for _, l := range append(svc.lns, svc.tlsLns...) {
					l.Close()
				}
				return fmt.Errorf("[%s] %s %q: %w", opts.Name, key, addr, err)
			}
			*lns = append(*lns, ln)
			*bound = append(*bound, ln.Addr())
		}
		return nil
	}
	if err := bind(plain, &svc.lns, &svc.Addrs, "listen"); err != nil {
		return nil, err
	}
	if err := bind(implicitTLS, &svc.tlsLns, &svc.TLSAddrs, "tls_listen"); err != nil {
		return nil, err
	}
	return svc, nil
}
