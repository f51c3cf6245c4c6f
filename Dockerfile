# syntax=docker/dockerfile:1
#
# One image, two static binaries:
#   /usr/local/bin/sidekiq-guard-probe    the sidecar the webhook injects (the entrypoint: the
#                                         webhook gives the injected container arguments only)
#   /usr/local/bin/sidekiq-guard-webhook  the admission webhook and its `certs` Job
#                                         (the manifests set `command` to it)
#
#   docker build -t ghcr.io/sidekiq-guard/sidekiq-guard:0.1.0 .
#
# The binaries are statically linked against glibc (crt-static on the gnu target): no libc in
# the final image. The webhook brings its own allocator (mimalloc, for its many small JSON
# allocations); the probe uses glibc's, which keeps its resident memory small. Name resolution
# (the probe resolves Redis host names) works without NSS modules: glibc's static resolver
# reads /etc/hosts and /etc/resolv.conf, which the kubelet mounts into every container.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# --target keeps build scripts and proc macros dynamically linked (they cannot be static);
# only the two binaries get +crt-static.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    set -eux; \
    target="$(uname -m)-unknown-linux-gnu"; \
    RUSTFLAGS="-C target-feature=+crt-static" \
      cargo build --release --locked --target "$target" \
        -p sidekiq-guard-webhook -p sidekiq-guard-probe; \
    mkdir -p /out; \
    cp "target/$target/release/sidekiq-guard-webhook" "target/$target/release/sidekiq-guard-probe" /out/; \
    # Fail the build if either binary still needs a dynamic loader.
    for bin in /out/*; do \
      if readelf -l "$bin" | grep -q interpreter; then echo "$bin is not static" >&2; exit 1; fi; \
    done

FROM scratch
# Public roots for rediss:// to managed Redis services; the webhook uses the cluster's CA.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/sidekiq-guard-webhook /out/sidekiq-guard-probe /usr/local/bin/
ENV PATH=/usr/local/bin
# The "nonroot" user of distroless images; the manifests run as the same numeric user.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sidekiq-guard-probe"]
