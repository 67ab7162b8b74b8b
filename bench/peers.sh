#!/usr/bin/env bash
# The shipped webhook binary side by side with its peers, in ONE run on this
# machine (docs/dev/performance.md, "Shipped binary (musl dist)"):
#
#   kube-once   the static musl `dist` build, what the image ships
#               (KUBE_ONCE_BIN overrides; built if missing)
#   nginx       Debian's nginx answering a canned AdmissionReview over TLS:
#               the floor of this machine for one small HTTPS exchange
#   kube-rs     the kube-rs admission example (examples/admission_controller.rs),
#               only when KUBE_RS_ADMISSION_BIN names a binary you built; this
#               script never builds it
#
# Each round runs wrk (-t1, keep-alive, TLS) at c=1 and c=32 against every
# peer in turn, POSTing tests/fixtures/perf/review.json (an annotated
# Deployment's AdmissionReview). Prints the median over ROUNDS (3) rounds of
# ROUND_SECONDS (5) each: req/s, p50/p99 latency, errors, peak RSS, and the
# ratios of kube-once to each peer: of the medians, and the median of the
# ratios within each round (peers of one round run back to back, so the
# machine's drift between rounds cancels out).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
ROUND_SECONDS=${ROUND_SECONDS:-5}
CONNECTIONS=${CONNECTIONS:-"1 32"}
KO_PORT=${KO_PORT:-18443}
NGINX_PORT=${NGINX_PORT:-18444}
KUBE_RS_PORT=8443 # fixed in the example
export REVIEW=$PWD/tests/fixtures/perf/review.json

command -v wrk >/dev/null || { echo "peers: wrk missing: apt-get install -y wrk" >&2; exit 69; }
command -v nginx >/dev/null || { echo "peers: nginx missing: apt-get install -y nginx" >&2; exit 69; }

target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
bin=${KUBE_ONCE_BIN:-$target/x86_64-unknown-linux-musl/dist/kube-once}
if [[ ! -x $bin ]]; then
    nice -n 19 cargo build --profile dist --target x86_64-unknown-linux-musl -p kube-once --bin kube-once
fi

work=$(mktemp -d)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait_gone "$pid"; done
    rm -rf "$work"
}
wait_gone() { # up to 30 s for a process to exit
    local i
    for i in $(seq 300); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
}
trap cleanup EXIT

