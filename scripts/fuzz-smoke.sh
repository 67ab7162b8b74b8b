#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target (docs/dev/testing.md, "Fuzzing"): each
# target runs FUZZ_SECONDS (default 60) from corpora seeded by
# scripts/fuzz-seed.sh; prints executions per target and in total, and fails
# on the first crash (the input is kept in fuzz/artifacts/<target>/).
# Works on a fresh machine with stable Rust: installs cargo-fuzz when missing
# and sets RUSTC_BOOTSTRAP=1 for the -Z flags cargo-fuzz needs.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

target_dir=$(realpath -m "${CARGO_TARGET_DIR:-target}")/fuzz
# No sanitizer: the code under test is safe Rust, the failures we look for
# are panics and broken invariants; ASan would double build and run time.
flags=(--sanitizer none --target-dir "$target_dir")

scripts/fuzz-seed.sh
cd fuzz
cargo fuzz build "${flags[@]}"

logs="$target_dir/logs"
mkdir -p "$logs"
total=0
for target in $(cargo fuzz list); do
    log="$logs/$target.log"
    mkdir -p "corpus/$target"
    if ! cargo fuzz run "${flags[@]}" "$target" "corpus/$target" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz-smoke: target $target FAILED; the input is in fuzz/artifacts/$target/, full log $log" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    echo "fuzz-smoke: $target: ${runs:-0} executions in ${FUZZ_SECONDS}s, corpus $(find "corpus/$target" -type f | wc -l) inputs"
    total=$((total + ${runs:-0}))
done
echo "fuzz-smoke: total $total executions, no crash"
