# syntax=docker/dockerfile:1
#
# keyrevoke worker image.
#
# - Non-root (uid/gid 10001), built to run with a read-only root filesystem: the only writable
#   places are the state directory and /tmp, which Kubernetes mounts as emptyDir volumes.
# - No secret is baked in: .dockerignore lets only the Python sources into the build context, and
#   every setting and secret arrives at run time (KEYREVOKE_* environment variables from the
#   ConfigMap, the ledger URL from the Secret, the key-encryption key and the master credentials as
#   mounted Secret files). See infra/README.md.
# - gnupg: escalation packets are encrypted to each exchange's OpenPGP key by the gpg binary.
# - tini is PID 1 and forwards SIGTERM to the keyrevoke process, which drains its Temporal workers
#   within KEYREVOKE_WORKER_SHUTDOWN_SECONDS (terminationGracePeriodSeconds in the manifests is
#   larger). ENTRYPOINT and CMD are in exec form, so no shell stands in between.
#
# Build: docker build -t keyrevoke-worker:dev .
# Run:   docker run --rm keyrevoke-worker:dev worker --queues control,binance,bybit

# The same Debian-based Python 3.11 image for both stages, so the virtualenv copied from the build
# stage finds its interpreter at the same path. Pin it by digest in your registry mirror if you can.
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/keyrevoke
WORKDIR /src
COPY . .
# The postgres extra brings the PostgreSQL driver used by the production ledger. pip compiles the
# installed modules to bytecode, so nothing needs to be written at run time.
RUN /opt/keyrevoke/bin/pip install ".[postgres]"

FROM python:3.11-slim-bookworm AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini gnupg \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 keyrevoke \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin keyrevoke \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/keyrevoke
COPY --from=build /opt/keyrevoke /opt/keyrevoke
# HOME points at /tmp (an emptyDir in Kubernetes): the root filesystem is read-only.
ENV PATH=/opt/keyrevoke/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KEYREVOKE_STATE_DIR=/var/lib/keyrevoke \
    KEYREVOKE_WORKER_HTTP_HOST=0.0.0.0 \
    KEYREVOKE_WORKER_HTTP_PORT=9464
USER 10001:10001
WORKDIR /var/lib/keyrevoke
EXPOSE 9464
STOPSIGNAL SIGTERM
# Kubernetes ignores HEALTHCHECK (the manifests have their own probes); it serves plain docker runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('KEYREVOKE_WORKER_HTTP_PORT', '9464') + '/healthz', timeout=4)"]
ENTRYPOINT ["/usr/bin/tini", "--", "keyrevoke"]
CMD ["worker", "--queues", "control"]