wait_port() { # wait_port PORT PID: until PORT accepts, up to 30 s, or PID dies
    local i
    for i in $(seq 300); do
        kill -0 "$2" 2>/dev/null || { echo "peers: process $2 exited before listening on $1 (logs in $work)" >&2; cat "$work"/*.log >&2; exit 1; }
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "peers: nothing listens on $1 after 30 s" >&2
    exit 1
}

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

# --- kube-once, as shipped ---
read -r ko_pid ko_ready_ms < <(bench/start_server.py "$KO_PORT" "$work/kube-once.log" -- \
    "$bin" serve --listen "127.0.0.1:$KO_PORT" --no-preview \
    --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key")
pids+=("$ko_pid")
peers=("kube-once:$KO_PORT")

# --- nginx with a canned reply: the answer kube-once gives to the same review ---
canned=$(curl -sk --data-binary @"$REVIEW" -H 'Content-Type: application/json' "https://127.0.0.1:$KO_PORT/mutate")
[[ $canned == *'"allowed":true'* ]] || { echo "peers: kube-once did not admit the review: $canned" >&2; exit 1; }
printf '%s' "$canned" >"$work/canned.json"
mkdir -p "$work/nginx"
chmod o+rx "$work" && chmod o+r "$work/canned.json" # nginx workers run as nobody when started as root
cat >"$work/nginx.conf" <<CONF
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    client_body_buffer_size 64k;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        ssl_certificate $work/tls.crt;
        ssl_certificate_key $work/tls.key;
        ssl_protocols TLSv1.2 TLSv1.3;
        location = /mutate {
            default_type application/json;
            alias $work/canned.json;
            error_page 405 =200 \$uri;
        }
    }
}
CONF
nginx -p "$work/nginx" -c "$work/nginx.conf" -g 'daemon off;' 2>>"$work/nginx.log" &
nginx_pid=$!
pids+=("$nginx_pid")
wait_port "$NGINX_PORT" "$nginx_pid"
peers+=("nginx:$NGINX_PORT")

# --- the kube-rs admission example, if given ---
if [[ -n ${KUBE_RS_ADMISSION_BIN:-} ]]; then
    mkdir -p "$work/kube-rs"
    cp "$work/tls.crt" "$work/kube-rs/admission-controller-tls.crt"
    cp "$work/tls.key" "$work/kube-rs/admission-controller-tls.key"
    (cd "$work/kube-rs" && ADMISSION_PRIVATE_IP=127.0.0.1 exec "$KUBE_RS_ADMISSION_BIN") >"$work/kube-rs.log" 2>&1 &
    kube_rs_pid=$!
    pids+=("$kube_rs_pid")
    wait_port "$KUBE_RS_PORT" "$kube_rs_pid"
    peers+=("kube-rs:$KUBE_RS_PORT")
fi

peak_rss_kib() { # VmHWM of a process and its children (nginx workers)
    local pid total=0 hwm
    for pid in "$1" $(pgrep -P "$1" || true); do
        hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${hwm:-0}))
    done
    echo "$total"
}
pid_of() {
    case $1 in
    kube-once) echo "$ko_pid" ;;
    nginx) echo "$nginx_pid" ;;
    kube-rs) echo "$kube_rs_pid" ;;
    esac
}

echo "peers: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); kube-once ready in ${ko_ready_ms} ms" >&2
results=$work/results
for round in $(seq "$ROUNDS"); do
    for c in $CONNECTIONS; do
        for peer in "${peers[@]}"; do
            name=${peer%%:*} port=${peer##*:}
            line=$(wrk -t1 -c"$c" -d"${ROUND_SECONDS}s" -s bench/mutate.lua "https://127.0.0.1:$port" | grep '^RESULT')
            echo "$name c=$c round=$round $line" >&2
            echo "$name $c $line" >>"$results"
        done
    done
done
for peer in "${peers[@]}"; do
    name=${peer%%:*}
    echo "rss $name $(peak_rss_kib "$(pid_of "$name")")" >>"$results"
done

python3 - "$results" "$ko_ready_ms" <<'PY'
import re, statistics, sys
rows, rss = {}, {}
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[0] == "rss":
        rss[parts[1]] = int(parts[2]) / 1024
        continue
    name, c = parts[0], int(parts[1])
    fields = dict(re.findall(r"(\w+)=(\d+)", line))
    rows.setdefault((name, c), []).append(fields)
# Round r of every peer ran back to back: their ratio in that round is
# immune to the machine's drift between rounds, which moves all of them.
med = lambda runs, key: statistics.median(int(r[key]) for r in runs)
names = list(dict.fromkeys(name for name, _ in rows))
print(f"kube-once cold start to ready: {sys.argv[2]} ms")
print(f"| peer | c | req/s | p50 µs | p99 µs | errors | peak RSS MiB |")
print(f"|---|---|---|---|---|---|---|")
for (name, c), runs in rows.items():
    print(f"| {name} | {c} | {med(runs, 'req_per_s'):,.0f} | {med(runs, 'p50_us'):.0f} | {med(runs, 'p99_us'):.0f} "
          f"| {sum(int(r['errors']) for r in runs)} | {rss.get(name, 0):.1f} |")
for peer in names[1:]:
    for c in sorted({c for _, c in rows}):
        ours, theirs = rows.get(("kube-once", c)), rows.get((peer, c))
        if not ours or not theirs:
            continue
        paired = lambda key: statistics.median(int(a[key]) / int(b[key]) for a, b in zip(ours, theirs))
        print(f"ratio kube-once/{peer} c={c}: req/s {med(ours, 'req_per_s') / med(theirs, 'req_per_s'):.2f}x, "
              f"p50 {med(ours, 'p50_us') / med(theirs, 'p50_us'):.2f}x, p99 {med(ours, 'p99_us') / med(theirs, 'p99_us'):.2f}x "
              f"(median of the per-round ratios: req/s {paired('req_per_s'):.2f}x, p50 {paired('p50_us'):.2f}x)")
PY
