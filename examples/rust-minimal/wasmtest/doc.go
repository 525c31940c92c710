// Package wasmtest holds the test of rust-minimal (in the folder above), a
// Sluice plugin written in Rust without the standard library: the test
// builds it with Debian's rustc, exactly as scripts/build-plugins.sh does,
// and runs it in the real filter host through sdktest.WasmFile.
package wasmtest
