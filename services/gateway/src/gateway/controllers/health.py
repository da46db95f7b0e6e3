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


INDEX_PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>JHaaS - JupyterHub as a Service</title></head>
<body>
<h1>JHaaS &mdash; JupyterHub as a Service</h1>
<p>One JupyterHub per course: requested, approved, deployed and deleted on schedule.</p>
<ul>
<li><a href="/schema/swagger">API documentation (Swagger UI)</a></li>
<li><a href="/schema/openapi.json">OpenAPI document</a></li>
</ul>
</body>
</html>
"""


@get("/", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def index() -> str:
    return INDEX_PAGE
