"""Every configured provider's client, sharing one HTTP connection pool."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx

from gateway.identity.client import OidcClient
from gateway.identity.config import ProviderConfig


class IdentityProviders:
    def __init__(
        self,
        configs: tuple[ProviderConfig, ...],
        *,
        timeout_seconds: float,
        clock: Callable[[], datetime],
        leeway_seconds: int,
        metadata_ttl_seconds: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # No redirects: a provider's endpoints are where its discovery says they are.
        self._http = httpx.AsyncClient(
            timeout=timeout_seconds,
            follow_redirects=False,
            headers={"User-Agent": "jhaas-gateway"},
            transport=transport,
        )
        self._clients = {
            config.name: OidcClient(
                config,
                self._http,
                clock=clock,
                leeway_seconds=leeway_seconds,
                metadata_ttl_seconds=metadata_ttl_seconds,
            )
            for config in configs
        }

    def get(self, name: str) -> OidcClient | None:
        return self._clients.get(name)

    @property
    def configs(self) -> list[ProviderConfig]:
        """In the order of the providers file: the sign-in page shows them so."""
        return [client.config for client in self._clients.values()]

    async def aclose(self) -> None:
        await self._http.aclose()
