package wasmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-mta/sluice/pluginapi"
	"github.com/sluice-mta/sluice/sdk/sdktest"
)

// debianRustc is Debian's rustc, the one whose wasm32 standard library
// Debian ships (libstd-rust-dev-wasm32); a rustup toolchain earlier on
// PATH usually has none.
const debianRustc = "/usr/bin/rustc"

// rustcFlags are the flags scripts/build-plugins.sh (make plugins) and
// this test build Rust plugins with: a cdylib for wasm32-unknown-unknown.
var rustcFlags = []string{"--edition", "2021", "--crate-type", "cdylib", "--target", "wasm32-unknown-unknown", "-O"}

// TestMakePluginsBuildsIt: make plugins builds every examples/NAME/NAME.rs
// with these flags, this example among them.
func TestMakePluginsBuildsIt(t *testing.T) {
	script, err := os.ReadFile("../../../scripts/build-plugins.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`RUSTC=${RUSTC:-` + debianRustc + `}`, `for rs in examples/*/*.rs; do`, `"$RUSTC" ` + strings.Join(rustcFlags, " ") + ` -o "$dir/$name.wasm" "$rs"`} {
		if !strings.Contains(string(script), want) {
			t.Errorf("scripts/build-plugins.sh does not build Rust plugins with %q", want)
		}
	}
}

// TestABIDocRust: the Rust lines of pluginapi/ABI.md are this example's,
// which the test below compiles and runs.
func TestABIDocRust(t *testing.T) {
	doc, err := os.ReadFile("../../../pluginapi/ABI.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../rust-minimal.rs")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "```rust\n")
	block, _, ok2 := strings.Cut(block, "```\n")
	if !ok || !ok2 {
		t.Fatal("ABI.md has no ```rust block")
	}
	for _, line := range strings.Split(strings.TrimSpace(block), "\n") {
		if !strings.Contains(string(src), line+"\n") {
			t.Errorf("ABI.md's Rust line %q is not in rust-minimal.rs", line)
		}
	}
	for _, want := range []string{"#[no_mangle] pub extern \"C\" fn sluice_on_hook(hook: i32) -> i32", "crate-type = [\"cdylib\"]"} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("ABI.md's Rust section lacks %q", want)
		}
	}
	if !strings.Contains(string(src), "#[no_mangle]\npub extern \"C\" fn sluice_on_hook(hook: i32) -> i32 {") {
		t.Error("rust-minimal.rs does not export sluice_on_hook as ABI.md shows")
	}
}

func TestRustMinimal(t *testing.T) {
	if _, err := exec.LookPath(debianRustc); err != nil {
		t.Fatalf("%s not found: the Rust example is built with Debian's rustc and libstd-rust-dev-wasm32 (scripts/install-test-deps.sh installs them)", debianRustc)
	}
	wasm := filepath.Join(t.TempDir(), "rust-minimal.wasm")
	cmd := exec.Command(debianRustc, append(rustcFlags, "-o", wasm, "../rust-minimal.rs")...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	r := sdktest.WasmFile(t, wasm, sdktest.Txn{From: "a@example.org", Message: []byte("Subject: hi\n\nbody\n")})
	if res := r.RunRcpt("ok@example.com"); res.Verdict != pluginapi.Continue {
		t.Errorf("rcpt ok@example.com: %v %s", res.Verdict, res.Reply())
	}
	res := r.RunRcpt("blocked@example.com")
	if res.Verdict != pluginapi.Reject || res.Reply() != "550 5.7.1 blocked by rust-minimal" || !res.HasLog("rust-minimal: refusing recipient") {
		t.Errorf("rcpt blocked@example.com: %v %q %q", res.Verdict, res.Reply(), res.Logs)
	}
	res = r.Run(pluginapi.HookData)
	if res.Verdict != pluginapi.Continue || !strings.HasPrefix(res.Header, "X-Rust: hello from rust\r\nSubject: hi\r\n") {
		t.Errorf("data: %v, header %q", res.Verdict, res.Header)
	}
}
