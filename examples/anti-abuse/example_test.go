// Package antiabuse holds no code: its test keeps the example
// configuration in this folder loadable by the current core and plugins.
package antiabuse

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/core/addressing"
	"github.com/sluice-mta/sluice/core/config"
	"github.com/sluice-mta/sluice/core/filter"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// order is every first-party plugin in the order the example runs them.
var order = []struct {
	name  string
	order int
}{
	{"dnsbl", 10}, {"helo", 15}, {"greylist", 20}, {"ratelimit", 30}, {"sender-policy", 40}, {"spamscore", 50}, {"headers", 60},
}

// TestSluiceTOML loads sluice.toml, with its /etc/sluice (the
// [addressing] files, which must exist) a directory holding the example
// maps of addressing/, and checks what the plugins rely on. The maps must
// load too, with one warning: the law firm's catch-all, which is meant.
func TestSluiceTOML(t *testing.T) {
	text, err := os.ReadFile("sluice.toml")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(text), `"/etc/sluice/`); n != 3 {
		t.Fatalf("sluice.toml names /etc/sluice %d times, want 3 (domains, aliases, srs_secret_file): update this test", n)
	}
	path := filepath.Join(t.TempDir(), "sluice.toml")
	text = []byte(strings.ReplaceAll(string(text), `"/etc/sluice/`, `"`+mapsDir(t)+"/"))
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("examples/anti-abuse/sluice.toml does not load: %v", err)
	}
	warnings, st, err := addressing.Check(cfg)
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], `catch-all "@customer-lawfirm.example"`) || st.Aliases == 0 {
		t.Errorf("the example maps: %v, warnings %q, %+v", err, warnings, st)
	}
	if cfg.Addressing.Verify != "lmtp" || cfg.Addressing.SRSDomain != "srs.hosting.example" {
		t.Errorf("[addressing] %+v", cfg.Addressing)
	}
	if cfg.Plugins.Dir != "/var/lib/sluice/plugins" {
		t.Errorf("plugins dir %q, want /var/lib/sluice/plugins", cfg.Plugins.Dir)
	}
	if cfg.Spam.AddHeader != 5 || cfg.Spam.Quarantine != 10 || cfg.Spam.Reject != 15 {
		t.Errorf("[spam] %+v, want 5/10/15 (headers.toml's subject_tag_score relies on add_header 5)", cfg.Spam)
	}
}

// TestPlugins builds every first-party plugin, installs it with the
// example NAME.toml of plugins/ and loads the directory in the real filter
// host: each NAME.toml must parse, and each plugin must accept its
// configuration (OnInit), in the listed order. The example NAME.toml in
// each plugin's own folder gets the same check.
func TestPlugins(t *testing.T) {
	entries, err := os.ReadDir("plugins")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(order) {
		t.Errorf("plugins/ holds %d files, want one NAME.toml for each of the %d first-party plugins", len(entries), len(order))
	}
	cache := t.TempDir() // the second load reuses the compiled modules
	wasm := map[string][]byte{}
	for _, p := range order {
		wasm[p.name] = sdktest.Build(t, filepath.Join("..", "..", "plugins", "firstparty")) // one module, every first-party plugin
	}
	t.Run("examples/anti-abuse/plugins", func(t *testing.T) {
		loaded := load(t, cache, wasm, func(name string) string { return filepath.Join("plugins", name+".toml") })
		for i, p := range order {
			if loaded[i].Name != p.name || loaded[i].Order != p.order {
				t.Errorf("plugin %d is %s (order %d), want %s (order %d)", i, loaded[i].Name, loaded[i].Order, p.name, p.order)
			}
		}
	})
	t.Run("plugins/NAME/NAME.toml", func(t *testing.T) {
		load(t, cache, wasm, func(name string) string { return filepath.Join("..", "..", "plugins", name, name+".toml") })
	})
}

// load installs every plugin with the NAME.toml at tomlPath(name) in a
// fresh directory, loads it (compilation cache in cache) in a filter host and returns the plugins in
// chain order; it fails the test unless all of them loaded.
func load(t *testing.T, cache string, wasm map[string][]byte, tomlPath func(name string) string) []filter.PluginInfo {
	t.Helper()
	dir := t.TempDir()
	for _, p := range order {
		toml, err := os.ReadFile(tomlPath(p.name))
		if err != nil {
			t.Fatalf("%v (every first-party plugin needs its example NAME.toml)", err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.name+".toml"), toml, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.name+".wasm"), wasm[p.name], 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs := filter.LogLines{WithValues: true}
	h, err := filter.New(context.Background(), filter.Options{Dir: dir, CacheDir: cache, Logger: slog.New(&logs),
		KV: sdktest.NewMemKV(nil), Resolver: sdktest.MemResolver{}, Metrics: sdktest.NewMetrics()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close(context.Background()) })
	loaded := h.Plugins()
	if len(loaded) != len(order) {
		var names []string
		for _, p := range loaded {
			names = append(names, p.Name)
		}
		t.Fatalf("loaded %v, want all of %v; host log:\n%s", names, order, strings.Join(logs.Since(0), "\n"))
	}
	return loaded
}
