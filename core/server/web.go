package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-mta/sluice/core/dashboard"
	"github.com/sluice-mta/sluice/core/users"
)

// web is the optional HTTP listener ([http]): metrics, health checks and
// the dashboard.
type web struct {
	ln    net.Listener
	srv   *http.Server
	users *users.File // nil without [http] users_file
	// ready is set once Run serves every listener, cleared at shutdown.
	ready atomic.Bool
}

// listenHTTP tells the metrics registry its sources and, with [http]
// listen set, binds the HTTP listener and builds the dashboard on it.
func (s *Server) listenHTTP() error {
	s.metricSources()
	s.web = &web{}
	cfg := s.cfg.HTTP
	if cfg.Listen == "" {
		return nil
	}
	opts := dashboard.Options{
		Metrics: s.metrics, Queue: s.queue, Ready: s.web.ready.Load, Token: cfg.Token,
		MetricsLogin: cfg.MetricsLogin, Secure: cfg.TLS, Hostname: s.cfg.Hostname, Logger: s.log,
	}
	opts.Plugins = s.plugins // the live filter host's (reload.go)
	if cfg.UsersFile != "" {
		f, err := users.Open(cfg.UsersFile, s.log)
		if err != nil {
			return fmt.Errorf("http.users_file: %w", err)
		}
		s.web.users, opts.Users = f, f
	}
	d, err := dashboard.New(opts)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("[http] listen %q: %w", cfg.Listen, err)
	}
	if cfg.TLS {
		tc := s.tls.Config()
		tc.NextProtos = []string{"h2", "http/1.1"}
		ln = tls.NewListener(ln, tc)
	}
	s.web.ln = ln
	s.web.srv = &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	return nil
}

// HTTPAddr returns the address the HTTP listener is bound to, nil when it
// is off.
func (s *Server) HTTPAddr() net.Addr {
	if s.web == nil || s.web.ln == nil {
		return nil
	}
	return s.web.ln.Addr()
}

// runHTTP serves the HTTP listener with run, then reports the server ready:
// every listener is bound and served and the queue is open.
func (s *Server) runHTTP(run func(func() error)) {
	if s.web.srv != nil {
		run(func() error {
			if err := s.web.srv.Serve(s.web.ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		s.log.Info("listening", "service", "http", "addr", s.web.ln.Addr().String(), "tls", s.cfg.HTTP.TLS)
	}
	s.web.ready.Store(true)
}

// closeHTTP reports the server not ready and closes the HTTP listener.
func (s *Server) closeHTTP() error {
	if s.web == nil {
		return nil
	}
	s.web.ready.Store(false)
	if s.web.srv != nil {
		return s.web.srv.Close()
	}
	if s.web.ln != nil {
		return s.web.ln.Close()
	}
	return nil
}
