#!/usr/bin/env bash
# Benchmark of `kube-once lock` (not a test): N = 1, 10, 50 concurrent lock
# processes against PostgreSQL, each wrapping `sleep 1`. Prints the wall time
# (all started → all exited) and the followers' extra time after the leader's
# command finished (how long the last pod waits after the migration is done).
#
#   bench/lock.sh                # uses KUBE_ONCE_TEST_POSTGRES_URL, or starts a throwaway server
#   KUBE_ONCE_BIN=path bench/lock.sh 1 10 50 100
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/databases.sh
source scripts/lib/databases.sh
if [ -z "${KUBE_ONCE_TEST_POSTGRES_URL:-}" ]; then
    trap stop_databases EXIT
    _KUBE_ONCE_DB_DIR="$(mktemp -d /tmp/kube-once-db.XXXXXX)"
    port="$(free_port)"
    start_postgres "$_KUBE_ONCE_DB_DIR/postgres" "$port"
    KUBE_ONCE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/test"
fi

if [ -z "${KUBE_ONCE_BIN:-}" ]; then
    cargo build --quiet
    KUBE_ONCE_BIN="${CARGO_TARGET_DIR:-target}/debug/kube-once"
fi

now_ms() { echo $(($(date +%s%N) / 1000000)); }

work="$(mktemp -d)"
trap 'rm -rf "$work"; stop_databases' EXIT

# "after leader": each process's exit minus the moment the leader's `sleep 1` ended.
printf '%6s  %10s  %26s  %29s\n' N "wall (ms)" "after leader, max (ms)" "after leader, median (ms)"
[ "$#" -gt 0 ] || set -- 1 10 50
for n in "$@"; do
    run="bench_$$_${n}_$RANDOM"
    rm -f "$work"/*
    start="$(now_ms)"
    for i in $(seq 1 "$n"); do
        (
            DATABASE_URL="$KUBE_ONCE_TEST_POSTGRES_URL" KUBE_ONCE_LOCK_NAME="$run" KUBE_ONCE_RECORD_TABLE="$run" \
                KUBE_ONCE_KEY=v1 KUBE_ONCE_LOG_FORMAT=json END="$work/leader-end" \
                "$KUBE_ONCE_BIN" lock -- sh -c 'sleep 1; echo $(($(date +%s%N) / 1000000)) > "$END"' \
                2>"$work/log-$i" || echo "process $i failed, see its log" >&2
            now_ms >"$work/exit-$i"
        ) &
    done
    wait
    end="$(now_ms)"
    leader_end="$(cat "$work/leader-end")"
    extras="$(for f in "$work"/exit-*; do echo $(($(cat "$f") - leader_end)); done | sort -n)"
    max="$(echo "$extras" | tail -n 1)"
    median="$(echo "$extras" | sed -n "$(((n + 1) / 2))p")"
    printf '%6s  %10s  %26s  %29s\n' "$n" "$((end - start))" "$max" "$median"
    psql -q "$KUBE_ONCE_TEST_POSTGRES_URL" -c "DROP TABLE IF EXISTS $run" 2>/dev/null || true
done
