"""The browser's sign-in page: where the OAuth authorize step sends a stranger.

A plain form (no script), protected against login CSRF by a random cookie
(SameSite=Strict; `__Host-` over https, so no sibling host can plant it) and
a form field bound to it by HMAC.
After signing in it goes to `next`, which may only be a path on this site.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from litestar import MediaType, Request, Response, get, post
from litestar.datastructures import Cookie

from gateway.accounts import MFA_ROLES, Caller, Pending, SignedIn, SignInRefused
from gateway.context import gateway_of
from gateway.controllers.auth import (
    _begin_attempt,
    _session_cookies,
    client_info,
    device_cookie,
)
from gateway.cookies import SIGN_IN_FORM, make_cookie, read_cookie
from gateway.errors import TooManyRequests
from gateway.oauth.pages import problem_page, sign_in_page
from gateway.redirects import safe_next
from gateway.settings import GatewaySettings
from gateway.web.i18n import N_
from gateway.web.render import viewer_of

SIGN_IN_PATH = "/signin"
MFA_PAGE_PATH = "/signin/mfa"  # the second step of a browser sign-in
MFA_SETUP_PATH = "/signin/mfa/setup"  # where an account that must have one sets it up
# Where a generated password is replaced (and any changed).
PASSWORD_PATH = "/signin/password"  # noqa: S105 (a path, not a password)
FORM_LIFETIME = timedelta(hours=1)
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
TITLE = N_("Sign in")
NOT_UTF8 = N_("the form is not valid UTF-8")
FORM_EXPIRED = N_("The form expired; please sign in again.")


def _form_token(secret: bytes, cookie: str) -> str:
    return hmac.new(secret, b"signin-form:" + cookie.encode(), hashlib.sha256).hexdigest()


def _form_cookie(request: Request[Any, Any, Any], value: str) -> Cookie:
    settings = gateway_of(request).settings
    return make_cookie(
        settings, SIGN_IN_FORM, value, FORM_LIFETIME, path=SIGN_IN_PATH, samesite="strict"
    )


async def _form(
    request: Request[Any, Any, Any],
    next_url: str,
    status: int = 200,
    *,
    error: str = "",
    errors: dict[str, str] | None = None,
    username: str = "",
) -> Response[Any]:
    settings = gateway_of(request).settings
    cookie = read_cookie(request, settings, SIGN_IN_FORM) or secrets.token_urlsafe(24)
    secret = settings.jwt_secret
    providers = [(p.name, p.display_name) for p in gateway_of(request).identity.providers.configs]
    response = sign_in_page(
        next_url=next_url,
        csrf=_form_token(secret, cookie),
        viewer=await viewer_of(request),
        status=status,
        providers=providers,
        error=error,
        errors=errors,
        username=username,
    )
    response.cookies.append(_form_cookie(request, cookie))
    return response


@get(SIGN_IN_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def sign_in_form(request: Request[Any, Any, Any]) -> Response[Any]:
    return await _form(request, safe_next(request.query_params.get("next")))


@post(SIGN_IN_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    gateway = gateway_of(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_MEDIA_TYPE:
        return problem_page(415, TITLE, f"send the form as {FORM_MEDIA_TYPE}")
    try:
        fields = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return problem_page(400, TITLE, NOT_UTF8)
    next_url = safe_next(fields.get("next"))
    cookie = read_cookie(request, gateway.settings, SIGN_IN_FORM)
    expected = _form_token(gateway.settings.jwt_secret, cookie)
    if not cookie or not hmac.compare_digest(fields.get("csrf", ""), expected):
        return await _form(request, next_url, 403, error=FORM_EXPIRED)
    username, password = fields.get("username", ""), fields.get("password", "")
    missing = _missing(username, password)
    if missing:
        return await _form(request, next_url, 400, errors=missing, username=username[:64])
    try:
        attempt = await _begin_attempt(gateway.throttle, gateway.settings, request, username)
    except TooManyRequests as exc:
        return await _form(request, next_url, 429, error=str(exc), username=username)
    try:
        signed_in = await gateway.accounts.sign_in(
            username, password, client_info(request, gateway.settings)
        )
    except SignInRefused as exc:
        return await _form(
            request, next_url, 401, error=str(exc).capitalize() + ".", username=username
        )
    device = await gateway.throttle.succeeded(attempt)
    cookies = _session_cookies(gateway.settings, signed_in, gateway.accounts.clock())
    cookies.append(device_cookie(gateway.settings, device))
    return Response(
        "",
        status_code=303,
        headers={
            "Location": after_first_factor(
                signed_in, next_url, mfa_for_all=gateway.settings.mfa_required_for_all
            )
        },
        cookies=cookies,
    )


def _missing(username: str, password: str) -> dict[str, str]:
    """What the form lacks, by field: an empty or overlong field is refused unchecked."""
    missing = {}
    if not username or len(username) > 64:
        missing["username"] = N_("Enter your username.")
    if not password or len(password) > 1024:
        missing["password"] = N_("Enter your password.")
    return missing


def pending_page(caller: Caller, settings: GatewaySettings, next_url: str) -> Response[Any] | None:
    """For the pages (join, OAuth authorize): None when the browser's session is
    fully signed in, else where it must go first. A session still waiting for
    its second factor is sent to confirm it, never let through."""
    pending = caller.pending(mfa_for_all=settings.mfa_required_for_all)
    if pending is None:
        return None
    if pending is Pending.SECOND_FACTOR:
        location = f"{MFA_PAGE_PATH}?{urlencode({'next': safe_next(next_url)})}"
        return Response("", status_code=303, headers={"Location": location})
    if pending is Pending.PASSWORD_CHANGE:
        return change_password_first(caller, next_url)
    # MFA_ENROLLMENT: set one up on the setup page, then come back.
    location = f"{MFA_SETUP_PATH}?{urlencode({'next': safe_next(next_url)})}"
    return Response("", status_code=303, headers={"Location": location})


def change_password_first(caller: Caller, next_url: str) -> Response[Any]:
    """Refused, as every other route refuses a caller whose password was generated
    for them, with the way on: the password page, then back to `next_url`."""
    location = f"{PASSWORD_PATH}?{urlencode({'next': safe_next(next_url)})}"
    return problem_page(
        403,
        N_("Change your password first"),
        N_("Your password was generated for you: choose your own first."),
        viewer=caller,
        action=(location, N_("Change your password")),
    )


def after_first_factor(signed_in: SignedIn, next_url: str, *, mfa_for_all: bool = False) -> str:
    """Where a browser goes once its first factor is checked: on to `next`; first to
    the second-factor page when the account has one, or to set one up when the
    account must have one (governance, admin, or everyone by JHAAS_MFA_REQUIRED_FOR_ALL);
    a password generated for the account is replaced first."""
    user = signed_in.user
    if signed_in.mfa_pending:
        return f"{MFA_PAGE_PATH}?{urlencode({'next': next_url})}"
    if user.password_change_required:
        return f"{PASSWORD_PATH}?{urlencode({'next': next_url})}"
    if not user.mfa_enrolled and (mfa_for_all or MFA_ROLES.intersection(user.roles)):
        return f"{MFA_SETUP_PATH}?{urlencode({'next': next_url})}"
    return next_url
