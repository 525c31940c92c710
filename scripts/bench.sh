#!/usr/bin/env bash
# bench.sh is `make bench`: the Go benchmarks of the hot paths, then the
# same SMTP load from sluice-load against these servers on 127.0.0.1:
#
#   smtp-sink      Postfix's test server: accepts and throws away, stores
#                  nothing. The ceiling of what the load generator and this
#                  machine do.
#   sluice         the real server (go build ./cmd/sluice) with a fresh
#                  data_dir, local domain bench.test delivered to Maildir.
#   sluice-nometrics  the same with [metrics] enabled = false, right after
#                  it: what counting the metrics costs.
#   sluice-6quiet  the same with six plugins at every stage: scripts/benchplugin
#                  (reads a property at each hook, adds a header at data,
#                  logs nothing) installed as 10-a … 60-f.
#   sluice-6hello  the same with examples/hello six times (logs every stage
#                  at info).
#   sluice-again   sluice without plugins once more, for the drift.
#   postfix        a throwaway Postfix instance (own config and queue
#                  directory, fsync'd queue, discard transport), when
#                  Postfix is installed.
#
# Each server is also measured with Postfix's own load client, smtp-source
# (one connection per message, 1, 20 and 100 parallel sessions), sending to
# user@sink.test, which sluice and Postfix relay to a second smtp-sink (the
# downstream); the run waits until the server has relayed everything it
# accepted and reports how long that took after the load ended.
#
# It prints Markdown tables (load, plugin cost, metrics cost, memory, Go
# benchmarks) and keeps every output in $BENCH_OUT. Everything it starts
# is stopped on exit; the whole run takes about 8 minutes with the
# defaults.
#
# Settings (environment):
#   BENCH_DURATION  length of each load run          (default 10s)
#   BENCH_CONNS     parallel connections, one run each (default "20 100")
#   BENCH_SIZE      message size in bytes              (default 10240)
#   BENCH_OUT       where outputs go                   (default /tmp/sluice-bench)
#   BENCH_GO=0      skip the Go benchmarks
#   BENCH_PLUGINS=0 skip the runs with six plugins
#   BENCH_REDIS=0   skip the three runs with the seven first-party plugins
#                   (examples/anti-abuse, limits raised), their state in
#                   Badger and in a local redis-server ([kv]), over its
#                   Unix domain socket and over loopback TCP
#   BENCH_POSTFIX=0 skip the Postfix run
#   BENCH_PERF=1    record a CPU profile of each sluice run with perf
#                   (perf-TARGET.txt: the top functions)
#   BENCH_SOURCE=0  skip the smtp-source runs
#   BENCH_SOURCE_SESSIONS  smtp-source parallel sessions, one run each
#                   (default "1 20 100")
#   BENCH_SOURCE_MSGS      messages per smtp-source run (default 5000;
#                   runs with one session send a fifth of it)
set -euo pipefail

cd "$(dirname "$0")/.."

duration=${BENCH_DURATION:-10s}
conns=${BENCH_CONNS:-20 100}
size=${BENCH_SIZE:-10240}
src_sessions=${BENCH_SOURCE_SESSIONS:-1 20 100}
src_msgs=${BENCH_SOURCE_MSGS:-5000}
out=${BENCH_OUT:-/tmp/sluice-bench}

