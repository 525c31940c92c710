#!/bin/sh
# build-plugins.sh builds every Go plugin (a folder with main.go) under
# examples/ and plugins/ to <dir>/<name>.wasm (the first-party plugins are
# one module, plugins/firstparty, copied to each plugins/NAME/NAME.wasm) with standard Go for WASI, and
# examples/wat-minimal with wat2wasm (Debian package wabt) and every C
# plugin (a folder with NAME.c) with clang and wasm-ld (Debian packages
# clang and lld), and every Rust plugin (a folder with NAME.rs) with
# Debian's rustc and its wasm32 standard library (packages rustc and
# libstd-rust-dev-wasm32), when present.
#
#   scripts/build-plugins.sh            build
#   scripts/build-plugins.sh dev DIR    build, then copy the examples and
#                                       their NAME.toml into the plugins DIR
set -eu

cd "$(dirname "$0")/.."
GO=${GO:-go}

built=""
for dir in examples/*/ plugins/*/; do
	[ -f "${dir}main.go" ] || continue
	name=$(basename "$dir")
	echo "build-plugins.sh: ${dir}${name}.wasm" >&2
	(cd "$dir" && GOOS=wasip1 GOARCH=wasm "$GO" build -buildmode=c-shared -o "$name.wasm" .)
	built="$built $dir$name.wasm"
done

# The first-party plugins are library packages (plugins/NAME, registered
# by name with sdk.Plugin) built into one module, plugins/firstparty; each
# plugins/NAME/NAME.wasm is a copy of it, so that a server loading several
# compiles the code once (RATIONALE.md, "One module for the first-party
# plugins").
for dir in plugins/*/; do
	name=$(basename "$dir")
	[ "$name" != firstparty ] && [ ! -f "${dir}main.go" ] || continue
	ls "$dir"*.go >/dev/null 2>&1 || continue
	echo "build-plugins.sh: ${dir}${name}.wasm (plugins/firstparty)" >&2
	cp plugins/firstparty/firstparty.wasm "$dir$name.wasm"
done

wat=examples/wat-minimal/wat-minimal.wat
if command -v wat2wasm >/dev/null 2>&1; then
	echo "build-plugins.sh: examples/wat-minimal/wat-minimal.wasm" >&2
	wat2wasm "$wat" -o examples/wat-minimal/wat-minimal.wasm
	built="$built examples/wat-minimal/wat-minimal.wasm"
else
	echo "build-plugins.sh: wat2wasm not found (install wabt); skipping $wat" >&2
fi

CLANG=${CLANG:-clang}
for c in examples/*/*.c; do
	[ -f "$c" ] || continue
	dir=$(dirname "$c")
	name=$(basename "$dir")
	[ "$c" = "$dir/$name.c" ] || continue
	if ! command -v "$CLANG" >/dev/null 2>&1 || ! command -v wasm-ld >/dev/null 2>&1; then
		echo "build-plugins.sh: clang or wasm-ld not found (install clang and lld); skipping $c" >&2
		continue
	fi
	echo "build-plugins.sh: $dir/$name.wasm" >&2
	"$CLANG" --target=wasm32 -O2 -nostdlib -ffreestanding -Wl,--no-entry -I sdk/c -o "$dir/$name.wasm" "$c"
	built="$built $dir/$name.wasm"
done

# Debian's rustc by default: a rustup toolchain earlier on PATH usually has
# no wasm32 standard library.
RUSTC=${RUSTC:-/usr/bin/rustc}
for rs in examples/*/*.rs; do
	[ -f "$rs" ] || continue
	dir=$(dirname "$rs")
	name=$(basename "$dir")
	[ "$rs" = "$dir/$name.rs" ] || continue
	if ! [ -x "$RUSTC" ]; then
		echo "build-plugins.sh: $RUSTC not found (install rustc and libstd-rust-dev-wasm32); skipping $rs" >&2
		continue
	fi
	echo "build-plugins.sh: $dir/$name.wasm" >&2
	"$RUSTC" --edition 2021 --crate-type cdylib --target wasm32-unknown-unknown -O -o "$dir/$name.wasm" "$rs"
	built="$built $dir/$name.wasm"
done

if [ "${1:-}" = "dev" ]; then
	dest=${2:?usage: build-plugins.sh dev DIR}
	mkdir -p "$dest"
	for wasm in $built; do
		case "$wasm" in examples/*) ;; *) continue ;; esac
		cp "$wasm" "$dest/"
		toml="${wasm%.wasm}.toml"
		if [ -f "$toml" ]; then
			cp "$toml" "$dest/"
		fi
	done
	echo "build-plugins.sh: examples installed in $dest" >&2
fi
