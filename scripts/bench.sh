#!/usr/bin/env bash
# bench.sh is `make bench`: the Go benchmarks, then the same SMTP load from
# sluice-load against three servers on 127.0.0.1:
#
#   smtp-sink  Postfix's test server: accepts and throws away, stores nothing.
#              The ceiling of what the load generator and this machine do.
#   sluice     the real server (go build ./cmd/sluice) with a fresh data_dir,
#              local domain bench.test delivered to Maildir.
#   postfix    a throwaway Postfix instance (own config and queue directory,
#              fsync'd queue, discard transport), when Postfix is installed.
#
# It prints a Markdown table and keeps every output in $BENCH_OUT.
# Everything it starts is stopped on exit; the whole run takes about
# 2 to 3 minutes with the defaults.
#
# Settings (environment):
#   BENCH_DURATION  length of each load run          (default 10s)
#   BENCH_CONNS     parallel connections, one run each (default "20 100")
#   BENCH_SIZE      message size in bytes              (default 10240)
#   BENCH_OUT       where outputs go                   (default /tmp/sluice-bench)
#   BENCH_GO=0      skip the Go benchmarks
#   BENCH_POSTFIX=0 skip the Postfix run
set -euo pipefail

cd "$(dirname "$0")/.."

duration=${BENCH_DURATION:-10s}
conns=${BENCH_CONNS:-20 100}
size=${BENCH_SIZE:-10240}
out=${BENCH_OUT:-/tmp/sluice-bench}

