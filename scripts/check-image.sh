#!/usr/bin/env bash
# Checks the OCI layout that scripts/build-image.sh wrote (default
# target/image/oci, tag latest): one index with linux/amd64 and linux/arm64;
# each holds exactly the binaries of scripts/lib/cross.sh, owned by root,
# static, for its architecture, runnable (`--version`, arm64 through
# qemu-aarch64); config user 65532:65532, entrypoint ["/kube-once"], cmd
# ["serve"]; no shell. Prints each platform's compressed size and fails above
# KUBE_ONCE_MAX_IMAGE_BYTES (default 10 MB per platform; amd64 was 8.1 MB
# on 2026-11-27: a 12 MB server and a 5 MB pod binary, gzipped).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/cross.sh
source scripts/lib/cross.sh

layout="${1:-target/image/oci}"
args=()
for arch in "${KUBE_ONCE_ARCHES[@]}"; do
    runner="$(arch_runner "$arch")"
    [ -z "$runner" ] || ensure_debian_commands "$runner:qemu-user"
    args+=(--arch "$arch=$runner")
done
ensure_debian_commands file:file
while read -r _ _ _ _ path _; do
    args+=(--expect "$path")
done < <(kube_once_artifacts)

python3 scripts/lib/check_image.py "$layout" "${args[@]}" --max-bytes "${KUBE_ONCE_MAX_IMAGE_BYTES:-10000000}"
