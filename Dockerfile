# syntax=docker/dockerfile:1.7
#
# One image for every JHaaS service. Build it once per service with
#   docker build --build-arg SERVICE=request_svc -t jhaas-request-svc .
# or once for all of them and choose the module at run time
# (`python -m <module>`, as the Kubernetes manifests do).
#
# SERVICE is the Python module the container runs by default:
#   gateway | request_svc | governance_svc | participant_svc | deployer_svc

ARG PYTHON_IMAGE=python:3.11-slim
# The uv that wrote uv.lock (lock revision 5); keep it in step with the developers' uv.
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------------------
# builder: a virtual environment with the services and their locked dependencies
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

COPY --from=uv /uv /usr/local/bin/uv

# Compile bytecode now: the runtime root filesystem is read-only.
# Use the base image's interpreter (the runtime stage has the same one at the
# same path) and never download another one.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.11 \
    UV_PROJECT_ENVIRONMENT=/app/.venv

WORKDIR /app

# 1) Third-party dependencies only, from the lock file: this layer is reused
#    until uv.lock changes. --frozen: install exactly what uv.lock says.
#    The launcher (and its nats-server binary) is for one-machine runs and is
#    left out: only the services' own dependency trees are installed.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    uv sync --frozen --no-dev --no-install-workspace \
        --package gateway \
        --package request-svc \
        --package governance-svc \
        --package participant-svc \
        --package deployer-svc

# 2) The workspace members the services are made of, installed non-editable so
#    that the runtime stage needs nothing but the virtual environment.
COPY pyproject.toml uv.lock ./
COPY schemas ./schemas
COPY runtime ./runtime
COPY services ./services
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable \
        --package gateway \
        --package request-svc \
        --package governance-svc \
        --package participant-svc \
        --package deployer-svc

# ---------------------------------------------------------------------------
# runtime: the base interpreter, the virtual environment, an unprivileged user
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG SERVICE=gateway

RUN groupadd --system --gid 10001 jhaas \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/jhaas \
        --no-create-home --shell /usr/sbin/nologin jhaas \
    && mkdir -p /var/lib/jhaas \
    && chown 10001:10001 /var/lib/jhaas

# Owned by root and read-only for the service user.
COPY --from=builder /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JHAAS_DATA_DIR=/var/lib/jhaas \
    JHAAS_SERVICE_MODULE=${SERVICE}

# Fail the build, not the container, when SERVICE names no runnable module.
RUN python -c "import importlib.util, sys; \
m = sys.argv[1]; \
sys.exit(0 if importlib.util.find_spec(m + '.__main__') else 'SERVICE=' + m + ' has no __main__')" \
    "${SERVICE}"

USER 10001:10001
WORKDIR /var/lib/jhaas

# The gateway listens here (JHAAS_GATEWAY_PORT); the other services only
# connect out to NATS and their database.
EXPOSE 8000

# exec: python becomes PID 1 and gets SIGTERM directly; every service stops
# cleanly on it (drains NATS, publishes committed outbox rows).
CMD ["/bin/sh", "-c", "exec python -m \"$JHAAS_SERVICE_MODULE\""]
