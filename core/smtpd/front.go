package smtpd

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// A service keeps its listeners across a reload while its options change:
// the listeners, the connection counts and the open connections belong to
// a front, shared by every Server that served the service, and each Server
// is one immutable configuration with its own go-smtp server. Replace makes
// a new Server current: the connections accepted from then on are handed to
// its go-smtp server (through its connFeed), while the sessions of the old
// one finish with the options they started with, after which the old
// go-smtp server is shut down.

// front is what the configurations of one service share.
type front struct {
	mu        sync.Mutex
	cur       *Server
	gens      map[*Server]struct{} // started and not yet retired
	closed    bool                 // Close or Shutdown: accept nothing more
	listeners map[net.Listener]bool
	conns     int
	perIP     map[netip.Addr]int
	open      map[*guardConn]struct{}
	stress    stressState // stress.go, like admit and release
	drained   drainCounts
}

func newFront(s *Server) *front {
	return &front{
		cur:       s,
		gens:      make(map[*Server]struct{}),
		listeners: make(map[net.Listener]bool),
		perIP:     make(map[netip.Addr]int),
		open:      make(map[*guardConn]struct{}),
	}
}

// current returns the configuration new connections get.
func (f *front) current() *Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cur
}

// connFeed is the listener a configuration's go-smtp server serves: it
// hands over the connections the service's listeners accepted while the
// configuration was current.
type connFeed struct {
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newConnFeed() *connFeed {
	return &connFeed{ch: make(chan net.Conn), closed: make(chan struct{})}
}

// Accept returns the next connection handed over, or net.ErrClosed.
func (c *connFeed) Accept() (net.Conn, error) {
	select {
	case conn := <-c.ch:
		return conn, nil
	case <-c.closed:
		return nil, net.ErrClosed
	}
}

// Close stops the feed; a connection not yet taken is refused to push.
func (c *connFeed) Close() error {
	c.once.Do(func() { close(c.closed) })
	return nil
}

// Addr is a placeholder: the feed has no address of its own.
func (c *connFeed) Addr() net.Addr { return &net.TCPAddr{} }

// push hands conn to the go-smtp server; false when the feed is closed.
func (c *connFeed) push(conn net.Conn) bool {
	select {
	case c.ch <- conn:
		return true
	case <-c.closed:
		return false
	}
}

// start runs the configuration's go-smtp server on its feed (once).
func (s *Server) start() {
	s.startOnce.Do(func() {
		s.started.Store(true)
		go func() {
			defer close(s.served)
			_ = s.smtp.Serve(s.feed) // returns when the feed is closed
		}()
	})
}

// retire stops handing the configuration connections and waits until
// every session it started has ended; then its context is cancelled. It
// may be called any number of times; each call waits.
func (s *Server) retire() {
	s.retireOnce.Do(func() {
		go func() {
			defer close(s.retired)
			s.feed.Close()
			if s.started.Load() {
				<-s.served // no connection is being added to go-smtp's count
				_ = s.smtp.Shutdown(s.ctx)
			}
			s.cancel()
			s.fr.mu.Lock()
			delete(s.fr.gens, s)
			s.fr.mu.Unlock()
		}()
	})
	<-s.retired
}

// Retired returns a channel closed once s, replaced (Replace) or shut
// down, has no session left: what its options named may then be closed.
func (s *Server) Retired() <-chan struct{} { return s.retired }

// Replace makes next serve this service from now on — a reload: every
// connection accepted afterwards gets next's options, while the sessions
// already open finish with the options they started with. next comes from
// New and must not have served; s stays the handle for Serve, Replace,
// Shutdown and Close (any Server of the service will do). Failed-login
// counts carry over when the AuthLimits are the same.
func (s *Server) Replace(next *Server) error {
	if next.fr == s.fr {
		return nil
	}
	f := s.fr
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return errors.New("smtpd: Replace after Close or Shutdown")
	}
	if next.started.Load() || len(next.fr.listeners) > 0 {
		f.mu.Unlock()
		return errors.New("smtpd: Replace with a server that has served")
	}
	old := f.cur
	next.fr = f
	if next.opts.AuthKV == nil { // keep the in-memory failure counts
		next.authThrottle.kv = old.authThrottle.kv
	}
	f.cur = next
	f.gens[next] = struct{}{}
	next.start()
	f.mu.Unlock()
	go old.retire()
	return nil
}

// CloseListener stops accepting on l, one of the listeners given to Serve
// or ServeTLS, whose Serve then returns nil; open sessions go on.
func (s *Server) CloseListener(l net.Listener) error {
	f := s.fr
	f.mu.Lock()
	_, ok := f.listeners[l]
	delete(f.listeners, l)
	f.mu.Unlock()
	if !ok {
		return errors.New("smtpd: CloseListener of a listener not being served")
	}
	return l.Close()
}

// listening reports whether l is still to be served.
func (f *front) listening(l net.Listener) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listeners[rawListener(l)] && !f.closed
}

// acceptLoop accepts on ll until it is closed and hands every admitted
// connection to the current configuration's go-smtp server.
func (f *front) acceptLoop(ll *limitListener) error {
	var delay time.Duration // after a temporary accept error, as net/http does
	for {
		c, err := ll.Accept()
		if err != nil {
			if !f.listening(ll.Listener) {
				return nil
			}
			var te interface{ Temporary() bool }
			if errors.As(err, &te) && te.Temporary() {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				f.current().log.Warn("accept failed; retrying", "err", err, "in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		f.hand(c.(*guardConn))
	}
}

// hand registers g as open and gives it to the current configuration.
func (f *front) hand(g *guardConn) {
	d := &g.drain
	d.mu.Lock()
	if d.gone { // closed already (its session timeout)
		d.mu.Unlock()
		return
	}
	d.front, d.stats = f, &f.drained
	f.mu.Lock()
	if f.closed { // stopping: accepted just before the listener closed
		f.mu.Unlock()
		d.mu.Unlock()
		g.cut(countIdle)
		return
	}
	f.open[g] = struct{}{}
	ok := f.cur.feed.push(g) // under mu: the configuration cannot change meanwhile
	f.mu.Unlock()
	d.mu.Unlock()
	if !ok {
		g.Close()
	}
}

// forget takes a closed connection off its front's list.
func (g *guardConn) forget() {
	d := &g.drain
	d.mu.Lock()
	d.gone = true
	f := d.front
	d.mu.Unlock()
	if f != nil {
		f.mu.Lock()
		delete(f.open, g)
		f.mu.Unlock()
	}
}
