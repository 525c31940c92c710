package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-mta/sluice/core/admin"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/core/smtpd"
	"github.com/sluice-mta/sluice/core/tlsconf"
	"github.com/sluice-mta/sluice/core/users"
)

// A reload (SIGHUP, `sluice reload`) builds a new snapshot of the Server:
// a shallow copy holding the new configuration and the components built
// from it — the DNS resolver, the inbound checks and DKIM signer, the
// filter host, the users file, the certificate, the addressing maps, each
// SMTP service's configuration and the delivery router — reusing what did
// not change. Everything that can fail happens first; a failure closes
// what was built and changes nothing. Then the snapshot becomes the live
// one in one step: each SMTP service gets its new configuration (sessions
// in progress keep theirs, smtpd.Server.Replace), listeners are added and
// removed, the queue gets the new router. What was replaced is closed once
// nothing uses it: the old configurations' sessions have ended and the
// deliveries the old router started have finished.

// shared is what every snapshot of a Server shares.
type shared struct {
	cur        atomic.Pointer[Server]
	reloadMu   sync.Mutex // one reload (or stop) at a time
	stopping   bool       // a stop began: no more reloads (under reloadMu)
	configPath string     // "" is the built-in default
	logCtl     *LogControl

	mu       sync.Mutex // guards the fields below
	running  bool       // Run is serving; run and runCtx are set
	run      func(func() error)
	runCtx   context.Context
	watches  map[any]context.CancelFunc
	retiring map[*retiree]struct{}
	stopped  chan struct{} // closed by closeBack
}

func newShared(s *Server) *shared {
	sh := &shared{watches: map[any]context.CancelFunc{}, retiring: map[*retiree]struct{}{}, stopped: make(chan struct{})}
	sh.cur.Store(s)
	return sh
}

// WithConfigFile names the file the configuration was loaded from, which
// a reload reads again ("" is the built-in default).
func WithConfigFile(path string) Option {
	return func(s *Server) { s.sh.configPath = path }
}

// live returns the snapshot the server runs with now: its configuration
// and the components built from it. A snapshot never changes.
func (s *Server) live() *Server { return s.sh.cur.Load() }

// Config returns the configuration the server runs with now.
func (s *Server) Config() *config.Config { return s.live().cfg }

// Reload reads the configuration file again and applies it to the running
// server; SIGHUP and `sluice reload` call it. New connections and
// deliveries get the new configuration, sessions in progress finish with
// the one they started with. Keys a running server cannot change keep
// their values and are named in the report. A mistake — in the file
// (file:line), a key file, a map, a certificate, a port that cannot be
// bound — changes nothing and is returned.
func (s *Server) Reload(ctx context.Context) (*admin.ReloadReport, error) {
	sh := s.sh
	sh.reloadMu.Lock()
	defer sh.reloadMu.Unlock()
	if sh.stopping {
		return nil, errStopping
	}
	old := s.live()
	cfg, changes, err := config.Reload(sh.configPath, old.cfg)
	if err == nil {
		var rep *admin.ReloadReport
		if rep, err = s.apply(ctx, old, cfg, changes); err == nil {
			s.log.Info("reloaded", "file", rep.File, "changed", fmt.Sprint(rep.Changed),
				"listening", fmt.Sprint(rep.Listening), "stopped", fmt.Sprint(rep.Stopped), "restart_needed", fmt.Sprint(rep.Restart))
			return rep, nil
		}
	}
	s.log.Error("reload failed; nothing changed", "err", err)
	return nil, err
}

// reloadBuild is a reload in progress.
type reloadBuild struct {
	old, n   *Server
	plans    []*servicePlan
	undo     []func() // closes what was built, if the reload fails
	replaced []func() // closes what the new snapshot no longer uses
}

