# syntax=docker/dockerfile:1
# Image for unit21-kafka-bridge: `docker build -t unit21-kafka-bridge:<version> .` (or `make image`).
# Releases are built by .github/workflows/release.yml (amd64 + arm64, scanned, pushed to GHCR).
#
# Stage 1 installs every runtime dependency from requirements.lock (`make lock`: versions and
# sha256 hashes of each wheel, generated from pyproject.toml), wheels only, so no compiler is
# needed on either architecture and nothing the lock does not name gets in; then it builds the
# bridge's own wheel with the hash-locked build backend. Stage 2 copies only the virtualenv onto
# a clean slim base. There is deliberately no HEALTHCHECK: Kubernetes probes /healthz and /readyz.
#
# The base is pinned by the digest of the multi-arch index of python:3.11.15-slim-bookworm, so a
# rebuild of the same commit starts from the same bytes on amd64 and arm64. Bumps arrive as
# Dependabot pull requests (.github/dependabot.yml); both FROM lines must name the same image.
# Check a digest by hand with `docker buildx imagetools inspect python:3.11.15-slim-bookworm`
# (the index digest, listing linux/amd64 and linux/arm64/v8); a digest that does not exist
# fails the release workflow's first build step.

FROM python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3 AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY requirements.lock requirements-build.lock ./
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: --no-deps \
       -r requirements.lock \
    && python -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: --no-deps \
       -r requirements-build.lock

COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY schemas ./schemas

# The schemas are force-included in the wheel (bridge/_schemas), so the wheel is all we need.
# `pip check` fails the build when the lock lacks something the package requires.
RUN /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps --no-index /wheels/unit21_kafka_bridge-*.whl \
    && /opt/venv/bin/pip check \
    && /opt/venv/bin/pip uninstall -y pip


FROM python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3 AS runtime

# One pair of arguments for the account, its files and USER: Kubernetes' runAsUser (values.yaml:
# podSecurityContext.runAsUser, 10001) must match, and runAsNonRoot needs a numeric USER.
ARG APP_UID=10001
ARG APP_GID=10001
# Set by the release workflow from the tag and the commit; the defaults mark a local build.
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG SOURCE=https://github.com/unit21-kafka-bridge/unit21-kafka-bridge

LABEL org.opencontainers.image.title="unit21-kafka-bridge" \
      org.opencontainers.image.description="Receive signed Unit21 webhooks and publish them to Kafka as Avro." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.url="${SOURCE}" \
      org.opencontainers.image.documentation="${SOURCE}#readme" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.15-slim-bookworm"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BRIDGE_SPOOL_DIR=/var/lib/unit21-bridge/spool \
    BRIDGE_PORT=8080

RUN groupadd --system --gid ${APP_GID} bridge \
    && useradd --system --uid ${APP_UID} --gid ${APP_GID} --home-dir /nonexistent \
       --no-create-home --shell /usr/sbin/nologin bridge \
    && mkdir -p /var/lib/unit21-bridge/spool \
    && chown -R ${APP_UID}:${APP_GID} /var/lib/unit21-bridge \
    && chmod 0750 /var/lib/unit21-bridge /var/lib/unit21-bridge/spool

COPY --from=builder /opt/venv /opt/venv

WORKDIR /var/lib/unit21-bridge
USER ${APP_UID}:${APP_GID}
EXPOSE 8080

# Exec form: the bridge is PID 1 and receives SIGTERM directly to drain in-flight requests.
ENTRYPOINT ["unit21-bridge"]
CMD ["serve"]
