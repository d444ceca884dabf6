#!/usr/bin/env bash
# The multi-box testbed: two floodgate boxes behind a router that spreads
# the VIP's flows over them by BGP + ECMP, with one pool of backends.
#
#                          P-rt (router, BIRD, ECMP, L4 hash)
#   P-cli                  ┌──────────────────────────────────────────┐
#   fg-mc0 198.18.6.2 ─────┤ fgm-rc 198.18.6.1    bridge fgm-br        │
#          .10-.41         │                      198.18.4.1/24        │
#   (default via .6.1)     │      ┌────────────┬───────┴────┬─────────┐ │
#                          └──────┤ fgm-b1     │ fgm-b2     │ fgm-be  ├─┘
#                                 │            │            │
#                   P-box1 fg-m0 198.18.4.11   P-box2 fg-m0 198.18.4.12
#                   floodgate + BIRD           floodgate + BIRD
#                                                           P-be fg-mb0 198.18.4.20-.23
#                                                           (the backends)
#
# VIP 198.18.5.1 (on no interface): each box's BIRD announces it over BGP
# (AS 65001, hold 3 s) to the router's BIRD (AS 65000) while floodgate keeps
# its flag route in table 4210 (deploy/bird/floodgate-box.conf, run as
# shipped with only its defines changed); the router merges the boxes'
# routes into one multipath kernel route, hashed on the 4-tuple
# (net.ipv4.fib_multipath_hash_policy=1). The boxes, the backends and the
# router share one L2 segment (the bridge), so each box is a one-armed
# proxy that reaches the backends through its served interface fg-m0 and
# uses its own address (ports 10000-29999) as the proxy's source.
#
# Flow pinning on the router (FG_MULTI_PIN=1, the default): plain ECMP
# re-hashes a withdrawn box's flows onto the others, which do not know
# them (a TCP-terminating box cannot share its connections) and reset
# them. So that a draining box can finish its connections, the router
# remembers, per connection (conntrack), the box that answered its SYN
# (the SYN-ACK's source MAC, kept in the conntrack mark) and routes the
# client's later packets there through a per-box table (`ip rule fwmark`),
# whatever the ECMP route says. Pinned at the box's answer, not at the
# SYN: a SYN no box answered (sent to a box that died) is not pinned, so
# its retries follow the ECMP route to a box that is announced; and not at
# the client's third ACK either: a withdrawal between the SYN-ACK and that
# ACK would send the ACK to another box. FG_MULTI_PIN=0 leaves plain ECMP. Each
# pinned connection's client address and port are also put in the nft set
# `pinned_boxN` (table ip fgm_pin) of its box, so a test can tell which box
# took which connection: with hash policy 1 the router's kernel takes the
# flow hash the client's socket already gave the packet (sk_txhash, kept
# across veth; per connection, but random), so `ip route get ... sport`
# cannot predict it. A router fed by a NIC hashes the 4-tuple (its RSS).
#
# Checksum and segmentation offloads are off on the clients' and the
# backends' interfaces: their frames cross the router and the bridge into
# AF_XDP, which takes neither partial checksums nor GSO super-frames.
#
# Usage: testbed-multi.sh up|down|status   (root; idempotent; `down` ends
# every process left in the namespaces and removes them)
#
# FG_MULTI_NS=P names the namespaces P-rt, P-box1, P-box2, P-be, P-cli
# (default fgm; the tests use fgmt). BIRD's sockets, logs and pid files are
# in /run/P/ (box BIRDs: /run/P/bird-box1.ctl, ...); floodgate is not
# started here (see README "Scaling out" and engine/tests/multibox_testbed.rs).
set -euo pipefail

PFX=${FG_MULTI_NS:-fgm}
case "$PFX" in
    *[!a-z0-9]*|"") echo "testbed-multi: FG_MULTI_NS must be lowercase letters and digits" >&2; exit 2 ;;
esac
HERE=$(cd "$(dirname "$0")" && pwd)
RT=$PFX-rt
CLI=$PFX-cli
BE=$PFX-be
BOXES=(box1 box2)
RUN=/run/$PFX
PIN=${FG_MULTI_PIN:-1}

LAN_RT=198.18.4.1
LAN_LEN=24
BOX_ADDR=(198.18.4.11 198.18.4.12)
BE_ADDRS=(198.18.4.20 198.18.4.21 198.18.4.22 198.18.4.23)
CLI_NET_RT=198.18.6.1
CLI_ADDR=198.18.6.2
CLI_EXTRA_FIRST=10
CLI_EXTRA_LAST=41
VIP=198.18.5.1
VIP_TABLE=4210
# The router's per-box tables and marks for flow pinning (box i: 101+i, mark i+1).
PIN_TABLE0=101

die() { echo "testbed-multi: $*" >&2; exit 1; }
have_ns() { ip netns list | awk '{print $1}' | grep -qx "$1"; }
have_link() { ip -n "$1" link show dev "$2" >/dev/null 2>&1; }

