package addressing

import (
	"context"
	"fmt"
	"slices"

	"github.com/sluice-mta/sluice/core/mail"
)

// expander resolves one address: it walks aliases depth first, detects
// loops on the path, removes duplicates and collects the targets.
type expander struct {
	r   *Resolver
	t   *Table
	ctx context.Context
	res *Resolution
	// trace fills in Resolution.Steps.
	trace bool
	// expanded holds the keys of the aliases expanded; taken those of
	// the targets once there are many (until then they are compared in a
	// loop).
	expanded    []string
	expandedSet map[string]bool
	taken       map[string]bool
	// lmtpNo is the LMTP server's refusal of the address as given.
	lmtpNo *mail.Reply
}

// expand resolves addr (which has a domain, local to us) at depth; path
// holds the alias sources being expanded above it. found is false when
// addr is unknown.
func (x *expander) expand(addr string, path []string, depth int) (found bool, err error) {
	if depth > x.r.opts.MaxDepth {
		return false, fmt.Errorf("%w: more than %d levels at %s", ErrTooDeep, x.r.opts.MaxDepth, addr)
	}
	t := x.t
	local, dom, _ := mail.Split(addr)
	d := mail.NormDomain(dom)
	k := mail.Key(addr)

	// The most specific first: the address as written.
	if raw, ok := t.aliases[k]; ok {
		return x.alias(addr, k, raw, "alias", path, depth)
	}
	if _, ok := t.mailboxes[k]; ok {
		return x.mailbox(addr, d, depth, "mailbox")
	}
	// Then without its +detail.
	base, baseAddr, baseKey := local, addr, k
	if b := x.r.stripDetail(local); b != local {
		base, baseAddr = b, b+"@"+dom
		baseKey = mail.Key(baseAddr)
		x.step(depth, addr, "detail dropped", baseAddr)
		if raw, ok := t.aliases[baseKey]; ok {
			return x.alias(baseAddr, baseKey, raw, "alias", path, depth)
		}
	}
	// A bare user ("postmaster  admin@example.com") at the configured
	// local domains.
	if x.r.cfgDomains[d] {
		for _, l := range []string{local, base} {
			if raw, ok := t.bare[mail.Key(l)]; ok {
				return x.alias(baseAddr, baseKey, raw, "bare user "+l, path, depth)
			}
		}
	}
	// A mailbox, as the maps or the LMTP server say.
	exists, err := x.exists(baseAddr, baseKey, d, depth)
	if err != nil {
		return false, err
	}
	if exists {
		return x.mailbox(baseAddr, d, depth, x.existsRule(baseKey, d))
	}
	// The catch-all, only when nothing more specific matched.
	if raw, ok := t.catchAll[d]; ok {
		x.lmtpNo = nil
		return x.alias(addr, "@"+d, raw, "catch-all @"+d, path, depth)
	}
	x.step(depth, addr, "unknown")
	return false, nil
}

// existsRule names what made a mailbox exist, for the trace.
func (x *expander) existsRule(k, d string) string {
	if _, ok := x.t.mailboxes[k]; ok {
		return "mailbox"
	}
	if _, ok := x.t.anyUser[d]; ok {
		return "mailbox (any user at @" + d + ")"
	}
	switch x.r.opts.Verify {
	case VerifyNone:
		return "mailbox (verify = none)"
	case VerifyLMTP:
		if tr := x.r.transport(d); tr.Kind == LMTP {
			return "mailbox (LMTP " + tr.LMTP + " accepts it)"
		}
	}
	return "mailbox"
}

// exists decides whether addr is a mailbox. An LMTP refusal of the
// address as given is kept in lmtpNo; a temporary failure is an error.
func (x *expander) exists(addr, k, d string, depth int) (bool, error) {
	if _, ok := x.t.mailboxes[k]; ok {
		return true, nil
	}
	if _, ok := x.t.anyUser[d]; ok {
		return true, nil
	}
	switch x.r.opts.Verify {
	case VerifyNone:
		return true, nil
	case VerifyLMTP:
		tr := x.r.transport(d)
		if tr.Kind != LMTP || x.r.lmtp == nil {
			return false, nil // Maildir domains are decided by the maps
		}
		v, err := x.r.lmtp.check(x.ctx, tr.LMTP, addr)
		if err != nil {
			return false, rejected(451, "4.3.0", x.res.Original, "temporary failure verifying the mailbox, try again later",
				fmt.Errorf("%w: %v", ErrTempFail, err))
		}
		if !v.exists && depth == 0 {
			no := v.reply
			x.lmtpNo = &no
		}
		return v.exists, nil
	}
	return false, nil
}

