"""Sign in and out; who am I."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_204_NO_CONTENT,
    HTTP_403_FORBIDDEN,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)

from gateway.accounts import Accounts, Caller, SignInRefused
from gateway.auth import BearerTokens, csrf_token_for
from gateway.errors import TooManyRequests, Unauthorized, error_responses
from gateway.guards import CSRF_COOKIE, SESSION_COOKIE, requires_authenticated
from gateway.schemas import LoginCredentials, LoginResult, User
from gateway.settings import GatewaySettings
from gateway.throttle import LoginThrottle, TooManyAttempts


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post(
        "/login",
        status_code=HTTP_200_OK,
        security=[],
        responses=error_responses(HTTP_422_UNPROCESSABLE_ENTITY, HTTP_429_TOO_MANY_REQUESTS),
    )
    async def login(
        self,
        data: JSONBody[LoginCredentials],
        accounts: NamedDependency[Accounts],
        tokens: NamedDependency[BearerTokens],
        settings: NamedDependency[GatewaySettings],
        throttle: NamedDependency[LoginThrottle],
        request: Request[Any, Any, Any],
    ) -> Response[LoginResult]:
        """Sign in: a bearer token for API clients, and session + CSRF cookies for browsers."""
        address = request.client.host if request.client else "unknown"
        try:
            throttle.check(data.username, address, time.monotonic())
        except TooManyAttempts as exc:
            raise TooManyRequests(str(exc), exc.retry_after) from None
        try:
            signed_in = await accounts.sign_in(data.username, data.password)
        except SignInRefused as exc:
            throttle.failed(data.username, address, time.monotonic())
            raise Unauthorized(str(exc)) from None
        throttle.succeeded(data.username)
        now = accounts.clock()
        expires_at = min(signed_in.expires_at, now + _seconds(settings.token_ttl_seconds))
        user = signed_in.user
        token = tokens.issue(
            user_id=user.user_id,
            username=user.username,
            roles=user.roles,
            session_id=signed_in.session_id,
            now=now,
            expires_at=expires_at,
        )
        result = LoginResult(
            access_token=token,
            expires_in=int((expires_at - now).total_seconds()),
            user=User.of(user),
        )
        max_age = int((signed_in.expires_at - now).total_seconds())
        cookies = [
            Cookie(
                key=SESSION_COOKIE,
                value=signed_in.session_token,
                max_age=max_age,
                path="/",
                httponly=True,
                secure=settings.cookie_secure,
                samesite="lax",
            ),
            Cookie(
                key=CSRF_COOKIE,
                value=csrf_token_for(settings.jwt_secret, signed_in.session_token),
                max_age=max_age,
                path="/",
                httponly=False,
                secure=settings.cookie_secure,
                samesite="lax",
            ),
        ]
        return Response(result, cookies=cookies, headers={"Cache-Control": "no-store"})

    @post(
        "/logout",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_authenticated],
        responses=error_responses(HTTP_403_FORBIDDEN),
    )
    async def logout(
        self,
        caller: NamedDependency[Caller],
        accounts: NamedDependency[Accounts],
        settings: NamedDependency[GatewaySettings],
    ) -> Response[None]:
        """End the session: its cookie and every bearer token issued with it stop working."""
        await accounts.end_session(caller.session_id)
        expired = [
            Cookie(
                key=name,
                value="",
                max_age=0,
                path="/",
                httponly=name == SESSION_COOKIE,
                secure=settings.cookie_secure,
                samesite="lax",
            )
            for name in (SESSION_COOKIE, CSRF_COOKIE)
        ]
        return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=expired)

    @get("/me", guards=[requires_authenticated], responses=error_responses())
    async def me(
        self, caller: NamedDependency[Caller], accounts: NamedDependency[Accounts]
    ) -> User:
        """The signed-in user."""
        return User.of(await accounts.get_user(caller.user_id))


def _seconds(value: int) -> timedelta:
    return timedelta(seconds=value)
