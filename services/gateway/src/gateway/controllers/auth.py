"""Sign in and out, change the password; who am I."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import Cookie
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import (
    HTTP_200_OK,
    HTTP_204_NO_CONTENT,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
)

from gateway.accounts import (
    Accounts,
    Caller,
    ClientInfo,
    Pending,
    SignedIn,
    SignInEnded,
    SignInRefused,
    WrongPassword,
    require_new_password,
)
from gateway.auth import BearerTokens, csrf_token_for
from gateway.client_address import client_address
from gateway.cookies import CSRF, DEVICE, SESSION, make_cookie, read_cookie
from gateway.errors import (
    InvalidBody,
    TooManyRequests,
    Unauthorized,
    error_responses,
)
from gateway.guards import REACHABLE_BEFORE, requires_authenticated, requires_session
from gateway.schemas import (
    LoginCredentials,
    LoginResult,
    PasswordChange,
    Session,
    SessionList,
    User,
)
from gateway.settings import GatewaySettings
from gateway.throttle import KNOWN_FOR, Attempt, SignInThrottle, TooManyAttempts

AUTH_PATH = "/api/v1/auth"
# Reachable before anything else is done: whoever must change a password or
# confirm a second factor can still see who they are and sign out.
ANY_STAGE = {REACHABLE_BEFORE: frozenset(Pending)}
BEFORE_CHANGE = {REACHABLE_BEFORE: frozenset({Pending.PASSWORD_CHANGE, Pending.MFA_ENROLLMENT})}


def client_info(request: Request[Any, Any, Any], settings: GatewaySettings) -> ClientInfo:
    return ClientInfo.of(
        client_address(request.scope, settings.trusted_proxies),
        request.headers.get("user-agent"),
    )


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
            signed_in = await accounts.sign_in(
                data.username, data.password, client_info(request, settings)
            )
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
            mfa_required=signed_in.mfa_pending,
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
        guards=[requires_authenticated, requires_session],
        opt=ANY_STAGE,
        responses=error_responses(HTTP_403_FORBIDDEN),
    )
    async def logout(
        self,
        caller: NamedDependency[Caller],
        accounts: NamedDependency[Accounts],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> Response[None]:
        """Anyone signed in: end this session; its cookie and every bearer token
        issued with it stop working."""
        await accounts.end_session(caller, client_info(request, settings))
        return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=_expired(settings))

    @post(
        "/logout-everywhere",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_authenticated, requires_session],
        opt=ANY_STAGE,
        responses=error_responses(HTTP_403_FORBIDDEN),
    )
    async def logout_everywhere(
        self,
        caller: NamedDependency[Caller],
        accounts: NamedDependency[Accounts],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> Response[None]:
        """Anyone signed in: end every session of yours, this one included."""
        await accounts.end_every_session(caller, client_info(request, settings))
        return Response(None, status_code=HTTP_204_NO_CONTENT, cookies=_expired(settings))

    @get(
        "/sessions",
        guards=[requires_authenticated, requires_session],
        responses=error_responses(HTTP_403_FORBIDDEN),
    )
    async def list_sessions(
        self, caller: NamedDependency[Caller], accounts: NamedDependency[Accounts]
    ) -> SessionList:
        """Anyone signed in: your live sessions, newest first (yours only)."""
        records = await accounts.sessions_of(caller.user_id)
        return SessionList(
            items=[
                Session(
                    session_id=record.session_id,
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                    method=record.method,
                    address=record.address,
                    user_agent=record.user_agent,
                    current=record.session_id == caller.session_id,
                    second_factor_confirmed=record.mfa_at is not None,
                )
                for record in records
            ]
        )

    @delete(
        "/sessions/{session_id:str}",
        status_code=HTTP_204_NO_CONTENT,
        guards=[requires_authenticated, requires_session],
        responses=error_responses(HTTP_403_FORBIDDEN, HTTP_404_NOT_FOUND),
    )
    async def revoke_session(
        self,
        session_id: FromPath[str],
        caller: NamedDependency[Caller],
        accounts: NamedDependency[Accounts],
        settings: NamedDependency[GatewaySettings],
        request: Request[Any, Any, Any],
    ) -> Response[None]:
        """Anyone signed in: end one of your own sessions (another's id: 404)."""
        await accounts.end_other_session(caller, session_id, client_info(request, settings))
        ended_this = session_id == caller.session_id
        return Response(
            None,
            status_code=HTTP_204_NO_CONTENT,
            cookies=_expired(settings) if ended_this else [],
        )

    @get("/me", guards=[requires_authenticated], opt=ANY_STAGE, responses=error_responses())
    async def me(
        self, caller: NamedDependency[Caller], accounts: NamedDependency[Accounts]
    ) -> User:
        """The signed-in user; `password_change_required` says whether to change the password."""
        return User.of(await accounts.get_user(caller.user_id))


def _expired(settings: GatewaySettings) -> list[Cookie]:
    return [make_cookie(settings, name, "", timedelta(0)) for name in (SESSION, CSRF)]


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
