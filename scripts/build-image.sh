#!/usr/bin/env bash
# Builds the kube-once image for linux/amd64 and linux/arm64 as ONE OCI image
# index, written as an OCI layout to target/image/oci (tag `latest`), without
# a container daemon: buildah (vfs storage under target/image, nothing run
# inside a container) assembles, for each architecture, a scratch image from
# the tree that scripts/build-static.sh laid out in target/dist/linux-ARCH/,
# with the same config as the Dockerfile's final stage.
#
#   scripts/build-static.sh && scripts/build-image.sh && scripts/check-image.sh
#   skopeo copy --all oci:target/image/oci:latest docker://REGISTRY/kube-once:TAG   # to publish
#
# Timestamps are the last commit's (SOURCE_DATE_EPOCH overrides), so the same
# binaries give the same layers and the same digests.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/cross.sh
source scripts/lib/cross.sh

ensure_debian_commands buildah:buildah
while read -r _ _ _ _ path _; do
    for arch in "${KUBE_ONCE_ARCHES[@]}"; do
        if [ ! -x "target/dist/linux-$arch/$path" ]; then
            echo "error: target/dist/linux-$arch/$path is missing: run scripts/build-static.sh first" >&2
            exit 1
        fi
    done
done < <(kube_once_artifacts)

epoch="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)"
work=target/image
# A fresh store each time: it only ever holds this image (a few MB).
rm -rf "$work/oci" "$work/storage" "$work/run"
mkdir -p "$work"
b=(buildah --root "$PWD/$work/storage" --runroot "$PWD/$work/run" --storage-driver vfs)

"${b[@]}" manifest create kube-once:ci >/dev/null
for arch in "${KUBE_ONCE_ARCHES[@]}"; do
    container="$("${b[@]}" from --arch "$arch" --os linux --name "kube-once-$arch" scratch)"
    # --chown 0:0: the binaries belong to root, so the user 65532 cannot change them.
    "${b[@]}" copy --quiet --chown 0:0 "$container" "target/dist/linux-$arch/" /
    "${b[@]}" config --arch "$arch" --os linux \
        --user 65532:65532 --port 8443/tcp \
        --entrypoint '["/kube-once"]' --cmd serve \
        --label org.opencontainers.image.title=kube-once \
        --label "org.opencontainers.image.version=$version" \
        --label org.opencontainers.image.licenses=Apache-2.0 \
        --created-by "COPY target/dist/linux-$arch/ / (scripts/build-image.sh)" \
        "$container"
    "${b[@]}" commit --quiet --rm --format oci --timestamp "$epoch" "$container" "kube-once:ci-$arch" >/dev/null
    "${b[@]}" manifest add kube-once:ci "containers-storage:localhost/kube-once:ci-$arch" >/dev/null
done
"${b[@]}" manifest push --quiet --all --format oci kube-once:ci "oci:$PWD/$work/oci:latest"
rm -rf "$work/storage" "$work/run"
echo "image: $work/oci (tag latest), platforms: ${KUBE_ONCE_ARCHES[*]/#/linux/}"
