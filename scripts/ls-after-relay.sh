#!/usr/bin/env bash
# ls-after-relay.sh times filtered `sluice queue ls` on an empty queue
# through which many messages have just passed (BENCHMARKS.md "Index
# entries only off the fast path"): their leases' and index entries'
# tombstones are what such a listing steps over until a compaction.
#
#   bash scripts/ls-after-relay.sh SLUICE_BINARY [N]
#
# It relays N (default 20,000) 1 KiB messages with `smtp-source -s 20` to
# smtp-sink, waits until each was sent, then times four filtered
# listings three times each (the CLI's whole run).
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/benchlib.sh
[ $# -ge 1 ] || { echo "usage: ls-after-relay.sh SLUICE_BINARY [N]" >&2; exit 2; }
bin=$1 n=${2:-20000}
pids=()
tmp=$(mktemp -d /tmp/sluice-lsafter.XXXXXX)
trap 'kill_pids; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/data"
free_port port
free_port subport
free_port sink
/usr/sbin/smtp-sink -u nobody "127.0.0.1:$sink" 1000 >/dev/null 2>&1 &
pids+=($!)
bench_toml "$tmp/cfg.toml" "$tmp/data" "$port" "$subport" "$sink"
"$bin" serve --config "$tmp/cfg.toml" >"$tmp/serve.log" 2>&1 &
pid=$!
pids+=("$pid")
wait_port "$port" "$pid" 60 || { echo "the server did not start" >&2; exit 1; }
/usr/sbin/smtp-source -s 20 -m "$n" -l 1024 -f load@src.test -t user@sink.test "127.0.0.1:$port"
for _ in $(seq 1 300); do [ "$(grep -c status=sent "$tmp/serve.log")" -ge "$n" ] && break; sleep 1; done
sock=--socket=$tmp/data/admin.sock
for args in "--state queued" "--domain sink.test" "--sender load@src.test" "--state deferred --domain sink.test"; do
	for r in 1 2 3; do
		s=$(date +%s.%N)
		# shellcheck disable=SC2086 # args are words
		"$bin" queue ls $args "$sock" >/dev/null
		printf "%s, run %d: %.3f s\n" "$args" "$r" "$(echo "$(date +%s.%N) - $s" | bc)"
	done
done
stop "$pid"
