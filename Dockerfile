# syntax=docker/dockerfile:1
#
# comfydeck's image: build with the same scripts CI runs (scripts/bootstrap.sh, scripts/build.sh),
# then a slim runtime holding only the self-contained binary.
#
#   docker build -t comfydeck .
#   docker run -p 8082:8082 -v /workspace:/workspace -e ACCESS_PASSWORD=… comfydeck
#
# On a GPU pod, NVIDIA's container runtime mounts libnvidia-ml into the container; comfydeck
# loads it at run time, so GPU figures appear without a CUDA base image.

# Node.js for the build tools (Tailwind CLI, wasm-opt); Debian's is too old for Tailwind 4.
FROM node:22-bookworm-slim AS node

FROM rust:1.95-bookworm AS build
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules /usr/local/lib/node_modules
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx
WORKDIR /src
# Tools first, in their own cached layer: they depend only on these files.
COPY rust-toolchain.toml Cargo.toml Cargo.lock package.json package-lock.json ./
COPY scripts ./scripts
RUN ./scripts/bootstrap.sh
COPY . .
RUN ./scripts/build.sh && install -m 0755 target/release/comfydeck /comfydeck

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /comfydeck /usr/local/bin/comfydeck
ENV WORKSPACE_ROOT=/workspace \
    DASHBOARD_HOST=0.0.0.0 \
    DASHBOARD_PORT=8082 \
    LOG_LEVEL=info
VOLUME /workspace
EXPOSE 8082
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s CMD curl -fsS http://127.0.0.1:8082/health || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["comfydeck"]
CMD ["serve"]
