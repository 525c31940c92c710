package remote

import (
	"fmt"
	"net/netip"
	"testing"
)

// TestRelayName: the name a connection is logged and pooled under is the
// one fmt wrote before it was appended by hand: host, address, port, for
// IPv4, IPv6 and IPv4-mapped IPv6 addresses (shown as IPv4).
func TestRelayName(t *testing.T) {
	for _, tc := range []struct {
		host, addr string
		port       int
		want       string
	}{
		{"mx.example.com", "192.0.2.1", 25, "mx.example.com[192.0.2.1]:25"},
		{"127.0.0.1", "127.0.0.1", 65535, "127.0.0.1[127.0.0.1]:65535"},
		{"mx6.example.com", "2001:db8::1", 587, "mx6.example.com[2001:db8::1]:587"},
		{"mapped.example", "::ffff:192.0.2.7", 25, "mapped.example[192.0.2.7]:25"},
		{"", "fe80::1%eth0", 0, "[fe80::1%eth0]:0"},
	} {
		a := netip.MustParseAddr(tc.addr)
		got := relayName(tc.host, a, tc.port)
		if got != tc.want {
			t.Errorf("relayName(%q, %s, %d) = %q, want %q", tc.host, a, tc.port, got, tc.want)
		}
		if old := fmt.Sprintf("%s[%s]:%d", tc.host, a.Unmap(), tc.port); got != old {
			t.Errorf("relayName(%q, %s, %d) = %q, fmt wrote %q", tc.host, a, tc.port, got, old)
		}
	}
}
