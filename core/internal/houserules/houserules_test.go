package houserules

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestRepository checks every house rule against the module as it is.
func TestRepository(t *testing.T) {
	root, module := moduleRoot(t)
	touchSources(t, root)
	cmd := exec.Command("go", "list", "-e", "-deps", "-test", "-json", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", root, err, stderr.Bytes())
	}
	pkgs := decode(t, out)
	c := newChecker(module, pkgs)
	subjects := 0
	for i := range pkgs {
		if c.subject(&pkgs[i]) {
			subjects++
			if e := pkgs[i].Error; e != nil {
				// A package go cannot list is not a house-rule breach, but
				// its imports may be incomplete: say so.
				t.Logf("go list: %s: %s", pkgs[i].ImportPath, e.Err)
			}
		}
	}
	// A listing that misses the module's packages would pass vacuously.
	for _, want := range []string{"pluginapi", "sdk", "sdk/sdktest", "core/mail", "core/filter", "core/delivery"} {
		if _, ok := c.byPath[module+"/"+want]; !ok {
			t.Fatalf("go list did not list %s (%d packages of the module listed)", want, subjects)
		}
	}
	for _, b := range c.check(rules, pkgs) {
		t.Errorf("house rule broken: %s", b)
	}
}

// moduleRoot returns the directory and path of the module this test is in,
// from `go env GOMOD` run here.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatalf("go env GOMOD = %q: not inside a module", gomod)
	}
	out, err = exec.Command("go", "list", "-m", "-f", "{{.Path}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return filepath.Dir(gomod), strings.TrimSpace(string(out))
}

