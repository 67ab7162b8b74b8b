# syntax=docker/dockerfile:1
# The kube-once image: one static (musl) binary at /kube-once on an empty
# base. The same image serves the webhook (`serve`) and is the "tools image"
# of the injected kube-once-install initContainer, which copies /kube-once
# into the pod's shared emptyDir (`install`), so app images of any distro can
# run `kube-once lock`.
#
#   docker build -t ghcr.io/kube-once/kube-once:0.1.0 .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
# musl-tools: musl-gcc, the C compiler ring's assembly and C code need for the
# musl target (ring, not aws-lc-rs, so no cmake either).
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist --target x86_64-unknown-linux-musl --bin kube-once \
    && cp target/x86_64-unknown-linux-musl/dist/kube-once /kube-once

# scratch: nothing but the binary. The server needs no shell, no libc and no
# CA store (it talks only to the API server, whose CA comes with the
# ServiceAccount token); the chart's readOnlyRootFilesystem costs nothing.
FROM scratch
COPY --from=build /kube-once /kube-once
# The distroless "nonroot" UID/GID; numeric so runAsNonRoot can verify it
# without an /etc/passwd.
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/kube-once"]
CMD ["serve"]
