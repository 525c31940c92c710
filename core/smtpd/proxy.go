package smtpd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pires/go-proxyproto"
)

// maxProxyHeaderWait bounds the wait for a PROXY header (less when the
// command timeout is shorter).
const maxProxyHeaderWait = 10 * time.Second

// proxyListener reads the PROXY protocol header (v1 or v2) of the
// connections of a service with Listener.ProxyProtocol, so that the client
// the header names is the connection's RemoteAddr: the address limits,
// relay control, SPF, Received, logs and plugins see. Each header is read
// in a goroutine of its own, so a balancer that is slow to send one does
// not hold up the others; the service's options are read at each
// connection, so a reload that turns the protocol on or off applies to the
// next one. Without ProxyProtocol connections pass through unchanged.
//
// Until the first connection that needs a header, Accept takes connections
// straight from the listener on its caller's goroutine (one goroutine hop
// and channel hand-off fewer per connection, on the path from the client's
// connect to the banner); from that connection on, a goroutine of its own
// (loop) accepts and headers are read concurrently, for as long as the
// listener lives.
//
// With ProxyProtocol, only ProxyTrusted may connect: a connection from
// elsewhere (with a header or not) is closed at once, and so is one from a
// balancer without a valid header within the command timeout (at most
// maxProxyHeaderWait).
type proxyListener struct {
	net.Listener // the one Serve was given
	f            *front

	startOnce sync.Once
	looping   bool          // loop accepts (only Accept's goroutine reads and sets it)
	ready     chan net.Conn // connections whose header has been read
	errs      chan error    // Accept errors of the listener
	done      chan struct{} // closed when the listener is closed
	doneOnce  sync.Once
}

func newProxyListener(l net.Listener, f *front) *proxyListener {
	return &proxyListener{Listener: l, f: f, ready: make(chan net.Conn), errs: make(chan error), done: make(chan struct{})}
}

// rawListener returns the listener l wraps, or l.
func rawListener(l net.Listener) net.Listener {
	if p, ok := l.(*proxyListener); ok {
		return p.Listener
	}
	return l
}

// Accept returns the next connection, its PROXY header read if the
// service wants one.
func (p *proxyListener) Accept() (net.Conn, error) {
	if !p.looping {
		c, err := p.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				p.stop()
			}
			return nil, err
		}
		s := p.f.current()
		if !s.lc.ProxyProtocol {
			return c, nil
		}
		// The first connection with a header to read: from now on loop
		// accepts, so that a slow balancer holds up no one.
		p.looping = true
		go p.handshake(s, c)
	}
	p.startOnce.Do(func() { go p.loop() })
	select {
	case c := <-p.ready:
		return c, nil
	case err := <-p.errs:
		return nil, err
	case <-p.done:
		return nil, net.ErrClosed
	}
}

// Close closes the listener.
func (p *proxyListener) Close() error {
	p.stop()
	return p.Listener.Close()
}

func (p *proxyListener) stop() { p.doneOnce.Do(func() { close(p.done) }) }

// loop accepts connections and hands them on until the listener closes.
func (p *proxyListener) loop() {
	for {
		c, err := p.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				p.stop()
				return
			}
			select { // a temporary error: the caller backs off before taking the next
			case p.errs <- err:
				continue
			case <-p.done:
				return
			}
		}
		s := p.f.current()
		if !s.lc.ProxyProtocol {
			p.hand(c)
			continue
		}
		go p.handshake(s, c)
	}
}

// hand gives c to Accept, or closes it if the listener closes first.
func (p *proxyListener) hand(c net.Conn) {
	select {
	case p.ready <- c:
	case <-p.done:
		c.Close()
	}
}

// handshake reads the PROXY header of c, from a balancer of s, and hands
// on the connection; a connection not from a balancer, or without a valid
// header, is closed.
func (p *proxyListener) handshake(s *Server, c net.Conn) {
	from := remoteIP(c)
	refuse := func(why string) {
		s.log.Warn("connection refused: "+why, "proxy", from.String(), "proxy_protocol", true)
		s.opts.Observer.SMTPConnection(s.opts.Name, "refused")
		c.Close()
	}
	if !s.proxyTrusted(from) {
		refuse("not from a proxy_trusted address")
		return
	}
	wait := min(s.lc.CommandTimeout.D(), maxProxyHeaderWait)
	pc := proxyproto.NewConn(c, proxyproto.WithPolicy(proxyproto.REQUIRE),
		proxyproto.SetReadHeaderTimeout(wait), proxyproto.ValidateHeader(checkProxyHeader))
	h := pc.ProxyHeader() // reads it
	if h == nil {
		refuse("no valid PROXY protocol header")
		return
	}
	s.log.Debug("proxied connection", "proxy", from.String(), "client", remoteIP(pc).String(), "version", h.Version)
	p.hand(pc)
}

// checkProxyHeader takes a header for a TCP connection (or LOCAL, the
// balancer's own health check, which is served as a connection from the
// balancer).
func checkProxyHeader(h *proxyproto.Header) error {
	if h.Command.IsLocal() {
		return nil
	}
	switch h.TransportProtocol {
	case proxyproto.TCPv4, proxyproto.TCPv6:
		return nil
	}
	return fmt.Errorf("PROXY header for %v, not TCP", h.TransportProtocol)
}

// proxyTrusted reports whether ip is one of the service's balancers.
func (s *Server) proxyTrusted(ip netip.Addr) bool {
	for _, n := range s.lc.ProxyTrusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
