#!/usr/bin/env bash
# bench-queue.sh measures the server's memory and its behaviour with a deep
# queue, on the real binary (go build ./cmd/sluice) on 127.0.0.1. bench.sh
# runs it when BENCH_MEMORY=1 or BENCH_DEEPQUEUE=1; alone:
#
#   BENCH_MEMORY=1 BENCH_DEEPQUEUE=1 bash scripts/bench-queue.sh
#
# BENCH_MEMORY=1: RSS (VmRSS, VmHWM from /proc/PID/status) of
#   - sluice without plugins, idle, then under sluice-load -c 100 (10 KiB
#     messages relayed to an smtp-sink);
#   - sluice with the seven first-party plugins (plugins/*, with
#     examples/anti-abuse's NAME.toml; ratelimit's limits raised so that
#     the load is not refused), idle, then under the same load;
#   with where it goes (/proc/PID/smaps): compiled guest code (executable
#   anonymous mappings), guests' linear memory (the anonymous mappings
#   of memory_limit each), the rest of the anonymous memory (Go heap,
#   stacks), and mapped files (RssFile: the binary, Badger's value log).
#
# BENCH_DEEPQUEUE=1: the same server routing everything to a dead
# loopback port ([delivery] relay_host), first with an empty queue, then
# on a queue of BENCH_DEEPQUEUE_N (default 1,000,000) deferred 1 KiB
# messages stored by scripts/deepqueue (the real queue code in-process:
# Enqueue, a failed attempt, rescheduled 6 h later). For each: time from
# exec to the SMTP banner, RSS at that point, CPU used in 10 idle
# seconds once Badger's startup compactions are done (the scheduler),
# sluice-load -c 50 with 1 KiB messages (msgs/s, CPU per message),
# `sluice queue ls --limit 100` and `sluice queue stats` wall time and RSS
# after them, and the time to the banner of a restart; and, once, on the
# deep queue, `sluice queue ls` with --after and each filter, matching
# much or nothing (a second table).
#
# Settings: BENCH_OUT (default /tmp/sluice-bench; results in
# queue-results.md), BENCH_DEEPQUEUE_N, BENCH_DEEPQUEUE_DIR (keep the
# filled queue there and reuse it on the next run instead of filling
# again; each run works on a copy; default: a temporary directory,
# removed at the end), BENCH_DEEPQUEUE_ROUNDS (default 1: run the empty
# and the deep queue that many times, alternating, so that both see the
# same load from whatever else runs on the machine). GOMEMLIMIT, when set,
# is passed to the servers. BENCH_DEEPQUEUE_PPROF=1 records a CPU profile
# of each server during its load (pprof from the admin socket, 9 s) in
# $BENCH_OUT/queue-dq-KIND-ROUND.pprof.
set -euo pipefail

cd "$(dirname "$0")/.."

out=${BENCH_OUT:-/tmp/sluice-bench}
mkdir -p "$out"
tmp=$(mktemp -d /tmp/sluice-benchq.XXXXXX)
pids=()
failed=0
results="$out/queue-results.md"
: >"$results"

# shellcheck source=scripts/benchlib.sh
. scripts/benchlib.sh
STOP_WAIT=30 # a server with a deep queue may take longer to stop

