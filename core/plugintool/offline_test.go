package plugintool

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckReadsConfig: check loads a plugin with its NAME.toml (beside
// it, or --config) and serves its grants as the server does, so our own
// ratelimit, which asks for its KV store in sluice_init, passes (the
// issue: "the key-value store is not granted").
func TestCheckReadsConfig(t *testing.T) {
	conf, err := os.ReadFile("../../examples/anti-abuse/plugins/ratelimit.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := plugins(t, map[string]string{"ratelimit.wasm": "../../plugins/ratelimit"})
	wasm := filepath.Join(dir, "ratelimit.wasm")
	var out bytes.Buffer
	// Without its configuration, sluice_init refuses it.
	if err := Check(context.Background(), &out, wasm, CheckOptions{}); err == nil || !strings.Contains(err.Error(), "refused to load") {
		t.Fatalf("check without a configuration: %v, want the plugin's refusal", err)
	}
	other := filepath.Join(t.TempDir(), "elsewhere.toml")
	if err := os.WriteFile(other, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Check(context.Background(), &out, wasm, CheckOptions{Config: other}); err != nil {
		t.Fatalf("check --config: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ratelimit.toml"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := Check(context.Background(), &out, wasm, CheckOptions{}); err != nil {
		t.Fatalf("check with ratelimit.toml beside it: %v", err)
	}
	for _, s := range []string{": ok\n", "grants      kv, metrics\n", "bounded at 262144\n", "functions", "of the server's plugin memory budget"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("check output lacks %q:\n%s", s, out.String())
		}
	}
}

// fixedResolver answers every A query with one address.
type fixedResolver string

func (r fixedResolver) Lookup(_ context.Context, _ uint16, _ string) ([]string, error) {
	return []string{string(r)}, nil
}

// TestOfflineDNS: offline, a plugin granted dns gets temporary failures and
// the output says a resolver is missing (the issue: "capability not
// granted"); given one (--dns), its lookups are answered.
func TestOfflineDNS(t *testing.T) {
	conf, err := os.ReadFile("../../examples/anti-abuse/plugins/dnsbl.toml")
	if err != nil {
		t.Fatal(err)
	}
	// The example skips loopback clients; the test's client is not one.
	dir := plugins(t, map[string]string{"dnsbl.wasm": "../../plugins/dnsbl", "dnsbl.toml": string(conf)})
	opts := TestOptions{Wasm: filepath.Join(dir, "dnsbl.wasm"), Message: []byte(message), From: "a@example.org",
		Rcpts: []string{"b@example.com"}}
	opts.ClientIP = mustAddr("192.0.2.9")
	stages, err := Test(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	var logs []string
	for _, st := range stages {
		logs = append(logs, st.Logs...)
	}
	all := strings.Join(logs, "\n")
	if !strings.Contains(all, "this offline run has no resolver") || !strings.Contains(all, "--dns ADDR") || strings.Contains(all, "not granted") {
		t.Errorf("offline lookups not explained:\n%s", all)
	}

	opts.Resolver = fixedResolver("127.0.0.2") // listed everywhere
	stages, err = Test(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	listed := false
	for _, st := range stages {
		for _, s := range st.Symbols {
			listed = listed || strings.Contains(strings.ToLower(s.Name), "dnsbl") || s.Score > 0
		}
		if st.Result.Reply.Code >= 500 {
			listed = true
		}
	}
	if !listed {
		t.Errorf("a client listed by the resolver scored nothing: %+v", stages)
	}
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
