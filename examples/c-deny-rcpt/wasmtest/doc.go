// Package wasmtest holds the test of c-deny-rcpt (in the folder above), a Sluice plugin written
// in C against sdk/c/sluice.h with no libc: the test builds it with Debian's
// clang and wasm-ld, exactly as scripts/build-plugins.sh does, and runs it
// in the real filter host through sdktest.WasmFile.
package wasmtest
