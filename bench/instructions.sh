#!/usr/bin/env bash
# Instructions per admission of the whole server (TLS, HTTP, the review, the
# log line), counted by callgrind: noise-free where req/s on a shared machine
# is not (docs/dev/performance.md, "Instructions per request").
#
#   bench/instructions.sh [BINARY]
#
# BINARY serves (default: a release build with symbols, built if missing);
# `bench/instructions.sh kube-rs` counts KUBE_RS_ADMISSION_BIN instead. A
# Python client POSTs REVIEW (default tests/fixtures/perf/review.json; the
# UPDATE: tests/fixtures/perf/update-review.json) over one TLS keep-alive
# connection, FEW (10) then MANY (1000) times, each against a fresh server
# under callgrind; the difference divided by MANY - FEW is the cost of one
# request without start-up.
set -euo pipefail
cd "$(dirname "$0")/.."

FEW=${FEW:-10}
MANY=${MANY:-1000}
PORT=${PORT:-18445}
REVIEW=$(realpath "${REVIEW:-tests/fixtures/perf/review.json}")
command -v valgrind >/dev/null || { echo "instructions: valgrind missing: apt-get install -y valgrind" >&2; exit 69; }

target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
bin=${1:-$target/release/kube-once}
if [[ $bin == "$target/release/kube-once" && ! -x $bin ]]; then
    CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
        nice -n 19 cargo build --release -p kube-once --bin kube-once
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

# count N: total instructions of a server that answered N requests.
count() {
    local out=$work/callgrind.$1 port=$PORT server
    if [[ $bin == kube-rs ]]; then
        # The example reads its certificate from its working directory and listens on 8443.
        port=8443
        cp "$work/tls.crt" "$work/admission-controller-tls.crt"
        cp "$work/tls.key" "$work/admission-controller-tls.key"
        (cd "$work" && ADMISSION_PRIVATE_IP=127.0.0.1 exec valgrind --tool=callgrind --callgrind-out-file="$out" \
            "${KUBE_RS_ADMISSION_BIN:?set KUBE_RS_ADMISSION_BIN to the kube-rs admission example}") >/dev/null 2>&1 &
    else
        valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve --listen "127.0.0.1:$port" --no-preview \
            --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" >/dev/null 2>&1 &
    fi
    server=$!
    python3 - "$port" "$1" "$REVIEW" <<'PY'
import http.client, ssl, sys, time
port, n, body = int(sys.argv[1]), int(sys.argv[2]), open(sys.argv[3], "rb").read()
context = ssl._create_unverified_context()
deadline = time.monotonic() + 120
while True:  # callgrind starts slowly: wait for the port, with a deadline
    try:
        connection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
        connection.connect()
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
for _ in range(n):
    connection.request("POST", "/mutate", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    assert response.status == 200, response.status
PY
    # kube-once drains on SIGTERM; the example just exits. Either way callgrind writes its counts.
    kill -TERM "$server"
    wait "$server" || true
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

few=$(count "$FEW")
many=$(count "$MANY")
echo "$(basename "$bin"): $(((many - few) / (MANY - FEW))) instructions per request ($FEW requests: $few, $MANY: $many)"
