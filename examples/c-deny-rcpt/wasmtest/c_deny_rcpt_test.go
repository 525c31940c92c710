package wasmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// clangFlags are the flags scripts/build-plugins.sh (make plugins) and
// this test build C plugins with: wasm32, no libc, no entry point.
var clangFlags = []string{"--target=wasm32", "-O2", "-nostdlib", "-ffreestanding", "-Wl,--no-entry"}

// build compiles c-deny-rcpt.c with the command of
// scripts/build-plugins.sh and returns the module's path.
func build(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"clang", "wasm-ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the C example is built with Debian's clang and lld (scripts/install-test-deps.sh installs them)", tool)
		}
	}
	out := filepath.Join(t.TempDir(), "c-deny-rcpt.wasm")
	cmd := exec.Command("clang", append(clangFlags, "-I", "../../../sdk/c", "-o", out, "../c-deny-rcpt.c")...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, msg)
	}
	return out
}

// TestMakePluginsBuildsIt: make plugins builds every examples/NAME/NAME.c
// with these flags, this example among them.
func TestMakePluginsBuildsIt(t *testing.T) {
	script, err := os.ReadFile("../../../scripts/build-plugins.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`for c in examples/*/*.c; do`, `"$CLANG" ` + strings.Join(clangFlags, " ") + ` -I sdk/c -o "$dir/$name.wasm" "$c"`} {
		if !strings.Contains(string(script), want) {
			t.Errorf("scripts/build-plugins.sh does not build C plugins with %q", want)
		}
	}
}

func TestCDenyRcpt(t *testing.T) {
	wasm := build(t)
	// Go's encoding/json, which get_config uses, writes "&" as \u0026:
	// the C plugin decodes the escape to match "a&b@example.com".
	deny := map[string]any{"deny": []any{"blocked@example.com", " Trap@Example.NET ", "a&b@example.com", "jos\u00e9@example.com"}}
	tests := []struct {
		name   string
		config map[string]any
		rcpt   string
		reply  string // "" for continue
	}{
		{"listed", deny, "blocked@example.com", "550 5.7.1 <blocked@example.com>: recipient refused by policy"},
		{"case-insensitive", deny, "BLOCKED@example.COM", "550 5.7.1 <BLOCKED@example.com>: recipient refused by policy"},
		{"spaces and case in config", deny, "trap@example.net", "550 5.7.1 <trap@example.net>: recipient refused by policy"},
		{"JSON escape", deny, "a&b@example.com", "550 5.7.1 <a&b@example.com>: recipient refused by policy"},
		{"UTF-8 address, ASCII reply", deny, "jos\u00e9@example.com", "550 5.7.1 recipient refused by policy"},
		{"not listed", deny, "ok@example.com", ""},
		{"prefix is not a match", deny, "blocked@example.com.evil", ""},
		{"no config", nil, "blocked@example.com", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := sdktest.Txn{From: "a@example.org", Config: tc.config}
			res := sdktest.WasmFile(t, wasm, tx).RunRcpt(tc.rcpt)
			if res.Reply() != tc.reply {
				t.Errorf("rcpt %s: %v %q, want %q", tc.rcpt, res.Verdict, res.Reply(), tc.reply)
			}
			if tc.reply == "" {
				if res.Verdict != pluginapi.Continue {
					t.Errorf("rcpt %s: %v, want continue", tc.rcpt, res.Verdict)
				}
				return
			}
			if res.Verdict != pluginapi.Reject || !res.Outcome.Drop && res.Outcome.Reply == nil {
				t.Errorf("rcpt %s: %v, outcome %+v, want the recipient refused", tc.rcpt, res.Verdict, res.Outcome)
			}
			// The plugin sees the domain in lower case, as the server gives it.
			local, domain, _ := strings.Cut(tc.rcpt, "@")
			if !res.HasLog("INFO c-deny-rcpt: refusing <" + local + "@" + strings.ToLower(domain) + ">") {
				t.Errorf("log %q lacks the refusal", res.Logs)
			}
		})
	}
}

// TestCDenyRcptRefusesABadList: its sluice_init refuses the load, with
// the reason it logged, when deny is not a list of addresses.
func TestCDenyRcptRefusesABadList(t *testing.T) {
	wasm := build(t)
	for _, c := range []struct {
		deny any
		want string
	}{
		{"blocked@example.com", "config key deny must be a list of addresses"},
		{[]any{"blocked@example.com", 3}, "config key deny must be a list of addresses"},
		{[]any{"nobody"}, `config key deny: "nobody" is not an address`},
	} {
		got := sdktest.WasmFileLoadError(t, wasm, sdktest.Txn{Config: map[string]any{"deny": c.deny}})
		if !strings.Contains(got, c.want) {
			t.Errorf("deny = %v: load error %q, want it to say %q", c.deny, got, c.want)
		}
	}
	if got := sdktest.WasmFileLoadError(t, wasm, sdktest.Txn{Config: map[string]any{"deny": []any{}}}); got != "" {
		t.Errorf("deny = []: %s", got)
	}
}

// TestCDenyRcptExampleConfig runs the module with the [config] of the
// c-deny-rcpt.toml that ships beside it.
func TestCDenyRcptExampleConfig(t *testing.T) {
	wasm := build(t)
	b, err := os.ReadFile("../c-deny-rcpt.toml")
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Config map[string]any `toml:"config"`
	}
	if err := toml.Unmarshal(b, &conf); err != nil {
		t.Fatalf("c-deny-rcpt.toml: %v", err)
	}
	r := sdktest.WasmFile(t, wasm, sdktest.Txn{Config: conf.Config})
	if res := r.RunRcpt("abuse-trap@example.net"); res.Verdict != pluginapi.Reject {
		t.Errorf("abuse-trap@example.net: %v", res.Verdict)
	}
	if res := r.RunRcpt("ok@example.net"); res.Verdict != pluginapi.Continue {
		t.Errorf("ok@example.net: %v", res.Verdict)
	}
}
