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

SIGN_IN_PATH = "/signin"
MFA_PAGE_PATH = "/signin/mfa"  # the second step of a browser sign-in
MFA_SETUP_PATH = "/signin/mfa/setup"  # where an account that must have one sets it up
FORM_LIFETIME = timedelta(hours=1)
FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"


def _form_token(secret: bytes, cookie: str) -> str:
    return hmac.new(secret, b"signin-form:" + cookie.encode(), hashlib.sha256).hexdigest()


def _form_cookie(request: Request[Any, Any, Any], value: str) -> Cookie:
    settings = gateway_of(request).settings
    return make_cookie(
        settings, SIGN_IN_FORM, value, FORM_LIFETIME, path=SIGN_IN_PATH, samesite="strict"
    )


def _form(
    request: Request[Any, Any, Any], next_url: str, status: int = 200, **shown: str
) -> Response[str]:
    settings = gateway_of(request).settings
    cookie = read_cookie(request, settings, SIGN_IN_FORM) or secrets.token_urlsafe(24)
    secret = settings.jwt_secret
    providers = [(p.name, p.display_name) for p in gateway_of(request).identity.providers.configs]
    response = sign_in_page(
        next_url=next_url,
        csrf=_form_token(secret, cookie),
        status=status,
        providers=providers,
        **shown,
    )
    response.cookies.append(_form_cookie(request, cookie))
    return response


@get(SIGN_IN_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def sign_in_form(request: Request[Any, Any, Any]) -> Response[str]:
    return _form(request, safe_next(request.query_params.get("next")))


@post(SIGN_IN_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def sign_in(request: Request[Any, Any, Any]) -> Response[Any]:
    gateway = gateway_of(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_MEDIA_TYPE:
        return problem_page(415, "Sign in", f"send the form as {FORM_MEDIA_TYPE}")
    try:
        fields = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return problem_page(400, "Sign in", "the form is not valid UTF-8")
    next_url = safe_next(fields.get("next"))
    cookie = read_cookie(request, gateway.settings, SIGN_IN_FORM)
    expected = _form_token(gateway.settings.jwt_secret, cookie)
    if not cookie or not hmac.compare_digest(fields.get("csrf", ""), expected):
        return _form(request, next_url, 403, error="The form expired; please sign in again.")
    username, password = fields.get("username", ""), fields.get("password", "")
    if not username or not password or len(username) > 64 or len(password) > 1024:
        return _form(request, next_url, 400, error="Enter your username and password.")
    try:
        attempt = await _begin_attempt(gateway.throttle, gateway.settings, request, username)
    except TooManyRequests as exc:
        return _form(request, next_url, 429, error=str(exc), username=username)
    try:
        signed_in = await gateway.accounts.sign_in(
            username, password, client_info(request, gateway.settings)
        )
    except SignInRefused as exc:
        return _form(request, next_url, 401, error=str(exc).capitalize() + ".", username=username)
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


def pending_page(caller: Caller, settings: GatewaySettings, next_url: str) -> Response[str] | None:
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
        return change_password_first()
    # MFA_ENROLLMENT: set one up on the setup page, then come back.
    location = f"{MFA_SETUP_PATH}?{urlencode({'next': safe_next(next_url)})}"
    return Response("", status_code=303, headers={"Location": location})


def change_password_first() -> Response[str]:
    return problem_page(
        403,
        "Change your password first",
        "Your password was generated for you: choose your own first.",
    )


def after_first_factor(signed_in: SignedIn, next_url: str, *, mfa_for_all: bool = False) -> str:
    """Where a browser goes once its first factor is checked: on to `next`; first to
    the second-factor page when the account has one, or to set one up when the
    account must have one (governance, admin, or everyone by JHAAS_MFA_REQUIRED_FOR_ALL)."""
    user = signed_in.user
    if signed_in.mfa_pending:
        return f"{MFA_PAGE_PATH}?{urlencode({'next': next_url})}"
    if not user.mfa_enrolled and (mfa_for_all or MFA_ROLES.intersection(user.roles)):
        return f"{MFA_SETUP_PATH}?{urlencode({'next': next_url})}"
    return next_url