// apply builds a snapshot from cfg and makes it the live one.
func (s *Server) apply(ctx context.Context, old *Server, cfg *config.Config, changes []config.Change) (*admin.ReloadReport, error) {
	n := *old
	n.cfg = cfg
	b := &reloadBuild{old: old, n: &n}
	if err := b.build(ctx); err != nil {
		for i := len(b.undo) - 1; i >= 0; i-- {
			b.undo[i]()
		}
		return nil, err
	}
	rep := &admin.ReloadReport{File: s.sh.configPath, Changed: []string{}, Restart: []string{}, Listening: []string{}, Stopped: []string{}}
	logChanged := false
	for _, ch := range changes {
		switch {
		case ch.Restart:
			rep.Restart = append(rep.Restart, ch.Key)
		case (ch.Key == "log_level" || ch.Key == "log_format") && s.sh.logCtl == nil:
			rep.Restart = append(rep.Restart, ch.Key)
		default:
			logChanged = logChanged || ch.Key == "log_level" || ch.Key == "log_format"
			rep.Changed = append(rep.Changed, ch.Key)
		}
	}
	s.commit(b, rep)
	if logChanged {
		s.sh.logCtl.Set(cfg.LogLevel, cfg.LogFormat)
	}
	return rep, nil
}

// build makes everything the new snapshot needs; it is the part of a
// reload that can fail.
func (b *reloadBuild) build(ctx context.Context) error {
	old, n := b.old, b.n
	oc, nc := old.cfg, n.cfg
	var err error
	dnsChanged := !reflect.DeepEqual(oc.DNS, nc.DNS)
	if dnsChanged {
		if n.resolver, err = newResolver(nc); err != nil {
			return err
		}
	}
	n.checker, n.signer = nil, nil
	if err := n.newAuth(); err != nil {
		return err
	}
	switch {
	case nc.Plugins.Dir == "":
		n.filters = nil
	case old.filters == nil || oc.Plugins != nc.Plugins || dnsChanged:
		if n.filters, err = n.newFilters(ctx); err != nil {
			return err
		}
		f := n.filters
		b.undo = append(b.undo, func() { f.Close(context.Background()) })
	}
	if old.filters != nil && n.filters != old.filters {
		f := old.filters
		b.replaced = append(b.replaced, func() { f.Close(context.Background()) })
	}
	if nc.Submission.UsersFile != oc.Submission.UsersFile {
		if n.users, err = users.Open(nc.Submission.UsersFile, n.log); err != nil {
			return fmt.Errorf("submission.users_file: %w", err)
		}
	}
	if !reflect.DeepEqual(nc.TLS, oc.TLS) {
		if n.tls, err = tlsconf.New(tlsconf.Options{CertFile: nc.TLS.Cert, KeyFile: nc.TLS.Key, Extra: tlsExtra(nc.TLS),
			Dir: filepath.Join(nc.DataDir, "tls"), Hostname: nc.Hostname, Logger: n.log}); err != nil {
			return fmt.Errorf("[tls]: %w", err)
		}
	}
	if !reflect.DeepEqual(addressingKeys(oc), addressingKeys(nc)) {
		if err := n.newAddressing(); err != nil {
			return err
		}
		a := n.addressing
		b.undo = append(b.undo, func() { a.Close() })
		o := old.addressing
		b.replaced = append(b.replaced, func() { o.Close() })
	}
	if err := b.planServices(); err != nil {
		return err
	}
	router, err := n.newRouter()
	if err != nil {
		return err
	}
	r := n.remote
	b.undo = append(b.undo, func() { r.Close() })
	o := old.remote
	b.replaced = append(b.replaced, func() { o.Close() })
	n.router = old.router.next(router)
	// Last, the files reloaded in place: a mistake leaves them as they
	// were, and nothing after can fail.
	if n.addressing == old.addressing {
		if err := old.ReloadAddressing(); err != nil {
			return fmt.Errorf("[addressing]: %w", err)
		}
	}
	if n.tls == old.tls {
		if err := old.tls.Reload(); err != nil {
			return fmt.Errorf("[tls]: %w", err)
		}
	}
	return nil
}

// addressingKeys are the keys the addressing maps are built from.
func addressingKeys(c *config.Config) any {
	return []any{c.Addressing, c.LocalDomains, c.Hostname, c.Local.Transport, c.Local.LMTP}
}

// servicePlan is how a reload changes one SMTP service.
type servicePlan struct {
	old, svc *Service      // before (nil for a new service) and after
	gen      *smtpd.Server // the new configuration (svc.srv itself when new)
	added    []boundLn
	removed  []net.Listener
}

// boundLn is a listener a reload bound.
type boundLn struct {
	ln          net.Listener
	implicitTLS bool
}

