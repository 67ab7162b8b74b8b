#!/usr/bin/env bash
# Builds the fully static (musl) release binaries for each architecture
# (default: amd64 arm64; or name some: `scripts/build-static.sh arm64`) with
# cargo-zigbuild, and lays each architecture's image tree out in
# target/dist/linux-ARCH/ (see scripts/lib/cross.sh for the binaries, their
# profiles and size gates). Checks that every binary is static, for the right
# architecture and under its gate; prints sizes and build times.
# Installs what it needs (Rust musl targets, cargo-zigbuild + Zig from PyPI,
# `file`) when missing. docs/dev/build.md has the details.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/cross.sh
source scripts/lib/cross.sh

arches=("$@")
[ "${#arches[@]}" -gt 0 ] || arches=("${KUBE_ONCE_ARCHES[@]}")
for arch in "${arches[@]}"; do rust_target "$arch" >/dev/null; done

ensure_cross_toolchain
target_dir="${CARGO_TARGET_DIR:-target}"
summary=()
failed=0
while read -r name package bin profile path max; do
    for arch in "${arches[@]}"; do
        target="$(rust_target "$arch")"
        started=$SECONDS
        cargo_zigbuild --locked --profile "$profile" --target "$target" --package "$package" --bin "$bin"
        seconds=$((SECONDS - started))
        built="$target_dir/$target/$profile/$bin"
        out="target/dist/linux-$arch/$path"
        mkdir -p "$(dirname "$out")"
        # install: a fresh file with mode 0755, so the image gets it as is.
        install -m 0755 "$built" "$out"
        # A binary over its gate fails the script, after every binary is
        # built, so one run tells all the sizes.
        if line="$(check_static_binary "$out" "$arch" "$max" 2>&1)"; then
            summary+=("$name $arch: $line; built in ${seconds}s")
        else
            failed=1
            summary+=("$name $arch: FAILED: $line; built in ${seconds}s")
        fi
        echo "${summary[-1]}"
    done
done < <(kube_once_artifacts)

echo "static binaries:"
printf '  %s\n' "${summary[@]}"
exit "$failed"
