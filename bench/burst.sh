#!/usr/bin/env bash
# A GitOps burst against `kube-once serve` started as the chart starts it:
# BURST (500) copies of tests/fixtures/perf/update-review.json (the
# realistic UPDATE: an image bump of an injected Deployment, 80 KB), CONCURRENCY
# (32) at a time over TLS, each on a connection of its own, the per-admission
# log line (the audit trail) on. Prints the statuses (200/429/503/other),
# the audit lines and errors in the server's log, and peak RSS against the
# chart's memory limit.
#
# The server's flags and the memory limit are rendered from the chart
# (`helm template`, default values): the flags that need a cluster (the
# certificate Secret, the webhook configuration, Events, the config file)
# are left out; what bounds memory and time is kept as rendered.
#
# Uses KUBE_ONCE_BIN (default the musl dist build; built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

BURST=${BURST:-500}
CONCURRENCY=${CONCURRENCY:-32}
REVIEW=${REVIEW:-tests/fixtures/perf/update-review.json}
PORT=${BURST_PORT:-18463}
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
bin=${KUBE_ONCE_BIN:-$target/x86_64-unknown-linux-musl/dist/kube-once}
if [[ ! -x $bin ]]; then
    nice -n 19 cargo build --profile dist --target x86_64-unknown-linux-musl -p kube-once --bin kube-once
fi
# shellcheck source=scripts/lib/tools.sh
source scripts/lib/tools.sh
ensure_tools >/dev/null

work=$(mktemp -d)
server_pid=
cleanup() { # KILL: the chart's grace period would keep the port for seconds after a TERM
    if [[ -n $server_pid ]]; then
        kill -KILL "$server_pid" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null

# The chart's server container: its serve flags (one a line) and memory limit.
"$KUBE_ONCE_HELM" template kube-once charts/kube-once >"$work/chart.yaml"
"$KUBE_ONCE_PYTHON" - "$work/chart.yaml" "$work" <<'PY'
import sys, yaml
chart, work = sys.argv[1], sys.argv[2]
CLUSTER_ONLY = ("--config=", "--listen=", "--preview-listen=", "--service=", "--self-managed", "--tls-",
                "--webhook-configuration=", "--cert-", "--events-lease", "--no-events")
for document in yaml.safe_load_all(open(chart)):
    if not document or document.get("kind") != "Deployment":
        continue
    container = document["spec"]["template"]["spec"]["containers"][0]
    flags = [arg for arg in container["args"][1:] if not arg.startswith(CLUSTER_ONLY)]
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi"), limit
    open(f"{work}/flags", "w").write("\n".join(flags) + "\n")
    open(f"{work}/env", "w").write("".join(f"{k}={v}\n" for k, v in env.items() if k == "RUST_LOG"))
    open(f"{work}/limit_mib", "w").write(limit[:-2] + "\n")
PY
mapfile -t flags <"$work/flags"
limit_mib=$(cat "$work/limit_mib")

kib() { awk -v field="$1:" '$1 == field { print $2 }' "/proc/$server_pid/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

read -r server_pid _ < <(env $(cat "$work/env") bench/start_server.py "$PORT" "$work/serve.log" -- \
    "$bin" serve --listen "127.0.0.1:$PORT" --no-preview --no-events \
    --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" "${flags[@]}")
idle=$(kib VmRSS)
echo 5 >"/proc/$server_pid/clear_refs" # resets VmHWM to the current RSS
audit_before=$(grep -c '"uid"' "$work/serve.log" || true)

started=$(date +%s.%N)
seq "$BURST" | xargs -P "$CONCURRENCY" -I{} curl -sk -o /dev/null -w '%{http_code}\n' --data-binary @"$REVIEW" \
    -H 'Content-Type: application/json' "https://127.0.0.1:$PORT/mutate" >"$work/codes" || true
seconds=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
peak=$(kib VmHWM)

count() { grep -cx "$1" "$work/codes" || true; }
other=$(grep -cvxE '200|429|503' "$work/codes" || true)
audit=$(($(grep -c '"uid"' "$work/serve.log" || true) - audit_before))
errors=$(grep -ciE '"level":"(ERROR|WARN)"' "$work/serve.log" || true)
grep -iE '"level":"(ERROR|WARN)"' "$work/serve.log" | head -3 >&2 || true
echo "RESULT burst=$BURST concurrency=$CONCURRENCY body_bytes=$(stat -c %s "$REVIEW") seconds=$seconds" \
    "s200=$(count 200) s429=$(count 429) s503=$(count 503) other=$other audit_lines=$audit log_errors=$errors" \
    "idle_rss_mib=$(mib "$idle") peak_rss_mib=$(mib "$peak") chart_limit_mib=$limit_mib flags='${flags[*]}'"