// touchSources stats every Go file and go.mod of the module. `go test`
// caches a result keyed on the files the test itself opened or stat'ed;
// the go list subprocess's reads are invisible to it, so without this an
// import added later could be answered from the cache as "ok".
func touchSources(t *testing.T, root string) {
	t.Helper()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasSuffix(name, ".go") || name == "go.mod" || name == "go.sum" {
			_, err = os.Stat(path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// decode reads go list's stream of JSON objects.
func decode(t *testing.T, out []byte) []pkg {
	t.Helper()
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			return pkgs
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
}

const mod = "example.com/m"

// m is a module package path for the synthetic listings.
func m(rel string) string { return mod + "/" + rel }

// std is a standard-library package of the synthetic listings.
func std(path string) pkg { return pkg{ImportPath: path, Standard: true, DepOnly: true} }

// ext is a package of another module in the synthetic listings.
func ext(path string, imports ...string) pkg {
	return pkg{ImportPath: path, DepOnly: true, Imports: imports, Deps: imports}
}

// own builds a module package; Deps is filled by closeDeps.
func own(rel string, imports ...string) pkg { return pkg{ImportPath: m(rel), Imports: imports} }

// withTests adds test imports to a module package.
func withTests(p pkg, testImports, xtestImports []string) pkg {
	p.TestImports, p.XTestImports = testImports, xtestImports
	return p
}

// closeDeps fills Deps from Imports, as go list would; a package listed
// with Deps but no Imports keeps its Deps.
func closeDeps(pkgs []pkg) []pkg {
	idx := map[string]*pkg{}
	for i := range pkgs {
		idx[pkgs[i].ImportPath] = &pkgs[i]
	}
	for i := range pkgs {
		if pkgs[i].Imports == nil && pkgs[i].Deps != nil {
			continue
		}
		seen := map[string]bool{}
		var walk func(string)
		walk = func(path string) {
			p, ok := idx[path]
			if !ok {
				return
			}
			for _, d := range p.Imports {
				if !seen[d] {
					seen[d] = true
					walk(d)
				}
			}
		}
		walk(pkgs[i].ImportPath)
		pkgs[i].Deps = nil
		for d := range seen {
			pkgs[i].Deps = append(pkgs[i].Deps, d)
		}
		slices.Sort(pkgs[i].Deps)
	}
	return pkgs
}

// base is a synthetic module that keeps every rule: each case adds one
// package or import to it.
func base() []pkg {
	return []pkg{
		std("fmt"), std("strings"), std("testing"),
		ext("github.com/tetratelabs/wazero", "fmt"),
		ext("github.com/pelletier/go-toml/v2", "fmt"),
		ext("github.com/dgraph-io/badger/v4", "fmt"),
		ext("example.org/other", "fmt"),
		own("pluginapi", "fmt"),
		own("sdk", "fmt", m("pluginapi")),
		own("sdk/internal/exercise", m("sdk"), m("pluginapi")),
		own("sdk/sdktest", "testing", m("core/filter"), m("sdk"), m("pluginapi"), "github.com/pelletier/go-toml/v2"),
		withTests(own("plugins/p", m("sdk"), "strings"), []string{m("sdk/sdktest"), m("core/servertest"), m("pluginapi")}, nil),
		withTests(own("examples/e", m("sdk")), []string{m("sdk/sdktest")}, nil),
		own("scripts/benchplugin", m("sdk")),
		own("core/mail", "fmt", "strings"),
		own("core/config", "fmt"),
		own("core/filter", "github.com/tetratelabs/wazero", m("pluginapi"), m("core/config")),
		own("core/queue", m("core/mail"), "github.com/dgraph-io/badger/v4"),
		withTests(own("core/delivery", m("core/mail"), m("core/filter")), []string{m("core/filter")}, nil),
		own("core/delivery/local", m("core/mail")),
		withTests(own("core/server", m("core/queue"), m("core/delivery"), m("core/filter")), nil, []string{m("core/server"), m("sdk/sdktest")}),
		own("core/servertest", m("core/server"), "testing"),
		own("cmd/sluice", m("core/server")),
	}
}

// TestRulesFire shows that each rule passes the clean module and fires,
// naming the chain, on one added breach.
func TestRulesFire(t *testing.T) {
	c := newChecker(mod, closeDeps(base()))
	if got := c.check(rules, closeDeps(base())); len(got) != 0 {
		t.Fatalf("clean synthetic module breaks rules: %v", got)
	}
	for _, tc := range []struct {
		name string
		edit func([]pkg) []pkg // changes the clean module
		want []string          // each breach's summary
	}{
		{"pluginapi imports another module",
			add(own("pluginapi", "fmt", "example.org/other")),
			[]string{"pluginapi-stdlib: pluginapi → example.org/other", "guest-sdk-only: plugins/p → sdk → pluginapi → example.org/other",
				"guest-sdk-only: examples/e → sdk → pluginapi → example.org/other", "guest-sdk-only: scripts/benchplugin → sdk → pluginapi → example.org/other",
				"sdk-guest: sdk → pluginapi → example.org/other", "sdk-guest: sdk/internal/exercise → pluginapi → example.org/other"}},
		{"pluginapi subpackage imports core",
			add(own("pluginapi/abi", m("core/mail"))),
			[]string{"pluginapi-stdlib: pluginapi/abi → core/mail"}},
		{"sdk imports core/mail",
			add(own("sdk", "fmt", m("pluginapi"), m("core/mail"))),
			[]string{"sdk-guest: sdk → core/mail",
				"guest-sdk-only: plugins/p → sdk → core/mail", "guest-sdk-only: examples/e → sdk → core/mail",
				"guest-sdk-only: scripts/benchplugin → sdk → core/mail"}},
		{"sdk subpackage imports sdktest",
			add(own("sdk/helper", m("sdk/sdktest"))),
			[]string{"sdk-guest: sdk/helper → sdk/sdktest"}},
		{"sdktest imports the server",
			add(own("sdk/sdktest", "testing", m("core/filter"), m("core/server"))),
			[]string{"sdktest-harness: sdk/sdktest → core/server"}},
		{"sdktest imports the host's vocabulary: allowed",
			add(own("sdk/sdktest", "testing", m("core/filter"), m("core/mail"), m("sdk"))),
			nil},
		{"sdktest imports wazero",
			add(own("sdk/sdktest", m("core/filter"), "github.com/tetratelabs/wazero")),
			[]string{"sdktest-harness: sdk/sdktest → github.com/tetratelabs/wazero", "wazero-in-filter: sdk/sdktest → github.com/tetratelabs/wazero"}},
		{"plugin imports core",
			add(own("plugins/p", m("sdk"), m("core/mail"))),
			[]string{"guest-sdk-only: plugins/p → core/mail"}},
		{"plugin imports another module",
			add(own("plugins/q", m("sdk"), "example.org/other")),
			[]string{"guest-sdk-only: plugins/q → example.org/other"}},
		{"example imports sdktest outside its tests",
			add(own("examples/e", m("sdk"), m("sdk/sdktest"))),
			[]string{"guest-sdk-only: examples/e → sdk/sdktest"}},
		{"plugin tests use the real server: allowed",
			add(withTests(own("plugins/p", m("sdk")), []string{m("core/servertest"), m("sdk/sdktest"), "example.org/other"}, []string{m("plugins/p")})),
			nil},
		{"core imports sdk",
			add(own("core/mail", m("sdk"))),
			[]string{"mail-stdlib: core/mail → sdk", "core-no-guest-side: core/mail → sdk"}},
		{"core imports a plugin through another core package",
			add(own("core/config", "fmt", m("plugins/p"))),
			// Said once, where it enters the core, not again by every
			// core package that links core/config.
			[]string{"core-no-guest-side: core/config → plugins/p"}},
		{"core imports examples and cmd",
			add(own("core/admin", m("examples/e"), m("cmd/sluice"))),
			[]string{"core-no-guest-side: core/admin → examples/e", "core-no-guest-side: core/admin → cmd/sluice"}},
		{"core test imports sdk itself",
			add(withTests(own("core/smtpd", "fmt"), []string{m("sdk")}, nil)),
			[]string{"core-no-guest-side: core/smtpd → sdk (in _test files)"}},
		{"core external test imports a plugin",
			add(withTests(own("core/smtpd", "fmt"), nil, []string{m("plugins/p"), m("sdk/sdktest")})),
			[]string{"core-no-guest-side: core/smtpd → plugins/p (in _test files)"}},
		{"transport imports the queue",
			add(own("core/delivery/remote", m("core/mail"), m("core/queue"))),
			[]string{"delivery-no-queue: core/delivery/remote → core/queue"}},
		{"transport reaches the queue through another package",
			add(own("core/delivery/local", m("core/mail"), m("core/admin")), own("core/admin", m("core/queue"))),
			[]string{"delivery-no-queue: core/delivery/local → core/admin → core/queue"}},
		{"transport test imports the queue",
			add(withTests(own("core/delivery/local", m("core/mail")), []string{m("core/queue")}, nil)),
			[]string{"delivery-no-queue: core/delivery/local → core/queue (in _test files)"}},
		{"core/mail imports badger",
			add(own("core/mail", "fmt", "github.com/dgraph-io/badger/v4")),
			[]string{"mail-stdlib: core/mail → github.com/dgraph-io/badger/v4"}},
		{"core/mail imports another core package",
			add(own("core/mail", m("core/config"))),
			[]string{"mail-stdlib: core/mail → core/config"}},
		{"smtpd imports wazero",
			add(own("core/smtpd", m("core/filter"), "github.com/tetratelabs/wazero/api")),
			[]string{"wazero-in-filter: core/smtpd → github.com/tetratelabs/wazero/api"}},
		{"server test imports wazero",
			add(withTests(own("core/smtpd", m("core/filter")), nil, []string{"github.com/tetratelabs/wazero"})),
			[]string{"wazero-in-filter: core/smtpd → github.com/tetratelabs/wazero (in _test files)"}},
		{"linking wazero through core/filter: allowed",
			add(own("core/smtpd", m("core/filter"))),
			nil},
		{"a deps-only listing still fires",
			// go list could not read core/mail's imports, yet has its Deps.
			add(pkg{ImportPath: m("core/mail"), Deps: []string{"example.org/other", "fmt"}}),
			[]string{"mail-stdlib: core/mail → example.org/other"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkgs := closeDeps(tc.edit(base()))
			var got []string
			for _, b := range newChecker(mod, pkgs).check(rules, pkgs) {
				got = append(got, b.summary())
			}
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("breaches:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
			}
		})
	}
}

// add replaces (by import path) or appends module packages.
func add(ps ...pkg) func([]pkg) []pkg {
	return func(pkgs []pkg) []pkg {
	next:
		for _, p := range ps {
			for i := range pkgs {
				if pkgs[i].ImportPath == p.ImportPath {
					pkgs[i] = p
					continue next
				}
			}
			pkgs = append(pkgs, p)
		}
		return pkgs
	}
}
