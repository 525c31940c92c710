// Package server assembles a running Sluice from its configuration: the
// queue, local delivery, the SMTP listeners and the admin socket. The
// `sluice serve` command and the integration tests both start it from here.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sluice-mta/sluice/core/addressing"
	"github.com/sluice-mta/sluice/core/admin"
	"github.com/sluice-mta/sluice/core/auth"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/delivery/remote"
	"github.com/sluice-mta/sluice/core/dns"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/core/kvstore"
	"github.com/sluice-mta/sluice/core/logctx"
	"github.com/sluice-mta/sluice/core/metrics"
	"github.com/sluice-mta/sluice/core/queue"
	"github.com/sluice-mta/sluice/core/tlsconf"
	"github.com/sluice-mta/sluice/core/tlsrpt"
	"github.com/sluice-mta/sluice/core/users"
)

// Server is a whole running MTA.
type Server struct {
	cfg      *config.Config
	log      *slog.Logger
	queue    *queue.Queue
	filters  *filter.Host // nil when plugins are off
	resolver *dns.Resolver
	remote   *remote.Deliverer
	tls      *tlsconf.Store
	users    *users.File
	// pluginClock is the clock plugins see (WithPluginClock); nil = time.Now.
	pluginClock func() time.Time
	checker     *auth.Checker // nil when every inbound check is off
	signer      *auth.Signer  // nil without DKIM keys
	metrics     *metrics.Registry
	admin       *admin.Server
	web         *web // the [http] listener
	services    []*Service

	// addressing resolves recipients: at RCPT, at local submission and
	// for the delivery router's transports.
	addressing *addressing.Resolver

	// router is the deliverer the queue has; sh is what every snapshot of
	// the server shares (reload.go).
	router *tracked
	sh     *shared

	// kv is the shared state's store ([kv]): the plugins' KV and the AUTH
	// throttle's counts; kvClose closes it (nil for Badger: kvLocal).
	kv      filter.KV
	kvClose func() error
	// kvLocal is the node's own KV database (data_dir/kv): kv on Badger,
	// and the MTA-STS policy cache whatever [kv] says.
	kvLocal *kvstore.Store
	// stsPort is the MTA-STS policy servers' HTTPS port (WithMTASTSPort);
	// 0 is 443.
	stsPort int
	// tlsrpt counts outbound TLS outcomes and sends the daily reports;
	// tlsrptClock is its clock (WithTLSReportClock).
	tlsrpt      *tlsrpt.Reporter
	tlsrptClock tlsrptClock
	// nodeID is node_id, or the machine's host name (for the metrics;
	// the Received: comment and the log lines carry only a configured
	// node_id).
	nodeID string
}

