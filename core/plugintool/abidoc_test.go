package plugintool

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// abiprobe builds testdata/abiprobe with clang, as a C author would.
func abiprobe(t *testing.T) string {
	t.Helper()
	for _, tool := range []string{"clang", "wasm-ld"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (Debian packages clang and lld; scripts/install-test-deps.sh installs them)", tool)
		}
	}
	wasm := filepath.Join(t.TempDir(), "abiprobe.wasm")
	cmd := exec.Command("clang", "--target=wasm32", "-O2", "-nostdlib", "-ffreestanding", "-Wl,--no-entry",
		"-I", "../../sdk/c", "-o", wasm, "testdata/abiprobe/abiprobe.c")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return wasm
}

// TestABIDocConfigJSON: get_config returns the [config] of a NAME.toml
// in the JSON dialect pluginapi/ABI.md describes for authors of parsers in
// other languages — compact, keys sorted, TOML integers as integers,
// floats shortest, datetimes as RFC 3339 strings, "&", "<", ">", U+2028
// and U+2029 escaped as \u0026…, other non-ASCII text as UTF-8, control
// characters as \n, \t, \b, \f — read by a C plugin (testdata/abiprobe)
// that copies the bytes into notes, loaded from a NAME.toml as the server
// loads it.
func TestABIDocConfigJSON(t *testing.T) {
	wasm := abiprobe(t)
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
	if err := os.WriteFile(filepath.Join(filepath.Dir(wasm), "abiprobe.toml"), []byte(toml), 0o644); err != nil {
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

// TestABIDocTexts: what ABI.md says must be printable ASCII is refused
// with -3 when it is UTF-8 (a reply text echoing an SMTPUTF8 address, a
// header field name, a score symbol, an added recipient), while a header
// value may be UTF-8.
func TestABIDocTexts(t *testing.T) {
	wasm := abiprobe(t)
	stages, err := Test(context.Background(), TestOptions{Wasm: wasm, Message: []byte(message), From: "a@example.org", Rcpts: []string{"b@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	data := stages[4]
	if data.Name != "data" {
		t.Fatalf("stage 4 is %s", data.Name)
	}
	for note, want := range map[string]string{
		"set_reply utf8 text": "-3", "set_reply ascii text": "0",
		"add_header utf8 name": "-3", "add_header utf8 value": "0",
		"add_score utf8 symbol": "-3", "add_rcpt utf8 address": "-3",
	} {
		if got := data.Notes[note]; got != want {
			t.Errorf("%s: status %q, want %s", note, got, want)
		}
	}
	if !slices.Contains(data.HeaderDiff, "+ X-Cafe: caf\u00e9") {
		t.Errorf("the UTF-8 header value was not added: %q", data.HeaderDiff)
	}
}