tmp=$(mktemp -d /tmp/sluice-bench.XXXXXX)
chmod 755 "$tmp" # Postfix's daemons run as user postfix and need to get in
mkdir -p "$out"
rm -f "$out"/*.txt "$out"/*.log "$out"/*.md "$out"/*.toml

load_start=$(cut -d ' ' -f 1-3 /proc/loadavg 2>/dev/null || echo unknown)
pids=()
postfix_dir=""
failed=0

# shellcheck source=scripts/benchlib.sh
. scripts/benchlib.sh

cleanup() {
	if [ -n "$postfix_dir" ]; then
		postfix -c "$postfix_dir/conf" stop >/dev/null 2>&1 || true
	fi
	kill_pids
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf 'bench [%3ds]: %s\n' "$SECONDS" "$*" >&2; }

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

src_rows=()

# src_count SESSIONS prints how many messages an smtp-source run sends.
src_count() { if [ "$1" = 1 ]; then echo $((src_msgs / 5)); else echo "$src_msgs"; fi; }

# source_runs TARGET ADDR [LEFT] runs smtp-source once per session count
# against ADDR, sending to user@sink.test, and adds its rows. LEFT, when
# given, is a command printing how many of the messages the server accepted
# it has not relayed downstream yet; the run then waits, up to 60 s, for
# none to be left and records how long that took after the load ended.
src_sent=0
source_runs() {
	local target=$1 addr=$2 drained=${3:-} s m t0 t1 err rate per drain left
	src_sent=0
	[ "${BENCH_SOURCE:-1}" != 0 ] || return 0
	for s in $src_sessions; do
		m=$(src_count "$s")
		say "$target, $s sessions: smtp-source -s $s -m $m -l $size -f bench@client.test -t user@sink.test $addr"
		t0=$(date +%s.%N)
		timeout 300 smtp-source -s "$s" -m "$m" -l "$size" -f bench@client.test -t user@sink.test "$addr" \
			>"$out/$target-source-s$s.txt" 2>&1 || echo "exit status $?" >>"$out/$target-source-s$s.txt"
		t1=$(date +%s.%N)
		src_sent=$((src_sent + m))
		err=$(grep -c . "$out/$target-source-s$s.txt" || true)
		drain="–"
		if [ -n "$drained" ]; then
			for _ in $(seq 1 600); do
				left=$($drained)
				[ "$left" -le 0 ] && break
				sleep 0.1
			done
			if [ "$left" -le 0 ]; then
				drain=$(awk -v a="$t1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')
			else
				drain="$left not relayed after 60 s"
				failed=1
			fi
		fi
		rate=$(awk -v m="$m" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", m / (b - a) }')
		per=$(awk -v m="$m" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f ms", (b - a) * 1000 / m }')
		src_rows+=("| $target | $s | $m | $rate | $per | $drain | $([ "$err" = 0 ] && echo none || echo "$err lines in $target-source-s$s.txt") |")
		say "$target, $s sessions: $rate msgs/s, $per a message, relayed $drain after the load"
	done
}

# 1. Go benchmarks of the hot paths: the filter host's per-hook overhead
# (without and with the metrics as its observer), the durable enqueue, the
# SMTP server, the plugin key-value store, the DNS cache and what the
# metrics cost per message, per plugin call and per scrape.
bench_re='BenchmarkHook|BenchmarkEnqueue|BenchmarkPipelinedMessages|BenchmarkDataScan|BenchmarkIncr|BenchmarkLookup|BenchmarkMessagePath|BenchmarkPluginCall|BenchmarkScrape'
bench_pkgs="./core/filter ./core/queue ./core/smtpd ./core/kvstore ./core/dns ./core/metrics"
gobench_cmd="go test -run '^\$' -bench '$bench_re' -benchmem $bench_pkgs"
if [ "${BENCH_GO:-1}" != 0 ]; then
	say "$gobench_cmd (output in $out/go-bench.txt)"
	# shellcheck disable=SC2086 # bench_pkgs is a list
	if ! timeout 240 go test -run '^$' -bench "$bench_re" -benchmem -timeout 230s $bench_pkgs >"$out/go-bench.txt" 2>&1; then
		say "Go benchmarks failed; see $out/go-bench.txt"
		failed=1
	fi
	grep -E '^(Benchmark|ok|FAIL|---)' "$out/go-bench.txt" >&2 || true
	# One row per benchmark; ops/s is 1e9 / (ns/op), for parallel ones the
	# throughput of all goroutines together.
	awk '
		function dur(ns) {
			if (ns < 1000) return sprintf("%.0f ns", ns)
			if (ns < 1e6) return sprintf("%.2f µs", ns / 1e3)
			return sprintf("%.2f ms", ns / 1e6)
		}
		/^pkg: / { pkg = $2; sub(/.*\/sluice\//, "", pkg) }
		/^Benchmark/ && /ns\/op/ {
			name = $1; sub(/-[0-9]+$/, "", name)
			ns = mbs = bop = al = ""
			for (i = 3; i <= NF; i++) {
				if ($i == "ns/op") ns = $(i - 1)
				if ($i == "MB/s") mbs = $(i - 1)
				if ($i == "B/op") bop = $(i - 1)
				if ($i == "allocs/op") al = $(i - 1)
			}
			printf "| %s | %s | %s | %.0f | %s | %s | %s |\n", pkg, name, dur(ns), 1e9 / ns, mbs == "" ? "–" : mbs, bop, al
		}' "$out/go-bench.txt" >"$out/go-bench-rows.md"
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
	source_runs smtp-sink "127.0.0.1:$sink_port"
	stop "$sink_pid" smtp-sink
else
	say "smtp-sink did not start; see $out/smtp-sink.log"
	failed=1
fi

# The downstream smtp-sink that sluice and Postfix relay user@sink.test to
# in the smtp-source runs; it counts what it received (-c, in its log).
free_port down_port
smtp-sink "${sink_user[@]}" -c "127.0.0.1:$down_port" 1000 >"$out/downstream-sink.log" 2>&1 &
down_pid=$!
pids+=("$down_pid")
wait_port "$down_port" "$down_pid" || say "the downstream smtp-sink did not start; see $out/downstream-sink.log"

# A local DNS server for sluice (scripts/benchdns.py: NXDOMAIN with a
# cacheable SOA for everything), so that no run waits on the machine's
# resolver; without python3, sluice asks the resolvers of /etc/resolv.conf.
dns_conf=""
if command -v python3 >/dev/null 2>&1; then
	free_port dns_port
	python3 scripts/benchdns.py "$dns_port" >"$out/benchdns.log" 2>&1 &
	pids+=("$!")
	dns_conf=$'[dns]\nservers = ["127.0.0.1:'"$dns_port"$'"]'
else
	say "no python3: sluice uses the machine's DNS resolver (a dropped reverse lookup stalls a session 2 s)"
fi

# The disk's synchronous-write latency, the floor of a durable message's
# time in one session (sluice syncs its commit log before the 250, Postfix
# its queue file): 200 writes of 4 KiB, each synced (O_DSYNC), in the
# directory the data dirs are in.
sync_ms=$(dd if=/dev/zero of="$tmp/synctest" bs=4k count=200 oflag=dsync 2>&1 |
	awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") printf "%.2f", $(i - 1) * 1000 / 200 }')
rm -f "$tmp/synctest"
say "a synced 4 KiB write on this disk: ${sync_ms:-?} ms (dd oflag=dsync, 200 writes)"

# 3. Sluice: without plugins, then with six plugins at every stage.
mem_rows=()

# sluice_left LOG prints how many messages sluice accepted from
# smtp-source and has not relayed to sink.test yet.
sluice_left() {
	echo $(($(grep -c 'msg=queued.*from=bench@client.test' "$1" || true) - $(grep -c 'msg=delivery.*to=user@sink.test.*status=sent' "$1" || true)))
}

# sluice_run TARGET [WASM [TOML [EXTRA [NOHEADERS [NOSOURCE]]]]] starts sluice with a fresh
# data_dir, with WASM (and TOML beside it) installed as six plugins 10-a …
# 60-f and EXTRA appended to its configuration, runs the load, records the
# process's memory after the last run and stops it. The smtp-source runs
# are skipped when NOSOURCE is set.
sluice_run() {
	local target=$1 wasm=${2:-} toml=${3:-} extra=${4:-} noheaders=${5:-} nosource=${6:-} data="$tmp/data-$1" n want=0 pid
	mkdir -p "$data/plugins"
	if [ -d "$wasm" ]; then
		# A directory of plugins, each NAME.wasm with its NAME.toml.
		cp "$wasm"/* "$data/plugins/"
		want=$(find "$wasm" -name '*.wasm' | wc -l)
	elif [ -n "$wasm" ]; then
		for n in 10-a 20-b 30-c 40-d 50-e 60-f; do
			cp "$wasm" "$data/plugins/$n.wasm"
			[ -z "$toml" ] || cp "$toml" "$data/plugins/$n.toml"
		done
		want=6
	fi
	free_port smtp_port
	free_port sub_port
	bench_toml "$tmp/$target.toml" "$data" "$smtp_port" "$sub_port" "$down_port" "$dns_conf"
	[ -z "$extra" ] || printf '\n%s\n' "$extra" >>"$tmp/$target.toml"
	cp "$tmp/$target.toml" "$out/$target.toml"
	"$tmp/sluice" serve --config "$tmp/$target.toml" >"$out/$target.log" 2>&1 &
	pid=$!
	pids+=("$pid")
	# Plugins compile before the server listens: minutes for seven on a
	# busy machine with a fresh compilation cache.
	if ! wait_port "$smtp_port" "$pid" 600; then
		say "$target did not start listening; see $out/$target.log:"
		tail -n 5 "$out/$target.log" >&2 || true
		rows+=("| $target | – | – | did not start | | | | | |")
		failed=1
		stop "$pid" "$target"
		return 0
	fi
	for _ in $(seq 1 600); do
		[ "$(grep -c 'msg="plugin loaded"' "$out/$target.log")" -ge "$want" ] && break
		sleep 0.1
	done
	if [ "$(grep -c 'msg="plugin loaded"' "$out/$target.log")" -lt "$want" ]; then
		say "$target: not all $want plugins loaded within 60 s; see $out/$target.log"
		failed=1
	fi
	local perf_pid=""
	if [ "${BENCH_PERF:-0}" = 1 ] && command -v perf >/dev/null 2>&1; then
		perf record -F 499 -g -o "$out/perf-$target.data" -p "$pid" >/dev/null 2>&1 &
		perf_pid=$!
	fi
	local cpu0
	cpu0=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
	load "$target" "127.0.0.1:$smtp_port" user@bench.test
	local cpu1 src_cpu="–" accepted delivered
	cpu1=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
	# How far delivery kept up: Maildir files now, against all accepted.
	accepted=$(awk '/^accepted [0-9]+ in/ { n += $2 } END { print n + 0 }' "$out/$target"-c*.txt)
	delivered=$(find "$data/mail" -path '*/new/*' -type f 2>/dev/null | wc -l)
	if [ -z "$nosource" ] && [ "${BENCH_SOURCE:-1}" != 0 ]; then
		# The smtp-source runs start with an empty queue: wait (up to
		# 120 s) for the Maildir deliveries of the runs above.
		for _ in $(seq 1 1200); do
			[ "$(find "$data/mail" -path '*/new/*' -type f 2>/dev/null | wc -l)" -ge "$accepted" ] && break
			sleep 0.1
		done
		local cpu2
		cpu2=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
		# Relayed downstream: one "status=sent" delivery line per message.
		source_runs "$target" "127.0.0.1:$smtp_port" "sluice_left $out/$target.log"
		# CPU time per message accepted from smtp-source and relayed.
		src_cpu=$(awk -v hz="$(getconf CLK_TCK)" -v n="$src_sent" -v c0="$cpu2" '{ s = ($14 + $15 - c0) / hz; printf "%.2f ms", (n > 0 ? s * 1000 / n : 0) }' "/proc/$pid/stat" 2>/dev/null || echo "–")
	fi
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
		perf report -i "$out/perf-$target.data" --stdio --no-children --sort symbol 2>/dev/null |
			grep -E '^ +[0-9.]+%' | head -n 25 >"$out/perf-$target.txt" || true
	fi
	# Peak and current memory of the server after its last (largest) run.
	local hwm rss
	hwm=$(awk '/^VmHWM/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || echo –)
	rss=$(awk '/^VmRSS/ { printf "%.0f MiB", $2 / 1024 }' "/proc/$pid/status" 2>/dev/null || echo –)
	local cpu
	# CPU time (user + system) the server used during the load runs,
	# delivering included, per accepted message.
	cpu=$(awk -v n="$accepted" -v hz="$(getconf CLK_TCK)" -v c0="$cpu0" -v c1="$cpu1" 'BEGIN { s = (c1 - c0) / hz; printf "%.1f s | %.2f ms", s, (n > 0 ? s * 1000 / n : 0) }')
	mem_rows+=("| $target | ${conns##* } | $hwm | $rss | $cpu | $src_cpu |")
	say "$target: $delivered of $accepted accepted messages were in the Maildir when the load ended; VmHWM $hwm"
	echo "$delivered of $accepted accepted messages were in the Maildir when the load ended" >"$out/$target-delivered.txt"
	# The plugins ran: each of the six added its header to a delivered message.
	if [ -n "$wasm" ] && [ -z "$noheaders" ]; then
		local f hdr
		f=$(find "$data/mail" -path '*/new/*' -type f -print -quit 2>/dev/null)
		hdr=$(grep -c -E '^X-(Bench|Hello): ' "$f" 2>/dev/null || true)
		say "$target: a delivered message carries ${hdr:-0} plugin headers (want 6)"
		[ "${hdr:-0}" = 6 ] || failed=1
	fi
	# Stop it now: its queue would go on delivering during the next runs.
	stop "$pid" "$target"
}

# firstparty DIR builds the first-party plugins into DIR with the
# configuration of examples/anti-abuse, the ratelimit plugin's limits
# raised to a billion so that the load is never refused.
firstparty() {
	local dir=$1 p
	mkdir -p "$dir"
	# One module holds the seven (plugins/firstparty), installed under each name.
	(cd plugins/firstparty && GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$dir/firstparty.bin" .) || return 1
	for p in dnsbl helo greylist ratelimit sender-policy spamscore headers; do
		cp "$dir/firstparty.bin" "$dir/$p.wasm"
		sed -E 's/(messages|recipients) = [0-9]+/\1 = 1000000000/g' "examples/anti-abuse/plugins/$p.toml" >"$dir/$p.toml"
	done
	rm "$dir/firstparty.bin"
}

if go build -o "$tmp/sluice" ./cmd/sluice 2>"$out/sluice-build.txt"; then
	sluice_run sluice
	# The same with the metrics off, at once, so that the machine has not
	# drifted in between.
	sluice_run sluice-nometrics "" "" $'[metrics]\nenabled = false' "" nosource
	if [ "${BENCH_PLUGINS:-1}" != 0 ]; then
		if GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$tmp/benchplugin.wasm" ./scripts/benchplugin &&
			GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o "$tmp/hello.wasm" ./examples/hello; then
			sluice_run sluice-6quiet "$tmp/benchplugin.wasm"
			sluice_run sluice-6hello "$tmp/hello.wasm" examples/hello/hello.toml "" "" nosource
			# The seven first-party plugins as examples/anti-abuse configures
			# them, with the ratelimit plugin's limits raised so that nothing
			# is refused (same keys and windows, so every message makes all
			# its KV operations), on Badger (with smtp-source too: the
			# first-party plugins' cost) and then on a local Redis: the
			# cost of shared state.
			if [ "${BENCH_REDIS:-1}" != 0 ] && command -v redis-server >/dev/null 2>&1 && firstparty "$tmp/firstparty"; then
				sluice_run sluice-plugins-badger "$tmp/firstparty" "" "" noheaders
				# Redis on the same host: over its Unix domain socket (the
				# row of issue 15's target), then over loopback TCP.
				free_port redis_port
				redis-server --port "$redis_port" --bind 127.0.0.1 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 \
					--save "" --appendonly no --dir "$tmp" --logfile "$out/redis.log" &
				redis_pid=$!
				pids+=("$redis_pid")
				wait_port "$redis_port" "$redis_pid" || say "redis-server did not start; see $out/redis.log"
				sluice_run sluice-plugins-redis "$tmp/firstparty" "" \
					$'[kv]\nbackend = "redis"\nredis = ["unix:'"$tmp/redis.sock"$'"]\ntimeout = "1s"' noheaders nosource
				sluice_run sluice-plugins-redis-tcp "$tmp/firstparty" "" \
					$'[kv]\nbackend = "redis"\nredis = ["127.0.0.1:'"$redis_port"$'"]\ntimeout = "1s"' noheaders nosource
				stop "$redis_pid" redis-server
			fi
			# Once more without plugins: the drift of the machine over the
			# three runs, and a fairer base for the plugins' cost.
			sluice_run sluice-again
		else
			say "building the bench plugins failed"
			failed=1
		fi
	fi
else
	say "go build ./cmd/sluice failed; see $out/sluice-build.txt"
	rows+=("| sluice | – | – | build failed | | | | | |")
	failed=1
fi

# postfix_left LOG prints how many messages Postfix accepted from
# smtp-source and has not relayed to sink.test yet.
postfix_left() {
	echo $(($(grep -c 'qmgr.*from=<bench@client.test>' "$1" 2>/dev/null || true) - $(grep -c 'to=<user@sink.test>.*status=sent' "$1" 2>/dev/null || true)))
}

# 4. A throwaway Postfix with its own configuration and queue directory.
if [ "${BENCH_POSTFIX:-1}" = 0 ]; then
	say "Postfix skipped (BENCH_POSTFIX=0)"
elif [ "$SECONDS" -gt 600 ]; then
	say "Postfix skipped: ${SECONDS}s spent already, it would take the run past 11 minutes"
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
default_transport = smtp
relayhost = [127.0.0.1]:$down_port
smtp_tls_security_level = none
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
smtp      unix  -       -       n       -       -       smtp
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
			# Relayed downstream: one "status=sent" line per message in
			# its log.
			source_runs postfix "127.0.0.1:$pf_port" "postfix_left $postfix_dir/maillog"
		else
			say "Postfix did not listen on $pf_port; see $out/postfix.log"
			failed=1
		fi
	else
		say "Postfix did not start (its log: $out/postfix.log); skipped"
	fi
	cp "$postfix_dir/maillog" "$out/postfix.log" 2>/dev/null || true
fi

[ "${BENCH_MEMORY:-0}${BENCH_DEEPQUEUE:-0}" = 00 ] || BENCH_OUT="$out" bash scripts/bench-queue.sh || failed=1 # memory, deep queue: queue-results.md
# 5. The tables.
# msgs TARGET CONNS prints the msgs/s column of that row ("" if none).
msgs() { pick rows "$@"; }
# srcmsgs TARGET SESSIONS prints the msgs/s of that smtp-source row.
srcmsgs() { pick src_rows "$@"; }
# pick ARRAY TARGET CONNS prints the msgs/s (fourth column) of the first
# row of ARRAY for TARGET and CONNS.
pick() {
	local -n arr=$1
	printf '%s\n' "${arr[@]}" | awk -F '|' -v t="$2" -v c="$3" '
		{ gsub(/ /, "", $2); gsub(/ /, "", $3); gsub(/ /, "", $5) }
		!done && $2 == t && $3 == c && $5 ~ /^[0-9.]+$/ { print $5; done = 1 }'
}
# baseline GETTER CONNS prints sluice's msgs/s: the mean of the sluice and
# sluice-again rows when both ran ("" when sluice did not).
baseline() {
	local base again
	base=$($1 sluice "$2")
	[ -n "$base" ] || return 0
	again=$($1 sluice-again "$2")
	[ -z "$again" ] || base=$(awk -v a="$base" -v b="$again" 'BEGIN { printf "%.0f", (a + b) / 2 }')
	echo "$base"
}
# The awk functions of the comparison tables: b is sluice's msgs/s.
cmp_awk='function ratio(x) { return x > 0 ? sprintf("%.1f×", b / x) : "–" }
function cost(x) { return x > 0 ? sprintf("%.0f %%", (b - x) / b * 100) : "–" }
function share(x) { return x > 0 ? sprintf("%.0f %%", b / x * 100) : "–" }
function or(x) { return x == "" ? "–" : x }'
{
	echo "make bench (bash scripts/bench.sh) on $(nproc) CPUs, $(date -u '+%Y-%m-%d %H:%M UTC'), load average at start $load_start; each row is"
	echo "  sluice-load -addr 127.0.0.1:PORT -c CONNS -d $duration -size $size -to user@bench.test"
	echo
	"$tmp/sluice-load" -header
	printf '%s\n' "${rows[@]}"
	echo
	echo "Against the others (same run):"
	echo
	echo "sluice msgs/s is the mean of the sluice and sluice-again rows when both ran; \"lost\" is the share of that throughput the plugins cost."
	echo
	echo "| conns | sluice msgs/s | ÷ postfix | ÷ smtp-sink | 6 quiet plugins | lost | 6 hello plugins | lost |"
	echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for c in $conns; do
		base=$(baseline msgs "$c")
		[ -n "$base" ] || continue
		awk -v b="$base" -v pf="$(msgs postfix "$c")" -v sk="$(msgs smtp-sink "$c")" \
			-v q="$(msgs sluice-6quiet "$c")" -v h="$(msgs sluice-6hello "$c")" -v c="$c" "$cmp_awk"'
			BEGIN { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", c, b, ratio(pf), share(sk), or(q), cost(q), or(h), cost(h) }'
	done
	if [ "${#src_rows[@]}" -gt 0 ]; then
		echo
		echo "smtp-source, Postfix's load client, one connection per message (HELO, MAIL, RCPT, DATA, QUIT), $size-byte messages to user@sink.test, which sluice and Postfix relay to a downstream smtp-sink; each row is"
		echo "  smtp-source -s SESSIONS -m MSGS -l $size -f bench@client.test -t user@sink.test 127.0.0.1:PORT"
		echo "timed from start to exit (the last reply); \"relayed after\" is how long after that the server had relayed everything it accepted."
		echo
		echo "| target | sessions | messages | msgs/s | per message | relayed after | errors |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | --- |"
		printf '%s\n' "${src_rows[@]}"
		echo
		echo "A synced 4 KiB write on this disk took ${sync_ms:-?} ms (\`dd bs=4k count=200 oflag=dsync\`, same run): a durable message in one session cannot take less."
		echo
		echo "Against the others, smtp-source (same run; sluice is the mean of the sluice and sluice-again rows when both ran):"
		echo
		echo "| sessions | sluice msgs/s | a message in a session (sessions ÷ msgs/s) | ÷ postfix | ÷ smtp-sink | 6 quiet plugins | lost | first-party plugins (Badger) | lost |"
		echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		for c in $src_sessions; do
			base=$(baseline srcmsgs "$c")
			[ -n "$base" ] || continue
			awk -v b="$base" -v pf="$(srcmsgs postfix "$c")" -v sk="$(srcmsgs smtp-sink "$c")" \
				-v q="$(srcmsgs sluice-6quiet "$c")" -v fp="$(srcmsgs sluice-plugins-badger "$c")" -v c="$c" "$cmp_awk"'
				BEGIN { printf "| %s | %s | %.2f ms | %s | %s | %s | %s | %s | %s |\n", c, b, (b > 0 ? c * 1000 / b : 0), ratio(pf), share(sk), or(q), cost(q), or(fp), cost(fp) }'
		done
	fi
	if [ -n "$(msgs sluice-plugins-badger "${conns%% *}")" ]; then
		echo
		echo "Shared state (same run): the seven first-party plugins of examples/anti-abuse (limits raised) with [kv] on Badger, then on a local redis-server over its Unix domain socket (\"Redis\") and over loopback TCP; \"lost\" is the share of the no-plugin throughput (mean of sluice and sluice-again) each costs."
		echo
		echo "| conns | no plugins | plugins, Badger | lost | plugins, Redis | lost | Redis against Badger | Redis over TCP | lost |"
		echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
		for c in $conns; do
			base=$(msgs sluice "$c")
			again=$(msgs sluice-again "$c")
			[ -z "$again" ] || [ -z "$base" ] || base=$(awk -v a="$base" -v b="$again" 'BEGIN { printf "%.0f", (a + b) / 2 }')
			awk -v b="$base" -v bg="$(msgs sluice-plugins-badger "$c")" -v rd="$(msgs sluice-plugins-redis "$c")" \
				-v rt="$(msgs sluice-plugins-redis-tcp "$c")" -v c="$c" '
				function cost(x, of) { return x > 0 && of > 0 ? sprintf("%.0f %%", (of - x) / of * 100) : "–" }
				BEGIN { printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c, (b == "" ? "–" : b), (bg == "" ? "–" : bg), cost(bg, b),
					(rd == "" ? "–" : rd), cost(rd, b), cost(rd, bg), (rt == "" ? "–" : rt), cost(rt, b) }'
		done
	fi
	if [ -n "$(msgs sluice-nometrics "${conns%% *}")" ]; then
		echo
		echo "Metrics on against off (same run): sluice counts for /metrics, sluice-nometrics runs right after it with [metrics] enabled = false; \"cost\" is the share of the off throughput that counting costs (negative: within the noise). CPU per message is in the process table below."
		echo
		echo "| conns | sluice msgs/s | sluice-nometrics msgs/s | cost |"
		echo "| ---: | ---: | ---: | ---: |"
		for c in $conns; do
			awk -v on="$(msgs sluice "$c")" -v off="$(msgs sluice-nometrics "$c")" -v c="$c" '
				BEGIN { printf "| %s | %s | %s | %s |\n", c, (on == "" ? "–" : on), (off == "" ? "–" : off),
					(on > 0 && off > 0 ? sprintf("%.1f %%", (off - on) / off * 100) : "–") }'
		done
	fi
	if [ "${#mem_rows[@]}" -gt 0 ]; then
		echo
		echo "The sluice process after its last run (/proc/PID/status and stat; CPU includes delivering into the Maildir):"
		echo
		echo "| target | last conns | VmHWM (peak RSS) | VmRSS | CPU during the sluice-load runs | CPU per accepted msg | CPU per msg, smtp-source runs (relaying included) |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
		printf '%s\n' "${mem_rows[@]}"
	fi
	if [ -s "$out/go-bench-rows.md" ]; then
		echo
		echo "Go benchmarks: $gobench_cmd"
		echo
		echo "| package | benchmark | time/op | ops/s | MB/s | B/op | allocs/op |"
		echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
		cat "$out/go-bench-rows.md"
	fi
} >"$out/results.md"
echo
cat "$out/results.md"
echo
say "outputs in $out"
exit "$failed"
