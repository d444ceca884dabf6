#!/usr/bin/env bash
# The README's two commands on a fresh Debian 12 root, so a package that only
# this machine has (installed by hand, or by an earlier run) cannot hide a
# missing install step.
#
#   deploy/fresh-check.sh [--keep] [--root DIR]
#
# 1. debootstrap builds a minimal Debian 12 (bookworm, --variant=minbase)
#    root in DIR (default /var/tmp/floodgate-fresh, made anew each run);
#    packages come from Debian's registry, as on a new machine.
# 2. The host's Rust toolchain (~/.rustup, ~/.cargo) is bind-mounted into
#    the root's /root (the toolchain read-only; cargo's home writable, for
#    its registry cache and lock); the
#    repository's files (tracked and untracked, not ignored: no target/) are
#    copied to /root/floodgate.
# 3. Inside a chroot, in a mount namespace of its own (/proc, /sys, /dev and
#    bpffs mounted there; network namespaces work as on the host), as root:
#      ./deploy/run-testbed.sh             the main command (leaves floodgate
#                                          serving on the fg-* testbed)
#      CI=true ./deploy/test.sh            the test command, with that demo
#                                          still running
#      curl from fg-cli                    the demo survived the tests
#      ./deploy/run-testbed.sh down
#    Every step's output goes to DIR.log; the script exits non-zero at the
#    first step that fails and says which.
#
# Needs root, debootstrap (installed here if missing), ~15 GB of disk and
# about 30-40 minutes on 2 cores (two builds from nothing: release and test).
# --keep leaves DIR for a look afterwards; otherwise it is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)

ROOT=/var/tmp/floodgate-fresh
KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
        --keep) KEEP=1 ;;
        --root) shift; ROOT=$1 ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "fresh-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
LOG=$ROOT.log
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

die() { echo "fresh-check: $*" >&2; exit 1; }
say() { echo "==> $*" | tee -a "$LOG"; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, network namespaces)"
HOST_HOME=${HOME:-/root}
[ -d "$HOST_HOME/.rustup/toolchains" ] && [ -x "$HOST_HOME/.cargo/bin/cargo" ] ||
    die "no Rust toolchain under $HOST_HOME/.rustup and $HOST_HOME/.cargo (rustup) to bind-mount"
case "$ROOT" in /|/root|/home|/usr|/var|/tmp|"") die "refusing --root $ROOT" ;; esac

cleanup() {
    # The chroot runs in its own mount namespace: its mounts (and the names
    # of its network namespaces) end with it. A process left inside (a demo
    # the check could not stop) is ended here, found by its root directory.
    local p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && kill -9 "${p#/proc/}" 2>/dev/null
    done
    sleep 0.5
    if [ "$KEEP" = 0 ] && [ -d "$ROOT" ]; then
        # Never remove through a mount that is still there.
        if grep -q " $ROOT/" /proc/mounts; then
            echo "fresh-check: mounts left under $ROOT; not removing it" >&2
        else
            rm -rf --one-file-system "$ROOT"
        fi
    fi
}
trap cleanup EXIT

: >"$LOG"
if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -q && apt-get install -y -q --no-install-recommends debootstrap; } >>"$LOG" 2>&1 ||
        die "cannot install debootstrap (see $LOG)"
fi

say "debootstrap bookworm (minbase) into $ROOT"
rm -rf --one-file-system "$ROOT"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" >>"$LOG" 2>&1 ||
    die "debootstrap failed (see $LOG)"
# The same sources a Debian 12 machine has, updates and security included,
# and the host's Acquire settings (a mirror snapshot may need them).
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb ${MIRROR%/debian}/debian-security bookworm-security main
EOF
grep -l '^Acquire::' /etc/apt/apt.conf.d/* 2>/dev/null | xargs -r cp -t "$ROOT/etc/apt/apt.conf.d/"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

say "copying the repository to $ROOT/root/floodgate"
mkdir -p "$ROOT/root/floodgate" "$ROOT/root/.rustup" "$ROOT/root/.cargo"
git -C "$REPO" ls-files -co --exclude-standard -z |
    tar -C "$REPO" --null -T - -cf - | tar -C "$ROOT/root/floodgate" -xf -

# The steps, run inside the chroot. set -e: the first failure ends it, and
# its exit status tells which step.
cat >"$ROOT/root/fresh-steps.sh" <<'EOF'
#!/bin/bash
set -euo pipefail
export HOME=/root PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cd /root/floodgate
step() { echo "==> [fresh root] $*"; }
step "./deploy/run-testbed.sh (the main command)"
./deploy/run-testbed.sh || exit 11
step "CI=true ./deploy/test.sh (the test command), with the demo running"
CI=true ./deploy/test.sh || exit 12
step "the demo still answers after the tests"
ip netns exec fg-cli curl -sS -m 5 -o /dev/null -w '%{http_code}\n' http://198.18.0.1/ | grep -qx 200 || exit 13
step "./deploy/run-testbed.sh down"
./deploy/run-testbed.sh down || exit 14
step "both commands passed"
EOF
chmod +x "$ROOT/root/fresh-steps.sh"

say "running the README's commands in the fresh root (log: $LOG)"
set +e
unshare --mount --propagation private bash -c '
    set -e
    R=$1 H=$2
    # The root a mount point of its own: `ip netns exec` remounts / (rslave).
    mount --bind "$R" "$R"
    mount --rbind /dev "$R/dev"
    mount -t proc proc "$R/proc"
    mount --rbind /sys "$R/sys"
    mountpoint -q "$R/sys/fs/bpf" || mount -t bpf bpf "$R/sys/fs/bpf"
    mount -t tmpfs tmpfs "$R/run"
    mount -t tmpfs tmpfs "$R/tmp"
    mount --bind "$H/.rustup" "$R/root/.rustup"
    mount -o remount,bind,ro "$R/root/.rustup"
    mount --bind "$H/.cargo" "$R/root/.cargo"
    exec chroot "$R" /root/fresh-steps.sh
' fresh-check "$ROOT" "$HOST_HOME" >>"$LOG" 2>&1
rc=$?
set -e
case $rc in
    0) say "PASS: both README commands work on a fresh Debian 12 root" ;;
    11) die "FAIL: ./deploy/run-testbed.sh (the main command); see $LOG" ;;
    12) die "FAIL: ./deploy/test.sh (the test command); see $LOG" ;;
    13) die "FAIL: the demo did not answer after the tests; see $LOG" ;;
    14) die "FAIL: ./deploy/run-testbed.sh down; see $LOG" ;;
    *) die "FAIL: setting up the chroot (exit $rc); see $LOG" ;;
esac
