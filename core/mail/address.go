package mail

import "strings"

// Address rules in one place. An address is "local@domain"; the split is
// at the last '@' (a quoted local part may hold one). Domains compare
// without case and without a final dot; local parts keep their case when
// stored and compare without it, as every mailbox store the core talks to
// does (RFC 5321 lets the receiving host decide).

// Split splits addr at its last '@' into local part and domain, both as
// written. ok is false when addr has no '@'.
func Split(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return addr, "", false
	}
	return addr[:i], addr[i+1:], true
}

// Domain returns addr's domain, normalised (NormDomain); "" when addr has
// no '@' (the null sender, "postmaster").
func Domain(addr string) string {
	_, d, _ := Split(addr)
	return NormDomain(d)
}

// NormDomain lowercases an ASCII domain and drops a final dot. Non-ASCII
// (SMTPUTF8) domains are lowercased with Unicode rules.
func NormDomain(d string) string {
	d = strings.TrimSuffix(d, ".")
	for i := 0; i < len(d); i++ {
		c := d[i]
		if c >= 0x80 {
			return strings.ToLower(d)
		}
		if 'A' <= c && c <= 'Z' {
			return strings.ToLower(d)
		}
	}
	return d
}

// Normalize returns addr with its domain normalised and its local part
// kept as written.
// It returns addr itself, without allocating, when the domain is normal
// already.
func Normalize(addr string) string {
	local, d, ok := Split(addr)
	if !ok {
		return addr
	}
	if n := NormDomain(d); n != d {
		return local + "@" + n
	}
	return addr
}

// Key is the form under which addresses are compared and looked up: the
// whole address lowercased, domain normalised. Two addresses are the same
// recipient when their keys are equal.
// An address that is its own key (lowercase ASCII, no final dot) is
// returned as it is, without allocating: map files of a million entries
// are keyed without a copy.
func Key(addr string) string {
	for i := 0; i < len(addr); i++ {
		if c := addr[i]; c >= 0x80 || 'A' <= c && c <= 'Z' {
			return strings.ToLower(Normalize(addr))
		}
	}
	return Normalize(addr)
}

// SameAddress reports whether a and b name the same recipient.
func SameAddress(a, b string) bool {
	if len(a) == len(b) && strings.EqualFold(a, b) {
		return true
	}
	return Key(a) == Key(b)
}

// Group is the recipients of one destination domain.
type Group struct {
	// Domain is normalised (NormDomain).
	Domain string
	// Rcpts are the recipients as given, in their original order.
	Rcpts []string
}

// GroupByDomain groups addresses by normalised domain, groups in the order
// of their first recipient. It is linear in the number of recipients.
func GroupByDomain(addrs []string) []Group {
	var groups []Group
	var index map[string]int
	for _, a := range addrs {
		d := Domain(a)
		i, ok := -1, false
		if len(groups) < 8 && index == nil {
			for j := range groups {
				if groups[j].Domain == d {
					i, ok = j, true
					break
				}
			}
		} else {
			if index == nil {
				index = make(map[string]int, len(groups)*2)
				for j, g := range groups {
					index[g.Domain] = j
				}
			}
			i, ok = index[d]
		}
		if !ok {
			groups = append(groups, Group{Domain: d})
			i = len(groups) - 1
			if index != nil {
				index[d] = i
			}
		}
		groups[i].Rcpts = append(groups[i].Rcpts, a)
	}
	return groups
}

// ASCII reports that s has no byte above 127: an address that is not
// needs SMTPUTF8 (RFC 6531), a body that is not needs 8BITMIME (RFC 6152).
func ASCII[T ~string | ~[]byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
