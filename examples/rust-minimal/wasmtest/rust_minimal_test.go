package wasmtest

import (
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

func TestRustMinimal(t *testing.T) {
	if _, err := exec.LookPath(debianRustc); err != nil {
		t.Fatalf("%s not found: the Rust example is built with Debian's rustc and libstd-rust-dev-wasm32 (scripts/install-test-deps.sh installs them)", debianRustc)
	}
	wasm := filepath.Join(t.TempDir(), "rust-minimal.wasm")
	cmd := exec.Command(debianRustc, "--edition", "2021", "--crate-type", "cdylib", "--target", "wasm32-unknown-unknown",
		"-O", "-o", wasm, "../rust-minimal.rs")
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
