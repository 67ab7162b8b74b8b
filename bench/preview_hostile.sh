#!/usr/bin/env bash
# Hostile `POST /preview` bodies against `/healthz`: the target is that
# /preview bodies of 100 KB-7 MiB never delay /healthz beyond 100 ms.
#
# Starts the shipped binary (KUBE_ONCE_BIN, default the musl dist build;
# built if missing) with a self-signed certificate and the plain-HTTP
# preview listener, generates hostile but legal-sized bodies (python3) of
# SIZES (100 KB, 1 MiB and just under the 7 MiB body limit), and for each
# kind and size posts PARALLEL (4) of them at once to /preview?format=yaml,
# again and again for ROUND_SECONDS (5), while three probes run over TLS
# every PROBE_MS (20) ms:
#   healthz keep-alive  GET /healthz on one keep-alive connection
#   healthz fresh       GET /healthz on a new TCP+TLS connection each time
#                       (as the kubelet probes)
#   mutate              POST tests/fixtures/perf/review.json to /mutate
# Two control rows come first: the idle server, and the idle server next to
# one busy-looping process (the CPU a preview takes, without the server
# doing it), so that what the machine itself costs can be told apart.
#
# Prints per row: the preview status codes seen, the probes' count and
# p50/p99/max latency, the server's peak RSS, and how long after the round
# a small preview is answered again ("settle": work left on the blocking
# pool). A server over MEM_CAP_MIB (352, the chart's memory limit) is killed
# as the kubelet would, counted as a failure, and started again.
# Exits 1 if any healthz max exceeds BOUND_MS (100) in a hostile row or a
# server passed MEM_CAP_MIB. KINDS picks kinds (default all).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUND_SECONDS=${ROUND_SECONDS:-5}
PARALLEL=${PARALLEL:-4}
PROBE_MS=${PROBE_MS:-20}
BOUND_MS=${BOUND_MS:-100}
MEM_CAP_MIB=${MEM_CAP_MIB:-352}
SETTLE_SECONDS=${SETTLE_SECONDS:-60}
body_limit=$(sed -n 's/^pub const BODY_LIMIT: usize = \([0-9 *]*\);/\1/p' crates/server/src/lib.rs)
body_limit=$((body_limit))
SIZES=${SIZES:-"102400 1048576 $((body_limit - 1024))"}
KINDS=${KINDS:-"flow_seq flow_map flow_nests block_nests alias_bomb alias_docs scalar documents deployments long_keys"}
PORT=${HOSTILE_PORT:-18463}
PREVIEW_PORT=${HOSTILE_PREVIEW_PORT:-18464}
REVIEW=tests/fixtures/perf/review.json

target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
bin=${KUBE_ONCE_BIN:-$target/x86_64-unknown-linux-musl/dist/kube-once}
if [[ ! -x $bin ]]; then
    nice -n 19 cargo build --profile dist --target x86_64-unknown-linux-musl -p kube-once --bin kube-once
fi

