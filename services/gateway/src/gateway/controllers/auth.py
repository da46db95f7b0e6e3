"""Sign in and out, change the password; who am I."""

from __future__ import annotations

from datetime import datetime, timedelta
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

from gateway.accounts import (
    Accounts,
    Caller,
    SignedIn,
    SignInEnded,
    SignInRefused,
    WrongPassword,
    require_new_password,
)
from gateway.auth import BearerTokens, csrf_token_for
from gateway.client_address import client_address
from gateway.cookies import CSRF, DEVICE, SESSION, make_cookie, read_cookie
from gateway.errors import InvalidBody, TooManyRequests, Unauthorized, error_responses
from gateway.guards import BEFORE_PASSWORD_CHANGE, requires_authenticated
from gateway.schemas import LoginCredentials, LoginResult, PasswordChange, User
from gateway.settings import GatewaySettings
from gateway.throttle import KNOWN_FOR, Attempt, SignInThrottle, TooManyAttempts

AUTH_PATH = "/api/v1/auth"
BEFORE_CHANGE = {BEFORE_PASSWORD_CHANGE: True}


async def _begin_attempt(
    throttle: SignInThrottle,
    settings: GatewaySettings,
    request: Request[Any, Any, Any],
    username: str,
) -> Attempt:
    address = client_address(request.scope, settings.trusted_proxies)
    try:
        return await throttle.begin(
            username, address, read_cookie(request, settings, DEVICE) or None
        )
    except TooManyAttempts as exc:
        raise TooManyRequests(str(exc), exc.retry_after) from None


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
        throttle: NamedDependency[SignInThrottle],
        request: Request[Any, Any, Any],
    ) -> Response[LoginResult]:
        """Sign in: a bearer token for API clients, and session + CSRF cookies for browsers.

        Repeated failures make further attempts wait (429 with Retry-After).
        """
        attempt = await _begin_attempt(throttle, settings, request, data.username)
        try:
            signed_in = await accounts.sign_in(data.username, data.password)
        except SignInRefused as exc:
            raise Unauthorized(str(exc)) from None  # the attempt stays counted
        device = await throttle.succeeded(attempt)
        now = accounts.clock()
        expires_at = min(signed_in.expires_at, now + timedelta(seconds=settings.token_ttl_seconds))
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
            password_change_required=user.password_change_required,
        )
        cookies = _session_cookies(settings, signed_in, now)
        cookies.append(device_cookie(settings, device))
        return Response(result, cookies=cookies, headers={"Cache-Control": "no-store"})

    @post(
        "/password",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_authenticated],
        opt=BEFORE_CHANGE,
        responses=error_responses(
            HTTP_403_FORBIDDEN, HTTP_422_UNPROCESSABLE_ENTITY, HTTP_429_TOO_MANY_REQUESTS
        ),
    )
    async def change_password(
        self,
        data: JSONBody[PasswordChange],
        caller: NamedDependency[Caller],
        accounts: NamedDependency[Accounts],
        settings: NamedDependency[GatewaySettings],
        throttle: NamedDependency[SignInThrottle],
        request: Request[Any, Any, Any],
    ) -> Response[None]:
        """Choose a new password (the rules of account creation); other sessions end.

        A wrong current password counts as a failed sign-in.
        """
        require_new_password(data.current_password, data.new_password, caller.username)
        attempt = await _begin_attempt(throttle, settings, request, caller.username)
        try:
            await accounts.change_password(caller, data.current_password, data.new_password)
        except WrongPassword:
            problem = "is not your current password"
            raise InvalidBody(
                f"the current password {problem}", {"current_password": problem}
            ) from None
        except SignInEnded:
            raise Unauthorized(
                "your session ended or your account was disabled; the password is unchanged"
            ) from None
        await throttle.succeeded(attempt)
        return Response(None, status_code=HTTP_204_NO_CONTENT)

    @post(
        "/logout",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_authenticated],
        opt=BEFORE_CHANGE,
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
        expired = [make_cookie(settings, name, "", timedelta(0)) for name in (SESSION, CSRF)]
        return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=expired)

    @get("/me", guards=[requires_authenticated], opt=BEFORE_CHANGE, responses=error_responses())
    async def me(
        self, caller: NamedDependency[Caller], accounts: NamedDependency[Accounts]
    ) -> User:
        """The signed-in user; `password_change_required` says whether to change the password."""
        return User.of(await accounts.get_user(caller.user_id))


def device_cookie(settings: GatewaySettings, device: str) -> Cookie:
    # For sign-in only, never sent from another site.
    return make_cookie(settings, DEVICE, device, KNOWN_FOR, path=AUTH_PATH, samesite="strict")


def _session_cookies(settings: GatewaySettings, signed_in: SignedIn, now: datetime) -> list[Cookie]:
    lifetime = signed_in.expires_at - now
    csrf = csrf_token_for(settings.jwt_secret, signed_in.session_token)
    return [
        make_cookie(settings, SESSION, signed_in.session_token, lifetime),
        make_cookie(settings, CSRF, csrf, lifetime),
    ]
