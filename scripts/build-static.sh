#!/usr/bin/env bash
# Builds the fully static kube-once binary (x86_64 musl, `dist` profile: fat
# LTO, one codegen unit, opt-level s, panic=abort, stripped) — the copy that
# `kube-once install` puts into app pods — and prints its path and size.
# Needs the rustup target and a musl C compiler (ring and SQLite are C):
# both are installed when missing. Fails when the binary is over the size
# goal (KUBE_ONCE_MAX_STATIC_BYTES, default 10 MB): it is copied into every pod.
set -euo pipefail
cd "$(dirname "$0")/.."
target=x86_64-unknown-linux-musl

if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
    sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq musl-tools >/dev/null
fi

cargo build --locked --profile dist --target "$target" --bin kube-once
binary="${CARGO_TARGET_DIR:-target}/$target/dist/kube-once"
# A dynamic binary lists its libraries as `name => path`.
if ldd "$binary" 2>&1 | grep -q '=>'; then
    echo "error: $binary is dynamically linked; expected a static musl binary" >&2
    exit 1
fi
size="$(stat -c %s "$binary")"
echo "$binary: static, $size bytes ($((size / 1024 / 1024)) MiB)"
max="${KUBE_ONCE_MAX_STATIC_BYTES:-10000000}"
if [ "$size" -gt "$max" ]; then
    echo "error: $binary is $size bytes, over the $max-byte goal for the copy that goes into every pod" >&2
    exit 1
fi
