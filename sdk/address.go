package sdk

import "strings"

// Domain returns the domain of an address (after its last '@'), lowercased
// and without a final dot; "" when the address has none (the null sender,
// "postmaster"). Plugins compare domains with it so that they agree with
// the host, which normalises domains the same way.
func Domain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSuffix(addr[i+1:], "."))
}
