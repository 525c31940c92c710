#!/usr/bin/env bash
# syscalls.sh counts the system calls a message costs the server
# (BENCHMARKS.md "System calls per message, again"):
#
#   bash scripts/syscalls.sh SLUICE_BINARY [SESSIONS] [MESSAGES]
#
# It starts the binary with the bench configuration (benchlib.sh's
# bench_toml: sink.test relayed to a downstream smtp-sink, [dns] at
# scripts/benchdns.py), sends 200 messages of warm-up and waits until they
# are relayed, then attaches `strace -c -f` to the server while
# `smtp-source -s SESSIONS` (default 20) sends MESSAGES (default 5,000)
# 10 KiB messages, one connection each, and waits until all are relayed.
# Prints strace's table with a column of calls a message and errors a
# message; the raw table stays in the /tmp/sluice-syscalls.* directory.
# With STRACE=0 it runs the same load without strace and prints the
# server's user and system CPU a message instead (/proc/PID/stat).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$1 sessions=${2:-20} msgs=${3:-5000}
pids=()
say() { echo "syscalls: $*" >&2; }
. scripts/benchlib.sh
bench_tmp syscalls
trap 'kill_pids' EXIT
start_peers "$tmp"
serve_bench "$bin" || exit 1
sent() { grep -c 'status=sent' "$tmp/s.log" || true; }
src() { smtp-source -s "$sessions" -m "$1" -l 10240 -f bench@client.test -t user@sink.test "127.0.0.1:$smtp_port"; }
src 200
for _ in $(seq 1 600); do [ "$(sent)" -ge 200 ] && break; sleep 0.1; done
if [ "${STRACE:-1}" = 0 ]; then
	read -r u0 s0 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
	src "$msgs"
	for _ in $(seq 1 1200); do [ "$(sent)" -ge $((msgs + 200)) ] && break; sleep 0.1; done
	read -r u1 s1 < <(awk '{ print $14, $15 }' "/proc/$pid/stat")
	awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v n="$msgs" -v hz="$(getconf CLK_TCK)" -v b="$bin" -v c="$sessions" 'BEGIN {
		printf "%s, %d sessions: server CPU a message: user %.3f ms, system %.3f ms\n", b, c, u / hz * 1000 / n, s / hz * 1000 / n }'
	exit 0
fi
strace -c -f -p "$pid" -o "$tmp/strace.txt" 2>"$tmp/strace.err" &
spid=$!
# strace prints "Process PID attached" once per thread when it is in.
for _ in $(seq 1 100); do grep -q attached "$tmp/strace.err" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
src "$msgs"
for _ in $(seq 1 1200); do [ "$(sent)" -ge $((msgs + 200)) ] && break; sleep 0.1; done
kill -INT "$spid"
wait "$spid" || true
echo "$bin, $sessions sessions, $msgs messages: calls a message (errors a message)"
awk -v n="$msgs" '
	$1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" {
		name = $NF; calls = $4; errs = (NF == 6) ? $5 : 0
		printf "%-16s %9.2f %9.2f\n", name, calls / n, errs / n
		if (name !~ /^(futex|nanosleep|epoll_pwait|sched_yield|rt_sigreturn|tgkill|getpid)$/) rest += calls
		all += calls
	}
	END { printf "%-16s %9.2f\n%-16s %9.2f\n", "all but sched", rest / n, "all", all / n }
' "$tmp/strace.txt" | sort -k2 -nr
echo "raw table: $tmp/strace.txt"
