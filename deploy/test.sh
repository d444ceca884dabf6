#!/usr/bin/env bash
# Runs floodgate's whole test suite. As root it first installs the system
# packages the suite needs; tests that need root (netns, XDP) run only as root
# and never skip when CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ]; then
    ./deploy/install-deps.sh
fi

cargo test --workspace --locked "$@"
