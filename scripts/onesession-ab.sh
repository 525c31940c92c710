#!/usr/bin/env bash
# onesession-ab.sh BASE_BIN HEAD_BIN [ROUNDS] [MSGS]: the one-session load
# of `make bench` (smtp-source -s 1 -m MSGS -l 10240, relayed to sink.test
# on a downstream smtp-sink, [dns] servers at scripts/benchdns.py) against
# two sluice binaries started side by side with the bench configuration,
# alternately ROUNDS times (default 8; MSGS default 1000). Each run waits
# for the previous run's messages to be relayed first. Prints ms a message
# per run, then the median and range of each, and the server's CPU time a
# message (utime+stime from /proc/PID/stat) per run. AB_SESSIONS=N runs
# smtp-source -s N instead of -s 1 (the 20-session load: AB_SESSIONS=20).
# AB_CLIENT=randload sends bodies that do not compress (scripts/randload)
# instead of smtp-source's text. Each run also prints the KiB the server
# wrote to disk a message (write_bytes of /proc/PID/io) and its VmRSS /
# VmHWM after the run. AB_PERF=1 also counts, with perf stat on the
# server during each run, its context switches and nanosleep and futex
# calls a message (the Go scheduler's hand-offs between threads).
# AB_PLUGINS=WASM loads six copies of that plugin in both servers, as
# make bench's six-quiet-plugins row does (10-a.wasm … 60-f.wasm).
set -euo pipefail
cd "$(dirname "$0")/.."
base=$1 head=$2 rounds=${3:-8} msgs=${4:-1000}
tmp=$(mktemp -d /tmp/onesession.XXXXXX)
chmod 755 "$tmp"
pids=()
say() { echo "$*" >&2; }
# shellcheck source=scripts/benchlib.sh
. scripts/benchlib.sh
trap 'kill_pids; rm -rf "$tmp"' EXIT
start_peers "$tmp"
if [ "${AB_CLIENT:-}" = randload ]; then go build -o "$tmp/randload" ./scripts/randload; fi
dns_conf=$'[dns]\nservers = ["127.0.0.1:'"$dns_port"$'"]'
declare -A port pid
for t in base head; do
	bin=$base; [ "$t" = head ] && bin=$head
	free_port smtp_port; free_port sub_port
	mkdir -p "$tmp/data-$t/plugins"
	if [ -n "${AB_PLUGINS:-}" ]; then
		for n in 10-a 20-b 30-c 40-d 50-e 60-f; do cp "$AB_PLUGINS" "$tmp/data-$t/plugins/$n.wasm"; done
	fi
	bench_toml "$tmp/$t.toml" "$tmp/data-$t" "$smtp_port" "$sub_port" "$down_port" "$dns_conf"
	"$bin" serve --config "$tmp/$t.toml" >"$tmp/$t.log" 2>&1 &
	pid[$t]=$!; pids+=("$!"); port[$t]=$smtp_port
	wait_port "$smtp_port" "${pid[$t]}" 60 || { say "$t did not start"; tail "$tmp/$t.log"; exit 1; }
	if [ -n "${AB_PLUGINS:-}" ]; then
		for _ in $(seq 1 600); do [ "$(grep -c 'msg="plugin loaded"' "$tmp/$t.log")" -ge 6 ] && break; sleep 0.1; done
		[ "$(grep -c 'msg="plugin loaded"' "$tmp/$t.log")" -ge 6 ] || { say "$t did not load the six plugins"; tail "$tmp/$t.log"; exit 1; }
	fi
done
left() { echo $(($(grep -c 'msg=queued.*from=bench@client.test' "$tmp/$1.log" || true) - $(grep -c 'msg=delivery.*to=user@sink.test.*status=sent' "$tmp/$1.log" || true))); }
hz=$(getconf CLK_TCK)
declare -A res cpu cs
for r in $(seq 1 "$rounds"); do
	order="base head"; [ $((r % 2)) = 0 ] && order="head base"
	for t in $order; do
		for _ in $(seq 1 600); do [ "$(left base)" -le 0 ] && [ "$(left head)" -le 0 ] && break; sleep 0.1; done
		c0=$(awk '{ print $14 + $15 }' "/proc/${pid[$t]}/stat")
		w0=$(awk '/^write_bytes/ { print $2 }' "/proc/${pid[$t]}/io")
		perf=()
		[ -z "${AB_PERF:-}" ] || perf=(perf stat -x, -o "$tmp/perf.$t" -e context-switches,syscalls:sys_enter_nanosleep,syscalls:sys_enter_futex -p "${pid[$t]}" --)
		t0=$(date +%s.%N)
		if [ "${AB_CLIENT:-}" = randload ]; then
			"${perf[@]}" "$tmp/randload" -s "${AB_SESSIONS:-1}" -m "$msgs" -l 10240 -a "127.0.0.1:${port[$t]}" >&2
		else
			"${perf[@]}" smtp-source -s "${AB_SESSIONS:-1}" -m "$msgs" -l 10240 -f bench@client.test -t user@sink.test "127.0.0.1:${port[$t]}"
		fi
		t1=$(date +%s.%N)
		counts=""
		[ -z "${AB_PERF:-}" ] || counts=$(awk -F, -v n="$msgs" '/^[0-9]/ { sub(/^syscalls:sys_enter_/, "", $3); printf ", %s %.1f", $3, $1 / n } END { print " a message" }' "$tmp/perf.$t")
		for _ in $(seq 1 600); do [ "$(left "$t")" -le 0 ] && break; sleep 0.1; done
		c1=$(awk '{ print $14 + $15 }' "/proc/${pid[$t]}/stat")
		w1=$(awk '/^write_bytes/ { print $2 }' "/proc/${pid[$t]}/io")
		kib=$(awk -v a="$w0" -v b="$w1" -v n="$msgs" 'BEGIN { printf "%.1f", (b - a) / 1024 / n }')
		rss=$(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%.0f/%.0f", r / 1024, h / 1024 }' "/proc/${pid[$t]}/status")
		ms=$(awk -v a="$t0" -v b="$t1" -v n="$msgs" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')
		c=$(awk -v a="$c0" -v b="$c1" -v n="$msgs" -v hz="$hz" 'BEGIN { printf "%.3f", (b - a) / hz * 1000 / n }')
		res[$t]="${res[$t]:-} $ms"; cpu[$t]="${cpu[$t]:-} $c"; cs[$t]="${cs[$t]:-}$counts;"
		echo "round $r $t: $ms ms a message, server CPU $c ms a message, $kib KiB written a message, RSS/HWM $rss MiB$counts (load $(cut -d' ' -f1 /proc/loadavg))"
	done
done
for t in base head; do
	echo "$t: ms a message:${res[$t]}; CPU:${cpu[$t]}"
	echo "${res[$t]}" | tr ' ' '\n' | grep . | sort -n | awk -v t="$t" '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%s: median %.3f ms, min %.3f, max %.3f (n=%d)\n", t, m, a[1], a[NR], NR }'
	echo "${cpu[$t]}" | tr ' ' '\n' | grep . | sort -n | awk -v t="$t" '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%s: server CPU median %.3f ms a message\n", t, m }'
	[ -z "${AB_PERF:-}" ] || for k in context-switches nanosleep futex; do
		echo "${cs[$t]}" | tr ';' '\n' | grep -o "$k [0-9.]*" | awk '{ print $2 }' | sort -n | awk -v t="$t" -v k="$k" '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%s: %s median %.1f a message (%.1f-%.1f)\n", t, k, m, a[1], a[NR] }'
	done
done
