# shellcheck shell=bash
# Sourced by scripts/build-static.sh, scripts/build-image.sh and
# scripts/test-foreign.sh: what the release binaries are, for which
# architectures, and the toolchain that cross-builds them.
#
# Toolchain: cargo-zigbuild with Zig as the C compiler and linker, both from
# PyPI (the `cargo-zigbuild` and `ziglang` wheels: prebuilt, nothing to
# compile, ~10 s into a venv under target/tools). Zig carries musl headers and
# a musl libc for every architecture, so ring's and SQLite's C code compiles
# against the same libc it links with, for x86_64 and aarch64 alike. Debian's
# gcc-aarch64-linux-gnu would compile SQLite against glibc headers and link it
# with musl; musl-tools' musl-gcc only targets the host.
#
# Layout of the output: target/dist/linux-ARCH/ holds exactly the image's
# file tree for that architecture (see kube_once_artifacts).

KUBE_ONCE_ARCHES=(amd64 arm64)
# Pinned so that CI builds with the same C compiler every time.
KUBE_ONCE_ZIGBUILD_VERSION="${KUBE_ONCE_ZIGBUILD_VERSION:-0.24.0}"
KUBE_ONCE_ZIG_VERSION="${KUBE_ONCE_ZIG_VERSION:-0.17.1}"

_cross_log() { echo "cross: $*" >&2; }

# The binaries of the image, one line each:
#   NAME PACKAGE BIN PROFILE PATH-IN-IMAGE MAX-BYTES
# server: the webhook (every subcommand), `dist` profile, built for speed;
#   never copied into pods. 13.2 MB on amd64 (2026-11-27, with explain's CEL);
#   13.9 MB (2026-12-06) before shell completion (clap_complete, ~126 KB)
#   and preview's in-place YAML edits; its gate, 14.5 MB since then, leaves
#   room to grow but makes a jump visible.
# pod: `kube-once-pod` (lock, install, history, forget), `dist-pod` profile,
#   built for size: the injected kube-once-install copies it into every
#   annotated pod, where it runs as /kube-once-bin/kube-once. Its gate is the
#   design's 5 MB, 5,000,000 bytes (amd64 measured 4,804,560 on 2026-11-27,
#   with SQLite's unused features left out: .cargo/config.toml).
kube_once_artifacts() {
    echo "pod kube-once-pod kube-once-pod dist-pod pod/kube-once ${KUBE_ONCE_MAX_POD_BYTES:-5000000}"
    echo "server kube-once kube-once dist kube-once ${KUBE_ONCE_MAX_SERVER_BYTES:-14500000}"
}

# The file in target/dist/linux-ARCH/ that app pods run (`lock`, `install`).
kube_once_pod_binary() {
    echo "target/dist/linux-$1/pod/kube-once"
}

rust_target() {
    case "$1" in
        amd64) echo x86_64-unknown-linux-musl ;;
        arm64) echo aarch64-unknown-linux-musl ;;
        *) _cross_log "unknown architecture '$1' (expected one of: ${KUBE_ONCE_ARCHES[*]})"; return 1 ;;
    esac
}

# What `file` says about an ELF binary of that architecture.
_file_machine() {
    case "$1" in
        amd64) echo "x86-64" ;;
        arm64) echo "ARM aarch64" ;;
    esac
}

# The command that runs a binary of ARCH on this machine: nothing for the
# host's own architecture, qemu-user otherwise (static binaries need no -L).
arch_runner() {
    local host
    case "$(uname -m)" in
        x86_64) host=amd64 ;;
        aarch64) host=arm64 ;;
        *) host=unknown ;;
    esac
    if [ "$1" = "$host" ]; then
        echo ""
    else
        case "$1" in
            amd64) echo qemu-x86_64 ;;
            arm64) echo qemu-aarch64 ;;
        esac
    fi
}

_cross_apt_install() {
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    _cross_log "installing Debian packages: $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null >/dev/null &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null
}

