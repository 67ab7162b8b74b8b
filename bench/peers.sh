#!/usr/bin/env bash
# The shipped webhook binary side by side with its peers, in ONE run on this
# machine, for every review shape (docs/dev/performance.md, "Side by side
# with the peers"):
#
#   kube-once   the static musl `dist` build, what the image ships
#               (built, or rebuilt when the sources changed, unless
#               KUBE_ONCE_BIN names a binary), with the
#               chart's logging: JSON, RUST_LOG=info, so every admission
#               writes its audit line (to a file, as a pod's stderr would)
#   nginx       Debian's nginx answering kube-once's own answer to the same
#               review, canned, over TLS: the floor of this machine for one
#               HTTPS exchange of that size
#   kube-rs     the kube-rs admission example (examples/admission_controller.rs),
#               only when KUBE_RS_ADMISSION_BIN names a binary you built; this
#               script never builds it
#
# REVIEWS names the review shapes, in order (default: all three):
#   create-3k   tests/fixtures/perf/review.json without its managedFields
#               (derived here, 3.4 KB: a CREATE as `kubectl create` sends it)
#   create-4k   tests/fixtures/perf/review.json (3.9 KB CREATE, managedFields)
#   update-80k  tests/fixtures/perf/update-review.json (80 KB UPDATE with
#               object and oldObject, as a GitOps image bump sends it)
# or a path to any AdmissionReview JSON file kube-once admits.
#
# Each round runs wrk (-t1, keep-alive, TLS) at every c in CONNECTIONS
# ("1 32") against every peer in turn, for every shape, POSTing the shape's
# review. Prints, per shape, the median over ROUNDS (3) rounds of
# ROUND_SECONDS (5) each: req/s, p50/p99 latency, errors, and the ratios of
# kube-once to each peer: of the medians, and the median of the ratios within
# each round (peers of one round run back to back, so the machine's drift
# between rounds cancels out); then each peer's CPU per request at the
# highest c, its own (user) and the kernel's (system); peak RSS; and issue
# 24's targets with met / not met.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
ROUND_SECONDS=${ROUND_SECONDS:-5}
CONNECTIONS=${CONNECTIONS:-"1 32"}
KO_PORT=${KO_PORT:-18443}
NGINX_PORT=${NGINX_PORT:-18444}
KUBE_RS_PORT=8443 # fixed in the example
REVIEWS=${REVIEWS:-"create-3k create-4k update-80k"}

command -v wrk >/dev/null || { echo "peers: wrk missing: apt-get install -y wrk" >&2; exit 69; }
command -v nginx >/dev/null || { echo "peers: nginx missing: apt-get install -y nginx" >&2; exit 69; }

# The shipped binary as CI builds it (scripts/build-static.sh: cargo-zigbuild,
# Zig's musl), rebuilt when the sources changed so a stale binary is never
# measured; KUBE_ONCE_BIN skips the build.
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
bin=${KUBE_ONCE_BIN:-}
if [[ -z $bin ]]; then
    # shellcheck source=scripts/lib/cross.sh
    source scripts/lib/cross.sh
    KUBE_ONCE_ARCHES=(amd64)
    ensure_cross_toolchain
    cargo_zigbuild --locked --profile dist --target x86_64-unknown-linux-musl -p kube-once --bin kube-once
    bin=$target/x86_64-unknown-linux-musl/dist/kube-once
fi
[[ -x $bin ]] || { echo "peers: $bin is not an executable (KUBE_ONCE_BIN?)" >&2; exit 66; }

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

# --- the review shapes: name and file, each admitted by kube-once below ---
mkdir -p "$work/reviews"
shapes=()
for shape in $REVIEWS; do
    case $shape in
    create-3k)
        # Deterministic: the same fixture, managedFields dropped, compact.
        python3 -c 'import json, sys
