"""What one request can reach: the gateway's adapters, its caller, its correlation id."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope
from nats.aio.client import Client as NATS

from gateway.accounts import Accounts, Caller
from gateway.audit import Audit
from gateway.auth import BearerTokens
from gateway.identity.signin import IdentitySignIn
from gateway.join_limit import JoinCodeGuessLimit
from gateway.mail import Mailer
from gateway.oauth.provider import Provider
from gateway.personal_tokens import PersonalTokens
from gateway.settings import GatewaySettings
from gateway.throttle import SignInThrottle
from jhaas_runtime.db import Database
from jhaas_runtime.rpc import RpcClient

if TYPE_CHECKING:  # the MFA code reads the context's caller: imported for types only
    from gateway.mfa.keys import SecurityKeys
    from gateway.mfa.service import SecondFactors

CORRELATION_HEADER = "X-Correlation-ID"
_SANE_CORRELATION_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_CORRELATION_KEY = "jhaas_correlation_id"
_CALLER_KEY = "jhaas_caller"


class NotReady(Exception):
    """The gateway is not connected to NATS (yet, or any more)."""


@dataclass
class Gateway:
    """The adapters `create_app` builds; the NATS link is set by the lifespan."""

    settings: GatewaySettings
    db: Database
    accounts: Accounts
    tokens: BearerTokens
    throttle: SignInThrottle
    oauth: Provider
    audit: Audit
    join_limit: JoinCodeGuessLimit
    mfa: SecondFactors
    security_keys: SecurityKeys
    personal_tokens: PersonalTokens
    # Asking for password-reset links: counted like sign-ins, on counts of its own.
    reset_throttle: SignInThrottle
    identity: IdentitySignIn
    nc: NATS | None = field(default=None)
    rpc_client: RpcClient | None = field(default=None)
    mailer: Mailer | None = field(default=None)  # None: no mail server configured

    @property
    def rpc(self) -> RpcClient:
        if self.rpc_client is None or self.nc is None or not self.nc.is_connected:
            raise NotReady("the gateway is not connected to the message bus")
        return self.rpc_client


def gateway_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Gateway:
    gateway = connection.app.state.get("gateway")
    if not isinstance(gateway, Gateway):
        raise RuntimeError("create_app() puts the Gateway into the app state")
    return gateway


def set_caller(connection: ASGIConnection[Any, Any, Any, Any], caller: Caller) -> None:
    connection.scope["state"][_CALLER_KEY] = caller


def caller_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    caller = connection.scope["state"].get(_CALLER_KEY)
    if not isinstance(caller, Caller):
        raise RuntimeError("handler needs the requires_authenticated guard")
    return caller


def correlation_id_for(scope: Scope) -> str:
    """The request's X-Correlation-ID if it is a sane token, else a new UUID; fixed per request."""
    state: dict[str, Any] = scope.setdefault("state", {})
    found = state.get(_CORRELATION_KEY)
    if isinstance(found, str):
        return found
    given = ""
    wanted = CORRELATION_HEADER.lower().encode()
    for name, value in scope.get("headers", ()):
        if name.lower() == wanted:
            given = value.decode("latin-1").strip()
            break
    chosen = given if _SANE_CORRELATION_ID.fullmatch(given) else str(uuid.uuid4())
    state[_CORRELATION_KEY] = chosen
    return chosen


async def send_correlation_header(message: Message, scope: Scope) -> None:
    """`before_send` hook: every HTTP response names its correlation id."""
    if message["type"] == "http.response.start":
        headers = MutableScopeHeaders.from_message(message)
        headers[CORRELATION_HEADER] = correlation_id_for(scope)
