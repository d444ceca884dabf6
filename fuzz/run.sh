#!/usr/bin/env bash
# Runs every fuzz target for a short while on a scratch copy of its committed
# seed corpus (fuzz/corpus/<target>/), so the repository is not changed;
# exits non-zero on the first crash (the input is kept in
# fuzz/artifacts/<target>/, ignored by git). Stable Rust: --sanitizer none.
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 60, all targets)
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    timeout 1200 cargo install --locked cargo-fuzz
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi

echo "== building fuzz targets: ${targets[*]}"
cargo fuzz build --sanitizer none

# Longest input each target is given: a jumbo frame; a few hundred ops;
# past the metrics server's 8 KiB request limit.
max_len() {
    case "$1" in
        frame) echo 9300 ;;
        metrics_request) echo 10000 ;;
        *) echo 4096 ;;
    esac
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    mkdir -p "$work/$t" "artifacts/$t"
    cp -r "corpus/$t/." "$work/$t/"
    cargo fuzz run "$t" --sanitizer none "$work/$t" -- \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>&1 | grep -v '^#[0-9].*\(NEW\|REDUCE\|pulse\)' || {
        echo "fuzz target $t failed: see fuzz/artifacts/$t/" >&2
        exit 1
    }
done
echo "== fuzzing: no crash in ${#targets[@]} targets"
