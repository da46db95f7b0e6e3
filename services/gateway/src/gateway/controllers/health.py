"""Liveness, readiness, and the front page."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import MediaType, Request, Response, get
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_503_SERVICE_UNAVAILABLE
from sqlalchemy.engine import Connection

from gateway.context import gateway_of
from gateway.errors import error_response
from gateway.schemas import ErrorBody, Health
from gateway.web.i18n import N_
from gateway.web.render import Page, viewer_of


@get("/healthz", tags=["health"], security=[])
async def healthz() -> Health:
    """200 while the process runs."""
    return Health(status="ok")


@get(
    "/readyz",
    tags=["health"],
    security=[],
    responses={
        HTTP_503_SERVICE_UNAVAILABLE: ResponseSpec(
            data_container=ErrorBody, description="NATS or the database does not answer"
        )
    },
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Any]:
    """200 only when NATS is connected and the database answers; 503 otherwise."""
    gateway = gateway_of(request)
    if gateway.nc is None or not gateway.nc.is_connected:
        return error_response(request, HTTP_503_SERVICE_UNAVAILABLE, "NATS is not connected")
    try:
        await gateway.db.read(_ping)
    except Exception as exc:  # any database failure means "not ready"
        message = f"the database does not answer: {type(exc).__name__}"
        return error_response(request, HTTP_503_SERVICE_UNAVAILABLE, message)
    return Response(Health(status="ready"))


def _ping(conn: Connection) -> None:
    conn.execute(sa.text("SELECT 1"))


@get("/", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def index(request: Request[Any, Any, Any]) -> Response[Any]:
    return Page(
        "index.html", title=N_("JHaaS - JupyterHub as a Service"), viewer=await viewer_of(request)
    )
