package senderpolicy

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/sluice-mta/sluice/sdk"
)

// Header From alignment modes.
const (
	alignRelaxed = "relaxed"
	alignStrict  = "strict"
	alignOff     = "off"
)

// defaultUser is the max_rcpts key for users not listed.
const defaultUser = "*"

// policy is the plugin's configuration, checked.
type policy struct {
	// owners maps a login (lower case) to the addresses ("user@domain") and
	// domains ("@domain") it may send as, all lower case; nil: no check.
	owners map[string][]string
	// align is how the header From must match the envelope sender.
	align string
	// maxRcpts maps a login (lower case, or "*") to its recipients per
	// message.
	maxRcpts map[string]int
	// blockSenders and blockRcpts are path.Match patterns, lower case.
	blockSenders blockList
	blockRcpts   blockList
}

// blockList is a block list's patterns and, in a wasm instance
// (sdk.InstanceCache), the address it was asked about last with its
// answer: the sender is asked about at every MAIL of a session, and a
// load's messages share their addresses.
type blockList struct {
	pats []string
	// star marks the patterns whose only special character is '*'.
	star []bool

	asked     bool
	last, ans string
}

// loadPolicy reads and checks the configuration. The init check and every
// hook call use it, so nothing lives in guest memory between calls.
func loadPolicy(c *sdk.Ctx) (*policy, error) {
	var top map[string]json.RawMessage
	if err := c.Config("", &top); err != nil && !errors.Is(err, sdk.ErrNotFound) {
		return nil, fmt.Errorf("[config]: %v", err)
	}
	return parsePolicy(top)
}

// parsePolicy checks the [config] table, given as JSON values by key.
func parsePolicy(top map[string]json.RawMessage) (*policy, error) {
	p := &policy{align: alignRelaxed}
	for _, k := range sortedKeys(top) {
		raw := top[k]
		var err error
		switch k {
		case "owners":
			err = p.parseOwners(raw)
		case "from_alignment":
			err = json.Unmarshal(raw, &p.align)
			if err == nil && p.align != alignRelaxed && p.align != alignStrict && p.align != alignOff {
				err = fmt.Errorf("%q: must be \"relaxed\", \"strict\" or \"off\"", p.align)
			}
		case "max_rcpts":
			err = p.parseMaxRcpts(raw)
		case "block_senders":
			p.blockSenders.pats, err = parsePatterns(raw)
			p.blockSenders.classify()
		case "block_rcpts":
			p.blockRcpts.pats, err = parsePatterns(raw)
			p.blockRcpts.classify()
		default:
			return nil, fmt.Errorf("[config]: unknown key %q; keys are owners, from_alignment, max_rcpts, block_senders, block_rcpts", k)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %v", k, err)
		}
	}
	return p, nil
}

func (p *policy) parseOwners(raw json.RawMessage) error {
	var m map[string][]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf(`must map logins to lists of addresses, like {alice = ["alice@example.com", "@example.net"]}: %v`, err)
	}
	p.owners = make(map[string][]string, len(m))
	for _, user := range sortedKeys(m) {
		if user == "" {
			return errors.New("an empty login")
		}
		var list []string
		for _, a := range m[user] {
			a = strings.ToLower(strings.TrimSpace(a))
			i := strings.LastIndexByte(a, '@')
			if i < 0 || i == len(a)-1 || strings.Count(a, "@") > 1 {
				return fmt.Errorf("%s: %q is neither an address (user@domain) nor a domain (@domain)", user, a)
			}
			list = append(list, a)
		}
		p.owners[strings.ToLower(user)] = list
	}
	return nil
}

func (p *policy) parseMaxRcpts(raw json.RawMessage) error {
	var m map[string]int
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf(`must map logins (or "*" for any other) to whole numbers, like {alice = 10, "*" = 50}: %v`, err)
	}
	p.maxRcpts = make(map[string]int, len(m))
	for user, n := range m {
		if n < 1 {
			return fmt.Errorf("%s = %d: must be at least 1", user, n)
		}
		p.maxRcpts[strings.ToLower(user)] = n
	}
	return nil
}

