#!/usr/bin/env bash
# drain-ab.sh measures what make bench's sluice-load rows leave out: how
# long the Maildir deliveries of the accepted messages take after the load,
# and the server's CPU a message until the last one is delivered
# (BENCHMARKS.md "Results"). Each SLUICE_BINARY in turn, ROUNDS times
# (default 3) alternately, starts on an empty data_dir with the bench
# configuration (benchlib.sh's bench_toml); sluice-load -c CONNS (default
# 20) sends 10 KiB messages to user@bench.test (local Maildir) for 8 s;
# the script then waits until every accepted message is in the Maildir.
#
#   bash scripts/drain-ab.sh [-r ROUNDS] [-c CONNS] SLUICE_BINARY...
#
# One line a run: msgs/s accepted, messages accepted and already delivered
# when the load ended, how long the rest took, the server's CPU a message
# during the load and until the last delivery, and the rate of messages
# accepted and delivered (accepted ÷ time from the start to the last
# delivery).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=3 conns=20
while getopts r:c: o; do
	case $o in
	r) rounds=$OPTARG ;;
	c) conns=$OPTARG ;;
	*) sed -n '2,17p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { sed -n '2,17p' "$0" >&2; exit 2; }
pids=()
say() { echo "drain-ab: $*" >&2; }
. scripts/benchlib.sh
bench_tmp drain
go build -o "$tmp/sluice-load" ./cmd/sluice-load
start_peers "$tmp"
hz=$(getconf CLK_TCK)
inbox() { find "$tmp/data/mail" -path '*/new/*' -type f 2>/dev/null | wc -l; }
for _ in $(seq 1 "$rounds"); do
	for bin in "$@"; do
		serve_bench "$bin" || exit 1
		c0=$(proc_ticks "$pid")
		t0=$(date +%s.%N)
		"$tmp/sluice-load" -addr "127.0.0.1:$smtp_port" -c "$conns" -d 8s -size 10240 -to user@bench.test >"$tmp/l.out" 2>&1
		t1=$(date +%s.%N)
		c1=$(proc_ticks "$pid")
		acc=$(grep -o 'accepted [0-9]*' "$tmp/l.out" | awk '{ print $2 }')
		rate=$(grep -o '[0-9.]* msgs/s' "$tmp/l.out" | awk '{ print $1 }')
		early=$(inbox)
		for _ in $(seq 1 3000); do [ "$(inbox)" -ge "$acc" ] && break; sleep 0.1; done
		t2=$(date +%s.%N)
		c2=$(proc_ticks "$pid")
		awk -v b="$bin" -v r="$rate" -v a="$acc" -v e="$early" -v t0="$t0" -v t1="$t1" -v t2="$t2" \
			-v c0="$c0" -v c1="$c1" -v c2="$c2" -v hz="$hz" 'BEGIN {
			printf "%s: %s msgs/s accepted=%d delivered_when_load_ended=%d rest_delivered_in=%.1fs cpu_during_load=%.3f cpu_until_delivered=%.3f ms/msg accepted_and_delivered=%.0f msgs/s\n",
				b, r, a, e, t2 - t1, (c1 - c0) / hz * 1000 / a, (c2 - c0) / hz * 1000 / a, a / (t2 - t0) }'
		stop "$pid"
	done
done