// planServices builds each service's new configuration and binds the
// addresses added to it; the listeners it keeps stay as they are.
func (b *reloadBuild) planServices() error {
	n := b.n
	all := n.allAddrs()
	byName := map[string]*Service{}
	for _, svc := range b.old.services {
		byName[svc.Name] = svc
	}
	n.services = nil
	for _, name := range serviceNames {
		plain, implicitTLS := n.serviceAddrs(name)
		old := byName[name]
		if old == nil && len(plain)+len(implicitTLS) == 0 {
			continue
		}
		gen, err := smtpd.New(n.serviceOptions(name))
		if err != nil {
			return fmt.Errorf("[%s]: %w", name, err)
		}
		p := &servicePlan{old: old, gen: gen,
			svc: &Service{Name: name, srv: gen, gen: gen, conf: plain, tlsConf: implicitTLS}}
		b.plans = append(b.plans, p)
		b.undo = append(b.undo, func() {
			gen.Close()
			for _, a := range p.added {
				a.ln.Close()
			}
		})
		var oldConf, oldTLSConf []string
		var oldLns, oldTLSLns []net.Listener
		if old != nil {
			p.svc.srv = old.srv
			oldConf, oldTLSConf, oldLns, oldTLSLns = old.conf, old.tlsConf, old.lns, old.tlsLns
		}
		if err := p.bind(plain, oldConf, oldLns, all, false); err != nil {
			return err
		}
		if err := p.bind(implicitTLS, oldTLSConf, oldTLSLns, all, true); err != nil {
			return err
		}
		n.services = append(n.services, p.svc)
	}
	return nil
}

// bind gives the planned service a listener for each of addrs: the one it
// had for the address, or a new one; the old ones not wanted any more are
// to be closed.
func (p *servicePlan) bind(addrs, oldConf []string, oldLns []net.Listener, all []string, implicitTLS bool) error {
	have := map[string]net.Listener{}
	for i, a := range oldConf {
		have[a] = oldLns[i]
	}
	key := "listen"
	if implicitTLS {
		key = "tls_listen"
	}
	for _, a := range addrs {
		ln, ok := have[a]
		if ok {
			delete(have, a)
		} else {
			var err error
			if ln, err = listenTCP(context.Background(), a, all); err != nil {
				return fmt.Errorf("[%s] %s %q: %w", p.svc.Name, key, a, err)
			}
			p.added = append(p.added, boundLn{ln, implicitTLS})
		}
		if implicitTLS {
			p.svc.tlsLns = append(p.svc.tlsLns, ln)
			p.svc.TLSAddrs = append(p.svc.TLSAddrs, ln.Addr())
		} else {
			p.svc.lns = append(p.svc.lns, ln)
			p.svc.Addrs = append(p.svc.Addrs, ln.Addr())
		}
	}
	for _, a := range oldConf {
		if ln, ok := have[a]; ok {
			p.removed = append(p.removed, ln)
		}
	}
	return nil
}

// commit makes b's snapshot the live one; nothing in it can fail.
func (s *Server) commit(b *reloadBuild, rep *admin.ReloadReport) {
	sh, old, n := s.sh, b.old, b.n
	sh.cur.Store(n)
	var waits []<-chan struct{}
	sh.mu.Lock()
	for _, p := range b.plans {
		if p.old != nil {
			waits = append(waits, p.old.gen.Retired())
			if err := p.old.srv.Replace(p.gen); err != nil {
				s.log.Warn("reload: SMTP service not reconfigured", "service", p.svc.Name, "err", err)
			}
		}
		for _, ln := range p.removed {
			rep.Stopped = append(rep.Stopped, p.svc.Name+" "+ln.Addr().String())
			if err := p.svc.srv.CloseListener(ln); err != nil {
				s.log.Warn("reload: closing a listener", "service", p.svc.Name, "addr", ln.Addr().String(), "err", err)
			}
		}
		for _, a := range p.added {
			rep.Listening = append(rep.Listening, p.svc.Name+" "+a.ln.Addr().String())
			if sh.running {
				s.serveLocked(p.svc, a.ln, a.implicitTLS)
			}
		}
	}
	if n.tls != old.tls {
		s.unwatchLocked(old.tls)
	}
	if n.addressing != old.addressing {
		s.unwatchLocked(old.addressing)
	}
	s.watchLocked(n)
	sh.mu.Unlock()
	s.queue.SetDeliverer(n.router)
	waits = append(waits, old.router.retire())
	s.retireLater(waits, b.replaced)
}

