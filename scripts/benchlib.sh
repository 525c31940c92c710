# benchlib.sh: the helpers bench.sh and bench-queue.sh share, sourced by
# both. The sourcing script defines say() and keeps the processes it
# starts in the array pids.

# kill_pids stops every process in pids: SIGTERM to all, then up to 10 s
# each before SIGKILL.
kill_pids() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 1 100); do
			kill -0 "$p" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
}

# bench_tmp NAME makes the script's scratch directory (in tmp, readable by
# the nobody that smtp-sink runs as), removed with the processes in pids
# at exit, and puts /usr/sbin (smtp-source, smtp-sink) on PATH.
bench_tmp() {
	tmp=$(mktemp -d "/tmp/sluice-$1.XXXXXX")
	chmod 755 "$tmp"
	trap 'kill_pids; rm -rf "$tmp"' EXIT
	PATH=$PATH:/usr/sbin
}

# serve_bench BIN starts sluice binary BIN on an empty $tmp/data with the
# bench configuration (bench_toml; [dns] at the peers' benchdns.py, so
# start_peers first), its log in $tmp/s.log; sets pid and smtp_port, and
# fails, saying why, when it does not listen within 120 s.
serve_bench() {
	free_port smtp_port || return 1
	free_port sub_port || return 1
	rm -rf "$tmp/data"
	mkdir -p "$tmp/data"
	bench_toml "$tmp/s.toml" "$tmp/data" "$smtp_port" "$sub_port" "$down_port" $'[dns]\nservers = ["127.0.0.1:'"$dns_port"$'"]'
	"$1" serve --config "$tmp/s.toml" >"$tmp/s.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	wait_port "$smtp_port" "$pid" 120 || { say "$1 did not start: $(tail -n 3 "$tmp/s.log")"; return 1; }
}

# proc_ticks PID prints the user + system CPU time PID has used, in clock
# ticks (getconf CLK_TCK a second).
proc_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

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

# wait_port PORT PID [SECONDS] waits up to SECONDS (default 30) for PORT to
# accept connections while PID is alive.
wait_port() {
	for _ in $(seq 1 $((${3:-30} * 10))); do
		port_open "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# stop PID [NAME] sends SIGTERM, waits up to STOP_WAIT seconds (default
# 15) before SIGKILL (saying so when NAME is given), and takes PID off the
# list that kill_pids stops.
stop() {
	local p keep=()
	for p in "${pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
	kill "$1" 2>/dev/null || return 0
	for _ in $(seq 1 $((${STOP_WAIT:-15} * 10))); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$1" 2>/dev/null; then
		[ -z "${2:-}" ] || say "$2 did not stop within ${STOP_WAIT:-15} s of SIGTERM; killing it"
		kill -9 "$1" 2>/dev/null || true
	fi
	wait "$1" 2>/dev/null || true
}

# bench_toml FILE DATA SMTP_PORT SUB_PORT RELAY_PORT [EXTRA] writes the
# configuration of a benchmarked server: data_dir DATA, SMTP and submission
# on loopback ports, local mail to Maildir, sink.test relayed to
# 127.0.0.1:RELAY_PORT, the admin socket in DATA, then EXTRA (more TOML).
bench_toml() {
	cat >"$1" <<EOF
hostname = "bench.local"
data_dir = "$2"
local_domains = ["bench.test"]
trusted_networks = ["127.0.0.0/8"]

[smtp]
listen = ["127.0.0.1:$3"]
max_message_size = "50MiB"
max_recipients = 100
max_connections = 1000
max_connections_per_ip = 1000

[submission]
listen = ["127.0.0.1:$4"]
tls_listen = []

[local]
transport = "maildir"
maildir = "{data_dir}/mail/{domain}/{user}"

[queue]
workers = 16

[[delivery.route]]
domain = "sink.test"
relay = "127.0.0.1:$5"

[admin]
socket = "{data_dir}/admin.sock"

${6:-}
EOF
}

# ls_variants AFTER prints the argument lists of `sluice queue ls` that the
# deep-queue benchmarks time (bench-queue.sh, bench-queuels.sh), one a
# line; AFTER is a queue ID for --after.
ls_variants() {
	printf '%s\n' "--limit 100" "--limit 100 --after $1" "--limit 100 --state deferred" \
		"--limit 100 --state held" "--limit 100 --state queued" "--limit 100 --sender load@src.test" \
		"--limit 100 --sender nobody@nowhere.test" "--limit 100 --rcpt user500000@dead0.test" \
		"--limit 100 --domain dead7.test" "--limit 100 --domain nowhere.test" \
		"--limit 100 --state queued --domain dead7.test"
}

# start_peers DIR starts the peers a measured server relays to and asks:
# a downstream smtp-sink (port in down_port) and scripts/benchdns.py (port
# in dns_port), their logs in DIR.
start_peers() {
	local sink_user=() sink_pid
	[ "$(id -u)" = 0 ] && sink_user=(-u nobody)
	free_port down_port || return 1
	smtp-sink "${sink_user[@]}" -c "127.0.0.1:$down_port" 1000 >"$1/sink.log" 2>&1 &
	sink_pid=$!
	pids+=("$sink_pid")
	free_port dns_port || return 1
	python3 scripts/benchdns.py "$dns_port" >"$1/dns.log" 2>&1 &
	pids+=("$!")
	wait_port "$down_port" "$sink_pid" || {
		say "smtp-sink did not start; $(tail -n 2 "$1/sink.log")"
		return 1
	}
}