// New opens the queue, binds every listener and the admin socket, and
// returns a server ready to Run. On error nothing is left open.
func New(ctx context.Context, cfg *config.Config, log *slog.Logger, opts ...Option) (s *Server, err error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("data_dir %s: %w", cfg.DataDir, err)
	}
	// A line logged with an SMTP session's context carries its ID, from
	// whichever package logs it (core/logctx).
	log = logctx.Logger(log)
	nodeID := cfg.NodeID
	if nodeID != "" {
		log = log.With("node", nodeID)
	} else if h, err := os.Hostname(); err == nil {
		nodeID = h
	}
	s = &Server{cfg: cfg, log: log, nodeID: nodeID}
	s.sh = newShared(s)
	for _, o := range opts {
		o(s)
	}
	partial := s // s is nil once an error is returned
	defer func() {
		if err != nil {
			partial.close()
		}
	}()

	s.metrics = newMetrics(cfg)
	metrics.SetNode(s.metrics, s.nodeID)
	s.queue, err = queue.Open(ctx, queue.Options{
		Dir:          filepath.Join(cfg.DataDir, "queue"),
		Hostname:     cfg.Hostname,
		MinBackoff:   cfg.Queue.MinBackoff.D(),
		MaxBackoff:   cfg.Queue.MaxBackoff.D(),
		MaxLifetime:  cfg.Queue.MaxLifetime.D(),
		DelayWarning: cfg.Queue.DelayWarning.D(),
		HoldLifetime: cfg.Queue.HoldLifetime.D(),
		Workers:      cfg.Queue.Workers,
		GCInterval:   cfg.Queue.GCInterval.D(),
		Logger:       log,
		Observer:     s.observers().queue,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the queue: %w", err)
	}
	if err := s.newKV(ctx); err != nil {
		return nil, err
	}
	if s.resolver, err = newResolver(cfg); err != nil {
		return nil, err
	}
	if err := s.newAuth(); err != nil {
		return nil, err
	}
	s.newTLSReport()
	if err := s.newAddressing(); err != nil {
		return nil, err
	}
	if cfg.Plugins.Dir != "" {
		if s.filters, err = s.newFilters(ctx); err != nil {
			return nil, err
		}
	}
	backend := admin.Backend{Queue: s.queue, Metrics: s.metrics, Submit: s.submitLocal, Reload: s.Reload, Plugins: s.plugins,
		Auth: authAdmin{s}, TLSReport: s.tlsrpt}

	gid := -1
	if cfg.Admin.SocketGroup != "" {
		if gid, err = config.LookupGroup(cfg.Admin.SocketGroup); err != nil {
			return nil, fmt.Errorf("admin.socket_group: %w", err)
		}
	}
	s.admin, err = admin.NewServer(cfg.Admin.Socket, backend, log, admin.WithSocketPerm(cfg.Admin.SocketMode.Perm(), gid))
	if err != nil {
		return nil, err
	}

	if err := s.listenAll(); err != nil {
		return nil, err
	}
	// Delivery comes last: loop detection needs the addresses bound above.
	router, err := s.newRouter()
	if err != nil {
		return nil, err
	}
	s.router = newTracked(router)
	s.queue.SetDeliverer(s.router)
	if err := s.listenHTTP(); err != nil {
		return nil, err
	}
	return s, nil
}

// newFilters starts the WebAssembly filter host on the plugins directory,
// with the queue's database for the plugins' key-value store.
func (s *Server) newFilters(ctx context.Context) (*filter.Host, error) {
	cfg := s.cfg.Plugins
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("plugins.dir %s: %w", cfg.Dir, err)
	}
	h, err := filter.New(ctx, filter.Options{
		Dir:      cfg.Dir,
		CacheDir: cfg.CacheDir,
		KV:       s.kv,
		Resolver: s.resolver,
		Metrics:  s.metrics,
		Observer: s.observers().plugins,
		Logger:   s.log,
		Now:      s.pluginClock,
		// The plugins' memory budget: the configured one, or the machine's.
		MemoryBudget: cmp.Or(int64(cfg.MemoryBudget), filter.MachineMemory()),
	})
	if err != nil {
		return nil, fmt.Errorf("plugins in %s: %w", cfg.Dir, err)
	}
	return h, nil
}

// Option adjusts a Server at New.
type Option func(*Server)

// WithMTASTSPort fetches MTA-STS policies from this port instead of 443,
// so that tests can serve them without privileges.
func WithMTASTSPort(port int) Option {
	return func(s *Server) { s.stsPort = port }
}

// WithPluginClock sets the clock plugins see through the host's now
// function, so rate-limit windows and greylisting delays can be tested
// without waiting.
func WithPluginClock(now func() time.Time) Option {
	return func(s *Server) { s.pluginClock = now }
}

// plugins lists the plugins of the live filter host (none without one).
func (s *Server) plugins() []filter.PluginInfo {
	if f := s.live().filters; f != nil {
		return f.Plugins()
	}
	return nil
}

// Services returns the bound SMTP services, in configuration order, as
// they are now (a reload may add listeners and services).
func (s *Server) Services() []*Service { return s.live().services }

