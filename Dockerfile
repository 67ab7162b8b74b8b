# syntax=docker/dockerfile:1
# The kube-once image, for linux/amd64 and linux/arm64: static (musl)
# binaries on an empty base. /kube-once serves the webhook (`serve`); the
# same image is the "tools image" of the injected kube-once-install
# initContainer, which copies the pod binary into the pod's shared emptyDir
# (`install`), so app images of any distro can run `kube-once lock`.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t ghcr.io/kube-once/kube-once:0.1.0 .
#   docker build -t kube-once .        # the builder's own platform only
#
# CI builds the same image without Docker, from the same script's output:
# scripts/build-static.sh, then scripts/build-image.sh (docs/dev/build.md).

ARG RUST_VERSION=1.95

# The build stage runs on the builder's platform and cross-compiles for
# TARGETARCH (cargo-zigbuild: Zig is the C compiler and linker for every
# target, with its own musl), rather than building under emulation.
FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends file python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The toolchain first, in a layer of its own: it changes only with cross.sh.
# Outside the target cache, which the two platforms' builds share.
ENV KUBE_ONCE_TOOLS_DIR=/opt/kube-once-tools
COPY scripts/lib/cross.sh scripts/lib/cross.sh
RUN bash -c 'source scripts/lib/cross.sh && ensure_cross_toolchain'
COPY . .
ARG TARGETARCH
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=kube-once-target \
    scripts/build-static.sh "$TARGETARCH" \
    && cp -a "target/dist/linux-$TARGETARCH" /out

# scratch: nothing but the binaries (/kube-once, and /pod/kube-once once the
# pod binary is its own build). The server needs no shell, no libc and no CA
# store (it talks only to the API server, whose CA comes with the
# ServiceAccount token); the chart's readOnlyRootFilesystem costs nothing.
FROM scratch
COPY --from=build /out/ /
# The distroless "nonroot" UID/GID; numeric so runAsNonRoot can verify it
# without an /etc/passwd.
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/kube-once"]
CMD ["serve"]
