package scaffold

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/filter"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the templates")

// sdkRoot is the Sluice tree these tests run in.
func sdkRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// TestGolden compares what New writes (before go mod tidy) with
// testdata/golden/LANG, the SDK path written as @SDK@ and its go version
// as @GO@ (sluice.h must be sdk/c/sluice.h itself); -update rewrites the
// golden files.
func TestGolden(t *testing.T) {
	root := sdkRoot(t)
	_, goVersion, err := checkSDK(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, lang := range []string{"go", "c"} {
		dir := filepath.Join(t.TempDir(), "myfilter")
		res, err := New(context.Background(), Options{Name: "myfilter", Lang: lang, SDK: root, Dir: dir, NoTidy: true})
		if err != nil {
			t.Fatal(err)
		}
		golden := filepath.Join("testdata", "golden", lang)
		if *update {
			os.RemoveAll(golden)
		}
		for _, f := range res.Files {
			got, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if f == "sluice.h" {
				if want, _ := os.ReadFile(filepath.Join(root, "sdk", "c", "sluice.h")); !bytes.Equal(got, want) {
					t.Errorf("%s: sluice.h is not a copy of sdk/c/sluice.h", lang)
				}
				continue
			}
			got = bytes.ReplaceAll(got, []byte(root), []byte("@SDK@"))
			got = bytes.ReplaceAll(got, []byte("\ngo "+goVersion+"\n"), []byte("\ngo @GO@\n"))
			gp := filepath.Join(golden, f+".golden")
			if *update {
				if err := os.MkdirAll(filepath.Dir(gp), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(gp, got, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(gp)
			if err != nil {
				t.Errorf("%s: %v (run go test -update to write it)", f, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s %s differs from %s:\n%s", lang, f, gp, got)
			}
		}
	}
}

// goEnv runs the go command offline, from the module cache only: the
// SDK's dependencies are there once Sluice itself was built.
func goEnv() []string {
	return append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=mod")
}

func run(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, goEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in %s: %v\n%s", cmd, dir, err, out)
	}
	return string(out)
}

// TestNewGoModulePasses is a plugin author's first minutes: the module
// written outside the Sluice tree, with go.mod replacing the SDK with this
// tree and go.sum tidied offline, passes its own tests natively and as
// .wasm in the real host without a change to go.mod or go.sum; the build
// line of its Makefile builds a module the host loads with the NAME.toml
// it ships.
func TestNewGoModulePasses(t *testing.T) {
	root := sdkRoot(t)
	dir := filepath.Join(t.TempDir(), "myfilter")
	if strings.HasPrefix(dir, root+string(filepath.Separator)) {
		t.Fatalf("temporary directory %s is inside the tree", dir)
	}
	res, err := New(context.Background(), Options{Name: "myfilter", SDK: root, Dir: dir, Env: goEnv()})
	if err != nil {
		t.Fatal(err)
	}
	gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
	if !strings.Contains(string(gomod), "replace github.com/sluice-mta/sluice => "+root+"\n") {
		t.Errorf("go.mod does not replace the SDK with %s:\n%s", root, gomod)
	}
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil || !bytes.Contains(sum, []byte("github.com/tetratelabs/wazero")) {
		t.Errorf("go.sum not tidied (%v):\n%s", err, sum)
	}
	out := run(t, dir, "go", "test", "-count=1", "-v", "./...")
	for _, test := range []string{"TestRcpt", "TestData", "TestBadConfigRefusesLoad", "TestExampleConfig"} {
		if !strings.Contains(out, "--- PASS: "+test) {
			t.Errorf("go test did not pass %s:\n%s", test, out)
		}
	}
	for name, before := range map[string][]byte{"go.mod": gomod, "go.sum": sum} {
		if after, _ := os.ReadFile(filepath.Join(dir, name)); !bytes.Equal(before, after) {
			t.Errorf("go test changed %s: it was not tidy", name)
		}
	}
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", "myfilter.wasm", ".")
	build.Dir, build.Env = dir, append(goEnv(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the Makefile's build line: %v\n%s", err, msg)
	}
	info, err := filter.Check(context.Background(), filepath.Join(dir, "myfilter.wasm"))
	if err != nil {
		t.Fatalf("the built module does not load with myfilter.toml: %v", err)
	}
	if got := strings.Join(info.HookNames(), ","); got != "rcpt,data" {
		t.Errorf("hooks %s, want rcpt,data", got)
	}
	if res.SDK != root {
		t.Errorf("Result.SDK %s, want %s", res.SDK, root)
	}
}

// TestNewCModulePasses: the C module's test builds it with clang, as its
// Makefile does, and runs it in the real host.
func TestNewCModulePasses(t *testing.T) {
	for _, tool := range []string{"clang", "wasm-ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (Debian packages clang and lld; scripts/install-test-deps.sh installs them)", tool)
		}
	}
	root := sdkRoot(t)
	dir := filepath.Join(t.TempDir(), "cfilter")
	if _, err := New(context.Background(), Options{Name: "cfilter", Lang: "c", SDK: root, Dir: dir, Env: goEnv()}); err != nil {
		t.Fatal(err)
	}
	out := run(t, dir, "go", "test", "-count=1", "-v", "./...")
	if !strings.Contains(out, "--- PASS: TestData") {
		t.Errorf("go test did not pass TestData:\n%s", out)
	}
	run(t, dir, "make", "cfilter.wasm")
	if _, err := filter.Check(context.Background(), filepath.Join(dir, "cfilter.wasm")); err != nil {
		t.Fatalf("make's module does not load: %v", err)
	}
}

// TestNewRefuses: bad names, languages, SDK paths and a directory in use
// are refused with what to do.
func TestNewRefuses(t *testing.T) {
	root := sdkRoot(t)
	used := t.TempDir()
	os.WriteFile(filepath.Join(used, "x"), nil, 0o644)
	// A tree of another module, with an sdk directory.
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "go.mod"), []byte("module example.org/other\n\ngo 1.22\n"), 0o644)
	os.Mkdir(filepath.Join(other, "sdk"), 0o755)
	for _, c := range []struct {
		opts Options
		want string
	}{
		{Options{Name: "My Filter", SDK: root}, "lowercase letters, digits and dashes"},
		{Options{Name: "ok", Lang: "rust", SDK: root, Dir: t.TempDir()}, `--lang "rust": give go or c`},
		{Options{Name: "ok", SDK: t.TempDir(), Dir: t.TempDir()}, "no go.mod in it or above it: give the Sluice source tree"},
		{Options{Name: "ok", SDK: filepath.Join(root, "no-such-dir"), Dir: t.TempDir()}, "no such file or directory"},
		{Options{Name: "ok", SDK: filepath.Join(other, "sdk"), Dir: t.TempDir()}, "is not module github.com/sluice-mta/sluice"},
		{Options{Name: "ok", SDK: root, Dir: used}, "exists and is not empty"},
	} {
		_, err := New(context.Background(), c.opts)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.opts, err, c.want)
		}
	}
}

