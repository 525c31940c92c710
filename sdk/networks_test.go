package sdk

import (
	"net/netip"
	"strings"
	"testing"
)

func TestNetworks(t *testing.T) {
	n, err := ParseNetworks([]string{"192.0.2.0/24", " 2001:db8::/32 ", "198.51.100.7", "::ffff:203.0.113.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	for ip, want := range map[string]bool{
		"192.0.2.200": true, "192.0.3.1": false, "2001:db8::1": true, "2001:db9::1": false,
		"198.51.100.7": true, "198.51.100.8": false, "::ffff:192.0.2.1": true, "203.0.113.9": true,
	} {
		if got := n.Contains(netip.MustParseAddr(ip)); got != want {
			t.Errorf("Contains(%s) = %v, want %v", ip, got, want)
		}
	}
	for _, bad := range []string{"192.0.2.0/33", "not-an-ip", "", "10.0.0.0/8/8"} {
		if _, err := ParseNetworks([]string{bad}); err == nil || !strings.Contains(err.Error(), "is not a network") {
			t.Errorf("ParseNetworks(%q): %v", bad, err)
		}
	}
}