// alias expands the targets of the alias source k (matched for addr).
func (x *expander) alias(addr, k, raw, rule string, path []string, depth int) (bool, error) {
	var buf [8]string
	targets := splitTargets(raw, buf[:0])
	x.step(depth, addr, rule, targets...)
	if depth == 0 {
		x.res.Kind = Alias
	}
	if x.wasExpanded(k) {
		return true, nil // expanded already through another alias
	}
	x.expanded = append(x.expanded, k)
	path = append(path, addr)
	found := false
	local, _, _ := mail.Split(addr)
	for _, tgt := range targets {
		if len(x.res.Targets) >= x.r.opts.MaxTargets {
			return false, fmt.Errorf("%w: more than %d", ErrTooMany, x.r.opts.MaxTargets)
		}
		tl, tdom, ok := mail.Split(tgt)
		switch {
		case !ok:
			tgt = tgt + "@" + x.r.origin // Postfix qualifies with $myorigin
		case tl == "":
			tgt = local + "@" + tdom // "@other.example": the same user there
		}
		tk := mail.Key(tgt)
		if tk == k || tk == mail.Key(addr) {
			// "a@d  a@d, b@d": a keeps a copy in its mailbox.
			ok, err := x.self(tgt, depth+1)
			if err != nil {
				return false, err
			}
			found = found || ok
			continue
		}
		if i := slices.IndexFunc(path, func(p string) bool { return mail.Key(p) == tk }); i >= 0 {
			return false, &LoopError{Chain: append(slices.Clone(path[i:]), tgt)}
		}
		td := mail.Domain(tgt)
		if !x.r.isLocal(x.t, td) {
			x.add(Target{Addr: mail.Normalize(tgt), Forward: true, Transport: Transport{Kind: Relay}})
			found = true
			continue
		}
		if x.wasExpanded(tk) {
			found = true
			continue
		}
		ok, err := x.expand(tgt, path, depth+1)
		if err != nil {
			return false, err
		}
		if !ok {
			x.res.Problems = append(x.res.Problems, fmt.Sprintf("%s: target %s is unknown, skipped", addr, tgt))
		}
		found = found || ok
	}
	if len(x.res.Targets) > x.r.opts.MaxTargets {
		return false, fmt.Errorf("%w: more than %d", ErrTooMany, x.r.opts.MaxTargets)
	}
	return found, nil
}

// wasExpanded reports whether the alias k was expanded already. Aliases
// are bounded by MaxDepth deep but not wide, so the list is searched
// linearly only while short.
func (x *expander) wasExpanded(k string) bool {
	if len(x.expanded) > 64 {
		if x.expandedSet == nil {
			x.expandedSet = make(map[string]bool, 2*len(x.expanded))
		}
		for _, e := range x.expanded {
			x.expandedSet[e] = true
		}
		x.expanded = x.expanded[:0]
	}
	return slices.Contains(x.expanded, k) || x.expandedSet[k]
}

// self delivers an alias's copy to its own address, when that is a
// mailbox.
func (x *expander) self(addr string, depth int) (bool, error) {
	d := mail.Domain(addr)
	k := mail.Key(addr)
	ok, err := x.exists(addr, k, d, depth)
	if err != nil || !ok {
		if err == nil {
			x.step(depth, addr, "unknown (alias to itself, but no mailbox)")
			x.res.Problems = append(x.res.Problems, fmt.Sprintf("%s: aliased to itself but has no mailbox, skipped", addr))
		}
		return false, err
	}
	return x.mailbox(addr, d, depth, x.existsRule(k, d))
}

// mailbox takes addr as a local mailbox target.
func (x *expander) mailbox(addr, d string, depth int, rule string) (bool, error) {
	x.step(depth, addr, rule)
	if depth == 0 {
		x.res.Kind = Mailbox
	}
	x.add(Target{Addr: mail.Normalize(addr), Transport: x.r.transport(d)})
	return true, nil
}

// add appends a target unless it is a duplicate.
func (x *expander) add(t Target) {
	const linear = 16
	k := mail.Key(t.Addr)
	targets := x.res.Targets
	if len(targets) < linear {
		for _, o := range targets {
			if mail.Key(o.Addr) == k {
				return
			}
		}
	} else {
		if x.taken == nil {
			x.taken = make(map[string]bool, 2*linear)
			for _, o := range targets {
				x.taken[mail.Key(o.Addr)] = true
			}
		}
		if x.taken[k] {
			return
		}
		x.taken[k] = true
	}
	x.res.Targets = append(targets, t)
}

// step records a lookup for the trace.
func (x *expander) step(depth int, addr, rule string, to ...string) {
	if !x.trace {
		return
	}
	x.res.Steps = append(x.res.Steps, Step{Depth: depth, Addr: addr, Rule: rule, To: slices.Clone(to)})
}
