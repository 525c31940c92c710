package plugintool

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestConfigJSONDialect: get_config returns the [config] of a NAME.toml
// in the JSON dialect pluginapi/ABI.md describes for authors of parsers in
// other languages — compact, keys sorted, TOML integers as integers,
// floats shortest, datetimes as RFC 3339 strings, "&", "<", ">", U+2028
// and U+2029 escaped as \u0026…, other non-ASCII text as UTF-8, control
// characters as \n, \t, \b, \f — read by a C plugin (testdata/rawconfig)
// that copies the bytes into notes, loaded from a NAME.toml as the server
// loads it.
func TestConfigJSONDialect(t *testing.T) {
	for _, tool := range []string{"clang", "wasm-ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (Debian packages clang and lld; scripts/install-test-deps.sh installs them)", tool)
		}
	}
	dir := t.TempDir()
	wasm := filepath.Join(dir, "rawconfig.wasm")
	cmd := exec.Command("clang", "--target=wasm32", "-O2", "-nostdlib", "-ffreestanding", "-Wl,--no-entry",
		"-I", "../../sdk/c", "-o", wasm, "testdata/rawconfig/rawconfig.c")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	toml := `[config]
deny = ["a&b@example.com", "<x>@example.com", "josé@example.com"]
text = "tab\there\nline\u0008\u000c\u2028\u2029\"\\"
n = 3
f = 2.5
small = -0.0001
when = 1979-05-27T07:32:00Z
[config.limits]
burst = 10
`
	if err := os.WriteFile(filepath.Join(dir, "rawconfig.toml"), []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	stages, err := Test(context.Background(), TestOptions{Wasm: wasm, Message: []byte(message), From: "a@example.org", Rcpts: []string{"b@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	notes := stages[0].Notes
	for key, want := range map[string]string{
		"config": `{"deny":["a\u0026b@example.com","\u003cx\u003e@example.com","josé@example.com"],"f":2.5,"limits":{"burst":10},"n":3,` +
			`"small":-0.0001,"text":"tab\there\nline\b\f\u2028\u2029\"\\","when":"1979-05-27T07:32:00Z"}`,
		"deny":  `["a\u0026b@example.com","\u003cx\u003e@example.com","josé@example.com"]`,
		"burst": `10`,
	} {
		if got := notes[key]; got != want {
			t.Errorf("get_config(%q):\n got %s\nwant %s", map[string]string{"config": "", "deny": "deny", "burst": "limits.burst"}[key], got, want)
		}
	}
}
