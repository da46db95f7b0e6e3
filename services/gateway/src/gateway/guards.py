"""Guards: who may reach a route. Services check their own domain rules."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gateway.accounts import Caller, Pending
from gateway.auth import InvalidToken, csrf_token_for, same_secret
from gateway.context import caller_of, gateway_of, set_caller
from gateway.cookies import CSRF, SESSION, cookie_name, read_cookie
from gateway.errors import Forbidden, Unauthorized
from gateway.personal_tokens import PREFIX as PERSONAL_TOKEN_PREFIX
from gateway.personal_tokens import TokenRefused
from gateway.settings import GatewaySettings

CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Route option: the `Pending` states in which a caller may still reach the route
# (a frozenset); every other route answers 403 saying what to do first.
REACHABLE_BEFORE = "reachable_before"
FIRST = {
    Pending.SECOND_FACTOR: (
        "finish signing in first: confirm your second factor at POST /api/v1/auth/mfa/verify"
    ),
    Pending.PASSWORD_CHANGE: (
        "change your password first: POST /api/v1/auth/password with "
        '{"current_password": ..., "new_password": ...}'
    ),
    Pending.MFA_ENROLLMENT: (
        "set up a second factor first (mandatory for your role): "
        "POST /api/v1/auth/mfa/totp, then confirm it with a code"
    ),
}
CHANGE_PASSWORD_FIRST = FIRST[Pending.PASSWORD_CHANGE]
STEP_UP_FIRST = (
    "confirm your second factor first: POST /api/v1/auth/mfa/verify "
    "(this change needs a check within the last few minutes)"
)

SIGN_IN_AGAIN_FIRST = (
    "sign in again first: this change needs proof within the last few minutes that it is you"
)


async def requires_authenticated(
    connection: ASGIConnection[Any, Any, Any, Any], route_handler: BaseRouteHandler
) -> None:
    """A bearer token or the session cookie; cookie callers also prove it is them (CSRF).

    A caller with something to do first (a second factor to confirm, a
    generated password to replace, a mandatory second factor to set up)
    reaches only the routes whose REACHABLE_BEFORE option names that state.
    """
    caller = await _authenticate(connection)
    settings = gateway_of(connection).settings
    pending = caller.pending(mfa_for_all=settings.mfa_required_for_all)
    if pending is not None and pending not in route_handler.opt.get(REACHABLE_BEFORE, ()):
        raise Forbidden(FIRST[pending])
    set_caller(connection, caller)


def requires_admin(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    if not caller_of(connection).is_admin:
        raise Forbidden("only an admin can do this")


def requires_session(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """For a person signed in, not a script: a personal API token is refused."""
    if caller_of(connection).api_token_id is not None:
        raise Forbidden("sign in interactively for this: a personal API token cannot do it")


def requires_recent_mfa(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Step-up: the caller's session confirmed its second factor within the last
    JHAAS_STEP_UP_SECONDS (never true for a personal API token)."""
    gateway = gateway_of(connection)
    caller = caller_of(connection)
    now = gateway.accounts.clock()
    if not caller.mfa_checked_within(gateway.settings.step_up_seconds, now):
        raise Forbidden(STEP_UP_FIRST)


def requires_recent_sign_in(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Step-up for everyone: a second factor confirmed, or (for an account without one)
    a sign-in, within the last JHAAS_STEP_UP_SECONDS. Guards what would hand the
    account to whoever holds a stolen session: a new e-mail address (then a reset),
    a personal token, a linked identity, a new second factor, the account's deletion."""
    gateway = gateway_of(connection)
    caller = caller_of(connection)
    if not caller.authenticated_within(gateway.settings.step_up_seconds, gateway.accounts.clock()):
        raise Forbidden(proof_first(caller))


def proof_first(caller: Caller) -> str:
    """What a caller without recent proof must do: check the factor it has, else sign in."""
    return STEP_UP_FIRST if caller.mfa_enrolled else SIGN_IN_AGAIN_FIRST


async def _authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> Caller:
    gateway = gateway_of(connection)
    authorization = connection.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("the Authorization header must read 'Bearer <token>'")
        if token.strip().startswith(PERSONAL_TOKEN_PREFIX):
            try:
                return await gateway.personal_tokens.caller_for(token.strip())
            except TokenRefused as exc:
                raise Unauthorized(str(exc)) from None
        try:
            claims = gateway.tokens.verify(token.strip())
        except InvalidToken as exc:
            raise Unauthorized(str(exc)) from None
        caller = await gateway.accounts.caller_for_token(claims)
        if caller is None:
            raise Unauthorized("the session of this token has ended; sign in again")
        return caller

    session_token = read_cookie(connection, gateway.settings, SESSION)
    if not session_token:
        raise Unauthorized(
            "sign in first: send 'Authorization: Bearer <token>' or the session cookie"
        )
    caller = await gateway.accounts.caller_for_session_token(session_token)
    if caller is None:
        raise Unauthorized("the session has expired or ended; sign in again")
    if connection.scope.get("method", "GET") not in SAFE_METHODS:
        _check_csrf(connection, gateway.settings, session_token)
    return caller


async def session_caller(
    connection: ASGIConnection[Any, Any, Any, Any],
) -> tuple[Caller, str] | None:
    """The browser's signed-in caller and session token, from the session cookie alone
    (for the HTML pages, which redirect a stranger to sign in rather than answer 401)."""
    gateway = gateway_of(connection)
    session_token = read_cookie(connection, gateway.settings, SESSION)
    if not session_token:
        return None
    caller = await gateway.accounts.caller_for_session_token(session_token)
    return None if caller is None else (caller, session_token)


def _check_csrf(
    connection: ASGIConnection[Any, Any, Any, Any], settings: GatewaySettings, session_token: str
) -> None:
    """Double submit, bound to the session: header == cookie == the session's own token."""
    csrf_cookie = cookie_name(settings, CSRF)
    sent = connection.headers.get(CSRF_HEADER)
    if not sent:
        raise Forbidden(
            f"missing {CSRF_HEADER} header: a request signed in by cookie must repeat "
            f"the {csrf_cookie} cookie in it"
        )
    cookie = connection.cookies.get(csrf_cookie, "")
    expected = csrf_token_for(settings.jwt_secret, session_token)
    if not (same_secret(sent, cookie) and same_secret(sent, expected)):
        raise Forbidden(f"the {CSRF_HEADER} header does not match this session's {csrf_cookie}")
