#!/bin/bash
# plugin-new-timing.sh measures a plugin author's first minutes on a warm
# machine (Go build and module caches filled by a build of Sluice): the
# time from `sluice plugin new` (Go, then --lang c) to a passing
# `go test ./...`, and to the plugin loaded by a running server (the build
# line, a copy into its plugins directory, the server's "plugin loaded"
# line). The figures go to the README ("Your own plugin repository").
#
#   scripts/plugin-new-timing.sh [RUNS]
set -eu
cd "$(dirname "$0")/.."
runs=${1:-3}
work=$(mktemp -d /tmp/sluice-plugin-timing.XXXXXX)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
go build -o "$work/sluice" ./cmd/sluice
mkdir -p "$work/data/plugins"
cat > "$work/sluice.toml" <<TOML
data_dir = "$work/data"
[smtp]
listen = []
[submission]
listen = []
tls_listen = []
TOML
"$work/sluice" serve -c "$work/sluice.toml" > "$work/server.log" 2>&1 &
server=$!
now() { date +%s.%N; }
# measure LANG NAME BUILD: plugin new, go test, the build line, the copy,
# the server's "plugin loaded" line.
measure() {
	lang=$1 name=$2 build=$3
	cd "$work"
	t0=$(now)
	./sluice plugin new "$name" --lang "$lang" > /dev/null
	(cd "$name" && go test ./... > /dev/null)
	t1=$(now)
	(cd "$name" && sh -c "$build")
	cp "$name/$name.wasm" "$name/$name.toml" data/plugins/
	until grep -q "msg=\"plugin loaded\" plugin=$name " server.log; do sleep 0.05; done
	t2=$(now)
	awk -v l="$lang" -v i="$i" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v load="$(cut -d' ' -f1 /proc/loadavg)" \
		'BEGIN { printf "run %d (%s): plugin new → go test passed %.1f s; → plugin loaded %.1f s (load average %s)\n", i, l, t1 - t0, t2 - t0, load }'
	cd - > /dev/null
}
for i in $(seq 1 "$runs"); do
	measure go "timing$i" "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o timing$i.wasm ."
	measure c "ctiming$i" "make ctiming$i.wasm > /dev/null"
done
