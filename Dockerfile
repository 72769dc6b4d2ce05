# imaphook container image: imaphookd runs as an unprivileged user, reads its
# configuration from /etc/imaphook (mount it) and keeps its state in the
# volume /var/lib/imaphook. See README.md, "Deployment".
#
#   docker build -t imaphook .
#   docker run -d --name imaphook --init \
#     -v "$PWD/etc:/etc/imaphook:ro" -v imaphook-state:/var/lib/imaphook \
#     -p 127.0.0.1:8025:8025 imaphook
#
# BASE lets a build use a local copy of the base image (podman, no registry):
#   podman build --format docker --build-arg BASE=localhost/debian:bookworm-slim .
ARG BASE=debian:bookworm-slim

# ---- build: the same steps as CI, minus the test dependencies ----
FROM $BASE AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends make
WORKDIR /src
COPY Makefile ./
# build-essential, pkg-config and the -dev packages (not Dovecot, Check...)
RUN make deps-build
COPY . .
RUN make all \
 && make install DESTDIR=/staging PREFIX=/usr/local \
 && strip /staging/usr/local/sbin/imaphookd /staging/usr/local/bin/imaphook \
 && /staging/usr/local/sbin/imaphookd --version

# ---- runtime: the shared libraries, CA certificates, curl for the health check ----
FROM $BASE
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libevent-2.1-7 libevent-openssl-2.1-7 libssl3 libcurl4 libjansson4 \
      libconfig9 libgmime-3.0-0 libsystemd0 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --system --gid 10001 imaphook \
 && useradd --system --uid 10001 --gid imaphook --home-dir /var/lib/imaphook \
      --no-create-home --shell /usr/sbin/nologin imaphook \
 && install -d -o imaphook -g imaphook -m 0700 /var/lib/imaphook \
 && install -d -m 0755 /etc/imaphook
COPY --from=build /staging/usr/local/sbin/imaphookd /usr/local/sbin/imaphookd
COPY --from=build /staging/usr/local/bin/imaphook /usr/local/bin/imaphook
COPY --from=build /staging/etc/imaphook/imaphook.conf.example /etc/imaphook/imaphook.conf.example
# A missing library fails the build here, not at the first start.
RUN ! ldd /usr/local/sbin/imaphookd /usr/local/bin/imaphook | grep 'not found' \
 && imaphookd --version && imaphook --version

USER 10001:10001
VOLUME /var/lib/imaphook
EXPOSE 8025
# The health check asks the daemon's API: the configuration needs an api
# group (api = { listen = "0.0.0.0:8025"; token_file = ...; }). Point it
# elsewhere with -e IMAPHOOK_HEALTH_URL=..., or turn it off with
# --no-healthcheck. /healthz answers 503 while a trigger's last poll failed.
ENV IMAPHOOK_HEALTH_URL=http://127.0.0.1:8025/healthz
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null --max-time 8 "$IMAPHOOK_HEALTH_URL" || exit 1
# SIGTERM: imaphookd finishes webhook requests in flight for up to 8 s.
STOPSIGNAL SIGTERM
ENTRYPOINT ["imaphookd"]
CMD ["-c", "/etc/imaphook/imaphook.conf"]
