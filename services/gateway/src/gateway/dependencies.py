"""Dependency providers: what a controller method may ask for by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.di import Provide

from gateway.accounts import Accounts, Caller
from gateway.audit import Audit
from gateway.auth import BearerTokens
from gateway.context import caller_of, correlation_id_for, gateway_of
from gateway.identity.signin import IdentitySignIn
from gateway.join_limit import JoinCodeGuessLimit
from gateway.mfa.keys import SecurityKeys
from gateway.mfa.service import SecondFactors
from gateway.settings import GatewaySettings
from gateway.throttle import SignInThrottle
from jhaas_runtime.rpc import RpcClient
from jhaas_schemas.model import Principal

R = TypeVar("R")


@dataclass(frozen=True)
class ServiceCalls:
    """Calls a service on behalf of this request's caller, under its correlation id."""

    rpc: RpcClient
    principal: Principal
    correlation_id: str

    async def __call__(self, subject: str, payload: msgspec.Struct, result_type: type[R]) -> R:
        # RpcClient turns no responders, timeouts and a lost bus into `unavailable`.
        return await self.rpc.call(
            subject,
            payload,
            result_type,
            principal=self.principal,
            correlation_id=self.correlation_id,
        )


def provide_caller(request: Request[Any, Any, Any]) -> Caller:
    return caller_of(request)


def provide_accounts(request: Request[Any, Any, Any]) -> Accounts:
    return gateway_of(request).accounts


def provide_tokens(request: Request[Any, Any, Any]) -> BearerTokens:
    return gateway_of(request).tokens


def provide_throttle(request: Request[Any, Any, Any]) -> SignInThrottle:
    return gateway_of(request).throttle


def provide_audit(request: Request[Any, Any, Any]) -> Audit:
    return gateway_of(request).audit


def provide_join_limit(request: Request[Any, Any, Any]) -> JoinCodeGuessLimit:
    return gateway_of(request).join_limit


def provide_mfa(request: Request[Any, Any, Any]) -> SecondFactors:
    return gateway_of(request).mfa


def provide_security_keys(request: Request[Any, Any, Any]) -> SecurityKeys:
    return gateway_of(request).security_keys


def provide_identity(request: Request[Any, Any, Any]) -> IdentitySignIn:
    return gateway_of(request).identity


def provide_settings(request: Request[Any, Any, Any]) -> GatewaySettings:
    return gateway_of(request).settings


def provide_services(request: Request[Any, Any, Any]) -> ServiceCalls:
    return ServiceCalls(
        rpc=gateway_of(request).rpc,
        principal=caller_of(request).principal,
        correlation_id=correlation_id_for(request.scope),
    )


DEPENDENCIES = {
    "caller": Provide(provide_caller, sync_to_thread=False),
    "accounts": Provide(provide_accounts, sync_to_thread=False),
    "tokens": Provide(provide_tokens, sync_to_thread=False),
    "settings": Provide(provide_settings, sync_to_thread=False),
    "identity": Provide(provide_identity, sync_to_thread=False),
    "throttle": Provide(provide_throttle, sync_to_thread=False),
    "services": Provide(provide_services, sync_to_thread=False),
    "audit": Provide(provide_audit, sync_to_thread=False),
    "join_limit": Provide(provide_join_limit, sync_to_thread=False),
    "mfa": Provide(provide_mfa, sync_to_thread=False),
    "security_keys": Provide(provide_security_keys, sync_to_thread=False),
}