// TestNewSDKDirectory: --sdk may name the tree's sdk directory (or one
// below it); go.mod replaces the module with the tree itself.
func TestNewSDKDirectory(t *testing.T) {
	root := sdkRoot(t)
	for _, sdk := range []string{root, filepath.Join(root, "sdk"), filepath.Join(root, "sdk", "c")} {
		dir := filepath.Join(t.TempDir(), "p")
		res, err := New(context.Background(), Options{Name: "p", SDK: sdk, Dir: dir, NoTidy: true})
		if err != nil {
			t.Errorf("--sdk %s: %v", sdk, err)
			continue
		}
		gomod, _ := os.ReadFile(filepath.Join(dir, "go.mod"))
		if res.SDK != root || !strings.Contains(string(gomod), "replace github.com/sluice-mta/sluice => "+root+"\n") {
			t.Errorf("--sdk %s: Result.SDK %s, go.mod:\n%s", sdk, res.SDK, gomod)
		}
	}
}

// TestDefaultSDK: a test binary is built from this tree, which is found.
func TestDefaultSDK(t *testing.T) {
	if got := DefaultSDK(); got != sdkRoot(t) {
		t.Errorf("DefaultSDK %q, want %q", got, sdkRoot(t))
	}
}

// TestNewTidiesFromABuildsCache: `go mod tidy` needs nothing but the
// module cache that building Sluice filled — no proxy and no checksum
// database (a machine offline). A fresh cache gets exactly the modules
// cmd/sluice needs (what `make build` downloads), copied from this
// machine's cache as from a proxy; then New tidies with GOPROXY=off and
// a checksum database that cannot be reached.
func TestNewTidiesFromABuildsCache(t *testing.T) {
	root := sdkRoot(t)
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	proxy := filepath.Join(strings.TrimSpace(string(out)), "cache", "download")
	fresh := t.TempDir()
	// -modcacherw: the test's temporary directory can be removed.
	base := append(os.Environ(), "GOMODCACHE="+fresh, "GOFLAGS=-mod=mod -modcacherw", "GONOSUMDB=", "GOINSECURE=", "GOPRIVATE=", "GONOPROXY=")
	fill := exec.Command("go", "list", "-deps", "./cmd/sluice")
	fill.Dir, fill.Env = root, append(base, "GOPROXY=file://"+proxy, "GOSUMDB=off")
	if msg, err := fill.CombinedOutput(); err != nil {
		t.Fatalf("filling a module cache as a build of Sluice does: %v\n%s", err, msg)
	}
	dir := filepath.Join(t.TempDir(), "offline")
	env := append(base, "GOPROXY=off", "GOSUMDB=sum.golang.org https://127.0.0.1:9")
	if _, err := New(context.Background(), Options{Name: "offline", SDK: root, Dir: dir, Env: env}); err != nil {
		t.Fatalf("New with only a build's module cache: %v", err)
	}
	list := exec.Command("go", "list", "-deps", "-test", "./...")
	list.Dir, list.Env = dir, env
	if msg, err := list.CombinedOutput(); err != nil {
		t.Fatalf("go list -deps -test in the new module (its packages and tests, all found): %v\n%s", err, msg)
	}
}
