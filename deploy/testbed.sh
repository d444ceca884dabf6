#!/usr/bin/env bash
# The two-namespace testbed: floodgate in `fg-srv`, Linux clients in `fg-cli`.
#
#   fg-srv: fg-s0 198.18.0.1/24 ──── veth ──── fg-c0 198.18.0.2/24, .10-.73  :fg-cli
#                 2001:db8::1/64                      2001:db8::2/64, ::10-::73
#
# Both ends have 2 RX and 2 TX queues, so a 2-queue engine has a socket per
# queue (which queue a frame lands on follows the sending core's TX queue).
# Addresses are in the benchmark range 198.18.0.0/15 (RFC 2544) and, for
# IPv6, the documentation prefix 2001:db8::/32 (RFC 3849); they exist only
# inside the namespaces. IPv6 addresses are added without duplicate address
# detection (nodad), so they are usable at once; the kernel in fg-srv holds
# 2001:db8::1 to answer neighbour discovery for floodgate (which learns the
# client's MAC from its frames), as it answers ARP for 198.18.0.1.
#
# What XDP on veth needs, measured on Linux 6.x:
#  - Native XDP works on fg-s0 with nothing on the peer: attaching a program
#    turns on NAPI on fg-s0 and makes the kernel clear TSO/GSO on fg-c0, so
#    frames from fg-c0 take the NAPI path where native XDP runs. An XDP program
#    on fg-c0 is needed only for XDP_TX/XDP_REDIRECT *into* fg-c0 (GRO is not
#    enough: veth wakes the peer after XDP_TX only if it runs XDP). floodgate
#    sends by XDP_TX only SYN cookies answered in XDP (--xdp-syn-cookies),
#    and the XDP_TX reflector all its replies; floodgate-load's program on
#    fg-c0 serves, and a kernel client needs any XDP program on fg-c0
#    (serve_testbed's syn_cookies_in_xdp attaches floodgate's own, which
#    passes everything with no VIP set). floodgate's AF_XDP TX on veth is
#    copy mode (veth has no zero-copy), i.e. an skb through veth_xmit.
#  - In generic mode (--xdp-mode generic) veth delivers every frame on RX
#    queue 0; in native mode frames land on the queue matching the client's
#    TX queue (its sending core), so both queues see traffic.
#  - A connection must stay on one queue (one shard owns it). The client
#    kernel picks the TX queue, hence our RX queue, from the flow's hash, and
#    by default re-rolls that hash after an RTO (net.core.txrehash, per
#    namespace): under loss a flow would jump to the other shard. fg-cli
#    sets net.core.txrehash=0. (A NIC's RSS hashes the 4-tuple: no issue.)
#  - veth does a receiver's work on the *sender's* core: the receiving side's
#    NAPI poll (where XDP and AF_XDP receive run) is scheduled by veth_xmit on
#    the sending CPU, and without NAPI netif_rx's softirq runs there too. So
#    by default each side pays for the other's receive. bench/compare.py
#    (--rx-mode own) moves it back: RPS for the kernel stack, threaded NAPI
#    pinned to the receiver's core for XDP.
#  - Checksum offload is turned off on fg-c0 (tx and rx): with tx on, the
#    client kernel's frames carry partial (pseudo-header only) TCP checksums
#    into AF_XDP; with rx on, veth marks frames CHECKSUM_UNNECESSARY and a
#    wrong checksum from the engine would go unnoticed.
#
# Backends for the proxy (FG_TESTBED_BACKENDS=1 or 2 at `up`; off by
# default, so the other tests' fg-s0/fg-c0 see exactly what they saw
# before). With 1, one-armed:
#
#   fg-srv: fg-s0 ─── veth ─── fg-c0 :fg-cli
#                                └─ macvlan (bridge) fg-b0 198.18.2.10-.13/24 :fg-be
#
# The backend namespace P-be hangs on the client's side of the link through
# a macvlan of fg-c0, so the backends are neighbours of fg-s0 on the served
# link: floodgate is a one-armed front end (backends reached through
# --iface fg-s0, their MACs by ARP on fg-s0). fg-srv gets an on-link route
# to 198.18.2.0/24 on fg-s0 and fg-be one to 198.18.0.0/24 on fg-b0, so the
# backends answer the proxy's source addresses (which must be addresses of
# fg-srv, e.g. 198.18.0.1 on ports the kernel does not use, so its ARP
# answers for them). IPv6 is off in fg-be: it sends nothing by itself.
#
# With FG_TESTBED_BACKENDS=2, two-armed, as a bare-metal front end with a
# front and a back NIC:
#
#   fg-srv: fg-s0 ─── veth ─── fg-c0 :fg-cli           (unchanged)
#           fg-s1 198.18.2.1/24 ─── veth ─── fg-b0 198.18.2.10-.13/24 :fg-be
#
# floodgate serves clients on fg-s0 and reaches the backends on fg-s1
# (`--backend-iface fg-s1`), from a source address of fg-s1 (198.18.2.1,
# on ports the kernel does not use, so its ARP answers for it). fg-s1/fg-b0
# have the same 2 queues, offloads and sysctls as fg-s0/fg-c0. The same
# backend addresses in both layouts, so a test runs either way.
#
# Usage: testbed.sh up|down|status      (root; idempotent; `down` removes all,
# ending any process still running inside the two namespaces)
#
# FG_TESTBED_NS=P names the namespaces P-srv and P-cli (default P=fg). The
# test suite uses fgt and bench/compare.py fgb, so neither touches a demo
# left running by deploy/run-testbed.sh in fg-srv/fg-cli. The interface
# names and addresses are the same in every testbed: each pair lives inside
# its own namespaces.
set -euo pipefail

