#!/usr/bin/env bash
# Installs the Debian 12 packages floodgate builds and tests with. Idempotent;
# skips apt entirely when everything is already present.
set -euo pipefail

PKGS=(build-essential pkg-config)

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
