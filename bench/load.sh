#!/usr/bin/env bash
# Load test of `kube-once serve` on loopback (docs/dev/performance.md, "Load").
#
#   bench/load.sh          cold start, idle RSS, then POST /mutate at c=1 and c=32
#   bench/load.sh soak     c=32 for SOAK_SECONDS (60), server RSS every 10 s
#   bench/load.sh idle     IDLE_CONNECTIONS (10000) idle TLS connections: RSS, fds,
#                          and whether a fresh request is still answered
#
# Builds the release binary, generates a throwaway certificate, starts the
# server, drives it with wrk and bench/mutate.lua (tests/fixtures/perf/review.json:
# 3.9 KB, the AdmissionReview the API server sends for `kubectl create` of an
# annotated Superset Deployment), prints one RESULT line per run, stops the
# server. LOAD_SECONDS (10) sets the duration of each load run.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-load}
LOAD_SECONDS=${LOAD_SECONDS:-10}
SOAK_SECONDS=${SOAK_SECONDS:-60}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
PORT=${LOAD_PORT:-18443}
PREVIEW_PORT=${LOAD_PREVIEW_PORT:-18080}
export REVIEW=$PWD/tests/fixtures/perf/review.json

command -v wrk >/dev/null || apt-get install -y wrk
cargo build --release --bin kube-once
bin=$(realpath -m "${CARGO_TARGET_DIR:-target}")/release/kube-once

work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait_gone "$server_pid"
    rm -rf "$work"
}
wait_gone() { # up to 30 s for a process to exit
    local i
    for i in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

kib() { awk -v field="$1:" '$1 == field { print $2 }' "/proc/$server_pid/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

read -r server_pid ready_ms < <(bench/start_server.py "$PORT" "$work/serve.log" -- \
    "$bin" serve --listen "127.0.0.1:$PORT" --preview-listen "127.0.0.1:$PREVIEW_PORT" \
    --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key")
echo "RESULT cold_start_to_ready_ms=$ready_ms idle_rss_mib=$(mib "$(kib VmRSS)")"

run_wrk() { # run_wrk CONNECTIONS THREADS SECONDS
    local line
    line=$(wrk -t"$2" -c"$1" -d"$3s" -s bench/mutate.lua "https://127.0.0.1:$PORT" | grep '^RESULT')
    echo "${line/RESULT/RESULT c=$1} peak_rss_mib=$(mib "$(kib VmHWM)")"
}

case $mode in
load)
    run_wrk 1 1 "$LOAD_SECONDS"
    run_wrk 32 2 "$LOAD_SECONDS"
    ;;
soak)
    run_wrk 32 2 "$SOAK_SECONDS" &
    wrk_pid=$!
    for ((t = 10; t <= SOAK_SECONDS; t += 10)); do
        sleep 10
        echo "SOAK t=${t}s rss_mib=$(mib "$(kib VmRSS)") fds=$(find "/proc/$server_pid/fd" -mindepth 1 | wc -l)"
    done
    wait "$wrk_pid"
    ;;
idle)
    bench/idle_connections.py "$PORT" "$IDLE_CONNECTIONS" "$server_pid"
    echo "RESULT after idle: peak_rss_mib=$(mib "$(kib VmHWM)") rss_mib=$(mib "$(kib VmRSS)")"
    ;;
*)
    echo "usage: bench/load.sh [load|soak|idle]" >&2
    exit 64
    ;;
esac
