#!/usr/bin/env bash
# bench-queuels.sh times `sluice queue ls` with each filter on a deep queue
# (BENCHMARKS.md "Listing by index"):
#
#   bash scripts/bench-queuels.sh DATA_DIR SLUICE_BINARY
#
# DATA_DIR holds queue/ (as scripts/deepqueue fills it: 1 KiB messages
# from load@src.test to userN@deadN%100.test, or all to userN@dead0.test
# with -domains 1, the recipient filter's worst case before recipient
# entries); the binary serves it with
# every delivery routed to a dead loopback port, the script waits until
# its CPU settles (startup compaction; an older queue's indexing), then
# runs each listing twice (ls_variants and three more recipient filters:
# none matching, combined with a state, after an ID) and prints a table
# row for each: wall time of
# the whole command, lines printed, the server's VmRSS / VmHWM after it.
# The server's log is DATA_DIR/queuels-serve.log.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh
say() { echo "queuels: $*" >&2; }
now() { date +%s.%3N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }
[ $# = 2 ] || { say "usage: bench-queuels.sh DATA_DIR SLUICE_BINARY"; exit 2; }
data=$1 bin=$2
pids=()
tmp=$(mktemp -d /tmp/sluice-queuels.XXXXXX)
trap 'kill_pids; rm -rf "$tmp"' EXIT
free_port port
free_port subport
free_port dead
bench_toml "$tmp/ls.toml" "$data" "$port" "$subport" "$dead" $'[delivery]\nrelay_host = "127.0.0.1:'"$dead"$'"'
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
rss() { awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%.0f / %.0f MiB", r / 1024, h / 1024 }' "/proc/$1/status"; }
t0=$(now)
"$bin" serve --config "$tmp/ls.toml" >"$data/queuels-serve.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_port "$port" "$pid" || { say "the server did not start; see $data/queuels-serve.log"; exit 1; }
say "banner after $(since "$t0") s"
for _ in $(seq 1 150); do
	c0=$(cpu "$pid")
	sleep 4
	awk -v a="$c0" -v b="$(cpu "$pid")" 'BEGIN { exit !(b - a < 0.2) }' && break
done
say "settled after $(since "$t0") s, RSS $(rss "$pid"), load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
grep -h "listing index\|indexed the queue" "$data/queuels-serve.log" >&2
after=$("$bin" queue ls --socket "$data/admin.sock" --limit 1000 | awk '/^[0-9A-Z]+  / { id = $1 } END { print id }')
mapfile -t variants < <(ls_variants "$after")
variants+=("--limit 100 --rcpt nobody@dead0.test" "--limit 100 --rcpt user500000@dead0.test --state deferred"
	"--limit 100 --rcpt user500000@dead0.test --after $after")
echo "| command | time | lines out | server RSS after |"
echo "| --- | ---: | ---: | ---: |"
for round in 1 2; do
	for v in "${variants[@]}"; do
		t0=$(now)
		# shellcheck disable=SC2086 # v is several arguments
		lines=$("$bin" queue ls --socket "$data/admin.sock" $v | wc -l)
		echo "| \`queue ls $v\` ($round) | $(since "$t0") s | $lines | $(rss "$pid") |"
	done
done
stop "$pid"
