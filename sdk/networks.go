package sdk

import (
	"fmt"
	"net/netip"
	"strings"
)

// Networks is a list of IP networks, for a plugin's "skip these clients"
// or "only these clients" settings.
type Networks []netip.Prefix

// ParseNetworks reads networks written as "192.0.2.0/24", "2001:db8::/32"
// or single addresses. The error names the first bad entry and the form
// expected, ready for a configuration error.
func ParseNetworks(list []string) (Networks, error) {
	out := make(Networks, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if !strings.Contains(s, "/") {
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, badNetwork(s)
			}
			a = a.Unmap()
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return nil, badNetwork(s)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func badNetwork(s string) error {
	return fmt.Errorf("%q is not a network: write one like \"192.0.2.0/24\" or \"2001:db8::/32\"", s)
}

// Contains reports whether ip is in one of the networks; an IPv4-mapped
// IPv6 address counts as the IPv4 address it maps.
func (n Networks) Contains(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range n {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
