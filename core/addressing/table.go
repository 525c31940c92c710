package addressing

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/sluice-mta/sluice/core/mail"
)

// maxErrors is how many mistakes of one load are reported; maxWarnings
// how many warnings are kept.
const (
	maxErrors   = 20
	maxWarnings = 100
)

// Files names the map files; an empty name leaves that map out.
type Files struct {
	// Domains lists more local domains, one a line.
	Domains string
	// Mailboxes lists the mailboxes, one address a line (Postfix
	// virtual_mailbox_maps: "user@domain [path]"; the path is ignored).
	Mailboxes string
	// Aliases maps sources to targets (Postfix virtual(5)).
	Aliases string
}

// list returns the files that are set, in load order.
func (f Files) list() []string {
	var out []string
	for _, p := range []string{f.Domains, f.Mailboxes, f.Aliases} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Table is one immutable snapshot of the map files. Lookups are map
// lookups keyed by mail.Key (addresses) and mail.NormDomain (domains).
// Keys and alias values share the memory of the file text they came
// from.
type Table struct {
	// domains are every domain the files make local: the domains file,
	// the domains of mailboxes and alias sources.
	domains map[string]struct{}
	// mailboxes holds the keys of the mailbox addresses.
	mailboxes map[string]struct{}
	// anyUser holds domains with an "@domain" mailbox line: any local
	// part is a mailbox there.
	anyUser map[string]struct{}
	// aliases maps a source address key to its raw target list.
	aliases map[string]string
	// bare maps a bare local part (source without a domain, matched at
	// the configured local_domains) to its raw target list.
	bare map[string]string
	// catchAll maps a domain to the raw targets of its "@domain" alias.
	catchAll map[string]string
	warnings []string
	stats    Stats
}

// Stats counts a Table's entries.
type Stats struct {
	Domains   int
	Mailboxes int
	Aliases   int
	CatchAlls int
}

// Entries is the number of lines that made entries.
func (s Stats) Entries() int { return s.Domains + s.Mailboxes + s.Aliases + s.CatchAlls }

// emptyTable is the Table of no files.
func emptyTable() *Table {
	return &Table{
		domains: map[string]struct{}{}, mailboxes: map[string]struct{}{}, anyUser: map[string]struct{}{},
		aliases: map[string]string{}, bare: map[string]string{}, catchAll: map[string]string{},
	}
}

// LoadTable reads the map files into a new Table, each file on its own
// goroutine. Its error lists every mistake (up to 20) as
// "file:line: what is wrong"; then no Table is returned.
func LoadTable(files Files) (*Table, error) {
	parts := []struct {
		path string
		fn   func(*builder, entry) error
		grow func(t *Table, n int)
	}{
		{files.Domains, (*builder).domain, func(*Table, int) {}},
		{files.Mailboxes, (*builder).mailbox, func(t *Table, n int) { t.mailboxes = make(map[string]struct{}, n) }},
		{files.Aliases, (*builder).alias, func(t *Table, n int) { t.aliases = make(map[string]string, n) }},
	}
	builders := make([]*builder, 0, len(parts))
	var wg sync.WaitGroup
	for _, p := range parts {
		if p.path == "" {
			continue
		}
		b := &builder{t: emptyTable(), file: p.path}
		builders = append(builders, b)
		wg.Go(func() { b.load(p.fn, p.grow) })
	}
	wg.Wait()
	return merge(builders)
}

// load reads b.file and takes each of its lines with fn.
func (b *builder) load(fn func(*builder, entry) error, grow func(*Table, int)) {
	text, err := readText(b.file)
	if err != nil {
		b.errs = append(b.errs, err)
		return
	}
	grow(b.t, strings.Count(text, "\n")+1)
	if err := scanFile(text, func(e entry) error { return fn(b, e) }, b.warn); err != nil {
		b.errs = append(b.errs, err)
	}
}

// readText reads a whole file into one string without a second copy.
func readText(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var sb strings.Builder
	if fi, err := f.Stat(); err == nil && fi.Size() > 0 {
		sb.Grow(int(fi.Size()) + 1)
	}
	if _, err := io.Copy(&sb, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return sb.String(), nil
}

// merge joins what each file's builder made into one Table, or their
// mistakes, in file order.
func merge(builders []*builder) (*Table, error) {
	var errs []error
	dropped := 0
	for _, b := range builders {
		for _, e := range b.errs {
			if len(errs) < maxErrors {
				errs = append(errs, e)
			} else {
				dropped++
			}
		}
		dropped += b.dropped
	}
	if len(errs) > 0 {
		if dropped > 0 {
			errs = append(errs, fmt.Errorf("… and %d more mistakes", dropped))
		}
		return nil, errors.Join(errs...)
	}
	t := emptyTable()
	quiet := 0
	for _, b := range builders {
		bt := b.t
		if len(bt.domains) > len(t.domains) {
			bt.domains, t.domains = t.domains, bt.domains
		}
		for d := range bt.domains {
			t.domains[d] = struct{}{}
		}
		if len(bt.mailboxes) > 0 || len(bt.anyUser) > 0 {
			t.mailboxes, t.anyUser = bt.mailboxes, bt.anyUser
		}
		if len(bt.aliases) > 0 || len(bt.bare) > 0 || len(bt.catchAll) > 0 {
			t.aliases, t.bare, t.catchAll = bt.aliases, bt.bare, bt.catchAll
		}
		t.stats.Mailboxes += bt.stats.Mailboxes
		t.stats.Aliases += bt.stats.Aliases
		t.stats.CatchAlls += bt.stats.CatchAlls
		for _, w := range bt.warnings {
			if len(t.warnings) < maxWarnings {
				t.warnings = append(t.warnings, w)
			} else {
				quiet++
			}
		}
		quiet += b.quiet
	}
	if quiet > 0 {
		t.warnings = append(t.warnings, fmt.Sprintf("… and %d more warnings", quiet))
	}
	t.stats.Domains = len(t.domains)
	return t, nil
}

// Warnings returns what loading found odd but accepted, as
// "file:line: what": duplicates (the first is kept), catch-alls and
// "@domain" mailboxes (which accept any local part), continuation lines
// with nothing to continue.
func (t *Table) Warnings() []string { return t.warnings }

// Stats counts the entries.
func (t *Table) Stats() Stats { return t.stats }

// HasDomain reports whether the files make domain (normalised) local.
func (t *Table) HasDomain(domain string) bool {
	_, ok := t.domains[domain]
	return ok
}

// builder fills a Table from the files.
type builder struct {
	t       *Table
	file    string
	errs    []error
	dropped int
	quiet   int
	// lastDomain is the domain added last.
	lastDomain string
}

// bad records a mistake at line; past maxErrors it only counts them.
func (b *builder) bad(line int, format string, args ...any) error {
	if len(b.errs) >= maxErrors {
		b.dropped++
		return nil
	}
	b.errs = append(b.errs, &SyntaxError{File: b.file, Line: line, Msg: fmt.Sprintf(format, args...)})
	return nil
}

// warn records a warning at line.
func (b *builder) warn(line int, msg string) {
	if len(b.t.warnings) >= maxWarnings {
		b.quiet++
		return
	}
	b.t.warnings = append(b.t.warnings, fmt.Sprintf("%s:%d: %s", b.file, line, msg))
}

// addDomain makes d (normalised) local.
func (b *builder) addDomain(d string) {
	if d != b.lastDomain { // files are often sorted by domain
		b.t.domains[d] = struct{}{}
		b.lastDomain = d
	}
}

// domain takes a line of the domains file: its first field.
func (b *builder) domain(e entry) error {
	if strings.ContainsRune(e.key, '@') {
		return b.bad(e.line, "%q is an address; this file lists domains, one a line", e.key)
	}
	d := mail.NormDomain(e.key)
	if why := checkDomain(d); why != "" {
		return b.bad(e.line, "%q is not a domain: %s", e.key, why)
	}
	b.addDomain(d)
	return nil
}

// mailbox takes a line of the mailboxes file: "user@domain [anything]",
// "@domain [anything]" (any local part) or "domain [anything]" (the
// domain is local).
func (b *builder) mailbox(e entry) error {
	local, dom, ok := mail.Split(e.key)
	if !ok {
		if strings.ContainsRune(e.key, '.') {
			return b.domain(e)
		}
		return b.bad(e.line, "%q is not an address; write it like \"user@example.com\"", e.key)
	}
	d := mail.NormDomain(dom)
	if why := checkDomain(d); why != "" {
		return b.bad(e.line, "%q: %s", e.key, why)
	}
	if local == "" {
		if _, dup := b.t.anyUser[d]; dup {
			b.warn(e.line, fmt.Sprintf("duplicate entry %q (the first is kept)", e.key))
			return nil
		}
		b.t.anyUser[d] = struct{}{}
		b.addDomain(d)
		b.warn(e.line, fmt.Sprintf("%q accepts any local part at %s", e.key, d))
		return nil
	}
	if why := checkLocal(local); why != "" {
		return b.bad(e.line, "%q: %s", e.key, why)
	}
	n := len(b.t.mailboxes)
	b.t.mailboxes[mail.Key(e.key)] = struct{}{}
	if len(b.t.mailboxes) == n {
		b.warn(e.line, fmt.Sprintf("duplicate entry %q", e.key))
		return nil
	}
	b.t.stats.Mailboxes++
	b.addDomain(d)
	return nil
}

// alias takes a line of the aliases file (virtual(5)): "user@domain
// targets", "@domain targets" (catch-all), "user targets" (a bare user at
// the configured local_domains) or "domain anything" (the domain is
// local; Postfix's virtual alias domain line).
func (b *builder) alias(e entry) error {
	local, dom, hasAt := mail.Split(e.key)
	if !hasAt {
		if strings.HasSuffix(e.key, ":") {
			return b.bad(e.line, "%q ends with ':', as in aliases(5); this file takes virtual(5) lines: \"user@example.com target@example.net\"", e.key)
		}
		if strings.ContainsRune(e.key, '.') {
			return b.domain(e)
		}
	}
	if e.value == "" {
		return b.bad(e.line, "%q has no target; write \"%s target@example.com\"", e.key, e.key)
	}
	if why := b.checkTargets(e.value); why != "" {
		return b.bad(e.line, "%q: %s", e.key, why)
	}
	if !hasAt {
		if why := checkLocal(local); why != "" {
			return b.bad(e.line, "%q: %s", e.key, why)
		}
		return b.put(b.t.bare, mail.Key(e.key), e, &b.t.stats.Aliases)
	}
	d := mail.NormDomain(dom)
	if why := checkDomain(d); why != "" {
		return b.bad(e.line, "%q: %s", e.key, why)
	}
	b.addDomain(d)
	if local == "" {
		if _, dup := b.t.catchAll[d]; !dup && !domainAlias(e.value) {
			b.warn(e.line, fmt.Sprintf("catch-all %q accepts any local part at %s", e.key, d))
		}
		return b.put(b.t.catchAll, d, e, &b.t.stats.CatchAlls)
	}
	if why := checkLocal(local); why != "" {
		return b.bad(e.line, "%q: %s", e.key, why)
	}
	return b.put(b.t.aliases, mail.Key(e.key), e, &b.t.stats.Aliases)
}

// domainAlias reports whether every target is "@domain": a domain alias,
// whose addresses are looked up again at the other domain (and are refused
// there when unknown), so it accepts no more than that domain does.
func domainAlias(targets string) bool {
	var buf [8]string
	ts := splitTargets(targets, buf[:0])
	for _, t := range ts {
		if !strings.HasPrefix(t, "@") {
			return false
		}
	}
	return len(ts) > 0
}

// put stores an alias and counts it, keeping the first of duplicates.
func (b *builder) put(m map[string]string, k string, e entry, count *int) error {
	if _, dup := m[k]; dup {
		b.warn(e.line, fmt.Sprintf("duplicate entry %q (the first is kept)", e.key))
		return nil
	}
	m[k] = e.value
	*count++
	return nil
}

// checkTargets returns why an alias value is unusable, or "".
func (b *builder) checkTargets(v string) string {
	var buf [8]string
	targets := splitTargets(v, buf[:0])
	if len(targets) == 0 {
		return "no target"
	}
	for _, t := range targets {
		switch {
		case t[0] == '|' || t[0] == '/' || strings.HasPrefix(t, ":include:"):
			return fmt.Sprintf("target %q is a command, file or include; virtual(5) targets are addresses (those belong in aliases(5))", t)
		}
		local, dom, ok := mail.Split(t)
		if why := checkLocal(local); why != "" {
			return fmt.Sprintf("target %q: %s", t, why)
		}
		if !ok {
			if local == "" {
				return "empty target"
			}
			continue // qualified with the origin domain
		}
		if why := checkDomain(mail.NormDomain(dom)); why != "" {
			return fmt.Sprintf("target %q: %s", t, why)
		}
	}
	return ""
}
