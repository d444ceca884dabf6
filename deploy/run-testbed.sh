#!/usr/bin/env bash
# The main command: floodgate serving HTTP on the two-namespace testbed.
#
#   ./deploy/run-testbed.sh          install what is missing, build (release),
#                                    bring the testbed up, start floodgate in
#                                    fg-srv (HTTP on 198.18.0.1:80, metrics on
#                                    127.0.0.1:9100 inside fg-srv), run a short
#                                    demo load from fg-cli, print the key
#                                    metrics, and LEAVE IT RUNNING.
#   ./deploy/run-testbed.sh --stop   the same, then stop floodgate (SIGINT:
#                                    drain, detach XDP) and take the testbed down.
#   ./deploy/run-testbed.sh down     stop a floodgate left running and take the
#                                    testbed down.
#
# Options: --no-build (use the binary already built), --no-demo (skip curl/wrk).
# FLOODGATE_BIN=/path/to/floodgate runs that binary instead (implies --no-build).
# Extra `floodgate serve` options can follow `--`, e.g. `-- --msl 5 --queues 1`.
#
# While it runs:
#   ip netns exec fg-cli curl http://198.18.0.1/
#   ip netns exec fg-cli wrk -t1 -c64 -d10s http://198.18.0.1/
#   ip netns exec fg-srv curl -s http://127.0.0.1:9100/metrics
#   log: /tmp/floodgate-testbed.log   pid: /run/floodgate-testbed.pid
#
# Needs root and Debian 12 (apt). The Rust toolchain comes from rustup if
# cargo is missing. Bounded: every wait has a timeout, the demo load is 5 s.
set -euo pipefail
cd "$(dirname "$0")/.."

LOG=/tmp/floodgate-testbed.log
PIDFILE=/run/floodgate-testbed.pid
METRICS=127.0.0.1:9100
VIP=198.18.0.1

die() { echo "run-testbed: $*" >&2; exit 1; }
say() { echo "==> $*"; }

[ "$(id -u)" = 0 ] || die "needs root (XDP, AF_XDP, network namespaces)"

stop_floodgate() {
    [ -f "$PIDFILE" ] || return 0
    local pid
    pid=$(cat "$PIDFILE")
    if kill -0 "$pid" 2>/dev/null; then
        say "stopping floodgate (pid $pid): SIGINT, drain, XDP detach"
        kill -INT "$pid"
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && { echo "run-testbed: still running, SIGKILL" >&2; kill -9 "$pid"; }
    fi
    rm -f "$PIDFILE"
}

STOP=0 BUILD=1 DEMO=1
EXTRA=()
while [ $# -gt 0 ]; do
    case "$1" in
        down) stop_floodgate; ./deploy/testbed.sh down; exit 0 ;;
        --stop) STOP=1 ;;
        --no-build) BUILD=0 ;;
        --no-demo) DEMO=0 ;;
        --) shift; EXTRA=("$@"); break ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) die "unknown argument $1 (see --help)" ;;
    esac
    shift
done

say "system packages"
./deploy/install-deps.sh
for t in curl wrk; do
    command -v "$t" >/dev/null || die "$t missing after install-deps.sh"
done
if ! command -v cargo >/dev/null; then
    [ -x "$HOME/.cargo/bin/cargo" ] || {
        say "installing the Rust toolchain (rustup)"
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    }
    export PATH="$HOME/.cargo/bin:$PATH"
fi

TARGET=${CARGO_TARGET_DIR:-target}
BIN="$(pwd)/$TARGET/release/floodgate"
case "$TARGET" in /*) BIN="$TARGET/release/floodgate" ;; esac
if [ -n "${FLOODGATE_BIN:-}" ]; then BIN=$FLOODGATE_BIN BUILD=0; fi
if [ "$BUILD" = 1 ]; then
    say "building (release)"
    cargo build --release --locked -p floodgate
fi
[ -x "$BIN" ] || die "no binary at $BIN (build first, or drop --no-build)"

say "testbed"
stop_floodgate
./deploy/testbed.sh up

say "starting floodgate in fg-srv: HTTP on $VIP:80, metrics on $METRICS (log $LOG)"
# setsid: its own session, so it outlives this script and a Ctrl-C here.
setsid ip netns exec fg-srv "$BIN" serve --iface fg-s0 --vip "$VIP" --port 80 --app http \
    --metrics "$METRICS" "${EXTRA[@]}" >"$LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"
scrape() { ip netns exec fg-srv curl -sS -m 2 "http://$METRICS/metrics" 2>/dev/null; }
ready=0
for _ in $(seq 1 150); do
    if scrape | grep -q '^floodgate_listening{'; then ready=1; break; fi
    kill -0 "$(cat "$PIDFILE")" 2>/dev/null || break
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    cat "$LOG" >&2
    die "floodgate did not come up (log above)"
fi
sed 's/^/    /' "$LOG"

if [ "$DEMO" = 1 ]; then
    say "curl from fg-cli"
    ip netns exec fg-cli curl -sS -m 5 -i "http://$VIP/"
    echo
    say "wrk -t1 -c64 -d5s from fg-cli (keep-alive)"
    ip netns exec fg-cli timeout 30 wrk -t1 -c64 -d5s "http://$VIP/" | sed 's/^/    /'
    say "wrk -t1 -c64 -d5s from fg-cli (Connection: close: floodgate holds TIME-WAIT)"
    ip netns exec fg-cli timeout 30 wrk -t1 -c64 -d5s -H 'Connection: close' "http://$VIP/" | sed 's/^/    /'
    sleep 0.5
fi

say "key metrics (ip netns exec fg-srv curl -s http://$METRICS/metrics)"
scrape | grep -E '^floodgate_(info|shard_info|connections_|tcp_(syns_received|synacks_sent|cookies_sent|connections_accepted|connections_closed|connections_reset_by_peer|time_wait_entered|retransmits|drop_[a-z_]+)_total|http_requests_get_total|xdp_program_frames_total\{verdict="redirect")' |
    grep -vE '^floodgate_tcp_drop_[a-z_]+_total\{[^}]*\} 0$' | sed 's/^/    /'

if [ "$STOP" = 1 ]; then
    stop_floodgate
    tail -n 3 "$LOG" | sed 's/^/    /'
    ./deploy/testbed.sh down
    say "stopped; testbed down"
else
    cat <<EOF
==> floodgate is running in fg-srv (pid $(cat "$PIDFILE")). Try:
    ip netns exec fg-cli curl http://$VIP/
    ip netns exec fg-cli wrk -t2 -c256 -d10s http://$VIP/
    ip netns exec fg-srv curl -s http://$METRICS/metrics
  Stop it and remove the testbed:  ./deploy/run-testbed.sh down
EOF
fi
