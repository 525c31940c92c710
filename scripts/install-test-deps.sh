#!/bin/sh
# install-test-deps.sh installs the Debian packages the tests and benchmarks
# need: Dovecot (LMTP delivery tests), swaks (manual SMTP checks) and Postfix
# (for smtp-sink, used by the benchmarks as a fast remote SMTP server), and
# wabt (wat2wasm, which assembles the filter tests' WebAssembly text guests)
# and python3-dkim (core/auth checks its DKIM signatures with an independent
# verifier), and systemd (for systemd-analyze, which checks
# examples/systemd/sluice.service; no systemd is started), and postsrsd
# (core/addressing/srs checks its addresses against the reference SRS
# daemon's), and prometheus (for promtool, which checks the /metrics output,
# the alert rules and their unit tests in examples/monitoring; no Prometheus
# is started) and chromium with a font (the dashboard's browser test drives
# headless Chromium over the DevTools protocol), and redis-server with
# redis-tools (core/kvstore's Redis backend and the several-node tests start
# their own servers on free loopback ports; no daemon is started), and
# clang with lld (wasm-ld: examples/c-deny-rcpt, the C plugin, is built for
# wasm32 without libc and tested through sdktest.WasmFile), and Debian's
# rustc with libstd-rust-dev-wasm32 (examples/rust-minimal, likewise; a
# rustup toolchain has no wasm32 standard library without a download).
#
# It is idempotent and quick when everything is already there. It must run as
# root (or with sudo available) on Debian or Ubuntu. No daemon is left
# running: Postfix is preseeded to "No configuration" and service starts are
# suppressed while the packages install.
set -eu

missing=""
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing="$missing dovecot-core"
[ -x /usr/lib/dovecot/lmtp ] || missing="$missing dovecot-lmtpd"
command -v swaks >/dev/null 2>&1 || missing="$missing swaks"
# swaks needs these for --tls and --tlsc (core/smtpd's submission tests).
perl -MNet::SSLeay -MIO::Socket::SSL -e1 >/dev/null 2>&1 || missing="$missing libnet-ssleay-perl libio-socket-ssl-perl"
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || missing="$missing postfix"
command -v wat2wasm >/dev/null 2>&1 || missing="$missing wabt"
/usr/bin/python3 -c "import dkim, dns.resolver" >/dev/null 2>&1 || missing="$missing python3-dkim python3-dnspython"
command -v systemd-analyze >/dev/null 2>&1 || missing="$missing systemd"
command -v postsrsd >/dev/null 2>&1 || [ -x /usr/sbin/postsrsd ] || missing="$missing postsrsd"
command -v promtool >/dev/null 2>&1 || missing="$missing prometheus"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing="$missing fonts-dejavu-core"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v redis-cli >/dev/null 2>&1 || missing="$missing redis-tools"
command -v clang >/dev/null 2>&1 || missing="$missing clang"
command -v wasm-ld >/dev/null 2>&1 || missing="$missing lld"
[ -x /usr/bin/rustc ] || missing="$missing rustc"
[ -d /usr/lib/rustlib/wasm32-unknown-unknown ] || missing="$missing libstd-rust-dev-wasm32"

if [ -z "$missing" ]; then
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null 2>&1; then
		SUDO="sudo"
	else
		echo "install-test-deps.sh: need root to install$missing; run it as root" >&2
		exit 1
	fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-test-deps.sh: apt-get not found; install$missing by hand" >&2
	exit 1
fi

echo "install-test-deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive

# Keep Postfix unconfigured so that it neither asks questions nor binds port 25.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections

# Suppress service starts during the install (no daemon on 25, 143, 24,
# 9090...),
# unless the system already has its own policy.
policy=/usr/sbin/policy-rc.d
ours=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod 0755 "$policy"
	ours=1
fi
cleanup() {
	if [ -n "$ours" ]; then
		$SUDO rm -f "$policy"
	fi
}
trap cleanup EXIT

$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