NS_PREFIX=${FG_TESTBED_NS:-fg}
case "$NS_PREFIX" in
    *[!a-z0-9]*|"") echo "testbed: FG_TESTBED_NS must be lowercase letters and digits" >&2; exit 2 ;;
esac
SRV=$NS_PREFIX-srv
CLI=$NS_PREFIX-cli
BE=$NS_PREFIX-be
BE_IF=fg-b0
BE_NET=198.18.2.0/24
BACK_IF=fg-s1
BACK_ADDR=198.18.2.1/24
BE_FIRST=10
BE_LAST=13
SRV_IF=fg-s0
CLI_IF=fg-c0
SRV_ADDR=198.18.0.1/24
CLI_ADDR=198.18.0.2/24
SRV_ADDR6=2001:db8::1/64
CLI_ADDR6=2001:db8::2/64
CLI_EXTRA_FIRST=10
CLI_EXTRA_LAST=73
QUEUES=2

die() { echo "testbed: $*" >&2; exit 1; }
have_ns() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
have_link() { ip -n "$1" link show dev "$2" >/dev/null 2>&1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "needs root (network namespaces, veth, bpffs)"
    for t in ip ethtool; do
        command -v "$t" >/dev/null || die "missing $t: run deploy/install-deps.sh"
    done
}

# IPv6 in namespace $1: the kernel has it and new interfaces get it (not
# booted with ipv6.disable=1, default.disable_ipv6 not set).
v6_ok() {
    [ "$(ip netns exec "$1" cat /proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null)" = 0 ]
}

