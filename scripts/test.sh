#!/usr/bin/env bash
# The test command (README "Quick start"). On a fresh Debian machine it
# fetches or starts everything the tests need — helm, kubectl, the
# Kubernetes schemas, PostgreSQL, MariaDB — runs the whole suite, and stops
# what it started. Extra arguments go to `cargo nextest run`.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/tools.sh
source scripts/lib/tools.sh
# shellcheck source=scripts/lib/databases.sh
source scripts/lib/databases.sh

trap stop_databases EXIT
ensure_tools
ensure_databases

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    cargo test --no-fail-fast "$@"
fi
