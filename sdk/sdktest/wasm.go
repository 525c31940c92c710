package sdktest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/pluginapi"
)

// builds caches compiled plugins per package directory for the life of the
// test binary: a Go plugin takes seconds to build.
var builds sync.Map // absolute dir -> *build

type build struct {
	once sync.Once
	wasm []byte
	err  error
}

// Build compiles the Go plugin in directory pkg (relative to the test's
// working directory, "." for the package under test) with
// GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared and returns the
// module; a library package that registers its plugin with sdk.Plugin (a
// bundle's part) is built alone with a main that imports it. Builds are
// cached per test binary.
func Build(t testing.TB, pkg string) []byte {
	t.Helper()
	dir, err := filepath.Abs(pkg)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	v, _ := builds.LoadOrStore(dir, &build{})
	b := v.(*build)
	b.once.Do(func() {
		tmp := t.TempDir()
		out := filepath.Join(tmp, filepath.Base(dir)+".wasm")
		args, err := buildArgs(dir, tmp)
		if err != nil {
			b.err, b.wasm = err, nil
			return
		}
		cmd := exec.Command("go", append([]string{"build", "-buildmode=c-shared", "-o", out}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = err
			b.wasm = msg
			return
		}
		b.wasm, b.err = os.ReadFile(out)
	})
	if b.err != nil {
		t.Fatalf("sdktest: building %s for wasip1: %v\n%s", dir, b.err, b.wasm)
	}
	return b.wasm
}

// buildArgs returns the package arguments of go build for the plugin in
// dir: "." for a main package; for a library package that registers its
// plugin with sdk.Plugin (as the first-party plugins do, so that a bundle
// can import them), a main package importing it, added through go build's
// -overlay with a file in tmp.
func buildArgs(dir, tmp string) ([]string, error) {
	cmd := exec.Command("go", "list", "-f", "{{.Name}} {{.ImportPath}}", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	o, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list in %s: %w", dir, err)
	}
	name, path, _ := strings.Cut(strings.TrimSpace(string(o)), " ")
	if name == "main" {
		return []string{"."}, nil
	}
	main := filepath.Join(tmp, "main.go")
	src := fmt.Sprintf("// Command %s builds the plugin package %s alone.\npackage main\n\nimport _ %q\n\nfunc main() {}\n", name, path, path)
	overlay, err := json.Marshal(map[string]map[string]string{"Replace": {filepath.Join(dir, "_sdktest_main", "main.go"): main}})
	if err != nil {
		return nil, err
	}
	ov := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(main, []byte(src), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(ov, overlay, 0o644); err != nil {
		return nil, err
	}
	return []string{"-overlay", ov, "./_sdktest_main"}, nil
}

// Wasm builds the Go plugin in directory pkg (see Build) and runs it in the
// real filter host, with NAME.toml written from the scenario's Config,
// Grants and Settings.
func Wasm(t testing.TB, pkg string, tx Txn) *Runner {
	t.Helper()
	wasm := Build(t, pkg)
	if tx.Plugin == "" {
		dir, _ := filepath.Abs(pkg)
		tx.Plugin = filepath.Base(dir)
	}
	return runModule(t, wasm, tx)
}

// WasmFile runs an already built module (any language) in the real filter
// host. The plugin's name defaults to the file's base name without ".wasm".
func WasmFile(t testing.TB, path string, tx Txn) *Runner {
	t.Helper()
	wasm := readModule(t, path, &tx)
	return runModule(t, wasm, tx)
}

// readModule reads the module at path and names the plugin after the
// file unless tx names it.
func readModule(t testing.TB, path string, tx *Txn) []byte {
	t.Helper()
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	if tx.Plugin == "" {
		tx.Plugin = strings.TrimSuffix(filepath.Base(path), ".wasm")
	}
	return wasm
}

// LoadError builds the Go plugin in directory pkg, tries to load it in the
// real filter host with the scenario's Config, Grants and Settings, and
// returns what the host logged about the failed load ("" when it loaded):
// a plugin whose OnInit refuses its configuration is not loaded.
func LoadError(t testing.TB, pkg string, tx Txn) string {
	t.Helper()
	wasm := Build(t, pkg)
	if tx.Plugin == "" {
		dir, _ := filepath.Abs(pkg)
		tx.Plugin = filepath.Base(dir)
	}
	_, hostLog, loaded := startModule(t, wasm, tx, nil)
	if loaded {
		return ""
	}
	return strings.Join(hostLog.Since(0), "\n")
}

// WasmFileLoadError loads an already built module (any language) in the
// real filter host with the scenario's Config, Grants and Settings and
// returns what the host logged about a failed load ("" when it loaded):
// a module whose sluice_init refuses its configuration is not loaded.
func WasmFileLoadError(t testing.TB, path string, tx Txn) string {
	t.Helper()
	wasm := readModule(t, path, &tx)
	_, hostLog, loaded := startModule(t, wasm, tx, nil)
	if loaded {
		return ""
	}
	return strings.Join(hostLog.Since(0), "\n")
}

// ExampleLoadError builds the Go plugin in directory pkg and loads it in
// the real filter host with the NAME.toml file at tomlPath, exactly as it
// ships, and returns what the host logged about a failed load ("" when it
// loaded): a plugin's own test that its example configuration works.
func ExampleLoadError(t testing.TB, pkg, tomlPath string) string {
	t.Helper()
	conf, err := os.ReadFile(tomlPath)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	dir, _ := filepath.Abs(pkg)
	_, hostLog, loaded := startModule(t, Build(t, pkg), Txn{Plugin: filepath.Base(dir)}, conf)
	if loaded {
		return ""
	}
	return strings.Join(hostLog.Since(0), "\n")
}

func runModule(t testing.TB, wasm []byte, tx Txn) *Runner {
	t.Helper()
	r, hostLog, loaded := startModule(t, wasm, tx, nil)
	if !loaded {
		t.Fatalf("sdktest: plugin %s did not load:\n%s", tx.Plugin, strings.Join(hostLog.Since(0), "\n"))
	}
	return r
}

// startModule loads one module in a real filter host and reports whether
// it loaded; hostLog holds everything the host logged, with attributes.
// The module's NAME.toml is conf when given, else made from tx.
func startModule(t testing.TB, wasm []byte, tx Txn, conf []byte) (r *Runner, hostLog *filter.LogLines, loaded bool) {
	t.Helper()
	tx.defaults()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tx.Plugin+".wasm"), wasm, 0o644); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	if conf == nil {
		var err error
		if conf, err = PluginTOML(tx.Config, tx.Grants, tx.Settings); err != nil {
			t.Fatalf("sdktest: writing %s.toml: %v", tx.Plugin, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, tx.Plugin+".toml"), conf, 0o644); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	r = newRunner(t, tx.Plugin, tx)
	hostLog = &filter.LogLines{WithValues: true}
	now := tx.Now
	ctx := context.Background()
	host, err := filter.New(ctx, filter.Options{Dir: dir, CacheDir: compileCache(), KV: tx.KV, Resolver: tx.Resolver,
		Metrics: r.metrics, Logger: slog.New(slog.NewMultiHandler(r.logs, hostLog)), Now: func() time.Time { return now },
		ReloadInterval: time.Hour})
	if err != nil {
		t.Fatalf("sdktest: starting the filter host: %v", err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	r.call = func(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result {
		return host.Run(ctx, hook, txn)
	}
	return r, hostLog, len(host.Plugins()) == 1
}

// compileCache returns a directory for wazero's compilation cache shared by
// test runs (like Go's build cache), or "" when there is none.
func compileCache() string {
	dir, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	dir = filepath.Join(dir, "sluice", "sdktest-wazero")
	if os.MkdirAll(dir, 0o755) != nil {
		return ""
	}
	return dir
}

// WithExample returns tx with the [config] table and grants of the
// NAME.toml file at tomlPath (a shipped example), so that a test or a
// benchmark runs the plugin as that file configures it.
func WithExample(t testing.TB, tomlPath string, tx Txn) Txn {
	t.Helper()
	b, err := os.ReadFile(tomlPath)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	var f struct {
		Config map[string]any `toml:"config"`
		Grants []string       `toml:"grants"`
	}
	if err := toml.Unmarshal(b, &f); err != nil {
		t.Fatalf("sdktest: %s: %v", tomlPath, err)
	}
	tx.Config, tx.Grants = f.Config, f.Grants
	return tx
}

// PluginTOML returns a NAME.toml with the given [config] table, grants and
// other settings. Its timeout is 10s unless settings give one: a test
// asserts behaviour, not speed, and a loaded test machine (go test runs
// packages side by side) can take longer than the default 100ms for a
// call, whose failure policy would then answer instead of the plugin.
func PluginTOML(config map[string]any, grants []string, settings map[string]any) ([]byte, error) {
	m := map[string]any{"timeout": "10s"}
	for k, v := range settings {
		m[k] = v
	}
	if len(grants) > 0 {
		m["grants"] = grants
	}
	if len(config) > 0 {
		m["config"] = config
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
