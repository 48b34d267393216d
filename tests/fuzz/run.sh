#!/usr/bin/env bash
# Runs each fuzz target for a short, bounded time over its committed seed corpus and fails on any
# crash: a panic, a broken invariant, a sanitizer report, or an input that hangs. CI calls it
# after the test suite; README.md beside it says how to run the targets for longer.
#
#   tests/fuzz/run.sh [SECONDS_PER_TARGET [TARGET...]]     (default: 20 seconds, every target)
#
# cargo fuzz needs unstable rustc flags (sanitizer and coverage instrumentation); CI has only
# the stable toolchain, so they are unlocked with RUSTC_BOOTSTRAP=1 rather than with nightly.
set -euo pipefail
cd "$(dirname "$0")/../.."
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never

CARGO_FUZZ_VERSION=0.13.2
FUZZ_DIR=tests/fuzz
seconds="${1:-20}"
shift || true

if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir "$FUZZ_DIR")
fi

echo "== building ${#targets[@]} fuzz targets (address sanitizer)"
started=$SECONDS
cargo fuzz build --fuzz-dir "$FUZZ_DIR"
echo "built in $((SECONDS - started)) s"

# New inputs a run finds go to a scratch folder, listed first (libFuzzer writes to the first
# folder): the committed corpus is only read.
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for target in "${targets[@]}"; do
    echo "== fuzz target $target, ${seconds} s"
    mkdir -p "$scratch/$target"
    if ! cargo fuzz run --fuzz-dir "$FUZZ_DIR" "$target" \
        "$scratch/$target" "$FUZZ_DIR/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1; then
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing failed: ${failed[*]} (the input is in $FUZZ_DIR/artifacts/<target>/;"
    echo "replay it with: RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir $FUZZ_DIR <target> <file>)"
    exit 1
fi
echo "fuzzing: ${#targets[@]} targets ran ${seconds} s each without a crash"