review = json.load(open(sys.argv[1]))
del review["request"]["object"]["metadata"]["managedFields"]
json.dump(review, sys.stdout, separators=(",", ":"))' tests/fixtures/perf/review.json >"$work/reviews/$shape.json"
        file=$work/reviews/$shape.json
        ;;
    create-4k) file=$PWD/tests/fixtures/perf/review.json ;;
    update-80k) file=$PWD/tests/fixtures/perf/update-review.json ;;
    *)
        [[ -f $shape ]] || { echo "peers: REVIEWS: '$shape' is neither create-3k, create-4k, update-80k nor a file" >&2; exit 64; }
        file=$(realpath "$shape")
        shape=$(basename "$shape" .json)
        ;;
    esac
    shapes+=("$shape:$file")
done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

# --- kube-once, as shipped, logging as the chart configures it ---
# (charts/kube-once: --log-format=json, RUST_LOG=info: one audit line per
# admission. No API server here, so no migration Events: --no-events.)
read -r ko_pid ko_ready_ms < <(RUST_LOG=info bench/start_server.py "$KO_PORT" "$work/kube-once.log" -- \
    "$bin" serve --log-format=json --listen "127.0.0.1:$KO_PORT" --no-preview --no-events \
    --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key")
pids+=("$ko_pid")
peers=("kube-once:$KO_PORT")

# --- nginx with a canned reply: the answer kube-once gives to the same review ---
# One reply per shape, made now; the round loop copies the current shape's to
# $work/canned.json, which nginx reads on every request.
sizes=()
for entry in "${shapes[@]}"; do
    shape=${entry%%:*} file=${entry#*:}
    reply=$work/reviews/$shape.reply.json
    curl -sk --data-binary @"$file" -H 'Content-Type: application/json' -o "$reply" "https://127.0.0.1:$KO_PORT/mutate"
    grep -q '"allowed":true' "$reply" || { echo "peers: kube-once did not admit $file: $(head -c 500 "$reply")" >&2; exit 1; }
    sizes+=("size $shape $(stat -c %s "$file") $(stat -c %s "$reply")")
done
mkdir -p "$work/nginx"
chmod o+rx "$work" # nginx workers run as nobody when started as root (the loop makes canned.json readable)
echo '{}' >"$work/canned.json"
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
    # The 80 KB review fits in memory: no request body goes to a temp file.
    client_body_buffer_size 128k;
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
    # Its log level is not inherited from the caller's shell: without
    # RUST_LOG the example logs at info, one "accepted" line per admission
    # (to a file, like kube-once's audit line); KUBE_RS_RUST_LOG overrides.
    kube_rs_env=(-u RUST_LOG)
    [[ -z ${KUBE_RS_RUST_LOG:-} ]] || kube_rs_env=("RUST_LOG=$KUBE_RS_RUST_LOG")
    (cd "$work/kube-rs" && exec env "${kube_rs_env[@]}" ADMISSION_PRIVATE_IP=127.0.0.1 "$KUBE_RS_ADMISSION_BIN") >"$work/kube-rs.log" 2>&1 &
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

cpu_ticks() { # user and system CPU of a process and its children (nginx workers), in clock ticks
    local pid user=0 sys=0 fields
    for pid in "$1" $(pgrep -P "$1" || true); do
        # Fields 14 and 15 of /proc/PID/stat, counted after the command's ")".
        read -r -a fields < <(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null || echo)
        user=$((user + ${fields[11]:-0})) sys=$((sys + ${fields[12]:-0}))
    done
    echo "$user $sys"
}

# The CPU this shell's reaped children (wrk) used so far, in ms, from a
# `times` report (its second line: "0m1.234s 0m0.056s", user and system).
children_ms() {
    awk 'NR == 2 { for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); ms += t[1] * 60000 + t[2] * 1000 } }
        END { printf "%d\n", ms }' "$1"
}

echo "peers: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); kube-once ready in ${ko_ready_ms} ms" >&2
results=$work/results
printf '%s\n' "${sizes[@]}" >"$results"
for round in $(seq "$ROUNDS"); do
    for entry in "${shapes[@]}"; do
        shape=${entry%%:*}
        export REVIEW=${entry#*:}
        # cp to a temp name and mv: nginx never reads a half-written reply.
        cp "$work/reviews/$shape.reply.json" "$work/canned.json.new" && chmod o+r "$work/canned.json.new"
        mv "$work/canned.json.new" "$work/canned.json"
        for c in $CONNECTIONS; do
            for peer in "${peers[@]}"; do
                name=${peer%%:*} port=${peer##*:}
                read -r user_before sys_before < <(cpu_ticks "$(pid_of "$name")")
                # `times` in this shell (not a subshell): wrk is its child once reaped.
                times >"$work/times.before"
                line=$(wrk -t1 -c"$c" -d"${ROUND_SECONDS}s" -s bench/mutate.lua "https://127.0.0.1:$port" | grep '^RESULT')
                times >"$work/times.after"
                read -r user_after sys_after < <(cpu_ticks "$(pid_of "$name")")
                client_ms=$(($(children_ms "$work/times.after") - $(children_ms "$work/times.before")))
                line="$line user_ticks=$((user_after - user_before)) sys_ticks=$((sys_after - sys_before)) client_ms=$client_ms"
                echo "$shape $name c=$c round=$round $line" >&2
                echo "$shape $name $c $line" >>"$results"
            done
        done
    done
done
for peer in "${peers[@]}"; do
    name=${peer%%:*}
    echo "rss $name $(peak_rss_kib "$(pid_of "$name")")" >>"$results"
done
# The audit trail was on: one line per admission in kube-once's log.
echo "audit $(grep -c '"duration_ms"' "$work/kube-once.log" || true)" >>"$results"

python3 - "$results" "$ko_ready_ms" "$(getconf CLK_TCK)" <<'PY'
import re, statistics, sys

rows, rss, sizes, audit = {}, {}, {}, 0
for line in open(sys.argv[1]):
    parts = line.split()
    if parts[0] == "rss":
        rss[parts[1]] = int(parts[2]) / 1024
    elif parts[0] == "size":
        sizes[parts[1]] = (int(parts[2]), int(parts[3]))
    elif parts[0] == "audit":
        audit = int(parts[1])
    else:
        shape, name, c = parts[0], parts[1], int(parts[2])
        fields = dict(re.findall(r"(\w+)=(\d+)", line))
        rows.setdefault((shape, name, c), []).append(fields)

med = lambda runs, key: statistics.median(int(r[key]) for r in runs)


def ratio(shape, peer, c, key):
    """kube-once / peer for one measure: (ratio of the medians, median of the
    per-round ratios), or None when either side was not run. Round r of every
    peer ran back to back: their ratio in that round is immune to the
    machine's drift between rounds, which moves all of them."""
    ours, theirs = rows.get((shape, "kube-once", c)), rows.get((shape, peer, c))
    if not ours or not theirs:
        return None
    paired = statistics.median(int(a[key]) / max(int(b[key]), 1) for a, b in zip(ours, theirs))
    return med(ours, key) / max(med(theirs, key), 1), paired


shapes = list(dict.fromkeys(shape for shape, _, _ in rows))
names = list(dict.fromkeys(name for _, name, _ in rows))
conns = sorted({c for _, _, c in rows})
print(f"kube-once cold start to ready: {sys.argv[2]} ms")
print("Medians over the rounds; a ratio reads: of the medians (rounds: the median of the per-round ratios).")
for shape in shapes:
    review, reply = sizes[shape]
    print(f"\n### {shape}: review {review:,} B, kube-once's reply {reply:,} B\n")
    print("| peer | c | req/s | p50 µs | p99 µs | errors |")
    print("|---|---|---|---|---|---|")
    for c in conns:
        for name in names:
            runs = rows.get((shape, name, c))
            if runs:
                print(f"| {name} | {c} | {med(runs, 'req_per_s'):,.0f} | {med(runs, 'p50_us'):,.0f} "
                      f"| {med(runs, 'p99_us'):,.0f} | {sum(int(r['errors']) for r in runs)} |")
    print()
    print("| kube-once / peer | c | req/s | p50 | p99 |")
    print("|---|---|---|---|---|")
    for peer in names[1:]:
        for c in conns:
            cells = [ratio(shape, peer, c, key) for key in ("req_per_s", "p50_us", "p99_us")]
            if None not in cells:
                print(f"| / {peer} | {c} | " + " | ".join(f"{m:.2f}× (rounds {p:.2f}×)" for m, p in cells) + " |")
# Where each peer's CPU goes at c=32: its own code (user) or the kernel
# (system: TCP, epoll, copies). What the kernel spends per request is about
# the same for every peer, so it bounds what cutting our own code can gain.
tick_us = 1e6 / int(sys.argv[3])
print("\nCPU per request at the highest c (µs, medians over the rounds; system = the kernel for the peer;"
      " client = wrk, user and system, on the same cores):\n")
print("| review | peer | user | system | system share | client |")
print("|---|---|---|---|---|---|")
top = conns[-1]
for shape in shapes:
    for name in names:
        runs = rows.get((shape, name, top))
        if not runs or "user_ticks" not in runs[0]:
            continue
        per = lambda key: statistics.median(int(r[key]) * tick_us / max(int(r["requests"]), 1) for r in runs)
        user, system = per("user_ticks"), per("sys_ticks")
        client = statistics.median(int(r.get("client_ms", 0)) * 1000 / max(int(r["requests"]), 1) for r in runs)
        print(f"| {shape} | {name} | {user:.1f} | {system:.1f} | {system / max(user + system, 1e-9):.0%} "
              f"| {client:.1f} |")
print("\npeak RSS over the whole run: " + ", ".join(f"{name} {mib:.1f} MiB" for name, mib in rss.items())
      + " (nginx: master and workers)")

# Issue 24's targets. Met only when both the ratio of the medians and the
# median of the per-round ratios meet it: one lucky round does not count.
targets = [
    ("update-80k", 1, "nginx", "p50_us", "<=", 2.0, "80 KB UPDATE c=1 p50 ≤ 2× nginx"),
    ("update-80k", 32, "kube-rs", "req_per_s", ">=", 3.0, "80 KB UPDATE c=32 req/s ≥ 3× kube-rs"),
    ("create-3k", 32, "kube-rs", "req_per_s", ">=", 1.5, "3 KB CREATE c=32 req/s ≥ 1.5× kube-rs"),
    ("create-3k", 1, "nginx", "p50_us", "<=", 1.5, "3 KB CREATE c=1 p50 ≤ 1.5× nginx"),
]
print("\n| target | kube-once / peer (rounds) | verdict |")
print("|---|---|---|")
for shape, c, peer, key, op, bound, label in targets:
    got = ratio(shape, peer, c, key)
    if got is None:
        print(f"| {label} | not run ({shape} or {peer} missing) | — |")
        continue
    ok = all(v <= bound if op == "<=" else v >= bound for v in got)
    print(f"| {label} | {got[0]:.2f}× ({got[1]:.2f}×) | {'met' if ok else 'NOT MET'} |")
errors = sum(int(r["errors"]) for (_, name, _), runs in rows.items() if name == "kube-once" for r in runs)
served = sum(int(r["requests"]) for (_, name, _), runs in rows.items() if name == "kube-once" for r in runs)
print(f"| 0 errors with the audit log on | {errors} errors; {audit:,} audit lines for {served:,} requests wrk counted "
      f"| {'met' if errors == 0 and audit >= served else 'NOT MET'} |")
PY
