package houserules

import (
	"fmt"
	"slices"
	"strings"
)

// pkg is the part of `go list -json` output the rules read.
type pkg struct {
	ImportPath   string
	Standard     bool
	DepOnly      bool
	ForTest      string
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// scope says which of a package's imports a rule looks at.
type scope int

const (
	// direct: the package's own Imports.
	direct scope = iota
	// linked: everything in Deps (what the go tool links into it).
	linked
)

// rule is one house rule. Paths in it are relative to the module, "..."
// suffixes match a tree (as in `go list`).
type rule struct {
	// name is a short identifier, the first word of every message.
	name string
	// why is the rule in words, printed with each breach.
	why string
	// applies says which module packages the rule is about.
	applies func(rel string) bool
	// scope of the package's own (non-test) imports.
	scope scope
	// ok says whether a package under the rule may depend on dep. std is
	// true for standard-library packages; rel is dep relative to the
	// module ("" when dep lies outside it).
	ok func(dep, rel string, std bool) bool
	// tests, when set, also checks the direct imports of the package's
	// _test files (TestImports and XTestImports) with it.
	tests func(dep, rel string, std bool) bool
}

// breach is one broken rule: the chain runs from the package that broke it
// to the forbidden import.
type breach struct {
	rule  string
	chain []string
	test  bool
	why   string
}

// summary is the rule's name and the chain, e.g.
// "guest-sdk-only: plugins/x → sdk → example.com/y".
func (b breach) summary() string {
	s := b.rule + ": " + strings.Join(b.chain, " → ")
	if b.test {
		s += " (in _test files)"
	}
	return s
}

// String is the summary and the rule in words.
func (b breach) String() string {
	return fmt.Sprintf("%s\n\trule: %s", b.summary(), b.why)
}

// under reports whether rel is root or a package below it.
func under(rel, root string) bool {
	return rel == root || strings.HasPrefix(rel, root+"/")
}

// anyUnder reports whether rel lies under one of roots.
func anyUnder(rel string, roots ...string) bool {
	return slices.ContainsFunc(roots, func(r string) bool { return under(rel, r) })
}

// sdkGuest reports whether rel is one of the SDK's guest-side packages:
// sdk and sdk/... except the host-side harness sdk/sdktest.
func sdkGuest(rel string) bool { return under(rel, "sdk") && !under(rel, "sdk/sdktest") }

// guestOK is what code compiled into a guest may link.
func guestOK(_, rel string, std bool) bool {
	// A bundle (plugins/firstparty) links plugin packages, which this
	// rule checks in turn.
	return std || anyUnder(rel, "pluginapi", "plugins") || sdkGuest(rel)
}

// rules are the house rules; doc.go says why each looks where it does.
var rules = []rule{
	{
		name:    "pluginapi-stdlib",
		why:     "pluginapi, the ABI contract built into host and guests, links only the standard library",
		applies: func(rel string) bool { return under(rel, "pluginapi") },
		scope:   linked,
		ok:      func(_, _ string, std bool) bool { return std },
	},
	{
		name:    "sdk-guest",
		why:     "sdk and sdk/... (but sdk/sdktest) link only the standard library, pluginapi and the SDK itself",
		applies: sdkGuest,
		scope:   linked,
		ok:      guestOK,
	},
	{
		name:    "sdktest-harness",
		why:     "sdk/sdktest imports only the standard library, pluginapi, sdk, core/filter, core/mail and go-toml",
		applies: func(rel string) bool { return under(rel, "sdk/sdktest") },
		scope:   direct,
		ok: func(dep, rel string, std bool) bool {
			return std || anyUnder(rel, "pluginapi", "sdk", "core/filter", "core/mail") ||
				dep == "github.com/pelletier/go-toml/v2" || strings.HasPrefix(dep, "github.com/pelletier/go-toml/v2/")
		},
	},
	{
		name:    "guest-sdk-only",
		why:     "plugins, examples and the benchmark plugin link only the standard library, pluginapi and sdk",
		applies: func(rel string) bool { return anyUnder(rel, "plugins", "examples", "scripts/benchplugin") },
		scope:   linked,
		ok:      guestOK,
	},
	{
		name:    "core-no-guest-side",
		why:     "core packages link no sdk, plugins, examples or cmd; core tests may import sdk/sdktest only",
		applies: func(rel string) bool { return under(rel, "core") },
		scope:   linked,
		ok: func(_, rel string, _ bool) bool {
			return !anyUnder(rel, "sdk", "plugins", "examples", "cmd", "scripts")
		},
		tests: func(_, rel string, _ bool) bool {
			return under(rel, "sdk/sdktest") || !anyUnder(rel, "sdk", "plugins", "examples", "cmd", "scripts")
		},
	},
	{
		name:    "delivery-no-queue",
		why:     "nothing under core/delivery depends on core/queue: transports speak core/mail",
		applies: func(rel string) bool { return under(rel, "core/delivery") },
		scope:   linked,
		ok:      func(_, rel string, _ bool) bool { return !under(rel, "core/queue") },
		tests:   func(_, rel string, _ bool) bool { return !under(rel, "core/queue") },
	},
	{
		name:    "mail-stdlib",
		why:     "core/mail, the shared vocabulary, links only the standard library",
		applies: func(rel string) bool { return under(rel, "core/mail") },
		scope:   linked,
		ok:      func(_, _ string, std bool) bool { return std },
	},
	{
		name:    "wazero-in-filter",
		why:     "only core/filter imports github.com/tetratelabs/wazero",
		applies: func(rel string) bool { return !under(rel, "core/filter") },
		scope:   direct,
		ok:      notWazero,
		tests:   notWazero,
	},
}

// notWazero reports whether dep is not part of wazero.
func notWazero(dep, _ string, _ bool) bool {
	return dep != "github.com/tetratelabs/wazero" && !strings.HasPrefix(dep, "github.com/tetratelabs/wazero/")
}

// checker holds one `go list` result indexed for the rules.
type checker struct {
	module string
	byPath map[string]*pkg
}

// newChecker indexes pkgs of module; test variants ("p [q.test]") are
// indexed under their plain path when no plain entry exists.
func newChecker(module string, pkgs []pkg) *checker {
	c := &checker{module: module, byPath: make(map[string]*pkg, len(pkgs))}
	for i := range pkgs {
		p := &pkgs[i]
		path, _, variant := strings.Cut(p.ImportPath, " ")
		if _, seen := c.byPath[path]; !seen || !variant {
			c.byPath[path] = p
		}
	}
	return c
}

// rel returns path relative to the module, or "" outside it.
func (c *checker) rel(path string) string {
	if path == c.module {
		return "."
	}
	if r, ok := strings.CutPrefix(path, c.module+"/"); ok {
		return r
	}
	return ""
}

// std reports whether path is in the standard library: as go list says,
// or, for a path it did not list, when its first element has no dot.
func (c *checker) std(path string) bool {
	if p, ok := c.byPath[path]; ok {
		return p.Standard
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".") && c.rel(path) == ""
}

// short is path for messages: relative inside the module.
func (c *checker) short(path string) string {
	if r := c.rel(path); r != "" {
		return r
	}
	return path
}

// subject reports whether p is one of the module's own packages as listed
// (not a dependency-only entry, a test variant or a generated test main).
func (c *checker) subject(p *pkg) bool {
	return !p.DepOnly && p.ForTest == "" && !strings.Contains(p.ImportPath, " ") &&
		!strings.HasSuffix(p.ImportPath, ".test") && c.rel(p.ImportPath) != ""
}

// allowed applies a rule's predicate to one dependency.
func (c *checker) allowed(ok func(dep, rel string, std bool) bool, dep string) bool {
	return ok(dep, c.rel(dep), c.std(dep))
}

// check returns every breach of rules in the listed packages, in order.
func (c *checker) check(rules []rule, pkgs []pkg) []breach {
	var out []breach
	for i := range pkgs {
		p := &pkgs[i]
		if !c.subject(p) {
			continue
		}
		rel := c.rel(p.ImportPath)
		for _, r := range rules {
			if !r.applies(rel) {
				continue
			}
			var chains [][]string
			switch r.scope {
			case direct:
				chains = c.directBreaches(r.ok, p.ImportPath, p.Imports)
			case linked:
				chains = c.linkedBreaches(r, p)
			}
			for _, ch := range chains {
				out = append(out, breach{rule: r.name, chain: c.shorten(ch), why: r.why})
			}
			if r.tests != nil {
				imps := slices.Concat(p.TestImports, p.XTestImports)
				for _, ch := range c.directBreaches(r.tests, p.ImportPath, imps) {
					out = append(out, breach{rule: r.name, chain: c.shorten(ch), test: true, why: r.why})
				}
			}
		}
	}
	return out
}

// directBreaches lists from → dep for each import allow refuses.
func (c *checker) directBreaches(allow func(dep, rel string, std bool) bool, from string, imports []string) [][]string {
	var out [][]string
	seen := map[string]bool{}
	for _, dep := range imports {
		if dep == from || seen[dep] || c.allowed(allow, dep) {
			continue
		}
		seen[dep] = true
		out = append(out, []string{from, dep})
	}
	return out
}

// linkedBreaches finds the forbidden packages in p's Deps and, for each
// place one enters, the import chain from p through allowed packages only.
// Whatever a forbidden package drags in behind it is not repeated, and the
// walk does not go through module packages r applies to itself: those
// report their own breaches, so "core/server → core/queue → core/mail →
// sdk" is said once, as "core/mail → sdk". If the walk over Imports finds
// no entry and passed no such package (an incomplete listing), each
// forbidden dependency is reported as p → dep.
func (c *checker) linkedBreaches(r rule, p *pkg) [][]string {
	var bad []string
	for _, d := range p.Deps {
		if !c.allowed(r.ok, d) {
			bad = append(bad, d)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	// Breadth first, so each chain is a shortest one.
	parent := map[string]string{p.ImportPath: ""}
	queue := []string{p.ImportPath}
	var out [][]string
	delegated := false
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		var imports []string
		if q, listed := c.byPath[cur]; listed {
			imports = q.Imports
		}
		for _, dep := range imports {
			if _, seen := parent[dep]; seen {
				continue
			}
			parent[dep] = cur
			switch q, listed := c.byPath[dep]; {
			case !c.allowed(r.ok, dep):
				out = append(out, chainTo(parent, dep))
			case listed && c.subject(q) && r.applies(c.rel(dep)):
				delegated = true
			default:
				queue = append(queue, dep)
			}
		}
	}
	if len(out) == 0 && !delegated {
		for _, d := range bad {
			out = append(out, []string{p.ImportPath, d})
		}
	}
	return out
}

// chainTo follows parent links back from dep to the walk's start.
func chainTo(parent map[string]string, dep string) []string {
	var ch []string
	for at := dep; at != ""; at = parent[at] {
		ch = append(ch, at)
	}
	slices.Reverse(ch)
	return ch
}

// shorten writes module paths relative to the module.
func (c *checker) shorten(chain []string) []string {
	out := make([]string, len(chain))
	for i, s := range chain {
		out[i] = c.short(s)
	}
	return out
}