need_root() {
    [ "$(id -u)" = 0 ] || die "needs root (network namespaces, veth, BIRD)"
    for t in ip ethtool bird birdc nft sysctl; do
        command -v "$t" >/dev/null || die "missing $t: run deploy/install-deps.sh"
    done
}

# A veth pair: $1 in namespace $2, its peer $3 in namespace $4 (recreated
# when only half of it is where it belongs).
veth() {
    if ! have_link "$2" "$1" || ! have_link "$4" "$3"; then
        ip -n "$2" link del "$1" 2>/dev/null || true
        ip -n "$4" link del "$3" 2>/dev/null || true
        ip -n "$2" link add "$1" type veth peer name "$3" netns "$4"
    fi
}

# No IPv6 anywhere here: the testbed is IPv4 and its kernels stay quiet.
quiet_ns() {
    have_ns "$1" || ip netns add "$1"
    if ip netns exec "$1" test -d /proc/sys/net/ipv6; then
        ip netns exec "$1" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 ||
            die "cannot turn IPv6 off in $1"
    fi
    ip -n "$1" link set lo up
}

# BIRD in namespace $1 with config $2, control socket $RUN/bird-$3.ctl;
# started unless its pid file names a live process.
bird_start() {
    local ns=$1 conf=$2 name=$3
    local pidf=$RUN/bird-$name.pid
    if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then return; fi
    bird -p -c "$conf" || die "BIRD config $conf does not parse"
    rm -f "$RUN/bird-$name.ctl"
    # In the foreground (-f), as Debian's bird.service runs it, its log
    # (`log stderr`) to a file; in its own session, so it outlives us.
    setsid ip netns exec "$ns" bird -f -c "$conf" -s "$RUN/bird-$name.ctl" -P "$pidf" \
        >>"$RUN/bird-$name.log" 2>&1 </dev/null &
    for _ in $(seq 1 50); do
        [ -S "$RUN/bird-$name.ctl" ] && return
        sleep 0.1
    done
    die "BIRD did not start in $ns within 5 s (see $RUN/bird-$name.log)"
}

up() {
    need_root
    mkdir -p "$RUN"
    for ns in "$RT" "$CLI" "$BE"; do quiet_ns "$ns"; done
    for b in "${BOXES[@]}"; do quiet_ns "$PFX-$b"; done

    # The router: a bridge for the servers' segment, a link to the clients.
    if ! have_link "$RT" fgm-br; then
        ip -n "$RT" link add fgm-br type bridge
    fi
    ip -n "$RT" addr replace "$LAN_RT/$LAN_LEN" dev fgm-br
    ip -n "$RT" link set fgm-br up
    veth fgm-rc "$RT" fg-mc0 "$CLI"
    ip -n "$RT" addr replace "$CLI_NET_RT/24" dev fgm-rc
    ip -n "$RT" link set fgm-rc up
    ip netns exec "$RT" sysctl -q -w net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 ||
        die "cannot set the router's sysctls"

    # The boxes.
    for i in "${!BOXES[@]}"; do
        local ns=$PFX-${BOXES[$i]} port=fgm-b$((i + 1))
        veth fg-m0 "$ns" "$port" "$RT"
        ip -n "$RT" link set "$port" master fgm-br
        ip -n "$RT" link set "$port" up
        ip -n "$ns" addr replace "${BOX_ADDR[$i]}/$LAN_LEN" dev fg-m0
        ip -n "$ns" link set fg-m0 up
        ip -n "$ns" route replace default via "$LAN_RT"
    done

    # The backends, on the same segment.
    veth fg-mb0 "$BE" fgm-be "$RT"
    ip -n "$RT" link set fgm-be master fgm-br
    ip -n "$RT" link set fgm-be up
    for a in "${BE_ADDRS[@]}"; do echo "addr replace $a/$LAN_LEN dev fg-mb0"; done | ip -n "$BE" -batch -
    ip netns exec "$BE" ethtool -K fg-mb0 rx off tx off tso off gso off gro off >/dev/null 2>&1 ||
        die "cannot turn the offloads off on fg-mb0"
    ip -n "$BE" link set fg-mb0 up

    # The clients, behind the router.
    {
        echo "addr replace $CLI_ADDR/24 dev fg-mc0"
        for i in $(seq "$CLI_EXTRA_FIRST" "$CLI_EXTRA_LAST"); do echo "addr replace 198.18.6.$i/24 dev fg-mc0"; done
    } | ip -n "$CLI" -batch -
    ip netns exec "$CLI" ethtool -K fg-mc0 rx off tx off tso off gso off gro off >/dev/null 2>&1 ||
        die "cannot turn the offloads off on fg-mc0"
    ip netns exec "$CLI" sysctl -q -w net.core.txrehash=0 || true
    ip -n "$CLI" link set fg-mc0 up
    ip -n "$CLI" route replace default via "$CLI_NET_RT"

    if [ "$PIN" = 1 ]; then pin_up; fi

    # BIRD: the router's, then each box's (the shipped box config, its
    # defines set for the box).
    bird_start "$RT" "$HERE/bird/router-testbed.conf" rt
    for i in "${!BOXES[@]}"; do
        local conf=$RUN/bird-${BOXES[$i]}.conf
        sed -e "s/^define ROUTER_ID = [^;]*;/define ROUTER_ID = ${BOX_ADDR[$i]};/" \
            -e "s/^define PEER_ADDR = [^;]*;/define PEER_ADDR = $LAN_RT;/" \
            -e "s/^define VIP_TABLE = [^;]*;/define VIP_TABLE = $VIP_TABLE;/" \
            "$HERE/bird/floodgate-box.conf" >"$conf"
        bird_start "$PFX-${BOXES[$i]}" "$conf" "${BOXES[$i]}"
    done
    # Bounded wait for both sessions.
    local n=0
    for _ in $(seq 1 100); do
        n=$(birdc -s "$RUN/bird-rt.ctl" show protocols 2>/dev/null | grep -c 'Established' || true)
        [ "$n" = "${#BOXES[@]}" ] && break
        sleep 0.1
    done
    [ "$n" = "${#BOXES[@]}" ] || die "BGP sessions not established within 10 s: $(birdc -s "$RUN/bird-rt.ctl" show protocols 2>&1)"
    echo "testbed-multi: up (router $RT, boxes ${BOX_ADDR[*]} in $PFX-box1/$PFX-box2 on fg-m0, backends ${BE_ADDRS[*]}" \
        "in $BE, clients $CLI_ADDR .$CLI_EXTRA_FIRST-.$CLI_EXTRA_LAST in $CLI; VIP $VIP, table $VIP_TABLE; pinning $PIN)"
}