up() {
    need_root
    # bpffs, for pinning maps/links and for libxdp.
    if ! mountpoint -q /sys/fs/bpf; then
        mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs on /sys/fs/bpf"
    fi
    for ns in "$SRV" "$CLI"; do
        have_ns "$ns" || ip netns add "$ns"
    done

    # The veth pair; recreated if only half of it is where it belongs.
    if ! have_link "$SRV" "$SRV_IF" || ! have_link "$CLI" "$CLI_IF"; then
        ip -n "$SRV" link del "$SRV_IF" 2>/dev/null || true
        ip -n "$CLI" link del "$CLI_IF" 2>/dev/null || true
        ip -n "$SRV" link add "$SRV_IF" numtxqueues "$QUEUES" numrxqueues "$QUEUES" type veth \
            peer name "$CLI_IF" netns "$CLI" numtxqueues "$QUEUES" numrxqueues "$QUEUES"
    fi

    local v6=1
    if ! v6_ok "$SRV" || ! v6_ok "$CLI"; then
        v6=0
        echo "testbed: IPv6 is disabled in this kernel or its namespaces: the testbed is IPv4 only" \
            "(floodgate's IPv6 tests need it)" >&2
    fi
    ip -n "$SRV" link set lo up
    ip -n "$CLI" link set lo up
    ip -n "$SRV" addr replace "$SRV_ADDR" dev "$SRV_IF"
    if [ "$v6" = 1 ]; then ip -n "$SRV" addr replace "$SRV_ADDR6" dev "$SRV_IF" nodad; fi
    {
        echo "addr replace $CLI_ADDR dev $CLI_IF"
        if [ "$v6" = 1 ]; then echo "addr replace $CLI_ADDR6 dev $CLI_IF nodad"; fi
        for i in $(seq "$CLI_EXTRA_FIRST" "$CLI_EXTRA_LAST"); do
            echo "addr replace 198.18.0.$i/24 dev $CLI_IF"
            if [ "$v6" = 1 ]; then echo "addr replace 2001:db8::$i/64 dev $CLI_IF nodad"; fi
        done
    } | ip -n "$CLI" -batch -

    ip netns exec "$CLI" sysctl -q -w net.core.txrehash=0 ||
        die "cannot set net.core.txrehash=0 in $CLI"
    # No router on the pair: no router solicitations, no RAs heeded, and no
    # DAD for the link-local addresses either (set before the links go up),
    # so the kernels' own IPv6 chatter is a few MLD reports at link-up.
    if [ "$v6" = 1 ]; then
        ip netns exec "$SRV" sysctl -q -w "net.ipv6.conf.$SRV_IF.accept_dad=0" \
            "net.ipv6.conf.$SRV_IF.accept_ra=0" "net.ipv6.conf.$SRV_IF.router_solicitations=0" >/dev/null ||
            die "cannot set the IPv6 sysctls of $SRV_IF"
        ip netns exec "$CLI" sysctl -q -w "net.ipv6.conf.$CLI_IF.accept_dad=0" \
            "net.ipv6.conf.$CLI_IF.accept_ra=0" "net.ipv6.conf.$CLI_IF.router_solicitations=0" >/dev/null ||
            die "cannot set the IPv6 sysctls of $CLI_IF"
    fi
    ip netns exec "$CLI" ethtool -K "$CLI_IF" rx off tx off >/dev/null 2>&1 ||
        die "cannot turn checksum offload off on $CLI_IF"

    ip -n "$SRV" link set "$SRV_IF" up
    ip -n "$CLI" link set "$CLI_IF" up
    case "${FG_TESTBED_BACKENDS:-0}" in
        0) ;;
        1) backends_up macvlan ;;
        2) backends_up veth ;;
        *) die "FG_TESTBED_BACKENDS must be 0, 1 (one-armed) or 2 (two-armed)" ;;
    esac
    echo "testbed: up ($SRV/$SRV_IF ${SRV_ADDR%/*} ${SRV_ADDR6%/*} <-> $CLI/$CLI_IF ${CLI_ADDR%/*} ${CLI_ADDR6%/*}, .$CLI_EXTRA_FIRST-.$CLI_EXTRA_LAST, $QUEUES queues)"
}

# The backend namespace (see the header): $1 is macvlan (one-armed) or
# veth (two-armed).
backends_up() {
    local kind=$1
    have_ns "$BE" || ip netns add "$BE"
    # Before any interface exists: no DAD, no router solicitation, no MLD.
    if ip netns exec "$BE" test -d /proc/sys/net/ipv6; then
        ip netns exec "$BE" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 ||
            die "cannot turn IPv6 off in $BE"
    fi
    # The other layout's link, if a previous `up` left it.
    if have_link "$BE" "$BE_IF" && ! ip -d -n "$BE" link show dev "$BE_IF" | grep -qw "$kind"; then
        ip -n "$BE" link del "$BE_IF"
    fi
    if [ "$kind" = veth ]; then
        if ! have_link "$SRV" "$BACK_IF" || ! have_link "$BE" "$BE_IF"; then
            ip -n "$SRV" link del "$BACK_IF" 2>/dev/null || true
            ip -n "$BE" link del "$BE_IF" 2>/dev/null || true
            ip -n "$SRV" link add "$BACK_IF" numtxqueues "$QUEUES" numrxqueues "$QUEUES" type veth \
                peer name "$BE_IF" netns "$BE" numtxqueues "$QUEUES" numrxqueues "$QUEUES"
        fi
        ip -n "$SRV" route del "$BE_NET" dev "$SRV_IF" 2>/dev/null || true
        ip -n "$SRV" addr replace "$BACK_ADDR" dev "$BACK_IF"
        ip netns exec "$BE" sysctl -q -w net.core.txrehash=0 || die "cannot set net.core.txrehash=0 in $BE"
        ip netns exec "$BE" ethtool -K "$BE_IF" rx off tx off >/dev/null 2>&1 ||
            die "cannot turn checksum offload off on $BE_IF"
        ip -n "$SRV" link set "$BACK_IF" up
    elif ! have_link "$BE" "$BE_IF"; then
        ip -n "$CLI" link del "$BE_IF" 2>/dev/null || true
        ip -n "$CLI" link add "$BE_IF" link "$CLI_IF" type macvlan mode bridge
        ip -n "$CLI" link set "$BE_IF" netns "$BE"
    fi
    ip -n "$BE" link set lo up
    for i in $(seq "$BE_FIRST" "$BE_LAST"); do
        echo "addr replace 198.18.2.$i/24 dev $BE_IF"
    done | ip -n "$BE" -batch -
    ip -n "$BE" link set "$BE_IF" up
    if [ "$kind" = macvlan ]; then
        ip -n "$SRV" link del "$BACK_IF" 2>/dev/null || true
        ip -n "$BE" route replace "${SRV_ADDR%.*/*}.0/24" dev "$BE_IF"
        ip -n "$SRV" route replace "$BE_NET" dev "$SRV_IF"
    fi
}

