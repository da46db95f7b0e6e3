"""The gateway as OAuth2 / OpenID Connect provider of the course hubs.

Who is a client, and who is in a course, are not the gateway's to keep: the
deployer registers each hub as a client when it deploys it (it has to write
the secret into the hub anyway, and needs it again on every redeploy; the bus
lets only the gateway call, so the secret never travels in an event), and
participant-svc decides membership. Both are asked over RPC, membership at
every step, so a removal takes effect at once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from gateway.oauth.exchange import HubUser
from gateway.oauth.grants import HubClient
from gateway.oauth.keys import ALGORITHM, Keyring
from gateway.oauth.store import delete_grants, digest, live_token
from gateway.store import AccountStore
from jhaas_runtime.db import Database
from jhaas_runtime.logs import get_logger
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_schemas.hubnames import hub_username
from jhaas_schemas.model import Principal
from jhaas_schemas.rpc import (
    CourseAccess,
    CourseRef,
    DeployerOps,
    ErrorCode,
    GetOAuthClient,
    OAuthClient,
    ParticipantOps,
)

log = get_logger(__name__)

T = TypeVar("T")
# Who asks the deployer for a client: the gateway itself, often before anyone signed in.
GATEWAY_PRINCIPAL = Principal(user_id="gateway", username="gateway")
# Authlib runs here, not on the event loop; its callbacks wait on the loop.
AUTHLIB_THREADS = 8
LEEWAY = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class Membership:
    """A signed-in person and what participant-svc says of them in one course."""

    user: HubUser | None
    title: str


class Provider:
    def __init__(
        self,
        *,
        db: Database,
        issuer: str,
        secret: bytes,
        token_ttl_seconds: int,
        key_rotation: timedelta,
        rpc: Callable[[], RpcClient],
        clock: Callable[[], datetime],
    ) -> None:
        self.db = db
        self.issuer = issuer
        self.token_ttl_seconds = token_ttl_seconds
        self.clock = clock
        self._rpc = rpc
        ttl = timedelta(seconds=token_ttl_seconds)
        self.keep_used_codes_for = ttl
        self.keyring = Keyring(
            db, secret, rotate_after=key_rotation, published_for=ttl + LEEWAY, clock=clock
        )
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=AUTHLIB_THREADS, thread_name_prefix="oauth"
        )

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def in_thread(self, work: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, work)

    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth/authorize",
            "token_endpoint": f"{base}/oauth/token",
            "userinfo_endpoint": f"{base}/oauth/userinfo",
            "jwks_uri": f"{base}/oauth/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
            "scopes_supported": ["openid", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": [
                "sub",
                "iss",
                "aud",
                "exp",
                "iat",
                "nonce",
                "name",
                "preferred_username",
                "groups",
            ],
        }

    async def client(self, client_id: str, correlation_id: str) -> HubClient | None:
        """The hub registered as `client_id`, or None; RpcFailure when the deployer is away."""
        try:
            found = await self._rpc().call(
                DeployerOps.OAUTH_CLIENT,
                GetOAuthClient(client_id=client_id[:128]),
                OAuthClient,
                principal=GATEWAY_PRINCIPAL,
                correlation_id=correlation_id,
            )
        except RpcFailure as exc:
            if exc.error.code in (ErrorCode.NOT_FOUND, ErrorCode.INVALID):
                return None
            raise
        return HubClient(found) if found.client_id == client_id else None

    async def membership(
        self, principal: Principal, request_id: str, correlation_id: str
    ) -> Membership:
        try:
            access = await self._rpc().call(
                ParticipantOps.ACCESS,
                CourseRef(request_id=request_id),
                CourseAccess,
                principal=principal,
                correlation_id=correlation_id,
            )
        except RpcFailure as exc:
            if exc.error.code != ErrorCode.NOT_FOUND:
                raise
            return Membership(user=None, title="")
        if access.role is None:
            return Membership(user=None, title=access.title)
        user = await self.db.read(lambda conn: AccountStore(conn).get_user(principal.user_id))
        name = (user.display_name if user else "") or principal.username
        hub_user = HubUser(
            user_id=principal.user_id, username=principal.username, name=name, role=access.role
        )
        return Membership(user=hub_user, title=access.title)

    async def member(self, user_id: str, request_id: str, correlation_id: str) -> HubUser | None:
        """The user as they are in the course now; None when gone, disabled or not in it."""
        user = await self.db.read(lambda conn: AccountStore(conn).get_user(user_id))
        if user is None or user.disabled:
            return None
        principal = Principal(user_id=user.user_id, username=user.username, roles=user.roles)
        return (await self.membership(principal, request_id, correlation_id)).user

    async def userinfo(self, access_token: str, correlation_id: str) -> dict[str, Any] | None:
        """The claims for a live access token whose person is still in the course."""
        token = await self.db.read(live_token, digest(access_token), self.clock())
        if token is None:
            return None
        user = await self.member(token.user_id, token.request_id, correlation_id)
        if user is None:
            return None
        return {
            "sub": user.user_id,
            "preferred_username": hub_username(user.user_id),
            "name": user.name,
            # Not through Authlib's UserInfo.filter(): it drops `groups`.
            "groups": [user.role.value],
        }


async def revoke_hub_grants(db: Database, user_id: str, request_id: str) -> int:
    """Delete every code and access token the gateway issued to `user_id` for the
    hub of course `request_id`: their next userinfo call gets 401. Idempotent;
    returns how many were deleted."""
    gone = await db.write(delete_grants, user_id, request_id)
    if gone:
        log.info("oauth grants revoked", user_id=user_id, request_id=request_id, count=gone)
    return gone
