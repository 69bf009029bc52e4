# pruvan-bridge container image.
#
# Two stages: "build" compiles the worker on debian:12 with the distribution's
# -dev packages (the same versions CI builds against), "runtime" is
# debian:12-slim with only the shared libraries the binary links against
# (tests/docker/check_runtime_libs.sh proves that list complete against
# `ldd`) and runs as an unprivileged user (uid/gid 10001, as the Kubernetes
# manifests in deploy/ expect). No tests run here: ctest runs in CI.
#
# Configuration is not baked in: mount it at /etc/pruvan-bridge/config.json
# (a ConfigMap) and PushKeys under /var/run/secrets/pruvan-bridge (a Secret).

FROM debian:12 AS build

# libcmocka-dev only because the top-level CMakeLists requires it at
# configure time; only the pruvan-bridge target is built.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        cmake \
        ninja-build \
        gcc \
        libc6-dev \
        pkg-config \
        librdkafka-dev \
        libjansson-dev \
        libcurl4-openssl-dev \
        libhiredis-dev \
        libssl-dev \
        libmicrohttpd-dev \
        libssl-dev \
        libjemalloc-dev \
        libssl-dev \
        libcmocka-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . /src
RUN cmake -S /src -B /src/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_TESTING=OFF \
    && cmake --build /src/build --target pruvan-bridge \
    && strip /src/build/pruvan-bridge

FROM debian:12-slim AS runtime

LABEL org.opencontainers.image.title="pruvan-bridge" \
      org.opencontainers.image.description="Kafka worker pushing work orders to Pruvan" \
      org.opencontainers.image.licenses="Proprietary"

# Runtime libraries only; their own dependencies (libssl3, zlib1g, libsasl2,
# libzstd, liblz4, ...) come with them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        librdkafka1 \
        libjansson4 \
        libcurl4 \
        libhiredis0.14 \
        libssl3 \
        libmicrohttpd12 \
        libssl3 \
        libjemalloc2 \
        ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pruvan \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin pruvan

COPY --from=build /src/build/pruvan-bridge /usr/local/bin/pruvan-bridge

# Numeric, so that runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
EXPOSE 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["pruvan-bridge"]
CMD ["run", "-c", "/etc/pruvan-bridge/config.json"]
