#!/bin/bash
# plugin-cpu.sh measures the server's CPU time per message with a set of
# plugins loaded, the way BENCHMARKS.md's per-plugin rows are measured:
# the real server (route sink.test to a downstream smtp-sink, bench DNS
# from scripts/benchdns.py), sluice-load with 20 connections and 10 KiB
# messages to user@sink.test (2 s of warm-up, then 8 s measured), the
# server's user+system time from /proc/PID/stat over the measured load
# divided by the messages accepted. Each DIR is a directory of NAME.wasm
# files with their NAME.toml, or "none" for no plugins; the runs go in the
# order given, ROUNDS times (default 1), so that A and B interleave.
#
#   scripts/plugin-cpu.sh [-r ROUNDS] DIR|none ...
#
# scripts/plugin-cpu.sh -r 3 none /tmp/six-before /tmp/six-after prints one
# line a run: "DIR msgs/s=… accepted=… cpu_ms_per_msg=…". With
# PLUGIN_CPU_PERF=OUTDIR, each measured load is also recorded by
# `perf record -g` (OUTDIR/perf-N-NAME.data, N counting the runs), with a
# server built with wazero's perfmap tag, which names guest functions.
# PLUGIN_CPU_CONNS sets sluice-load's connections (default 20);
# PLUGIN_CPU_TOML is appended to the server's configuration. A DIR that
# holds an executable named sluice runs that server instead of the one
# built from this tree (A/B of two builds: -r 3 /tmp/a /tmp/b), and a
# DIR's server.toml is appended to its server's configuration after
# PLUGIN_CPU_TOML (A/B of two configurations: the same plugins, [kv] in
# each DIR's server.toml). With
# PLUGIN_CPU_REDIS=HOST:PORT or unix:/PATH (the redis-server the server
# uses, reached at either of its listeners), each run
# resets that Redis's statistics first and ends its line with the Redis
# commands a message ("redis/msg: evalsha=… mget=…", over the warm-up and
# the measured load) and redis-server's CPU a message. With
# PLUGIN_CPU_SYSCALLS=1, `perf stat` counts the server's system calls and
# context switches over the measured load (and redis-server's, with
# PLUGIN_CPU_REDIS): "sys/msg=… cs/msg=…", counts other work on the
# machine does not change. With PLUGIN_CPU_IO=1, the bytes the server
# caused to be written to storage over the measured load (/proc/PID/io
# write_bytes: its writes and the page-cache pages its syncs flushed) a
# message: "wbytes/msg=…".
set -eu
cd "$(dirname "$0")/.."
rounds=1
if [ "${1:-}" = -r ]; then
	rounds=$2
	shift 2
fi
[ $# -gt 0 ] || {
	sed -n '2,39p' "$0" >&2
	exit 2
}
say() { echo "plugin-cpu: $*" >&2; }
# rcli runs redis-cli against PLUGIN_CPU_REDIS (host:port or unix:/path).
rcli() {
	case $PLUGIN_CPU_REDIS in
	unix:*) redis-cli -s "${PLUGIN_CPU_REDIS#unix:}" "$@" ;;
	*) redis-cli -h "${PLUGIN_CPU_REDIS%:*}" -p "${PLUGIN_CPU_REDIS##*:}" "$@" ;;
	esac
}
pids=()
source scripts/benchlib.sh
tmp=$(mktemp -d /tmp/sluice-plugin-cpu.XXXXXX)
trap 'kill_pids; rm -rf "$tmp"' EXIT
PATH=$PATH:/usr/sbin
# With perf, wazero writes /tmp/perf-PID.map (build tag perfmap), so that
# perf report names the guests' functions.
go build ${PLUGIN_CPU_PERF:+-tags perfmap} -o "$tmp/sluice" ./cmd/sluice
go build -o "$tmp/sluice-load" ./cmd/sluice-load

start_peers "$tmp" || exit 1

