#!/usr/bin/env bash
# Memory of `kube-once serve` under hostile-sized admissions:
# an env-heavy AdmissionReview of about 2.8 MB (~90,000 tiny env entries in
# the app container, under the API server's 3 MiB object limit), posted
# once, then COUNT (8) at once; prints idle RSS, peak RSS above idle (and as
# a multiple of the body), and RSS after each step. Also IDLE_CONNECTIONS
# (1000) idle TLS connections: RSS per connection.
#
# Uses the shipped binary (KUBE_ONCE_BIN, default the musl dist build; built
# if missing). Extra server flags in SERVE_ARGS (e.g. "--admission-memory 64Mi").
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-8}
ENV_ENTRIES=${ENV_ENTRIES:-90000}
IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-1000}
PORT=${MEMORY_PORT:-18453}
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
bin=${KUBE_ONCE_BIN:-$target/x86_64-unknown-linux-musl/dist/kube-once}
if [[ ! -x $bin ]]; then
    nice -n 19 cargo build --profile dist --target x86_64-unknown-linux-musl -p kube-once --bin kube-once
fi

work=$(mktemp -d)
server_pid=
cleanup() {
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

python3 - "$ENV_ENTRIES" tests/fixtures/perf/review.json "$work/env-heavy.json" <<'PY'
import json, sys
count, source, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
review = json.load(open(source))
container = review["request"]["object"]["spec"]["template"]["spec"]["containers"][0]
container.setdefault("env", []).extend({"name": f"E{i}", "value": "v"} for i in range(count))
json.dump(review, open(out, "w"), separators=(",", ":"))
PY
body=$(stat -c %s "$work/env-heavy.json")

read -r server_pid _ < <(bench/start_server.py "$PORT" "$work/serve.log" -- \
    "$bin" serve --listen "127.0.0.1:$PORT" --no-preview \
    --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" ${SERVE_ARGS:-})

kib() { awk -v field="$1:" '$1 == field { print $2 }' "/proc/$server_pid/status"; }
reset_peak() { echo 5 >"/proc/$server_pid/clear_refs"; } # resets VmHWM to the current RSS
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
post() {
    curl -sk -o "$work/reply.$1" -w '%{http_code}\n' --data-binary @"$work/env-heavy.json" \
        -H 'Content-Type: application/json' "https://127.0.0.1:$PORT/mutate"
}

idle=$(kib VmRSS)
echo "RESULT idle_rss_mib=$(mib "$idle") body_bytes=$body"

reset_peak
code=$(post one)
peak=$(kib VmHWM)
sleep 1 # let the allocator return freed pages (RSS is read, not asserted)
echo "RESULT one status=$code peak_above_idle_mib=$(mib $((peak - idle))) x_body=$(awk -v p=$(((peak - idle) * 1024)) -v b="$body" 'BEGIN { printf "%.1f", p / b }') rss_after_mib=$(mib "$(kib VmRSS)")"

reset_peak
codes=$(for i in $(seq "$COUNT"); do post "$i" & done; wait)
peak=$(kib VmHWM)
sleep 1
echo "RESULT count=$COUNT statuses=$(echo $codes | tr ' ' ',') peak_rss_mib=$(mib "$peak") rss_after_mib=$(mib "$(kib VmRSS)")"

before=$(kib VmRSS)
line=$(bench/idle_connections.py "$PORT" "$IDLE_CONNECTIONS" "$server_pid")
echo "$line"
held=$(sed -n 's/.*server_rss_kb=\([0-9]*\).*/\1/p' <<<"$line")
echo "RESULT idle_connections=$IDLE_CONNECTIONS kib_per_connection=$(awk -v a="$held" -v b="$before" -v n="$IDLE_CONNECTIONS" 'BEGIN { printf "%.1f", (a - b) / n }')"
