package sdktest

import (
	"bytes"
	"context"
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
// module. Builds are cached per test binary.
func Build(t testing.TB, pkg string) []byte {
	t.Helper()
	dir, err := filepath.Abs(pkg)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	v, _ := builds.LoadOrStore(dir, &build{})
	b := v.(*build)
	b.once.Do(func() {
		out := filepath.Join(t.TempDir(), filepath.Base(dir)+".wasm")
		cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, ".")
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
	wasm, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	if tx.Plugin == "" {
		tx.Plugin = strings.TrimSuffix(filepath.Base(path), ".wasm")
	}
	return runModule(t, wasm, tx)
}

func runModule(t testing.TB, wasm []byte, tx Txn) *Runner {
	t.Helper()
	tx.defaults()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, tx.Plugin+".wasm"), wasm, 0o644); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	settings := map[string]any{"timeout": "10s"} // tests assert behaviour, not speed
	for k, v := range tx.Settings {
		settings[k] = v
	}
	conf, err := PluginTOML(tx.Config, tx.Grants, settings)
	if err != nil {
		t.Fatalf("sdktest: writing %s.toml: %v", tx.Plugin, err)
	}
	if err := os.WriteFile(filepath.Join(dir, tx.Plugin+".toml"), conf, 0o644); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	r := newRunner(t, tx.Plugin, tx)
	now := tx.Now
	ctx := context.Background()
	host, err := filter.New(ctx, filter.Options{Dir: dir, CacheDir: compileCache(), KV: tx.KV, Resolver: tx.Resolver,
		Metrics: r.metrics, Logger: slog.New(r.logs), Now: func() time.Time { return now },
		ReloadInterval: time.Hour})
	if err != nil {
		t.Fatalf("sdktest: starting the filter host: %v", err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	if len(host.Plugins()) != 1 {
		t.Fatalf("sdktest: plugin %s did not load:\n%s", tx.Plugin, strings.Join(r.logs.Since(0), "\n"))
	}
	r.call = func(ctx context.Context, hook pluginapi.Hook, txn *filter.Txn) filter.Result {
		return host.Run(ctx, hook, txn)
	}
	return r
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

// PluginTOML returns a NAME.toml with the given [config] table, grants and
// other settings.
func PluginTOML(config map[string]any, grants []string, settings map[string]any) ([]byte, error) {
	m := map[string]any{}
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
