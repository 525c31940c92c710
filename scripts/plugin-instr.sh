#!/bin/bash
# plugin-instr.sh counts the server's user-space instructions per message
# with a set of plugins loaded: a count that other work on the machine
# does not change, unlike the CPU times of scripts/plugin-cpu.sh. The real
# server runs under `valgrind --tool=callgrind` (sink.test relayed to a
# downstream smtp-sink, bench DNS from scripts/benchdns.py); smtp-source
# sends 40 messages of 10 KiB over 2 sessions to warm it up, the counters
# are zeroed, then it sends MESSAGES more (default 200) over 2 sessions;
# once all of them have been relayed the counts are dumped and divided by
# MESSAGES.
#
#   scripts/plugin-instr.sh [-m MESSAGES] DIR|none ...
#
# Each DIR holds NAME.wasm files with their NAME.toml, as for
# plugin-cpu.sh. The copies the server loads get init_timeout = "10m" and
# timeout = "30s" (under valgrind a Go guest starts in seconds and its
# collections take tens of milliseconds) and pool_min = pool_max = 2: two
# instances a plugin, made at load and warmed up by the first messages,
# sent over two sessions like the measured ones (a second instance made
# when the two sessions first overlapped in a call put its start, 0.1-0.2
# M instructions a message, into some counts and not others; one instance
# a plugin made the sessions queue for it). The modules are compiled
# once by a server started without valgrind into a [plugins] cache_dir
# that the measured one reuses. It prints one line a DIR:
# "DIR instructions_per_msg=… messages=…"; PLUGIN_INSTR_KEEP=OUTDIR keeps
# each callgrind profile (OUTDIR/callgrind-NAME.out) for callgrind_annotate;
# PLUGIN_INSTR_VALGRIND adds options to valgrind (e.g.
# --separate-callers20=runtime.newstack). As with plugin-cpu.sh, a DIR that holds
# an executable named sluice runs that server instead, and
# PLUGIN_INSTR_TOML is appended to the server's configuration (a [kv]
# table on Redis, say).
set -eu
cd "$(dirname "$0")/.."
messages=200
if [ "${1:-}" = -m ]; then
	messages=$2
	shift 2
fi
[ $# -gt 0 ] || {
	sed -n '2,31p' "$0" >&2
	exit 2
}
say() { echo "plugin-instr: $*" >&2; }
command -v valgrind >/dev/null || {
	say "valgrind is not installed (apt-get install valgrind)"
	exit 1
}
pids=()
source scripts/benchlib.sh
tmp=$(mktemp -d /tmp/sluice-plugin-instr.XXXXXX)
trap 'kill_pids; rm -rf "$tmp"' EXIT
trap 'say "failed at line $LINENO: $BASH_COMMAND; the server said: $(tail -n 3 "$tmp/server.log" 2>/dev/null)"' ERR
PATH=$PATH:/usr/sbin
go build -o "$tmp/sluice" ./cmd/sluice

start_peers "$tmp" || exit 1

# serve WRAPPER... starts the server (under WRAPPER, if any) and waits
# until it listens with every plugin loaded; it sets pid.
serve() {
	"$@" "$bin" serve --config "$tmp/sluice.toml" >"$tmp/server.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait_port "$smtp_port" "$pid" 1800 || {
		say "the server did not start; $(tail -n 3 "$tmp/server.log")"
		return 1
	}
	for _ in $(seq 1 18000); do
		[ "$(grep -c 'msg="plugin loaded"' "$tmp/server.log")" -ge "$want" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	say "plugins did not load; $(grep -m 3 'level=ERROR' "$tmp/server.log")"
	return 1
}

# relayed waits until the server has finished N messages.
relayed() {
	for _ in $(seq 1 6000); do
		[ "$(grep -c 'msg=removed' "$tmp/server.log")" -ge "$1" ] && return 0
		sleep 0.1
	done
	say "only $(grep -c 'msg=removed' "$tmp/server.log") of $1 messages relayed"
	return 1
}

run() {
	local dir=$1 data="$tmp/data" name f
	name=$(basename "$dir")
	bin="$tmp/sluice"
	[ "$dir" = none ] || [ ! -x "$dir/sluice" ] || bin="$dir/sluice"
	want=0
	rm -rf "$data"
	mkdir -p "$data/plugins" "$tmp/cache"
	if [ "$dir" != none ]; then
		for f in "$dir"/*.wasm; do
			cp "$f" "$data/plugins/"
			want=$((want + 1))
		done
		for f in "$dir"/*.toml; do
			[ -e "$f" ] || continue
			{
				printf 'init_timeout = "10m"\ntimeout = "30s"\npool_min = 2\npool_max = 2\n'
				grep -Ev '^((init_)?timeout|pool_min|pool_max) *=' "$f" || true # an empty NAME.toml is no error
			} >"$data/plugins/$(basename "$f")"
		done
	fi
	free_port smtp_port
	free_port sub_port
	bench_toml "$tmp/sluice.toml" "$data" "$smtp_port" "$sub_port" "$down_port" \
		$'[dns]\nservers = ["127.0.0.1:'"$dns_port"$'"]\n\n[plugins]\ncache_dir = "'"$tmp/cache"$'"\n\n'"${PLUGIN_INSTR_TOML:-}"
	# Compile the modules into the cache without valgrind.
	serve || return 1
	stop "$pid"
	rm -rf "$data/queue"
	# schedtrace as `sluice serve` sets it (cmd/sluice sysmon.go): without it
	# the server would exec itself again, out from under valgrind.
	serve env GODEBUG=asyncpreemptoff=1,schedtrace=2147483647 valgrind --tool=callgrind ${PLUGIN_INSTR_VALGRIND:-} --callgrind-out-file="$tmp/cg.out" || return 1
	smtp-source -s 2 -m 40 -l 10240 -f a@client.test -t u@sink.test "127.0.0.1:$smtp_port"
	relayed 40 || return 1
	callgrind_control -z "$pid" >/dev/null
	smtp-source -s 2 -m "$messages" -l 10240 -f a@client.test -t u@sink.test "127.0.0.1:$smtp_port"
	relayed $((40 + messages)) || return 1
	callgrind_control -d "$pid" >/dev/null
	local out
	out=$(ls -t "$tmp"/cg.out.* | head -n 1)
	echo "$dir instructions_per_msg=$(awk -v m="$messages" '/^summary:/ {printf "%.0f", $2 / m}' "$out") messages=$messages $(grep -c 'level=ERROR' "$tmp/server.log") errors"
	if [ -n "${PLUGIN_INSTR_KEEP:-}" ]; then
		mkdir -p "$PLUGIN_INSTR_KEEP"
		cp "$out" "$PLUGIN_INSTR_KEEP/callgrind-$name.out"
	fi
	stop "$pid"
	rm -f "$tmp"/cg.out*
}

for d in "$@"; do
	run "$d"
done