// serveLocked serves ln for svc on a goroutine of Run; sh.mu is held and
// Run is running.
func (s *Server) serveLocked(svc *Service, ln net.Listener, implicitTLS bool) {
	srv := svc.srv
	if implicitTLS {
		s.sh.run(func() error { return srv.ServeTLS(ln) })
	} else {
		s.sh.run(func() error { return srv.Serve(ln) })
	}
}

// watchLocked starts the file watches of l's certificate and addressing
// maps unless they run; sh.mu is held. Without Run, Run starts them.
func (s *Server) watchLocked(l *Server) {
	sh := s.sh
	if !sh.running {
		return
	}
	start := func(key any, f func(context.Context)) {
		if _, ok := sh.watches[key]; ok {
			return
		}
		ctx, cancel := context.WithCancel(sh.runCtx)
		sh.watches[key] = cancel
		go f(ctx)
	}
	start(l.tls, func(ctx context.Context) { l.tls.Watch(ctx, 2*time.Second) })
	start(l.addressing, l.addressing.Watch)
}

// unwatchLocked stops the watch of key; sh.mu is held.
func (s *Server) unwatchLocked(key any) {
	if cancel, ok := s.sh.watches[key]; ok {
		cancel()
		delete(s.sh.watches, key)
	}
}

// retiree is what a reload replaced, to be closed once unused.
type retiree struct {
	once    sync.Once
	closers []func()
}

func (r *retiree) close() {
	r.once.Do(func() {
		for _, c := range r.closers {
			c()
		}
	})
}

// retireLater runs closers once every channel of waits is closed (or at
// closeBack, if the server stops first).
func (s *Server) retireLater(waits []<-chan struct{}, closers []func()) {
	if len(closers) == 0 {
		return
	}
	sh := s.sh
	r := &retiree{closers: closers}
	sh.mu.Lock()
	sh.retiring[r] = struct{}{}
	sh.mu.Unlock()
	go func() {
		for _, w := range waits {
			select {
			case <-w:
			case <-sh.stopped:
				return // closeBack closes it
			}
		}
		r.close()
		sh.mu.Lock()
		delete(sh.retiring, r)
		sh.mu.Unlock()
	}()
}

// tracked is the deliverer the queue is given: it counts the deliveries
// in progress, so that what a reload replaced is closed only after them,
// and once retired passes any delivery still handed to it to its
// successor.
type tracked struct {
	d mail.Deliverer

	mu      sync.Mutex
	n       int
	succ    *tracked
	retired bool
	idle    chan struct{} // closed when retired and n is 0
}

var _ mail.Deliverer = (*tracked)(nil)

func newTracked(d mail.Deliverer) *tracked {
	return &tracked{d: d, idle: make(chan struct{})}
}

// next returns the deliverer that succeeds t, delivering through d.
func (t *tracked) next(d mail.Deliverer) *tracked {
	n := newTracked(d)
	t.mu.Lock()
	t.succ = n
	t.mu.Unlock()
	return n
}

// Deliver delivers through t's deliverer, or its successor's once retired.
func (t *tracked) Deliver(ctx context.Context, m *mail.Message, rcpts []string) []mail.Result {
	t.mu.Lock()
	if t.retired {
		succ := t.succ
		t.mu.Unlock()
		return succ.Deliver(ctx, m, rcpts)
	}
	t.n++
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		if t.n--; t.n == 0 && t.retired {
			close(t.idle)
		}
		t.mu.Unlock()
	}()
	return t.d.Deliver(ctx, m, rcpts)
}

// retire hands new deliveries to the successor and returns a channel
// closed once the deliveries in progress have finished.
func (t *tracked) retire() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.succ == nil {
		panic("server: retiring a deliverer without a successor")
	}
	if !t.retired {
		t.retired = true
		if t.n == 0 {
			close(t.idle)
		}
	}
	return t.idle
}

// errStopping is a reload's answer once a stop began.
var errStopping = errors.New("the server is stopping; not reloaded")
