package server

import (
	"context"
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
			return (&net.ListenConfig{Control: v6only(false)}).Listen(ctx, "tcp", addr)
		}
		host, addr = "::", net.JoinHostPort("::", port)
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case err != nil: // a host name
		return (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	case ip.Is4():
		return (&net.ListenConfig{}).Listen(ctx, "tcp4", addr)
	case ip.IsUnspecified() && !hasIPv4On(port, all):
		return (&net.ListenConfig{Control: v6only(false)}).Listen(ctx, "tcp6", addr)
	default:
		return (&net.ListenConfig{Control: v6only(true)}).Listen(ctx, "tcp6", addr)
	}
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