# run DIR: one server with the plugins of DIR under the load.
run() {
	local dir=$1 data="$tmp/data" want=0 pid u0 s0 u1 s1 acc rate bin="$tmp/sluice" warm redis_line="" rpid="" r0=0 r1=0
	rm -rf "$data"
	mkdir -p "$data/plugins"
	if [ "$dir" != none ]; then
		for f in "$dir"/*.wasm; do
			cp "$f" "$data/plugins/"
			[ ! -f "${f%.wasm}.toml" ] || cp "${f%.wasm}.toml" "$data/plugins/"
		done
		want=$(find "$dir" -name '*.wasm' | wc -l)
		[ ! -x "$dir/sluice" ] || bin="$dir/sluice"
	fi
	if [ -n "${PLUGIN_CPU_REDIS:-}" ]; then
		rcli config resetstat >/dev/null
		rpid=$(rcli info server | tr -d '\r' | sed -n 's/^process_id://p')
		r0=$(awk '{print $14 + $15}' "/proc/$rpid/stat")
	fi
	free_port smtp_port
	free_port sub_port
	bench_toml "$tmp/sluice.toml" "$data" "$smtp_port" "$sub_port" "$down_port" $'[dns]\nservers = ["127.0.0.1:'"$dns_port"'"]'$'\n\n'"${PLUGIN_CPU_TOML:-}"$'\n\n'"$(cat "$dir/server.toml" 2>/dev/null || true)"
	"$bin" serve --config "$tmp/sluice.toml" >"$tmp/server.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait_port "$smtp_port" "$pid" 600 || {
		say "$dir: the server did not start; $(tail -n 3 "$tmp/server.log")"
		return 1
	}
	for _ in $(seq 1 600); do
		[ "$(grep -c 'msg="plugin loaded"' "$tmp/server.log")" -ge "$want" ] && break
		sleep 0.1
	done
	"$tmp/sluice-load" -addr "127.0.0.1:$smtp_port" -c ${PLUGIN_CPU_CONNS:-20} -d 2s -size 10240 -to user@sink.test -timeout 20s >"$tmp/warm.txt" 2>&1 || true
	local perf_pid=""
	if [ -n "${PLUGIN_CPU_PERF:-}" ]; then
		runs=$((runs + 1))
		mkdir -p "$PLUGIN_CPU_PERF"
		perf record -q -g -F 499 -p "$pid" -o "$PLUGIN_CPU_PERF/perf-$runs-$(basename "$dir").data" -- sleep 8 2>/dev/null &
		perf_pid=$!
	fi
	local stat_pids=() stat_line="" f p
	if [ -n "${PLUGIN_CPU_SYSCALLS:-}" ]; then
		for p in "$pid" $rpid; do
			perf stat -x, -e raw_syscalls:sys_enter,context-switches -p "$p" -o "$tmp/stat-$p.txt" &
			stat_pids+=($!)
		done
	fi
	local w0=0 w1=0 io_line=""
	[ -z "${PLUGIN_CPU_IO:-}" ] || w0=$(awk '/^write_bytes:/ {print $2}' "/proc/$pid/io")
	read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
	"$tmp/sluice-load" -addr "127.0.0.1:$smtp_port" -c ${PLUGIN_CPU_CONNS:-20} -d 8s -size 10240 -to user@sink.test -timeout 20s >"$tmp/load.txt" 2>&1 || true
	read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
	[ -z "${PLUGIN_CPU_IO:-}" ] || w1=$(awk '/^write_bytes:/ {print $2}' "/proc/$pid/io")
	[ -z "$perf_pid" ] || wait "$perf_pid" || true
	acc=$(grep -o 'accepted [0-9]*' "$tmp/load.txt" | awk '{print $2}')
	if [ ${#stat_pids[@]} -gt 0 ]; then
		kill -INT "${stat_pids[@]}"
		wait "${stat_pids[@]}" || true
		for p in "$pid" $rpid; do
			f="$tmp/stat-$p.txt"
			[ "$p" = "$pid" ] || stat_line+=" redis"
			stat_line+=" sys/msg=$(awk -F, -v a="${acc:-0}" '/raw_syscalls/ && a > 0 {printf "%.1f", $1/a}' "$f")"
			stat_line+=" cs/msg=$(awk -F, -v a="${acc:-0}" '/context-switches/ && a > 0 {printf "%.1f", $1/a}' "$f")"
		done
	fi
	if [ -n "$rpid" ]; then
		warm=$(grep -o 'accepted [0-9]*' "$tmp/warm.txt" | awk '{print $2}')
		r1=$(awk '{print $14 + $15}' "/proc/$rpid/stat")
		redis_line=" redis/msg:$(rcli info commandstats | tr -d '\r' |
			awk -F'[:,=]' -v n=$((${warm:-0} + ${acc:-0})) '/^cmdstat_/ && n > 0 {sub("cmdstat_", "", $1); printf " %s=%.2f", $1, $3/n}')"
		redis_line+=" redis_cpu_ms_per_msg=$(awk -v a=$((${warm:-0} + ${acc:-0})) -v c=$((r1 - r0)) -v t="$(getconf CLK_TCK)" 'BEGIN{if (a > 0) printf "%.3f", c*1000/t/a; else print "-"}')"
	fi
	[ -z "${PLUGIN_CPU_IO:-}" ] || io_line=" wbytes/msg=$(awk -v a="${acc:-0}" -v w=$((w1 - w0)) 'BEGIN{if (a > 0) printf "%.0f", w/a; else print "-"}')"
	rate=$(grep -o '[0-9.]* msgs/s' "$tmp/load.txt" | awk '{print $1}')
	echo "$dir msgs/s=$rate accepted=$acc cpu_ms_per_msg=$(awk -v a="${acc:-0}" -v c=$((u1 - u0 + s1 - s0)) -v t="$(getconf CLK_TCK)" \
		'BEGIN{if (a > 0) printf "%.3f", c*1000/t/a; else print "-"}') $(grep -o 'errors: .*' "$tmp/load.txt")$redis_line$stat_line$io_line"
	stop "$pid"
}

runs=0
for _ in $(seq 1 "$rounds"); do
	for d in "$@"; do
		run "$d"
	done
done
