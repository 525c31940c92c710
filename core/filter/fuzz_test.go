package filter

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/sluice-mta/sluice/core/mail"
	"github.com/sluice-mta/sluice/pluginapi"
)

// FuzzRewrite feeds any bytes through what the host does to a plugin's
// binary before compiling it: split into sections, inspect, instrument. It
// must never panic; a rewritten module must be accepted or cleanly rejected
// by wazero; and a module wazero accepts before the rewrite must still be
// accepted after it, with the fuse and fuel globals exported.
//
// Before fuzzing, every testdata/*.wat and a Go-built plugin
// (examples/hello) go through the same checks, and the bench guest and the
// Go plugin are loaded by a Host and run at every hook: the rewritten
// module must still validate and run. The Go plugin (about 3 MB) is built
// here rather than kept in the corpus.
func FuzzRewrite(f *testing.F) {
	ctx := context.Background()
	// The interpreter validates exactly as the compiler does and compiles
	// far faster, which is what a fuzzer wants; the Host below uses the
	// production compiler.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	f.Cleanup(func() { _ = rt.Close(ctx) })

	wats, err := filepath.Glob(filepath.Join("testdata", "*.wat"))
	if err != nil || len(wats) == 0 {
		f.Fatalf("no testdata/*.wat seeds (%v)", err)
	}
	for _, w := range wats {
		name := strings.TrimSuffix(filepath.Base(w), ".wat")
		bin := wasm(f, name)
		checkRewrite(f, rt, bin)
		f.Add(bin)
	}
	hello := buildGoPlugin(f, "./examples/hello")
	if !checkRewrite(f, rt, hello) {
		f.Fatal("the host or wazero rejects the Go-built examples/hello before the rewrite")
	}
	runRewritten(f, "bench", wasm(f, "bench"), false)
	runRewritten(f, "hello", hello, true)

	f.Fuzz(func(t *testing.T, bin []byte) {
		checkRewrite(t, rt, bin)
	})
}

// checkRewrite runs bin through inspectBinary and instrument and compiles
// the result with rt. It reports whether inspectBinary and wazero accepted
// bin itself.
func checkRewrite(t testing.TB, rt wazero.Runtime, bin []byte) bool {
	t.Helper()
	ctx := context.Background()
	// The host refuses what inspectBinary refuses before wazero sees it
	// (wazero itself would allocate gigabytes for some refused inputs).
	conf := defaultConf()
	_, secs, err := inspectBinary(bin, &conf)
	if err != nil {
		return false
	}
	isGoModule(secs) // reads custom section names: must not panic
	validBefore := false
	if cm, err := rt.CompileModule(ctx, bin); err == nil {
		validBefore = true
		_ = cm.Close(ctx)
	}
	out, err := instrument(secs, uint32(conf.Limits.TableElements))
	if err != nil {
		if validBefore {
			t.Fatalf("instrument refuses a module wazero accepts: %v", err)
		}
		return validBefore
	}
	cm, err := rt.CompileModule(ctx, out)
	if err != nil {
		if validBefore {
			t.Fatalf("the rewrite broke a module wazero accepts: %v", err)
		}
		return validBefore
	}
	defer cm.Close(ctx)
	if validBefore {
		globals := exportedGlobals(t, out)
		for _, name := range []string{fuseExport, fuelExport, grownExport, oomExport} {
			if !globals[name] {
				t.Fatalf("rewritten module does not export global %s (exports %v)", name, globals)
			}
		}
	}
	return validBefore
}

// exportedGlobals reads the names of the globals bin exports.
func exportedGlobals(t testing.TB, bin []byte) map[string]bool {
	t.Helper()
	secs, err := sections(bin)
	if err != nil {
		t.Fatalf("rewritten module: %v", err)
	}
	names := map[string]bool{}
	for _, s := range secs {
		if s.id != 7 {
			continue
		}
		r := &reader{b: s.body}
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			name, kind := r.name(), r.byte()
			r.u32()
			if kind == 3 {
				names[name] = true
			}
		}
	}
	return names
}

