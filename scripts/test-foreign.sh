#!/usr/bin/env bash
# Tests the shipped static binaries — the ones app pods run (`lock`,
# `install`), for each architecture (default: amd64 arm64) — rather than the
# debug build the ordinary suite uses: tests/foreign_binary.rs runs
# `--version`, `install`, and the 20-process exactly-once race against real
# PostgreSQL and MariaDB, with the arm64 binary under qemu-aarch64
# (qemu-user; a static binary needs no -L).
#
#   scripts/test-foreign.sh          # both architectures
#   scripts/test-foreign.sh arm64    # only the foreign one
#
# Builds the binaries with scripts/build-static.sh unless
# KUBE_ONCE_SKIP_BUILD=1 (CI has just built them); starts throwaway databases
# as scripts/test.sh does (or uses KUBE_ONCE_TEST_POSTGRES_URL/MYSQL_URL).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/cross.sh
source scripts/lib/cross.sh
# shellcheck source=scripts/lib/databases.sh
source scripts/lib/databases.sh

arches=("$@")
[ "${#arches[@]}" -gt 0 ] || arches=("${KUBE_ONCE_ARCHES[@]}")
[ "${KUBE_ONCE_SKIP_BUILD:-0}" = 1 ] || scripts/build-static.sh "${arches[@]}"
for arch in "${arches[@]}"; do
    runner="$(arch_runner "$arch")"
    [ -z "$runner" ] || ensure_debian_commands "$runner:qemu-user"
done

trap stop_databases EXIT
ensure_databases

# Built once, run once per architecture. The tests set up each `lock`
# command with the suite's helpers, which expect the debug pod binary too.
nice -n 19 cargo build --package kube-once-pod --bin kube-once-pod
nice -n 19 cargo nextest run --no-run --test foreign_binary
for arch in "${arches[@]}"; do
    binary="$(kube_once_pod_binary "$arch")"
    runner="$(arch_runner "$arch")"
    echo "foreign binary: $binary (linux/$arch)${runner:+ under $runner}"
    KUBE_ONCE_FOREIGN_BINARY="$PWD/$binary" KUBE_ONCE_FOREIGN_RUNNER="$runner" \
        cargo nextest run --no-fail-fast --test foreign_binary --run-ignored only
done