work=$(mktemp -d)
server_pid=
background=()
cleanup() {
    local pid
    for pid in "${background[@]}"; do kill "$pid" 2>/dev/null || true; done
    [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

# --- the bodies: bodies/KIND.SIZE, at most SIZE bytes each ---
mkdir -p "$work/bodies"
python3 - "$work/bodies" examples/superset.yaml "$SIZES" $KINDS <<'PY'
import os, sys
out, example, sizes, kinds = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split()], sys.argv[4:]
deployment = open(example).read().split("\n---\n")[1]  # the annotated Deployment of the example

def repeat(chunk, size, head="", tail=""):
    """head + as many chunks as fit + tail, at most size bytes."""
    count = max(1, (size - len(head) - len(tail)) // len(chunk if isinstance(chunk, str) else chunk(0)))
    if isinstance(chunk, str):
        return head + chunk * count + tail
    return head + "".join(chunk(i) for i in range(count)) + tail

def flow_seq(size):  # one nest as deep as the body allows: refused at depth 200
    depth = (size - 1) // 2
    return "[" * depth + "]" * depth + "\n"

def flow_map(size):
    depth = (size - 2) // 5
    return "{a: " * depth + "1" + "}" * depth + "\n"

def flow_nests(size):  # many nests of 150 levels: under the limit, so every one is read
    return repeat("- " + "[" * 150 + "]" * 150 + "\n", size)

def block_nests(size):  # many block mappings 150 levels deep
    chunk = lambda i: f"k{i}:\n" + "".join("  " * level + "a:\n" for level in range(1, 150)) + "  " * 150 + "a: 1\n"
    count = max(1, size // len(chunk(10**6)))
    return "".join(chunk(i) for i in range(count))

def laughs(levels, width):  # a billion-laughs document
    lines = ["l0: &l0 [" + ",".join(['"lol"'] * width) + "]"]
    lines += [f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * width) + "]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"

def alias_bomb(size):  # plain entries up to the size, then a bomb: refused past 100,000 alias nodes
    lines, used = [], len(bomb := laughs(9, 10))
    while used + len(line := f"p{len(lines)}: x\n") <= size:
        lines.append(line)
        used += len(line)
    return "".join(lines) + bomb

def alias_docs(size):  # documents each just under the alias limit: 90,107 nodes from ~190 bytes
    doc = ("---\na: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [" + ",".join(["*a"] * 10) + "]\nc: &c [" + ",".join(["*b"] * 10)
           + "]\nd: &d [" + ",".join(["*c"] * 10) + "]\ne: [" + ",".join(["*d"] * 7) + "]\n")
    return repeat(doc, size)

def scalar(size):  # one annotated Deployment with a huge env value: read, mutated and written back
    head = deployment.replace("          env:\n", "          env:\n            - name: HUGE\n              value: \"", 1)
    # the quoted value ends before the next env entry
    start = head.index('value: "') + len('value: "')
    filler = "x" * max(1, size - len(deployment) - 64)
    return head[:start] + filler + "\"\n" + head[start:]

def documents(size):  # many tiny documents
    return repeat("---\na: 1\n", size)

def deployments(size):  # many annotated Deployments: each is mutated, then 400 (one per body)
    return repeat("---\n" + deployment + "\n", size)

def long_keys(size):  # explicit keys of 4 KiB each
    return repeat(lambda i: f"? k{i:09d}{'x' * 4096}\n: 1\n", size)

for kind in kinds:
    for size in sizes:
        text = globals()[kind](size)
        text = text.encode()
        assert len(text) <= size, (kind, size, len(text))
        open(os.path.join(out, f"{kind}.{size}"), "wb").write(text)
PY
# A small valid preview: answered 200 when a preview slot is free.
sed -n '/^---$/,$p' examples/superset.yaml | tail -n +2 >"$work/small.yaml"

start_server() {
    read -r server_pid _ < <(bench/start_server.py "$PORT" "$work/serve.log" -- \
        "$bin" serve --listen "127.0.0.1:$PORT" --preview-listen "127.0.0.1:$PREVIEW_PORT" \
        --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" ${SERVE_ARGS:-})
}
start_server

kib() { # a field of the server's /proc status in KiB (0 once it is gone; a zombie has none)
    local value
    value=$(awk -v field="$1:" '$1 == field { print $2 }' "/proc/$server_pid/status" 2>/dev/null || true)
    echo "${value:-0}"
}
preview_status() { # preview_status FILE: the status of one preview, a line (000: no answer)
    curl -s -o /dev/null -w '%{http_code}\n' --max-time 30 --data-binary @"$1" \
        -H 'Content-Type: application/yaml' "http://127.0.0.1:$PREVIEW_PORT/preview?format=yaml" || true
}
poster() { # poster FILE OUT: post FILE again and again until killed (curl is its child)
    while :; do preview_status "$1" >>"$2"; done
}
stop_server() { # at once, and until it is gone: the next server takes the same ports
    local i
    kill -9 "$server_pid" 2>/dev/null || true
    for i in $(seq 100); do # a zombie holds no socket any more
        [[ $(awk '$1 == "State:" { print $2 }' "/proc/$server_pid/status" 2>/dev/null || echo gone) =~ ^(Z|gone)$ ]] && return
        sleep 0.1
    done
}
watchdog() { # kill the server past MEM_CAP_MIB, as the kubelet would (OOM)
    local rss
    while kill -0 "$server_pid" 2>/dev/null; do
        rss=$(kib VmRSS)
        if ((rss > MEM_CAP_MIB * 1024)); then
            echo "$rss" >"$work/oom"
            kill -9 "$server_pid"
            return
        fi
        sleep 0.05
    done
}
busy() { while :; do :; done; }

echo "preview_hostile: $(nproc) cores, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg), binary $bin" >&2
rows=$work/rows
: >"$rows"
round() { # round NAME SIZE LOAD: LOAD is control, busy or a body file
    local name=$1 size=$2 load=$3 row=$work/row.$1.$2 pid pids=() settle=- oom=-
    rm -f "$work/oom"
    echo 5 >"/proc/$server_pid/clear_refs" # VmHWM from now on
    watchdog &
    local watchdog_pid=$!
    background+=("$watchdog_pid")
    : >"$row.codes"
    case $load in
    control) ;;
    busy) busy & pids+=($!) ;;
    *) for _ in $(seq "$PARALLEL"); do poster "$load" "$row.codes" & pids+=($!); done ;;
    esac
    background+=("${pids[@]}")
    bench/healthz_probe.py "$PORT" keepalive "$ROUND_SECONDS" "$PROBE_MS" "$row.keepalive" &
    local probes=($!)
    bench/healthz_probe.py "$PORT" fresh "$ROUND_SECONDS" "$PROBE_MS" "$row.fresh" &
    probes+=($!)
    bench/healthz_probe.py "$PORT" mutate "$ROUND_SECONDS" "$PROBE_MS" "$row.mutate" "$REVIEW" &
    probes+=($!)
    wait "${probes[@]}" || true
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; pkill -P "$pid" curl 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    local peak
    peak=$(kib VmHWM)
    if [[ $load != control && $load != busy ]] && kill -0 "$server_pid" 2>/dev/null; then
        # Until a small preview is answered again: the work the round left on the blocking pool.
        local began=$SECONDS code
        while :; do
            code=$(preview_status "$work/small.yaml")
            [[ $code == 200 ]] && break
            kill -0 "$server_pid" 2>/dev/null || break
            ((SECONDS - began < SETTLE_SECONDS)) || break
        done
        settle=$((SECONDS - began))
        [[ $code == 200 ]] || settle=">$SETTLE_SECONDS"
    fi
    kill "$watchdog_pid" 2>/dev/null || true
    wait "$watchdog_pid" 2>/dev/null || true
    if [[ -f $work/oom ]]; then
        oom=$(( $(cat "$work/oom") / 1024 ))
        stop_server
        start_server
    elif ! kill -0 "$server_pid" 2>/dev/null; then
        oom=died
        start_server
    elif [[ $settle == ">"* ]]; then
        # Still busy: start afresh so the next row measures its own load only.
        stop_server
        start_server
    fi
    local bytes=0
    [[ -f $load ]] && bytes=$(stat -c %s "$load")
    echo "$name $size $bytes $(sort "$row.codes" | uniq -c | awk 'NF == 2 { printf "%s%s×%s", sep, $2, $1; sep = "," } END { if (!sep) printf "-" }') $peak $settle $oom $row" >>"$rows"
    echo "preview_hostile: $name $size done (load $(cut -d' ' -f1 /proc/loadavg))" >&2
}

round idle - control
round "idle+busy" - busy
for kind in $KINDS; do
    for size in $SIZES; do
        round "$kind" "$size" "$work/bodies/$kind.$size"
    done
done

python3 - "$rows" "$BOUND_MS" "$MEM_CAP_MIB" <<'PY'
import statistics, sys
rows, bound, cap = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])