tmp=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$tmp" # Postfix's daemons run as user postfix and need to get in
mkdir -p "$out"
rm -f "$out"/*.txt "$out"/*.log "$out"/results.md

load_start=$(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown)
pids=()
postfix_dir=""
failed=0

cleanup() {
	local p
	if [ -n "$postfix_dir" ]; then
		postfix -c "$postfix_dir/conf" stop >/dev/null 2>&1 || true
	fi
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		# Give each process 10 s to finish, then force it.
		for _ in $(seq 1 100); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench [%3ds]: %s\n' "$SECONDS" "$*" >&2; }

# port_open PORT succeeds when something listens on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port VAR sets VAR to a port nobody listens on and that this script
# has not handed out yet.
taken=" "
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + RANDOM % 40000))
		case "$taken" in *" $p "*) continue ;; esac
		if ! port_open "$p"; then
			taken="$taken$p "
			printf -v "$1" '%s' "$p"
			return 0
		fi
	done
	say "no free port found on 127.0.0.1"
	return 1
}

# wait_port PORT PID waits up to 30 s for PORT to accept connections while
# PID is alive.
wait_port() {
	for _ in $(seq 1 300); do
		port_open "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# stop PID NAME sends SIGTERM, waits up to 15 s before SIGKILL, and takes
# PID off the list that cleanup kills.
stop() {
	local p keep=()
	for p in "${pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 1 150); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		say "$2 did not stop within 15 s of SIGTERM; killing it"
		kill -9 "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}

rows=()

# load TARGET ADDR TO runs one load per connection count and adds its rows.
load() {
	local target=$1 addr=$2 to=$3 c row
	for c in $conns; do
		say "$target, $c connections: sluice-load -addr $addr -c $c -d $duration -size $size -to $to"
		if row=$(timeout 120 "$tmp/sluice-load" -addr "$addr" -c "$c" -d "$duration" -size "$size" \
			-to "$to" -timeout 20s -row "$target" 2>"$out/$target-c$c.txt"); then
			rows+=("$row")
		else
			say "$target, $c connections failed: $(tail -n 1 "$out/$target-c$c.txt")"
			rows+=("| $target | $c | – | failed: see $out/$target-c$c.txt | | | | | |")
			failed=1
		fi
		grep -E '^(accepted|end-of-data)' "$out/$target-c$c.txt" | sed 's/^/bench:   /' >&2 || true
	done
}

# 1. Go benchmarks.
if [ "${BENCH_GO:-1}" != 0 ]; then
	say "go test -run '^\$' -bench . -benchmem ./... (output in $out/go-bench.txt)"
	if ! timeout 150 go test -run '^$' -bench . -benchmem -timeout 140s ./... >"$out/go-bench.txt" 2>&1; then
		say "Go benchmarks failed; see $out/go-bench.txt"
		failed=1
	fi
	grep -E '^(Benchmark|ok|FAIL|---)' "$out/go-bench.txt" | grep -v 'no test files' >&2 || true
fi

go build -o "$tmp/sluice-load" ./cmd/sluice-load

# 2. smtp-sink, the ceiling.
if ! command -v smtp-sink >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-sink ]; then
	if [ -f scripts/install-test-deps.sh ]; then
		bash scripts/install-test-deps.sh
	else
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix
	fi
fi
PATH=$PATH:/usr/sbin
free_port sink_port
sink_user=()
[ "$(id -u)" = 0 ] && sink_user=(-u nobody) # it refuses to run as root otherwise
smtp-sink "${sink_user[@]}" -c "127.0.0.1:$sink_port" 1000 >"$out/smtp-sink.log" 2>&1 &
sink_pid=$!
pids+=("$sink_pid")
if wait_port "$sink_port" "$sink_pid"; then
	load smtp-sink "127.0.0.1:$sink_port" user@bench.test
	stop "$sink_pid" smtp-sink
else
	say "smtp-sink did not start; see $out/smtp-sink.log"
	failed=1
fi

# 3. Sluice.
if go build -o "$tmp/sluice" ./cmd/sluice 2>"$out/sluice-build.txt"; then
	free_port smtp_port
	free_port sub_port
	mkdir -p "$tmp/data"
	cat >"$tmp/bench.toml" <<EOF
hostname = "bench.local"
data_dir = "$tmp/data"
local_domains = ["bench.test"]
trusted_networks = ["127.0.0.0/8"]

[smtp]
listen = ["127.0.0.1:$smtp_port"]
max_message_size = "50MiB"
max_recipients = 100
max_connections = 1000
max_connections_per_ip = 1000

[submission]
listen = ["127.0.0.1:$sub_port"]

[local]
transport = "maildir"
maildir = "{data_dir}/mail/{domain}/{user}"

[queue]
workers = 16

[admin]
socket = "{data_dir}/admin.sock"
EOF
	cp "$tmp/bench.toml" "$out/bench.toml"
	"$tmp/sluice" serve --config "$tmp/bench.toml" >"$out/sluice.log" 2>&1 &
	sluice_pid=$!
	pids+=("$sluice_pid")
	if wait_port "$smtp_port" "$sluice_pid"; then
		load sluice "127.0.0.1:$smtp_port" user@bench.test
		# How far delivery kept up: Maildir files now, against all accepted.
		accepted=$(awk '/^accepted [0-9]+ in/ { n += $2 } END { print n + 0 }' "$out"/sluice-c*.txt)
		delivered=$(find "$tmp/data/mail" -path '*/new/*' -type f 2>/dev/null | wc -l)
		say "sluice: $delivered of $accepted accepted messages were in the Maildir when the load ended"
		echo "$delivered of $accepted accepted messages were in the Maildir when the load ended" >"$out/sluice-delivered.txt"
		# Stop it now: its queue would go on delivering during the next runs.
		stop "$sluice_pid" sluice
	else
		say "sluice did not start listening; see $out/sluice.log:"
		tail -n 5 "$out/sluice.log" >&2 || true
		rows+=("| sluice | – | – | did not start | | | | | |")
		failed=1
	fi
else
	say "go build ./cmd/sluice failed; see $out/sluice-build.txt"
	rows+=("| sluice | – | – | build failed | | | | | |")
	failed=1
fi

# 4. A throwaway Postfix with its own configuration and queue directory.
if [ "${BENCH_POSTFIX:-1}" = 0 ]; then
	say "Postfix skipped (BENCH_POSTFIX=0)"
elif [ "$SECONDS" -gt 200 ]; then
	say "Postfix skipped: ${SECONDS}s spent already, it would take the run past 5 minutes"
elif [ "$(id -u)" != 0 ] || ! command -v postfix >/dev/null 2>&1 || ! id postfix >/dev/null 2>&1; then
	say "Postfix skipped: needs root and an installed postfix"
else
	free_port pf_port
	postfix_dir="$tmp/postfix"
	mkdir -p "$postfix_dir/conf" "$postfix_dir/queue" "$postfix_dir/data"
	chown postfix "$postfix_dir/data"
	cat >"$postfix_dir/conf/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $postfix_dir/queue
data_directory = $postfix_dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.local
mydomain = bench.local
mydestination = bench.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_transport = discard:
default_transport = discard:
local_recipient_maps =
alias_maps =
alias_database =
maillog_file_prefixes = $postfix_dir
maillog_file = $postfix_dir/maillog
default_process_limit = 200
smtpd_client_connection_count_limit = 0
EOF
	cat >"$postfix_dir/conf/master.cf" <<EOF
127.0.0.1:$pf_port inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
	if postfix -c "$postfix_dir/conf" start >"$out/postfix-start.txt" 2>&1; then
		pf_pid=$(head -n 1 "$postfix_dir/queue/pid/master.pid" 2>/dev/null | tr -d ' ')
		if wait_port "$pf_port" "${pf_pid:-$$}"; then
			load postfix "127.0.0.1:$pf_port" user@bench.test
		else
			say "Postfix did not listen on $pf_port; see $out/postfix.log"
			failed=1
		fi
	else
		say "Postfix did not start (its log: $out/postfix.log); skipped"
	fi
	cp "$postfix_dir/maillog" "$out/postfix.log" 2>/dev/null || true
fi

# 5. The table.
{
	echo "make bench (bash scripts/bench.sh) on $(nproc) CPUs, load average at start $load_start; each row is"
	echo "  sluice-load -addr 127.0.0.1:PORT -c CONNS -d $duration -size $size -to user@bench.test"
	echo
	"$tmp/sluice-load" -header
	printf '%s\n' "${rows[@]}"
} >"$out/results.md"
echo
cat "$out/results.md"
echo
say "outputs in $out"
exit "$failed"
