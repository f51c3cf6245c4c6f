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
# scripts/build-static: the two binaries with +crt-static, checked to need no dynamic loader;
# scripts/check-image runs what it builds in an empty root, as this image runs it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    bash scripts/build-static /out

FROM scratch
# Public roots for rediss:// to managed Redis services; the webhook uses the cluster's CA.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/sidekiq-guard-webhook /out/sidekiq-guard-probe /usr/local/bin/
ENV PATH=/usr/local/bin
# The "nonroot" user of distroless images; the manifests run as the same numeric user.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/sidekiq-guard-probe"]
