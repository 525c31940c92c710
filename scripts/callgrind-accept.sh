#!/usr/bin/env bash
# callgrind-accept.sh counts the user-space instructions a message costs
# the server (BENCHMARKS.md "Listing by index"):
#
#   bash scripts/callgrind-accept.sh SLUICE_BINARY dead|sink [N [SIZE]]
#
# It starts the binary under `valgrind --tool=callgrind` on an empty
# data_dir (GODEBUG=asyncpreemptoff=1: callgrind aborts on Go's preemption
# signal), sends 50 messages of warm-up, waits until the server is idle,
# zeroes the counts, sends N (default 2,000) messages of SIZE bytes
# (default 1024; make bench's smtp-source rows send 10240) with
# `smtp-source -s 20`, waits until each was attempted and dumps. Route
# dead: every delivery goes to a dead loopback port (accepted, attempted,
# deferred, as in the deep-queue benchmark); sink: relayed to smtp-sink
# (accepted, delivered, removed). Prints the instructions a message; the
# dump stays in the /tmp/sluice-callgrind.* directory it names.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh
say() { echo "callgrind: $*" >&2; }
[ $# -ge 2 ] || { say "usage: callgrind-accept.sh SLUICE_BINARY dead|sink [N [SIZE]]"; exit 2; }
bin=$1 route=$2 n=${3:-2000} size=${4:-1024}
pids=()
tmp=$(mktemp -d /tmp/sluice-callgrind.XXXXXX)
trap 'kill_pids; rm -rf "$tmp/data"' EXIT
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
mkdir -p "$tmp/data"
free_port port
free_port subport
free_port dead
case $route in
sink)
	/usr/sbin/smtp-sink -u nobody "127.0.0.1:$dead" 1000 >/dev/null 2>&1 &
	pids+=($!)
	what=status=sent to=user@sink.test
	bench_toml "$tmp/cg.toml" "$tmp/data" "$port" "$subport" "$dead"
	;;
dead)
	what=status=deferred to=user@dead.test
	bench_toml "$tmp/cg.toml" "$tmp/data" "$port" "$subport" "$dead" $'[delivery]\nrelay_host = "127.0.0.1:'"$dead"$'"'
	;;
*)
	say "route $route: want dead or sink"
	exit 2
	;;
esac
log=$tmp/serve.log
# schedtrace as `sluice serve` sets it (cmd/sluice sysmon.go): without it
# the server would exec itself again, out from under valgrind.
GODEBUG=asyncpreemptoff=1,schedtrace=2147483647 valgrind --tool=callgrind --callgrind-out-file="$tmp/callgrind.%p.out" "$bin" serve --config "$tmp/cg.toml" >"$log" 2>&1 &
pid=$!
pids+=("$pid")
wait_port "$port" "$pid" 600 || { say "the server did not start; see $log"; exit 1; }
lines() { grep -c "$what" "$log" || true; }
/usr/sbin/smtp-source -s 5 -m 50 -l 1024 -f load@src.test -t "$to" "127.0.0.1:$port" >/dev/null
for _ in $(seq 1 300); do [ "$(lines)" -ge 50 ] && break; sleep 1; done
# idle: under 0.6 s of CPU in 5 s (valgrind slows the runtime monitor's
# 10 ms polls that `sluice serve` keeps up; 0.25 s was not always reached)
for _ in $(seq 1 300); do
	c0=$(cpu "$pid")
	sleep 5
	awk -v a="$c0" -v b="$(cpu "$pid")" 'BEGIN { exit !(b - a < 0.6) }' && break
done
callgrind_control -z "$pid" >/dev/null
/usr/sbin/smtp-source -s 20 -m "$n" -l "$size" -f load@src.test -t "$to" "127.0.0.1:$port" >/dev/null
for _ in $(seq 1 900); do [ "$(lines)" -ge $((50 + n)) ] && break; sleep 1; done
callgrind_control -d "$pid" >/dev/null
sleep 3
f=$(ls -t "$tmp"/callgrind."$pid".out* | head -n 1)
total=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
say "$f: $total instructions, $(lines) $what lines"
awk -v t="$total" -v n="$n" 'BEGIN { printf "%.0f instructions a message\n", t / n }'
stop "$pid"