# ensure_debian_commands COMMAND:PACKAGE...: installs the packages whose
# command is missing, all in one apt-get call.
ensure_debian_commands() {
    local pair missing=()
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ "${#missing[@]}" = 0 ] || _cross_apt_install "${missing[@]}"
}

# Rust's musl targets, `file`, and cargo-zigbuild + Zig in a venv. Sets
# KUBE_ONCE_ZIG_VENV. Fast when everything is there already.
ensure_cross_toolchain() {
    local tools target installed arch
    tools="${KUBE_ONCE_TOOLS_DIR:-$(pwd)/target/tools}"
    KUBE_ONCE_ZIG_VENV="$tools/zig-venv"
    installed="$(rustup target list --installed)"
    for arch in "${KUBE_ONCE_ARCHES[@]}"; do
        target="$(rust_target "$arch")"
        grep -qx "$target" <<<"$installed" || rustup target add "$target" || return 1
    done
    ensure_debian_commands file:file || return 1
    python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || _cross_apt_install python3-venv || return 1
    if [ "$("$KUBE_ONCE_ZIG_VENV/bin/cargo-zigbuild" --version 2>/dev/null)" != "cargo-zigbuild $KUBE_ONCE_ZIGBUILD_VERSION" ] ||
        [ "$("$KUBE_ONCE_ZIG_VENV/bin/python" -m ziglang version 2>/dev/null)" != "$KUBE_ONCE_ZIG_VERSION" ]; then
        _cross_log "installing cargo-zigbuild $KUBE_ONCE_ZIGBUILD_VERSION and Zig $KUBE_ONCE_ZIG_VERSION into $KUBE_ONCE_ZIG_VENV"
        rm -rf "$KUBE_ONCE_ZIG_VENV"
        if ! python3 -m venv "$KUBE_ONCE_ZIG_VENV" ||
            ! "$KUBE_ONCE_ZIG_VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
                "cargo-zigbuild==$KUBE_ONCE_ZIGBUILD_VERSION" "ziglang==$KUBE_ONCE_ZIG_VERSION"; then
            _cross_log "pip install cargo-zigbuild ziglang failed (is PyPI reachable?)"
            return 1
        fi
    fi
}

# cargo_zigbuild ARGS...: `cargo zigbuild` with the venv's tools on PATH for
# this command only, at the lowest CPU priority (build machines are shared;
# an idle machine still gives it every core).
cargo_zigbuild() {
    PATH="$KUBE_ONCE_ZIG_VENV/bin:$PATH" nice -n 19 cargo zigbuild "$@"
}

# check_static_binary FILE ARCH MAX_BYTES: an ELF of ARCH, statically linked
# (no program interpreter), at most MAX_BYTES. Prints one summary line.
# (`ldd` only understands the host's architecture; `file` reads any ELF.)
check_static_binary() {
    local binary="$1" arch="$2" max="$3" description machine size
    [ -f "$binary" ] || { _cross_log "$binary: missing"; return 1; }
    description="$(file -b "$binary")"
    machine="$(_file_machine "$arch")"
    case "$description" in
        *"$machine"*) ;;
        *) _cross_log "$binary: not a $arch binary: $description"; return 1 ;;
    esac
    case "$description" in
        *interpreter* | *"dynamically linked"*)
            _cross_log "$binary: dynamically linked, expected a static musl binary: $description"
            return 1
            ;;
        *"statically linked"* | *"static-pie linked"*) ;;
        *) _cross_log "$binary: cannot tell that it is static: $description"; return 1 ;;
    esac
    size="$(stat -c %s "$binary")"
    if [ "$size" -gt "$max" ]; then
        _cross_log "$binary: $size bytes, over its $max-byte gate"
        return 1
    fi
    printf '%s: %s static, %s bytes (%s MiB; gate %s)\n' "$binary" "$arch" "$size" \
        "$(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }')" "$max"
}
