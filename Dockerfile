# syntax=docker/dockerfile:1
# Image for unit21-kafka-bridge: `docker build -t unit21-kafka-bridge:<version> .` (or `make image`).
#
# Stage 1 builds the wheel and a virtualenv with every runtime dependency; stage 2 copies
# only the virtualenv onto a clean slim base, so no compiler, pip cache or source tree ships.
# There is deliberately no HEALTHCHECK: Kubernetes probes /healthz and /readyz itself.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY pyproject.toml README.md ./
COPY bridge ./bridge
COPY schemas ./schemas

# The schemas are force-included in the wheel (bridge/_schemas), so the wheel is all we need.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --upgrade pip \
    && /opt/venv/bin/pip wheel --wheel-dir /wheels '.[tracing]' \
    && /opt/venv/bin/pip install --no-index --find-links /wheels 'unit21-kafka-bridge[tracing]' \
    && /opt/venv/bin/pip uninstall -y pip


FROM ${PYTHON_IMAGE} AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

LABEL org.opencontainers.image.title="unit21-kafka-bridge" \
      org.opencontainers.image.description="Receive signed Unit21 webhooks and publish them to Kafka as Avro." \
      org.opencontainers.image.licenses="Apache-2.0"

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
USER 10001:10001
EXPOSE 8080

# Exec form: the bridge is PID 1 and receives SIGTERM directly to drain in-flight requests.
ENTRYPOINT ["unit21-bridge"]
CMD ["serve"]
