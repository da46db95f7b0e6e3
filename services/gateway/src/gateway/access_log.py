"""One structured log line per HTTP request, with its correlation id (replaces
uvicorn's plain-text access log, so every line of the gateway is JSON)."""

from __future__ import annotations

import time
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.client_address import TrustedProxies, client_address
from gateway.context import correlation_id_for
from jhaas_runtime.logs import get_logger

log = get_logger("gateway.access")


def make_access_log(trusted_proxies: TrustedProxies) -> Callable[[ASGIApp], ASGIApp]:
    """The access log; `client` is the address sign-in throttling also uses."""

    def access_log(app: ASGIApp) -> ASGIApp:
        return _logged(app, trusted_proxies)

    return access_log


def _logged(app: ASGIApp, trusted_proxies: TrustedProxies) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        method = scope.get("method", "")
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, record_status)
        finally:
            log.info(
                "http request",
                method=method,
                path=scope["path"],
                status=status,
                client=client_address(scope, trusted_proxies),
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                correlation_id=correlation_id_for(scope),
            )

    return middleware