// parsePatterns reads a list of address patterns.
func parsePatterns(raw json.RawMessage) ([]string, error) {
	var list []string
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf(`must be a list of patterns like ["*@spam.example", "bad@*"]: %v`, err)
	}
	for i, s := range list {
		s = strings.ToLower(strings.TrimSpace(s))
		if !strings.Contains(s, "@") {
			return nil, fmt.Errorf("[%d] %q has no @: write \"*@%s\" for a whole domain", i, s, s)
		}
		if _, err := path.Match(s, ""); err != nil {
			return nil, fmt.Errorf("[%d] %q: %v", i, s, err)
		}
		list[i] = s
	}
	return list, nil
}

// owns reports whether user may send as addr (both any case).
func (p *policy) owns(user, addr string) bool {
	addr = strings.ToLower(addr)
	dom := sdk.Domain(addr)
	for _, a := range p.owners[strings.ToLower(user)] {
		if a == addr || (strings.HasPrefix(a, "@") && a[1:] == dom) {
			return true
		}
	}
	return false
}

// maxFor is user's recipients per message, 0 for no limit.
func (p *policy) maxFor(user string) int {
	if n, ok := p.maxRcpts[strings.ToLower(user)]; ok {
		return n
	}
	return p.maxRcpts[defaultUser]
}

// classify marks the patterns starMatch can match, once at load.
func (b *blockList) classify() {
	b.star = make([]bool, len(b.pats))
	for i, pat := range b.pats {
		b.star[i] = !strings.ContainsAny(pat, "?[\\")
	}
}

// blocked returns the first pattern that matches addr (any case), "" if
// none, answered from the last call's when addr is the same. Matching is
// path.Match on the lower-case address: "*" is any run of characters but
// "/", "?" one character, "[a-z]" a class. A pattern whose only special
// character is '*' (nearly every one: "*@spam.example") is matched by
// starMatch, without path.Match's backtracking, which was most of a MAIL
// call's guest time with two such patterns; FuzzStarMatch checks the two
// against each other.
func (b *blockList) blocked(addr string) string {
	if sdk.InstanceCache && b.asked && addr == b.last {
		return b.ans
	}
	lower := strings.ToLower(addr)
	ans := ""
	for i, pat := range b.pats {
		ok := false
		if b.star[i] {
			ok = starMatch(pat, lower)
		} else {
			ok, _ = path.Match(pat, lower)
		}
		if ok {
			ans = pat
			break
		}
	}
	if sdk.InstanceCache {
		b.asked, b.last, b.ans = true, addr, ans
	}
	return ans
}

// starMatch reports whether name matches pat, in which '*' stands for any
// run of characters but '/' and every other character for itself. Each
// part between stars is matched where it first occurs: any later
// occurrence only leaves less of name to the parts after it and more to
// the star before it.
func starMatch(pat, name string) bool {
	i := strings.IndexByte(pat, '*')
	if i < 0 {
		return pat == name
	}
	if !strings.HasPrefix(name, pat[:i]) {
		return false
	}
	name, pat = name[i:], pat[i+1:]
	for {
		i = strings.IndexByte(pat, '*')
		if i < 0 {
			return len(name) >= len(pat) && strings.HasSuffix(name, pat) &&
				!strings.Contains(name[:len(name)-len(pat)], "/")
		}
		part := pat[:i]
		j := strings.Index(name, part)
		if j < 0 || strings.Contains(name[:j], "/") {
			return false
		}
		name, pat = name[j+len(part):], pat[i+1:]
	}
}

// aligned reports whether header domain h and envelope domain e align:
// strict, when equal; relaxed, also when one is a subdomain of the other
// and the shorter has at least two labels (so "mail.example.com" and
// "example.com" align, "a.example.com" and "b.example.com" do not, and no
// two domains align through a bare top-level domain).
func aligned(mode, h, e string) bool {
	if h == "" || e == "" {
		return false
	}
	if h == e {
		return true
	}
	if mode != alignRelaxed {
		return false
	}
	long, short := h, e
	if len(long) < len(short) {
		long, short = short, long
	}
	return strings.Contains(short, ".") && strings.HasSuffix(long, "."+short)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
