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
