#!/usr/bin/env bash
# chain-cpu.sh measures what each process of make bench's smtp-source rows
# costs the machine a message (BENCHMARKS.md "What two cores allow"):
#
#   bash scripts/chain-cpu.sh SLUICE_BINARY [SESSIONS] [MESSAGES]
#
# Two chains, each after 500 messages of warm-up: smtp-source → smtp-sink
# (make bench's smtp-sink row: the ceiling) and smtp-source → sluice →
# downstream smtp-sink (the sluice row: sink.test relayed, the bench
# configuration of benchlib.sh's bench_toml, [dns] at scripts/benchdns.py).
# smtp-source -s SESSIONS (default 20) sends MESSAGES (default 6,000) 10 KiB
# messages, one connection each; the CPU of every process (user+system,
# /proc/PID/stat, smtp-source's from /usr/bin/time) over the measured
# messages, once sluice has relayed them all, is divided by MESSAGES.
# Prints one line a process in ms a message, and the rate each chain ran at.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 sessions=${2:-20} msgs=${3:-6000}
pids=()
say() { echo "chain-cpu: $*" >&2; }
. scripts/benchlib.sh
bench_tmp chain
hz=$(getconf CLK_TCK)
ms() { awk -v t="$1" -v n="$msgs" -v hz="$hz" 'BEGIN { printf "%.3f", t / hz * 1000 / n }'; }
send() { # send PORT: the measured smtp-source run; sets src_ms and rate
	local t0 t1 u s
	t0=$(date +%s.%N)
	/usr/bin/time -f "%U %S" -o "$tmp/src.time" \
		smtp-source -s "$sessions" -m "$msgs" -l 10240 -f bench@client.test -t user@sink.test "127.0.0.1:$1"
	t1=$(date +%s.%N)
	read -r u s <"$tmp/src.time"
	src_ms=$(awk -v u="$u" -v s="$s" -v n="$msgs" 'BEGIN { printf "%.3f", (u + s) * 1000 / n }')
	rate=$(awk -v a="$t0" -v b="$t1" -v n="$msgs" 'BEGIN { printf "%.0f", n / (b - a) }')
}
start_peers "$tmp"
sink_pid=${pids[0]}
warm() { smtp-source -s "$sessions" -m 500 -l 10240 -f bench@client.test -t user@sink.test "127.0.0.1:$1"; }

# smtp-source → smtp-sink
warm "$down_port"
k0=$(proc_ticks "$sink_pid")
send "$down_port"
k1=$(proc_ticks "$sink_pid")
echo "smtp-source → smtp-sink, $sessions sessions: $rate msgs/s; ms a message: smtp-source $src_ms, smtp-sink $(ms $((k1 - k0)))"

# smtp-source → sluice → smtp-sink
serve_bench "$bin" || exit 1
sent() { grep -c 'status=sent' "$tmp/s.log" || true; }
warm "$smtp_port"
for _ in $(seq 1 600); do [ "$(sent)" -ge 500 ] && break; sleep 0.1; done
a0=$(proc_ticks "$pid")
k0=$(proc_ticks "$sink_pid")
send "$smtp_port"
for _ in $(seq 1 1200); do [ "$(sent)" -ge $((msgs + 500)) ] && break; sleep 0.1; done
a1=$(proc_ticks "$pid")
k1=$(proc_ticks "$sink_pid")
echo "smtp-source → sluice → smtp-sink, $sessions sessions: $rate msgs/s; ms a message: smtp-source $src_ms, sluice $(ms $((a1 - a0))), smtp-sink $(ms $((k1 - k0)))"
