#!/usr/bin/env bash
# Installs the Debian 12 packages floodgate builds and tests with. Idempotent;
# skips apt entirely when everything is already present.
set -euo pipefail

# build-essential, pkg-config: the C side of the build (make, cc, UAPI headers).
# clang, llvm: the XDP program (clang -target bpf) and bindgen's libclang.
# libelf-dev, zlib1g-dev, m4: libbpf and libxdp, built from source by the
#   libbpf-sys / libxdp-sys crates under xsk-rs and libbpf-rs; libpcap-dev:
#   libxdp's configure requires pcap (pcap/dlt.h).
# iproute2, ethtool, procps (sysctl): deploy/testbed.sh (netns, veth, offloads).
# nftables: loss injection on the testbed. python3, curl, wrk: the testbed's
#   clients (tests and deploy/run-testbed.sh). netbase: /etc/services, without
#   which wrk cannot resolve the port of an http:// URL (minimal images lack
#   it). ca-certificates: rustup. nginx-light: the proxy tests' HTTP backends
#   (engine/tests/proxy_testbed.rs; run by the test, not as a service).
#   bird2: the BGP speakers of deploy/testbed-multi.sh (the router's and the
#   boxes'; engine/tests/multibox_testbed.rs), started by the script, not as
#   a service.
PKGS=(build-essential pkg-config clang llvm libelf-dev zlib1g-dev m4 libpcap-dev
      iproute2 ethtool nftables procps python3 curl wrk netbase ca-certificates nginx-light bird2)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
