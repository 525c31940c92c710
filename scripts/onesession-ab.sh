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
# VmHWM after the run.
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
	mkdir -p "$tmp/data-$t"
	bench_toml "$tmp/$t.toml" "$tmp/data-$t" "$smtp_port" "$sub_port" "$down_port" "$dns_conf"
	"$bin" serve --config "$tmp/$t.toml" >"$tmp/$t.log" 2>&1 &
	pid[$t]=$!; pids+=("$!"); port[$t]=$smtp_port
	wait_port "$smtp_port" "${pid[$t]}" 60 || { say "$t did not start"; tail "$tmp/$t.log"; exit 1; }
done
left() { echo $(($(grep -c 'msg=queued.*from=bench@client.test' "$tmp/$1.log" || true) - $(grep -c 'msg=delivery.*to=user@sink.test.*status=sent' "$tmp/$1.log" || true))); }
hz=$(getconf CLK_TCK)
declare -A res cpu
for r in $(seq 1 "$rounds"); do
	order="base head"; [ $((r % 2)) = 0 ] && order="head base"
	for t in $order; do
		for _ in $(seq 1 600); do [ "$(left base)" -le 0 ] && [ "$(left head)" -le 0 ] && break; sleep 0.1; done
		c0=$(awk '{ print $14 + $15 }' "/proc/${pid[$t]}/stat")
		w0=$(awk '/^write_bytes/ { print $2 }' "/proc/${pid[$t]}/io")
		t0=$(date +%s.%N)
		if [ "${AB_CLIENT:-}" = randload ]; then
			"$tmp/randload" -s "${AB_SESSIONS:-1}" -m "$msgs" -l 10240 -a "127.0.0.1:${port[$t]}" >&2
		else
			smtp-source -s "${AB_SESSIONS:-1}" -m "$msgs" -l 10240 -f bench@client.test -t user@sink.test "127.0.0.1:${port[$t]}"
		fi
		t1=$(date +%s.%N)
		for _ in $(seq 1 600); do [ "$(left "$t")" -le 0 ] && break; sleep 0.1; done
		c1=$(awk '{ print $14 + $15 }' "/proc/${pid[$t]}/stat")
		w1=$(awk '/^write_bytes/ { print $2 }' "/proc/${pid[$t]}/io")
		kib=$(awk -v a="$w0" -v b="$w1" -v n="$msgs" 'BEGIN { printf "%.1f", (b - a) / 1024 / n }')
		rss=$(awk '/^VmRSS/ { r = $2 } /^VmHWM/ { h = $2 } END { printf "%.0f/%.0f", r / 1024, h / 1024 }' "/proc/${pid[$t]}/status")
		ms=$(awk -v a="$t0" -v b="$t1" -v n="$msgs" 'BEGIN { printf "%.3f", (b - a) * 1000 / n }')
		c=$(awk -v a="$c0" -v b="$c1" -v n="$msgs" -v hz="$hz" 'BEGIN { printf "%.3f", (b - a) / hz * 1000 / n }')
		res[$t]="${res[$t]:-} $ms"; cpu[$t]="${cpu[$t]:-} $c"
		echo "round $r $t: $ms ms a message, server CPU $c ms a message, $kib KiB written a message, RSS/HWM $rss MiB (load $(cut -d' ' -f1 /proc/loadavg))"
	done
done
for t in base head; do
	echo "$t: ms a message:${res[$t]}; CPU:${cpu[$t]}"
	echo "${res[$t]}" | tr ' ' '\n' | grep . | sort -n | awk -v t="$t" '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%s: median %.3f ms, min %.3f, max %.3f (n=%d)\n", t, m, a[1], a[NR], NR }'
done
