package sdk

import (
	"net/netip"
	"testing"
)

// TestParsedAddr: the kept parse answers for the text it was made from
// and parses any other text anew.
func TestParsedAddr(t *testing.T) {
	var p parsedAddr
	for _, raw := range []string{"192.0.2.1", "192.0.2.1", "2001:db8::1", "", "not an ip", "192.0.2.1", "::ffff:192.0.2.1"} {
		want, _ := netip.ParseAddr(raw)
		if got := p.parse(raw); got != want {
			t.Errorf("parse(%q) = %v, want %v", raw, got, want)
		}
	}
}
