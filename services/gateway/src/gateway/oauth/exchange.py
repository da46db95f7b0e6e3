"""One OAuth request's view of the gateway, as the Authlib callbacks see it."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from joserfc.jwk import RSAKey

from gateway.oauth.store import CodeRecord, add_code
from jhaas_runtime.db import Database
from jhaas_schemas.rpc import CourseRole

if TYPE_CHECKING:
    from gateway.oauth.provider import Provider

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class HubUser:
    """A gateway user who is in the hub's course now, with their course role."""

    user_id: str
    username: str
    name: str
    role: CourseRole


class Exchange:
    """Built on the event loop for one request, then used from Authlib's thread."""

    def __init__(
        self,
        provider: Provider,
        *,
        loop: asyncio.AbstractEventLoop,
        request_id: str,
        correlation_id: str,
        key: RSAKey | None = None,
    ) -> None:
        self.provider = provider
        self._loop = loop
        self.request_id = request_id
        self.correlation_id = correlation_id
        self._key = key

    @property
    def db(self) -> Database:
        return self.provider.db

    @property
    def issuer(self) -> str:
        return self.provider.issuer

    @property
    def token_ttl_seconds(self) -> int:
        return self.provider.token_ttl_seconds

    def now(self) -> datetime:
        return self.provider.clock()

    def wait(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` on the gateway's loop and wait for it (from the worker thread)."""
        return asyncio.run_coroutine_threadsafe(work, self._loop).result()

    def save_code(self, record: CodeRecord) -> None:
        self.wait(self.db.write(add_code, record, self.provider.keep_used_codes_for))

    def hub_user(self, user_id: str) -> HubUser | None:
        return self.wait(self.provider.member(user_id, self.request_id, self.correlation_id))

    def signing_key(self) -> RSAKey:
        if self._key is None:
            raise RuntimeError("the token endpoint loads the signing key first")
        return self._key
