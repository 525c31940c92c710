package server

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// listenTCP binds one configured address. all is every address the server
// binds (every service, plain and implicit TLS), which decides how an IPv6
// socket is made:
//
//   - an IPv4 address ("0.0.0.0:25", "127.0.0.1:25") is an IPv4 socket;
//   - "[::]:25" (or ":25") alone is one dual-stack socket, for IPv4 and
//     IPv6 clients;
//   - "[::]:25" beside any IPv4 address on port 25 is IPv6-only
//     (IPV6_V6ONLY), so that both bind: Go's wildcard listen is
//     dual-stack, and "0.0.0.0:25" with "[::]:25" would otherwise fail with
//     "address already in use";
//   - any other IPv6 address is IPv6-only;
//   - a host name is resolved and bound as Go does.
func listenTCP(ctx context.Context, addr string, all []string) (net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if host == "" {
		if !hasIPv4On(port, all) {
			return listenConfig(v6only(false)).Listen(ctx, "tcp", addr)
		}
		host, addr = "::", net.JoinHostPort("::", port)
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil: // a host name
		return listenConfig(nil).Listen(ctx, "tcp", addr)
	case ip.Is4():
		return listenConfig(nil).Listen(ctx, "tcp4", addr)
	case ip.IsUnspecified() && !hasIPv4On(port, all):
		return listenConfig(v6only(false)).Listen(ctx, "tcp6", addr)
	default:
		return listenConfig(v6only(true)).Listen(ctx, "tcp6", addr)
	}
}

// Keepalive of accepted connections: Go's defaults (probe after 15 s idle,
// every 15 s, 9 probes).
const (
	keepIdle     = 15
	keepInterval = 15
	keepCount    = 9
)

// listenConfig returns the configuration of a listening socket: control
// (may be nil) runs before it is bound, then TCP keepalive is set on the
// listening socket itself. Linux copies SO_KEEPALIVE, TCP_KEEPIDLE,
// TCP_KEEPINTVL and TCP_KEEPCNT to every connection it accepts, so Go is
// told not to set them again on each one (KeepAlive -1): that was four
// setsockopt calls per accepted connection, a message each with clients
// that connect per message (issue 17).
func listenConfig(control func(network, address string, c syscall.RawConn) error) *net.ListenConfig {
	return &net.ListenConfig{KeepAlive: -1, Control: func(network, address string, c syscall.RawConn) error {
		if control != nil {
			if err := control(network, address, c); err != nil {
				return err
			}
		}
		var serr error
		if err := c.Control(func(fd uintptr) { serr = setKeepAlive(int(fd)) }); err != nil {
			return err
		}
		return serr
	}}
}

// setKeepAlive turns TCP keepalive on for socket fd with the probes above.
func setKeepAlive(fd int) error {
	for _, o := range []struct{ level, opt, val int }{
		{unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1},
		{unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, keepIdle},
		{unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, keepInterval},
		{unix.IPPROTO_TCP, unix.TCP_KEEPCNT, keepCount},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.val); err != nil {
			return fmt.Errorf("set TCP keepalive on the listening socket: %w", err)
		}
	}
	return nil
}

// hasIPv4On reports whether one of addrs is an IPv4 address on port (not
// port 0, which binds a different free port each time).
func hasIPv4On(port string, addrs []string) bool {
	if port == "0" {
		return false
	}
	for _, a := range addrs {
		h, p, err := net.SplitHostPort(a)
		if err != nil || p != port {
			continue
		}
		if ip, err := netip.ParseAddr(h); err == nil && ip.Is4() {
			return true
		}
	}
	return false
}

// v6only returns a net.ListenConfig.Control that sets IPV6_V6ONLY on an
// IPv6 socket before it is bound (a no-op on other sockets).
func v6only(on bool) func(network, address string, c syscall.RawConn) error {
	val := 0
	if on {
		val = 1
	}
	return func(network, _ string, c syscall.RawConn) error {
		if network != "tcp6" {
			return nil
		}
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, val)
		}); err != nil {
			return err
		}
		return serr
	}
}