// buildGoPlugin builds the Go plugin in pkg (relative to the module root)
// for wasip1 into a temporary file and returns it.
func buildGoPlugin(t testing.TB, pkg string) []byte {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-o", out, pkg)
	cmd.Dir = filepath.Join("..", "..")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared %s: %v\n%s", pkg, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// runRewritten loads bin as the only plugin of a Host (which instruments
// it and compiles it with the production configuration) and runs every
// hook; each must continue. With wantHeader the data hook must have added
// "X-Hello: world", as examples/hello does.
func runRewritten(t testing.TB, name string, bin []byte, wantHeader bool) {
	t.Helper()
	dir := t.TempDir()
	writeAtomic(t, filepath.Join(dir, name+".wasm"), bin)
	h, logs := newHost(t, dir, Options{})
	info, ok := pluginNamed(h, name)
	if !ok {
		t.Fatalf("%s did not load after the rewrite; host log:\n%s", name, logs)
	}
	if info.Hooks != 1<<pluginapi.NumHooks-1 {
		t.Fatalf("%s: hooks = %b, want all %d", name, info.Hooks, pluginapi.NumHooks)
	}
	txn := newTxn()
	hdr, body := mail.ParseHeader([]byte("Subject: fuzz seed\r\n\r\nhello\r\n"))
	txn.Header, txn.Body = &hdr, body
	for i, r := range runAll(h, txn) {
		if r.Verdict != pluginapi.Continue {
			t.Fatalf("%s: hook %d: %+v, want continue; host log:\n%s", name, i, r, logs)
		}
	}
	if !wantHeader {
		return
	}
	if v := txn.Header.Values("X-Hello"); len(v) == 1 && v[0] == "world" {
		return
	}
	t.Fatalf("%s: data hook did not add X-Hello: world; header %q", name, txn.Header.Bytes())
}

// confErr is the shape of every NAME.toml error: the file, a line from 1
// and what is wrong.
var confErr = regexp.MustCompile(`^fuzz\.toml:[1-9][0-9]*: \S`)

// FuzzPluginConf decodes any text as a NAME.toml. It must never panic;
// every error names the file and a line; and whatever is accepted is within
// the limits parseConf promises.
func FuzzPluginConf(f *testing.F) {
	for _, s := range []string{
		"",
		"order = 10\nfailure_policy = \"tempfail\"\nmemory_limit = \"64MiB\"\ntimeout = \"250ms\"\npool_min = 1\npool_max = 4\ngrants = [\"dns\", \"kv\", \"metrics\"]\n\n[config]\ngreeting = \"hi\"\nlist = [1, 2]\n",
		"failure_policy = \"explode\"\n",
		"memory_limit = \"1KiB\"\n",
		"memory_limit = 12\n",
		"timeout = \"2h\"\n",
		"timeout = \"-1s\"\n",
		"pool_min = 100\n",
		"pool_min = -1\n",
		"pool_max = 0\n",
		"init_timeout = \"0s\"\n",
		"grants = [\"fs\"]\n",
		"grants = \"dns\"\n",
		"colour = \"blue\"\n",
		"[config\n",
		"order = \"first\"\n",
		"\"failure_policy\" = \"x\"\n",
		"[config.deep.er]\nk = 1\n",
		"order = 1\norder = 2\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseConf("fuzz.toml", []byte(s))
		if err != nil {
			if !confErr.MatchString(err.Error()) {
				t.Fatalf("error %q does not name the file and a line", err)
			}
			return
		}
		if c.FailurePolicy != "continue" && c.FailurePolicy != "tempfail" {
			t.Fatalf("accepted failure_policy %q", c.FailurePolicy)
		}
		if c.MemoryLimit < pageSize || c.MemoryLimit > maxMemoryLimit {
			t.Fatalf("accepted memory_limit %d", c.MemoryLimit)
		}
		if c.Timeout <= 0 || c.Timeout.D() > maxTimeout {
			t.Fatalf("accepted timeout %v", c.Timeout.D())
		}
		if c.PoolMin < 0 || c.PoolMax < 1 || c.PoolMax < c.PoolMin {
			t.Fatalf("accepted pool_min %d, pool_max %d", c.PoolMin, c.PoolMax)
		}
		for _, g := range c.Grants {
			if g != pluginapi.CapDNS && g != pluginapi.CapKV && g != pluginapi.CapMetrics {
				t.Fatalf("accepted grant %q", g)
			}
		}
	})
}
