#!/usr/bin/env bash
# The test command (docs/dev/testing.md). On a fresh Debian machine it
# fetches or starts everything the tests need — helm, kubectl, the
# Kubernetes schemas, PostgreSQL, MariaDB — runs the whole suite, and stops
# what it started. Extra arguments go to `cargo nextest run`.
#
# With CI set, the test binaries where timing, concurrency and real servers
# meet (FLAKY_BINARIES) run again after a passing suite, KUBE_ONCE_FLAKY_RUNS
# times in all (default 3, the suite's run counting as the first): a test
# that fails in any run fails the script, so a flaky test cannot land.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/tools.sh
source scripts/lib/tools.sh
# shellcheck source=scripts/lib/databases.sh
source scripts/lib/databases.sh

FLAKY_BINARIES=(server hardening limits lock)

# Runs the tests; arguments select them (`--test server`, filters).
run_tests() {
    if cargo nextest --version >/dev/null 2>&1; then
        # --retries 0: a test that needs a retry to pass must fail here.
        cargo nextest run --no-fail-fast --retries 0 "$@"
    else
        cargo test --no-fail-fast "$@"
    fi
}

# Reruns FLAKY_BINARIES until `runs` runs in all; prints how many passed and
# the extra seconds; fails if one did not pass.
flaky_check() {
    local runs=$1 passed=1 run started=$SECONDS selection=()
    for binary in "${FLAKY_BINARIES[@]}"; do
        selection+=(--test "$binary")
    done
    for ((run = 2; run <= runs; run++)); do
        echo "flaky check: run $run of $runs (${FLAKY_BINARIES[*]})"
        if run_tests "${selection[@]}"; then
            passed=$((passed + 1))
        fi
    done
    echo "flaky check: $passed/$runs runs passed (${FLAKY_BINARIES[*]}; reruns took $((SECONDS - started)) s)"
    if ((passed < runs)); then
        echo "flaky check: a test above failed on a rerun after passing in the suite: it is flaky; fix its design (no retries, no sleeps)" >&2
        return 1
    fi
}

trap stop_databases EXIT
ensure_tools
ensure_databases

run_tests "$@"

flaky_runs="${KUBE_ONCE_FLAKY_RUNS:-3}"
if [[ -n "${CI:-}" ]] && ((flaky_runs > 1)); then
    if (($# > 0)); then
        echo "flaky check: skipped, the suite ran with a selection ($*)"
    else
        flaky_check "$flaky_runs"
    fi
fi
