package server

import (
	"context"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAcceptedConnectionsKeepAlive: a connection accepted on a listener
// from listenTCP has TCP keepalive on with the listener's probes, although
// nothing sets it on the connection (Linux copies it from the listening
// socket), so a client that vanished is still noticed.
func TestAcceptedConnectionsKeepAlive(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0"} {
		t.Run(addr, func(t *testing.T) {
			ln, err := listenTCP(context.Background(), addr, []string{addr})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			a, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			raw, err := a.(*net.TCPConn).SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			err = raw.Control(func(fd uintptr) {
				for name, o := range map[string][2]int{
					"SO_KEEPALIVE":  {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
					"TCP_KEEPIDLE":  {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
					"TCP_KEEPINTVL": {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
					"TCP_KEEPCNT":   {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
				} {
					v, err := unix.GetsockoptInt(int(fd), o[0], o[1])
					if err != nil {
						t.Errorf("getsockopt %s: %v", name, err)
					}
					got[name] = v
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": keepIdle, "TCP_KEEPINTVL": keepInterval, "TCP_KEEPCNT": keepCount}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("accepted connection: %s = %d, want %d", k, got[k], v)
				}
			}
		})
	}
}