def read(path):
    samples = [line.split() for line in open(path)]
    return [float(s[1]) for s in samples], sum(1 for s in samples if s[2] != "200")

def stats(values):
    if not values:
        return "-", 0.0
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]
    return f"{len(values)} / {pick(0.5):.1f} / {pick(0.99):.1f} / {values[-1]:.1f}", values[-1]

def size(nominal, actual):
    if nominal == "-":
        return "-"
    n = int(nominal)
    label = f"{n // 1048576} MiB" if n % 1048576 == 0 else f"{n // 1024} KiB" if n < 1048576 else f"{n / 1048576:.3f} MiB"
    return f"{label} ({int(actual):,} B)"

failed = False
print(f"| load | body | /preview statuses | healthz keep-alive n / p50 / p99 / max ms | healthz fresh n / p50 / p99 / max ms "
      f"| /mutate n / p50 / p99 / max ms | peak RSS MiB | settle s | max ≤ {bound:.0f} ms |")
print("|---|---|---|---|---|---|---|---|---|")
for line in open(rows):
    name, nominal, nbytes, codes, peak, settle, oom, row = line.split()
    cells, worst, errors = [], 0.0, 0
    for probe in ("keepalive", "fresh", "mutate"):
        values, failures = read(f"{row}.{probe}")
        text, top = stats(values)
        if failures:
            text += f" ({failures} failed)"
        cells.append(text)
        if probe != "mutate":
            worst = max(worst, top)
            errors += failures
    ok = worst <= bound and errors == 0 and oom == "-"
    control = name in ("idle", "idle+busy")
    failed |= not ok and not control
    verdict = "yes" if ok else "**no**"
    if oom != "-":
        verdict += f" (killed at {oom} MiB > {cap} MiB)" if oom != "died" else " (server died)"
    peak_mib = f"{int(peak) / 1024:.0f}" if oom == "-" else f"> {cap}"
    print(f"| {name} | {size(nominal, nbytes)} | {codes} | {cells[0]} | {cells[1]} | {cells[2]} "
          f"| {peak_mib} | {settle} | {verdict} |")
sys.exit(1 if failed else 0)
PY
