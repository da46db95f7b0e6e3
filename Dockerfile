# syntax=docker/dockerfile:1.7
#
# One image per JHaaS service, each holding only its own package and the
# packages it declares (no launcher, no other service):
#   docker build --build-arg SERVICE=request-svc -t jhaas-request-svc .
#
# SERVICE is the service's package, and the image runs its module:
#   gateway | request-svc | governance-svc | participant-svc | deployer-svc
# deploy/build-service-env.sh makes the environment; the integration test
# tests/deploy/test_service_images.py replays this file's builder stage with
# that same script on the same files and starts each service from the result.

ARG PYTHON_IMAGE=python:3.11-slim
# The uv that wrote uv.lock (lock revision 5); keep it in step with the developers' uv.
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------------------
# builder: a virtual environment with one service and its locked dependencies
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ARG SERVICE

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

# 1) The service's third-party dependencies, from the lock file alone: this
#    layer is reused until uv.lock changes.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=deploy/build-service-env.sh,target=deploy/build-service-env.sh \
    sh deploy/build-service-env.sh --deps-only "$SERVICE" "$UV_PROJECT_ENVIRONMENT"

# 2) The workspace members it is made of, installed non-editable so that the
#    runtime stage needs nothing but the virtual environment. Only this
#    service's folder: the build cannot use another service's code by mistake.
COPY pyproject.toml uv.lock ./
COPY deploy/build-service-env.sh ./deploy/
COPY schemas ./schemas
COPY runtime ./runtime
COPY services/${SERVICE} ./services/${SERVICE}
RUN --mount=type=cache,target=/root/.cache/uv \
    sh deploy/build-service-env.sh "$SERVICE" "$UV_PROJECT_ENVIRONMENT"

# ---------------------------------------------------------------------------
# runtime: the base interpreter, the virtual environment, an unprivileged user
# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

ARG SERVICE

RUN groupadd --system --gid 10001 jhaas \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/jhaas \
        --no-create-home --shell /usr/sbin/nologin jhaas \
    && mkdir -p /var/lib/jhaas \
    && chown 10001:10001 /var/lib/jhaas

# Owned by root and read-only for the service user.
COPY --from=builder /app/.venv /app/.venv

# The module is the package's name with underscores (request-svc -> request_svc).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JHAAS_DATA_DIR=/var/lib/jhaas \
    JHAAS_SERVICE_MODULE=${SERVICE//-/_}

USER 10001:10001
WORKDIR /var/lib/jhaas

# Fail the build, not the container: the service user can read and import
# the copied environment.
RUN python -c "import importlib, sys; importlib.import_module(sys.argv[1] + '.__main__')" \
    "$JHAAS_SERVICE_MODULE"

# The gateway listens here (JHAAS_GATEWAY_PORT); the other services only
# connect out to NATS and their database.
EXPOSE 8000

# exec: python becomes PID 1 and gets SIGTERM directly; every service stops
# cleanly on it (drains NATS, publishes committed outbox rows).
CMD ["/bin/sh", "-c", "exec python -m \"$JHAAS_SERVICE_MODULE\""]
