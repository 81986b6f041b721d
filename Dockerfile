# uflowd container image: U-Flow anomaly detection over HTTP (docs/server.md, deploy/README.md).
#
#   docker build -t uflowd .                                   # from Docker Hub's debian:bookworm-slim
#   podman build --format docker --build-arg BASE_IMAGE=localhost/debian:bookworm -t uflowd .
#   docker run --rm --read-only --tmpfs /tmp -p 8080:8080 -v "$PWD/models:/models:ro" uflowd
#
# BASE_IMAGE must be Debian 12 (bookworm) or a derivative: both stages use its apt sources.
# The build stage builds with meson (release) and runs the unit tests; a failing test fails
# the build. The runtime stage holds only the two binaries and their shared libraries.
ARG BASE_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE} AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      gcc libc6-dev meson ninja-build pkg-config python3 \
      libvips-dev libopenblas-dev libjansson-dev libmicrohttpd-dev \
      libcmocka-dev libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the build and the unit tests read (.dockerignore trims the rest).
COPY meson.build meson_options.txt ./
COPY api/ api/
COPY lib/ lib/
COPY cli/ cli/
COPY server/ server/
COPY tests/ tests/
COPY tools/check_layout.py tools/
COPY bench/meson.build bench/*.c bench/
# No -march=native: the hot kernels pick AVX-512/AVX2/SSE at run time (target_clones), so the
# image runs on any x86-64 node.
RUN meson setup /build --buildtype=release --prefix=/usr/local \
 && ninja -C /build \
 && meson test -C /build --suite unit --print-errorlogs --num-processes "$(nproc)" \
 && DESTDIR=/out meson install -C /build --no-rebuild --strip --quiet \
 && /out/usr/local/bin/uflowd --help >/dev/null

# ---------------------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
ARG DEBIAN_FRONTEND=noninteractive
# Runtime libraries only (uflowd/uflow NEEDED: libvips, OpenBLAS, jansson, libmicrohttpd, GLib),
# no recommends; dpkg skips docs (but keeps the copyright files), man pages and translations
# (as in debian:bookworm-slim); no apt lists or caches.
RUN printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
      'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
      'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
      'path-exclude /usr/share/lintian/*' > /etc/dpkg/dpkg.cfg.d/uflow-slim \
 && apt-get update \
 && apt-get install -y --no-install-recommends \
      libvips42 libopenblas0-pthread libjansson4 libmicrohttpd12 libglib2.0-0 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/cache/debconf/*-old /var/log/apt \
           /var/log/dpkg.log /var/log/alternatives.log \
 && groupadd --system --gid 10001 uflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
            --shell /usr/sbin/nologin uflow \
 && mkdir -p /models
COPY --from=build /out/usr/local/bin/uflowd /out/usr/local/bin/uflow /usr/local/bin/

# Every flag has a UFLOWD_* twin (docs/server.md); a flag wins over its twin. Sizing:
# UFLOWD_WORKERS x UFLOWD_THREADS_PER_WORKER <= the container's CPU allowance (cores, or the
# CPU limit in Kubernetes). OpenBLAS is single-threaded inside each worker; all parallelism
# comes from those two settings. The healthcheck reads its port from UFLOWD_LISTEN, so change
# the port through UFLOWD_LISTEN rather than --listen.
ENV UFLOWD_LISTEN=0.0.0.0:8080 \
    UFLOWD_WORKERS=2 \
    UFLOWD_THREADS_PER_WORKER=1 \
    OPENBLAS_NUM_THREADS=1 \
    TMPDIR=/tmp \
    HOME=/tmp

# Nothing is written outside /tmp: run with a read-only root fs and a tmpfs on /tmp.
USER 10001
WORKDIR /tmp
VOLUME ["/models"]
EXPOSE 8080
STOPSIGNAL SIGTERM
# Readiness (/readyz) through a plain socket: no curl in the image. Docker-format images only
# (podman build --format docker); Kubernetes uses its own probes (deploy/kubernetes).
HEALTHCHECK --interval=15s --timeout=6s --start-period=60s --retries=3 CMD ["uflowd", "--healthcheck"]
ENTRYPOINT ["uflowd"]
CMD ["--models", "/models", "--listen", "0.0.0.0:8080"]

# Last, so that a new revision/date only changes the final metadata, not the cached layers.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="uflowd" \
      org.opencontainers.image.description="U-Flow anomaly detection inference server (REST /v1 and KServe v2)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.documentation="deploy/README.md, docs/server.md" \
      org.opencontainers.image.vendor="uflow" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
