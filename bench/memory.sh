#!/usr/bin/env bash
# Memory of `kube-once serve` under hostile-sized admissions, one shape of
# AdmissionReview at a time (each ~1-3 MB, under the API server's 3 MiB
# object limit, grown from tests/fixtures/perf/review.json), each against a
# fresh server: posted once, then COUNT (8) at once. Prints, per shape, idle
# RSS, peak RSS above idle (and as a multiple of the body), the statuses and
# RSS after each step. Then IDLE_CONNECTIONS (1000; 0 skips it) idle TLS connections:
# RSS per connection.
#
# Shapes (SHAPES, default all): env (~90,000 tiny env entries in the app
# container), volumes (~90,000 volumes), annotations (~150,000 pod-template
# annotations), sidecars (~70,000 small containers), init-sidecars (~50,000
# small native sidecars: init containers that keep running), args (~250,000
# args of the app container).
#
# Uses the shipped binary (KUBE_ONCE_BIN, default the musl dist build; built
# if missing). Extra server flags in SERVE_ARGS (e.g. "--admission-memory 64Mi").
set -euo pipefail
cd "$(dirname "$0")/.."

COUNT=${COUNT:-8}
SHAPES=${SHAPES:-env volumes annotations sidecars init-sidecars args}
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

python3 - tests/fixtures/perf/review.json "$work" $SHAPES <<'PY'
import copy, json, sys
source, work, shapes = sys.argv[1], sys.argv[2], sys.argv[3:]
base = json.load(open(source))

def grow(template, shape):
    spec = template["spec"]
    app = spec["containers"][0]
    if shape == "env":
        app.setdefault("env", []).extend({"name": f"E{i}", "value": "v"} for i in range(90000))
    elif shape == "volumes":
        spec.setdefault("volumes", []).extend({"name": f"v{i}", "emptyDir": {}} for i in range(90000))
    elif shape == "annotations":
        template["metadata"].setdefault("annotations", {}).update({f"a{i}": "v" for i in range(150000)})
    elif shape == "sidecars":
        spec["containers"].extend({"name": f"s{i}", "image": "i"} for i in range(70000))
    elif shape == "init-sidecars":
        sidecars = ({"name": f"s{i}", "image": "i", "restartPolicy": "Always"} for i in range(50000))
        spec.setdefault("initContainers", []).extend(sidecars)
    elif shape == "args":
        app.setdefault("args", []).extend(f"a{i}" for i in range(250000))
    else:
        sys.exit(f"memory: unknown shape {shape}")

for shape in shapes:
    review = copy.deepcopy(base)
    grow(review["request"]["object"]["spec"]["template"], shape)
    json.dump(review, open(f"{work}/{shape}.json", "w"), separators=(",", ":"))
PY

kib() { awk -v field="$1:" '$1 == field { print $2 }' "/proc/$server_pid/status"; }
reset_peak() { echo 5 >"/proc/$server_pid/clear_refs"; } # resets VmHWM to the current RSS
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
post() {
    curl -sk -o "$work/reply.$2" -w '%{http_code}\n' --data-binary @"$work/$1.json" \
        -H 'Content-Type: application/json' "https://127.0.0.1:$PORT/mutate"
}
start() {
    read -r server_pid _ < <(bench/start_server.py "$PORT" "$work/serve.log" -- \
        "$bin" serve --listen "127.0.0.1:$PORT" --no-preview \
        --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" ${SERVE_ARGS:-})
}
stop() { # the next shape's server needs the port: wait for this one to be gone, with a deadline
    kill -KILL "$server_pid"
    for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    server_pid=
}

for shape in $SHAPES; do
    body=$(stat -c %s "$work/$shape.json")
    start
    idle=$(kib VmRSS)
    reset_peak
    code=$(post "$shape" one)
    peak=$(kib VmHWM)
    sleep 1 # let the allocator return freed pages (RSS is read, not asserted)
    echo "RESULT shape=$shape body_bytes=$body idle_rss_mib=$(mib "$idle") status=$code peak_above_idle_mib=$(mib $((peak - idle))) x_body=$(awk -v p=$(((peak - idle) * 1024)) -v b="$body" 'BEGIN { printf "%.1f", p / b }') rss_after_mib=$(mib "$(kib VmRSS)")"

    reset_peak
    codes=$(for i in $(seq "$COUNT"); do post "$shape" "$i" & done; wait)
    peak=$(kib VmHWM)
    sleep 1
    echo "RESULT shape=$shape count=$COUNT statuses=$(echo $codes | tr ' ' ',') peak_rss_mib=$(mib "$peak") rss_after_mib=$(mib "$(kib VmRSS)")"
    stop
done

(( IDLE_CONNECTIONS > 0 )) || exit 0 # IDLE_CONNECTIONS=0: the shapes only
start
before=$(kib VmRSS)
line=$(bench/idle_connections.py "$PORT" "$IDLE_CONNECTIONS" "$server_pid")
echo "$line"
held=$(sed -n 's/.*server_rss_kb=\([0-9]*\).*/\1/p' <<<"$line")
echo "RESULT idle_connections=$IDLE_CONNECTIONS kib_per_connection=$(awk -v a="$held" -v b="$before" -v n="$IDLE_CONNECTIONS" 'BEGIN { printf "%.1f", (a - b) / n }')"