down() {
    need_root
    for ns in "$BE" "$SRV" "$CLI"; do
        have_ns "$ns" || continue
        # A process left inside keeps the namespace (and the veth) alive.
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        if [ -n "$pids" ]; then
            echo "testbed: ending processes left in $ns: $pids" >&2
            # shellcheck disable=SC2086
            kill $pids 2>/dev/null || true
            for _ in 1 2 3 4 5 6 7 8 9 10; do
                [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
                sleep 0.2
            done
            pids=$(ip netns pids "$ns" 2>/dev/null || true)
            # shellcheck disable=SC2086
            [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
        fi
        ip netns del "$ns"
    done
    # A veth whose namespace went away while a process held it ends up nowhere
    # we can see; one left in the root namespace (old runs) is removed here.
    ip link del "$SRV_IF" 2>/dev/null || true
    ip link del "$CLI_IF" 2>/dev/null || true
    echo "testbed: down"
}

status() {
    local ok=0
    for ns in "$SRV" "$CLI"; do
        if have_ns "$ns"; then echo "netns $ns: present"; else echo "netns $ns: absent"; ok=1; fi
    done
    if have_ns "$SRV" && have_link "$SRV" "$SRV_IF"; then
        ip -n "$SRV" -br addr show dev "$SRV_IF"
        local xdp
        xdp=$(ip -n "$SRV" -d link show dev "$SRV_IF" | grep -oE 'prog/xdp[a-z]* id [0-9]+|xdp(generic|drv|offload)?( |/)' | head -1 || true)
        echo "  rx queues: $(ip netns exec "$SRV" sh -c "ls -d /sys/class/net/$SRV_IF/queues/rx-*" 2>/dev/null | wc -l)  xdp: ${xdp:-none}"
    else
        echo "$SRV_IF: absent"; ok=1
    fi
    if have_ns "$CLI" && have_link "$CLI" "$CLI_IF"; then
        echo "$CLI_IF: $(ip -n "$CLI" -br link show dev "$CLI_IF" | awk '{print $2}')," \
            "$(ip -n "$CLI" -4 addr show dev "$CLI_IF" | grep -c 'inet ') IPv4 addresses"
        ip netns exec "$CLI" ethtool -k "$CLI_IF" 2>/dev/null |
            grep -E '^(rx-checksumming|tx-checksumming|tcp-segmentation-offload):' | sed 's/^/  /'
    else
        echo "$CLI_IF: absent"; ok=1
    fi
    if have_ns "$BE" && have_link "$BE" "$BE_IF"; then
        echo "netns $BE: $BE_IF $(ip -n "$BE" -4 addr show dev "$BE_IF" | grep -c 'inet ') IPv4 addresses (backends)"
    fi
    if have_ns "$SRV" && have_link "$SRV" "$BACK_IF"; then
        echo "two-armed: $(ip -n "$SRV" -br addr show dev "$BACK_IF")"
    fi
    if mountpoint -q /sys/fs/bpf; then echo "bpffs: mounted"; else echo "bpffs: not mounted"; ok=1; fi
    return $ok
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