# Flow pinning on the router (see the header).
pin_up() {
    local elems="" sets="" rules="" i mac
    for i in "${!BOXES[@]}"; do
        mac=$(ip netns exec "$PFX-${BOXES[$i]}" cat /sys/class/net/fg-m0/address) ||
            die "cannot read the MAC address of fg-m0 in $PFX-${BOXES[$i]}"
        local t=$((PIN_TABLE0 + i)) m=$((i + 1))
        ip -n "$RT" route replace "$VIP/32" via "${BOX_ADDR[$i]}" table "$t"
        ip -n "$RT" rule del fwmark "$m" lookup "$t" 2>/dev/null || true
        ip -n "$RT" rule add fwmark "$m" lookup "$t" priority $((100 + i))
        elems+="${elems:+, }$mac : $m"
        sets+="    set pinned_${BOXES[$i]} { type ipv4_addr . inet_service; flags dynamic, timeout; timeout 10m; size 65536; }
"
        rules+="        oifname \"fgm-br\" ip daddr $VIP ct mark $m add @pinned_${BOXES[$i]} { ip saddr . tcp sport }
"
    done
    ip netns exec "$RT" nft -f - <<EOF
table ip fgm_pin
delete table ip fgm_pin
table ip fgm_pin {
    map box_mark {
        type ether_addr : mark
        elements = { $elems }
    }
$sets    # Packets of a pinned connection towards the VIP take their box's table.
    # Pinned by the box's first answer (its SYN-ACK): the box that took it.
    chain pre {
        type filter hook prerouting priority mangle; policy accept;
        iifname "fgm-rc" ip daddr $VIP ct mark != 0 meta mark set ct mark
        iifname "fgm-br" ip saddr $VIP ct direction reply ct mark 0 ct mark set ether saddr map @box_mark
    }
    # The pinned connections, per box (for the tests).
    chain post {
        type filter hook postrouting priority mangle; policy accept;
$rules    }
}
EOF
}

down() {
    need_root
    local ns
    for ns in "$CLI" "$BE" "$PFX-box1" "$PFX-box2" "$RT"; do
        have_ns "$ns" || continue
        pids=$(ip netns pids "$ns" 2>/dev/null || true)
        if [ -n "$pids" ]; then
            echo "testbed-multi: ending processes left in $ns: $pids" >&2
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
    rm -rf "$RUN"
    echo "testbed-multi: down"
}

status() {
    local ok=0 ns
    for ns in "$RT" "$PFX-box1" "$PFX-box2" "$BE" "$CLI"; do
        if have_ns "$ns"; then echo "netns $ns: present"; else echo "netns $ns: absent"; ok=1; fi
    done
    if have_ns "$RT"; then
        echo "router's route to $VIP:"
        ip -n "$RT" route show "$VIP/32" | sed 's/^/  /'
        [ -S "$RUN/bird-rt.ctl" ] && birdc -s "$RUN/bird-rt.ctl" show protocols | sed 's/^/  /'
    fi
    for b in "${BOXES[@]}"; do
        have_ns "$PFX-$b" || continue
        echo "$PFX-$b table $VIP_TABLE: $(ip -n "$PFX-$b" route show table "$VIP_TABLE" 2>/dev/null | tr "\n" ";")"
    done
    return $ok
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
