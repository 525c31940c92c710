package filter

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// checkErr writes bin as NAME.wasm and returns Check's error.
func checkErr(t *testing.T, bin []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p.wasm")
	if err := os.WriteFile(path, bin, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Check(context.Background(), path)
	if err == nil {
		t.Fatal("the module loaded")
	}
	return err.Error()
}

// TestLoadErrorsSayWhatToDo: the load errors a new plugin author meets
// first name the fix: the build line for a native binary, a Go module
// built without -buildmode=c-shared or one built for GOOS=js, wat2wasm for
// a text file, a reactor for a WASI command, no libc for C importing
// memcpy from "env".
func TestLoadErrorsSayWhatToDo(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	native, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	wat, err := os.ReadFile("testdata/command.wat")
	if err != nil {
		t.Fatal(err)
	}
	goCmd := filepath.Join(t.TempDir(), "cmd.wasm")
	build := exec.Command("go", "build", "-o", goCmd, "../../examples/hello")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/hello for wasip1: %v\n%s", err, out)
	}
	goBin, err := os.ReadFile(goCmd)
	if err != nil {
		t.Fatal(err)
	}
	jsCmd := filepath.Join(t.TempDir(), "js.wasm")
	build = exec.Command("go", "build", "-o", jsCmd, "../../examples/hello")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/hello for js: %v\n%s", err, out)
	}
	jsBin, err := os.ReadFile(jsCmd)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		bin  []byte
		want []string
	}{
		{"native executable", native, []string{"no \\0asm header", "native executable", "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared"}},
		{"WebAssembly text", wat, []string{"WebAssembly text", "wat2wasm p.wat -o p.wasm"}},
		{"WASI command", wasm(t, "command"), []string{"WASI command module", "exports _start", "-Wl,--no-entry", "cdylib"}},
		{"Go without c-shared", goBin, []string{"built without -buildmode=c-shared", "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o p.wasm ."}},
		{"Go for GOOS=js", jsBin, []string{"imports gojs.", "built for GOOS=js", "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o p.wasm ."}},
		{"C with libc", wasm(t, "libc"), []string{"imports env.memcpy", "no C library", "-nostdlib -Wl,--no-entry"}},
	} {
		got := checkErr(t, c.bin)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: error %q does not say %q", c.name, got, w)
			}
		}
		if secs, err := sections(c.bin); err == nil && isGoModule(secs) != strings.HasPrefix(c.name, "Go ") {
			t.Errorf("%s: isGoModule %v", c.name, !strings.HasPrefix(c.name, "Go "))
		}
		if strings.Contains(got, "unreachable") || strings.Contains(got, "notInitialized") {
			t.Errorf("%s: error %q shows the trap instead of the fix", c.name, got)
		}
	}
}

// TestCheckListsEachImportOnce: Go's runtime imports fd_write twice; the
// module's import list names it once.
func TestCheckListsEachImportOnce(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "hello.wasm")
	build := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "../../examples/hello")
	build.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if msg, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, msg)
	}
	info, err := Check(context.Background(), out)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, im := range info.Imports {
		if seen[im] {
			t.Errorf("import %s listed twice: %q", im, info.Imports)
		}
		seen[im] = true
	}
	if !seen["wasi_snapshot_preview1.fd_write"] {
		t.Errorf("fd_write missing from %q", info.Imports)
	}
}
