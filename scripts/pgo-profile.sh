#!/usr/bin/env bash
# pgo-profile.sh takes the CPU profile that cmd/sluice/default.pgo is made
# of (BENCHMARKS.md "Instructions per message (callgrind)" and s28cpu):
#
#   bash scripts/pgo-profile.sh SLUICE_BINARY OUT.pgo [MESSAGES [SECONDS]]
#
# The bench configuration (benchlib.sh's bench_toml: sink.test relayed to a
# downstream smtp-sink, [dns] at scripts/benchdns.py), 500 messages of
# warm-up, then for 20 and for 100 sessions a CPU profile of SECONDS
# (default 8) from the admin socket's pprof endpoint, starting a second
# after `smtp-source -s SESSIONS -m MESSAGES (default 30,000) -l 10240`
# starts sending (MESSAGES must outlast it: the script says when the load
# ended before the profile did); the two profiles merged with
# `go tool pprof -proto` into OUT.pgo.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 out=$2 msgs=${3:-30000} secs=${4:-8}
pids=()
say() { echo "pgo-profile: $*" >&2; }
. scripts/benchlib.sh
bench_tmp pgo
start_peers "$tmp"
serve_bench "$bin" || exit 1
sent() { grep -c 'status=sent' "$tmp/s.log" || true; }
total=500
smtp-source -s 20 -m 500 -l 10240 -f bench@client.test -t user@sink.test "127.0.0.1:$smtp_port"
for _ in $(seq 1 600); do [ "$(sent)" -ge $total ] && break; sleep 0.1; done
for s in 20 100; do
	smtp-source -s "$s" -m "$msgs" -l 10240 -f bench@client.test -t user@sink.test "127.0.0.1:$smtp_port" &
	src=$!
	pids+=("$src")
	sleep 1
	curl -sf --unix-socket "$tmp/data/admin.sock" -o "$tmp/cpu-$s.pprof" "http://sluice/debug/pprof/profile?seconds=$secs"
	kill -0 "$src" 2>/dev/null || say "the load at $s sessions ended before the profile: raise MESSAGES"
	wait "$src"
	keep=()
	for p in "${pids[@]}"; do [ "$p" = "$src" ] || keep+=("$p"); done
	pids=("${keep[@]}")
	total=$((total + msgs))
	for _ in $(seq 1 1200); do [ "$(sent)" -ge $total ] && break; sleep 0.1; done
done
ls -la "$tmp"/cpu-*.pprof >&2
go tool pprof -proto "$tmp/cpu-20.pprof" "$tmp/cpu-100.pprof" >"$out"
say "wrote $out ($(wc -c <"$out") bytes)"