// Queue returns the server's queue.
func (s *Server) Queue() *queue.Queue { return s.queue }

// Run serves until ctx is done, then stops gracefully (stop.go): nothing
// new is accepted, sessions and deliveries in progress may finish within
// shutdown_timeout; then the queue is closed.
func (s *Server) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	run := func(f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				select {
				case errc <- err:
				default:
				}
				cancel()
			}
		}()
	}
	sh := s.sh
	sh.mu.Lock()
	sh.running, sh.run, sh.runCtx = true, run, ctx
	l := s.live()
	for _, svc := range l.services {
		for _, ln := range svc.lns {
			s.serveLocked(svc, ln, false)
		}
		for _, ln := range svc.tlsLns {
			s.serveLocked(svc, ln, true)
		}
		s.log.Info("listening", "service", svc.Name, "addrs", fmt.Sprint(svc.Addrs), "tls_addrs", fmt.Sprint(svc.TLSAddrs))
	}
	s.watchLocked(l)
	sh.mu.Unlock()
	run(s.admin.Serve)
	// The queue outlives ctx: a stop drains it (stop.go).
	qctx, stopQueue := context.WithCancel(context.WithoutCancel(ctx))
	defer stopQueue()
	run(func() error { return s.queue.Run(qctx) })
	run(func() error { return s.tlsrpt.Run(qctx) })
	s.runHTTP(run)

	<-ctx.Done()
	s.stop()
	stopQueue()
	wg.Wait() // the queue's Run has returned: no delivery is in flight
	s.closeBack()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}

// Close releases everything New opened, for a server that will not Run
// (Run closes it by itself).
func (s *Server) Close() { s.close() }

// close releases everything New opened; it is safe on a partial server.
func (s *Server) close() {
	s.closeFront()
	s.closeBack()
}

// closeBack stops outbound connections and the filter host, also those a
// reload replaced, then closes the queue.
func (s *Server) closeBack() {
	sh := s.sh
	sh.mu.Lock()
	select {
	case <-sh.stopped:
	default:
		close(sh.stopped)
	}
	var retiring []*retiree
	for r := range sh.retiring {
		retiring = append(retiring, r)
	}
	sh.mu.Unlock()
	for _, r := range retiring {
		r.close()
	}
	s = s.live()
	if s.addressing != nil {
		s.addressing.Close()
	}
	if s.remote != nil {
		if err := s.remote.Close(); err != nil {
			s.log.Warn("closing outbound connections", "err", err)
		}
	}
	if s.filters != nil {
		if err := s.filters.Close(context.Background()); err != nil {
			s.log.Warn("closing the filter host", "err", err)
		}
	}
	if s.kvClose != nil {
		if err := s.kvClose(); err != nil {
			s.log.Warn("closing the KV store", "err", err)
		}
	}
	if s.kvLocal != nil {
		if err := s.kvLocal.Close(); err != nil {
			s.log.Warn("closing the KV database", "err", err)
		}
	}
	if s.tlsrpt != nil {
		if err := s.tlsrpt.Close(); err != nil {
			s.log.Warn("writing the TLS report counts", "err", err)
		}
	}
	if s.queue != nil {
		if err := s.queue.Close(); err != nil {
			s.log.Warn("closing the queue", "err", err)
		}
	}
}

// closeFront stops the SMTP services and the admin socket, so nothing new
// reaches the queue.
func (s *Server) closeFront() {
	var errs []error
	for _, svc := range s.live().services {
		errs = append(errs, svc.srv.Close())
		for _, ln := range append(svc.lns, svc.tlsLns...) {
			ln.Close()
		}
	}
	if s.admin != nil {
		errs = append(errs, s.admin.Close())
	}
	errs = append(errs, s.closeHTTP())
	if err := errors.Join(errs...); err != nil {
		s.log.Warn("shutdown", "err", err)
	}
}