cleanup() {
	kill_pids
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench-queue [%4ds]: %s\n' "$SECONDS" "$*" >&2; }
row() { printf '%s\n' "$*" >>"$results"; }

# banner PORT succeeds when 127.0.0.1:PORT answers with a 220 greeting.
banner() {
	(
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		IFS= read -r -t 2 line <&3 || true
		[ "${line:0:3}" = 220 ]
	) 2>/dev/null
}

# rss PID prints "VmRSS/VmHWM" in MiB.
rss() { awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%.0f / %.0f MiB", r / 1024, h / 1024 }' "/proc/$1/status" 2>/dev/null || echo "–"; }
# parts PID prints, in MiB, the resident compiled guest code (executable
# anonymous mappings) + guests' linear memory (a writable anonymous
# mapping followed by the unreadable rest of a 128 MiB reservation: the
# default memory_limit, which the first-party plugins keep) + the other
# anonymous memory (Go heap, stacks) + mapped files (RssFile).
parts() {
	python3 - "$1" <<'PY' 2>/dev/null || echo "–"
import re, sys
maps = []
for line in open(f"/proc/{sys.argv[1]}/smaps"):
    m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$", line)
    if m:
        maps.append([int(m[1], 16), int(m[2], 16), m[3], m[4], 0])
    elif line.startswith("Rss:"):
        maps[-1][4] = int(line.split()[1])
code = guest = other = files = 0
for i, (lo, hi, perm, name, rss) in enumerate(maps):
    nxt = maps[i + 1] if i + 1 < len(maps) else None
    if name.startswith("/"):
        files += rss
    elif "x" in perm:
        code += rss
    elif perm.startswith("rw") and not name and nxt and nxt[0] == hi and nxt[2].startswith("---") and not nxt[3] and nxt[1] - lo == 128 << 20:
        guest += rss
    else:
        other += rss
print(" + ".join(f"{v / 1024:.0f}" for v in (code, guest, other, files)))
PY
}
# cpu PID prints the process's user+system CPU time in seconds.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# now prints seconds since the epoch with milliseconds.
now() { date +%s.%3N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

go build -o "$tmp/sluice" ./cmd/sluice
go build -o "$tmp/sluice-load" ./cmd/sluice-load

# config NAME DATA RELAY EXTRA writes $tmp/NAME.toml for a server on
# data_dir DATA (benchlib.sh's bench_toml: sink.test relayed to
# 127.0.0.1:RELAY, then EXTRA) and sets port to its SMTP port.
config() {
	free_port port
	free_port subport
	bench_toml "$tmp/$1.toml" "$2" "$port" "$subport" "$3" "${4:-}"
	cp "$tmp/$1.toml" "$out/queue-$1.toml"
}

# serve NAME starts sluice on $tmp/NAME.toml, waits for its banner and
# sets pid and startup (seconds from exec to the banner).
serve() {
	local t0
	t0=$(now)
	"$tmp/sluice" serve --config "$tmp/$1.toml" >>"$out/queue-$1.log" 2>&1 & # GOMEMLIMIT, if set, passes on
	pid=$!
	pids+=("$pid")
	for _ in $(seq 1 6000); do
		banner "$port" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.01
	done
	startup=$(since "$t0")
	if ! banner "$port"; then
		say "$1 did not start; see $out/queue-$1.log"
		failed=1
		return 1
	fi
}

# loadrun NAME CONNS SIZE TO runs sluice-load for 10 s and sets msgs.
loadrun() {
	"$tmp/sluice-load" -addr "127.0.0.1:$port" -c "$2" -d 10s -size "$3" -to "$4" >"$out/queue-$1-load.txt" 2>&1 || failed=1
	msgs=$(awk '/^accepted [0-9]+ in/ { for (i = 1; i <= NF; i++) if ($i ~ /msgs\/s/) print $(i - 1) }' "$out/queue-$1-load.txt" | head -n 1)
	accepted=$(awk '/^accepted [0-9]+ in/ { print $2 }' "$out/queue-$1-load.txt" | head -n 1)
	msgs=${msgs:-–}
	accepted=${accepted:-0}
}

if [ "${BENCH_MEMORY:-0}" != 0 ]; then
	say "memory: building the seven first-party plugins"
	mkdir -p "$tmp/plugins7"
	# One module holds the seven (plugins/firstparty), installed under each name.
	(cd plugins/firstparty && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$tmp/firstparty.wasm" .)
	for n in dnsbl greylist headers helo ratelimit sender-policy spamscore; do
		cp "$tmp/firstparty.wasm" "$tmp/plugins7/$n.wasm"
		cp "examples/anti-abuse/plugins/$n.toml" "$tmp/plugins7/$n.toml"
	done
	# Limits the load never reaches, so that every message is taken.
	sed -i 's/messages = [0-9]*/messages = 1000000000/g; s/recipients = [0-9]*/recipients = 1000000000/g' "$tmp/plugins7/ratelimit.toml"
	PATH=$PATH:/usr/sbin
	free_port sink
	sink_user=()
	[ "$(id -u)" = 0 ] && sink_user=(-u nobody) # it refuses to run as root otherwise
	smtp-sink "${sink_user[@]}" "127.0.0.1:$sink" 1000 >"$out/queue-smtp-sink.log" 2>&1 &
	pids+=("$!")
	wait_port "$sink" "$!" || say "smtp-sink did not start; see $out/queue-smtp-sink.log"
	row "Memory: make bench with BENCH_MEMORY=1 (bash scripts/bench-queue.sh)${GOMEMLIMIT:+ with GOMEMLIMIT=$GOMEMLIMIT}, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d ' ' -f 1-3 /proc/loadavg); VmRSS / VmHWM of the sluice process, then its parts: compiled guest code + guests' linear memory + other anonymous memory (Go heap, stacks) + mapped files. Load: sluice-load -c 100 -d 10s -size 10240 -to user@sink.test, relayed to smtp-sink."
	row ""
	row "| server | idle after start | parts idle | plugins loaded | msgs/s under load | CPU per msg | after the load | parts after the load |"
	row "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for kind in none seven; do
		data="$tmp/mem-$kind"
		mkdir -p "$data/plugins"
		want=0
		if [ "$kind" = seven ]; then
			cp "$tmp"/plugins7/* "$data/plugins/"
			want=7
		fi
		config "mem-$kind" "$data" "$sink" $'[delivery]\nrelay_host = "127.0.0.1:'"$sink"$'"\nrelay_tls = "none"'
		serve "mem-$kind" || continue
		for _ in $(seq 1 600); do
			[ "$(grep -c 'msg="plugin loaded"' "$out/queue-mem-$kind.log")" -ge "$want" ] && break
			sleep 0.1
		done
		loaded=$(grep -c 'msg="plugin loaded"' "$out/queue-mem-$kind.log" || true)
		sleep 3
		idle=$(rss "$pid")
		idle_parts=$(parts "$pid")
		say "mem-$kind: $loaded plugins loaded; idle $idle ($idle_parts)"
		c0=$(cpu "$pid")
		loadrun "mem-$kind" 100 10240 user@sink.test
		per=$(awk -v a="$c0" -v b="$(cpu "$pid")" -v n="$accepted" 'BEGIN { printf "%.2f ms", (n > 0 ? (b - a) * 1000 / n : 0) }')
		loaded_rss=$(rss "$pid")
		loaded_parts=$(parts "$pid")
		say "mem-$kind: $msgs msgs/s; after the load $loaded_rss ($loaded_parts)"
		row "| sluice, $kind plugins | $idle | $idle_parts | $loaded | $msgs | $per | $loaded_rss | $loaded_parts |"
		stop "$pid"
	done
	row ""
fi

# lsvariants SOCKET times `sluice queue ls` with paging and each filter,
# some matching most of the deep queue, some nothing (a full scan), and
# adds a row for each to lsrows.
lsrows=()
lsvariants() {
	local sock=$1 after t0 lines
	after=$("$tmp/sluice" queue ls --socket "$sock" --limit 1000 | awk '/^[0-9A-Z]+  / { id = $1 } END { print id }')
	local variants
	mapfile -t variants < <(ls_variants "$after")
	for v in "${variants[@]}"; do
		t0=$(now)
		# shellcheck disable=SC2086 # v is several arguments
		lines=$("$tmp/sluice" queue ls --socket "$sock" $v | wc -l) || failed=1
		took=$(since "$t0")
		lsrows+=("| \`queue ls $v\` | $took s | $lines | $(rss "$pid") ($(awk '/^RssAnon/ { a = $2 } /^RssFile/ { f = $2 } END { printf "%.0f + %.0f MiB", a / 1024, f / 1024 }' "/proc/$pid/status")) |")
		say "deep: queue ls $v: $took s"
	done
}

if [ "${BENCH_DEEPQUEUE:-0}" != 0 ]; then
	n=${BENCH_DEEPQUEUE_N:-1000000}
	free_port dead # nothing listens there: every delivery is refused
	go build -o "$tmp/deepqueue" ./scripts/deepqueue
	deepdir=${BENCH_DEEPQUEUE_DIR:-$tmp/deep}
	fill=""
	if [ -d "$deepdir/queue" ] && [ -f "$deepdir/filled-$n" ]; then
		say "deep queue: reusing $deepdir ($n messages)"
	else
		rm -rf "$deepdir"
		mkdir -p "$deepdir"
		say "deep queue: storing $n deferred messages in $deepdir/queue (scripts/deepqueue)"
		"$tmp/deepqueue" -dir "$deepdir/queue" -n "$n" -writers 200 >"$out/queue-deepqueue.txt" 2>"$out/queue-deepqueue.log" || failed=1
		fill=$(cat "$out/queue-deepqueue.txt")
		touch "$deepdir/filled-$n"
		say "deep queue: $fill"
	fi
	row "Deep queue: make bench with BENCH_DEEPQUEUE=1 (bash scripts/bench-queue.sh)${GOMEMLIMIT:+ with GOMEMLIMIT=$GOMEMLIMIT}, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d ' ' -f 1-3 /proc/loadavg). Every delivery goes to a dead loopback port ([delivery] relay_host); the deep queue is a copy of $n deferred 1 KiB messages stored by scripts/deepqueue${fill:+ ($fill)}. Load: sluice-load -c 50 -d 10s -size 1024 -to user@dead.test. RSS is VmRSS / VmHWM."
	row ""
	row "| queue | exec to banner | RSS at banner | settled after (peak RSS) | CPU in 10 s idle | msgs/s | CPU per msg | queue ls --limit 100 | RSS after | queue stats | RSS after | restart to banner |"
	row "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	rounds=${BENCH_DEEPQUEUE_ROUNDS:-1}
	for run in $(seq 1 "$rounds"); do for kind in empty deep; do
		label=$kind
		[ "$rounds" = 1 ] || label="$kind ($run/$rounds)"
		data="$tmp/data-$kind"
		rm -rf "$data"
		if [ "$kind" = deep ]; then
			cp -a "$deepdir" "$data" # the filled queue stays as it is for the next run
			rm -f "$data"/*.sock
			# Write the copy out now: the kernel would write its 1.2 GB
			# back some 30 s later, in the middle of the load, and the
			# group commit's fdatasyncs would queue behind it.
			sync
		fi
		mkdir -p "$data"
		config "dq-$kind" "$data" "$dead" $'[delivery]\nrelay_host = "127.0.0.1:'"$dead"$'"'
		serve "dq-$kind" || continue
		up=$startup
		at_banner=$(rss "$pid")
		# Badger may compact what it opened: wait until the process uses
		# under 5 % of a CPU for 4 s (at most 5 minutes).
		t0=$(now)
		for _ in $(seq 1 75); do
			c0=$(cpu "$pid")
			sleep 4
			awk -v a="$c0" -v b="$(cpu "$pid")" 'BEGIN { exit !(b - a < 0.2) }' && break
		done
		settled="$(since "$t0") s ($(rss "$pid" | sed 's|.*/ ||'))"
		c0=$(cpu "$pid")
		sleep 10
		idle_cpu=$(awk -v a="$c0" -v b="$(cpu "$pid")" 'BEGIN { printf "%.2f s", b - a }')
		c0=$(cpu "$pid")
		prof=""
		if [ "${BENCH_DEEPQUEUE_PPROF:-0}" != 0 ]; then
			curl -s --unix-socket "$data/admin.sock" -o "$out/queue-dq-$kind-$run.pprof" 'http://sluice/debug/pprof/profile?seconds=9' &
			prof=$!
		fi
		loadrun "dq-$kind" 50 1024 user@dead.test
		[ -z "$prof" ] || wait "$prof" || true
		per=$(awk -v a="$c0" -v b="$(cpu "$pid")" -v n="$accepted" 'BEGIN { printf "%.2f ms", (n > 0 ? (b - a) * 1000 / n : 0) }')
		t0=$(now)
		"$tmp/sluice" queue ls --limit 100 --socket "$data/admin.sock" >"$out/queue-dq-$kind-ls.txt" 2>&1 || failed=1
		ls_time="$(since "$t0") s"
		ls_rss=$(rss "$pid")
		t0=$(now)
		"$tmp/sluice" queue stats --socket "$data/admin.sock" >"$out/queue-dq-$kind-stats.txt" 2>&1 || failed=1
		stats_time="$(since "$t0") s"
		stats_rss=$(rss "$pid")
		if [ "$kind" = deep ] && [ "$run" = 1 ]; then
			lsvariants "$data/admin.sock"
		fi
		stop "$pid"
		serve "dq-$kind" || continue
		again=$startup
		stop "$pid"
		rm -rf "$data"
		say "dq-$label: banner after $up s ($at_banner), settled after $settled, idle CPU $idle_cpu, $msgs msgs/s, ls $ls_time, stats $stats_time, restart $again s"
		row "| $label | $up s | $at_banner | $settled | $idle_cpu | $msgs | $per | $ls_time | $ls_rss | $stats_time | $stats_rss | $again s |"
	done; done
	row ""
	if [ ${#lsrows[@]} -gt 0 ]; then
		row "\`sluice queue ls\` on the deep queue (first round; the server as the table above left it): wall time of the whole command, the server's VmRSS / VmHWM after it (of it RssAnon, RssFile: Badger's tables are mapped files)."
		row ""
		row "| command | time | lines out | server RSS after |"
		row "| --- | ---: | ---: | ---: |"
		for r in "${lsrows[@]}"; do row "$r"; done
		row ""
	fi
fi

cat "$results"
exit "$failed"
