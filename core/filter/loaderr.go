package filter

import (
	"errors"
	"strings"

	"github.com/tetratelabs/wazero/api"

	"github.com/sluice-mta/sluice/pluginapi"
)

// Load errors that tell a plugin author what to do: the build line for a
// native binary or a WASI command, wat2wasm for WebAssembly text.

// goBuild is the build line of a Go plugin.
const goBuild = "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o NAME.wasm ."

// buildError is a load error whose advice names the plugin's file
// (NAME.wasm until withName sets it).
type buildError struct {
	msg  string
	name string
}

func (e *buildError) Error() string {
	if e.name == "" {
		return e.msg
	}
	return strings.ReplaceAll(e.msg, "NAME.", e.name+".")
}

// withName names the plugin in err's advice, when it has some.
func withName(err error, name string) error {
	var be *buildError
	if errors.As(err, &be) {
		be.name = name
	}
	return err
}

// notWasm says what a file without the \0asm header is, and how to make
// a plugin of it.
func notWasm(bin []byte) error {
	head := string(bin[:min(len(bin), 64)])
	text := strings.TrimLeft(head, " \t\r\n")
	switch {
	case strings.HasPrefix(head, "\x7fELF"), strings.HasPrefix(head, "MZ"), strings.HasPrefix(head, "\xcf\xfa\xed\xfe"):
		return &buildError{msg: "not a WebAssembly module (no \\0asm header): it is a native executable; a Go plugin is built for WASI with: " + goBuild}
	case strings.HasPrefix(text, "(module"), strings.HasPrefix(text, ";;"):
		return &buildError{msg: "not a WebAssembly module (no \\0asm header): it looks like WebAssembly text; assemble it with: wat2wasm NAME.wat -o NAME.wasm"}
	}
	return &buildError{msg: "not a WebAssembly module (no \\0asm header); a Go plugin is built with: " + goBuild}
}

// foreignImport explains an import the host does not provide when it
// tells how the module was built: Go for GOOS=js ("gojs", "go"), or C
// linked against a libc the host does not have ("env"); nil otherwise.
func foreignImport(module, full string) error {
	switch module {
	case "gojs", "go":
		return &buildError{msg: "imports " + full + ": it was built for GOOS=js (a browser); a plugin is built for WASI with: " + goBuild}
	case "env":
		return &buildError{msg: "imports " + full + ", which the host does not provide: a plugin has no C library; build C with clang --target=wasm32 -nostdlib -Wl,--no-entry and write what it needs (memcpy, memset) yourself (see pluginapi/ABI.md)"}
	}
	return nil
}

// checkCommand refuses a WASI command module (one exporting _start and no
// _initialize) with the build line that makes a reactor: the host never
// calls _start, and a Go module built without -buildmode=c-shared traps at
// its first export call ("runtime.notInitialized").
func checkCommand(ex map[string]api.FunctionDefinition, goModule bool) error {
	if _, cmd := ex["_start"]; !cmd {
		return nil
	}
	if _, reactor := ex[pluginapi.ExportInitialize]; reactor {
		return nil
	}
	if goModule {
		return &buildError{msg: "is a Go WASI command (it exports _start): it was built without -buildmode=c-shared; build it with: " + goBuild}
	}
	return &buildError{msg: "is a WASI command module (it exports _start, which the host never calls); build a reactor or a plain module instead: C with clang --target=wasm32 -nostdlib -Wl,--no-entry (or -mexec-model=reactor with wasi-libc), Rust with crate-type = [\"cdylib\"] (see pluginapi/ABI.md)"}
}

// isGoModule reports whether the module was linked by Go (it has Go's
// "go:buildid" custom section).
func isGoModule(secs []section) bool {
	for _, s := range secs {
		if s.id == 0 && (&reader{b: s.body}).name() == "go:buildid" {
			return true
		}
	}
	return false
}
