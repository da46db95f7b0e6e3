"""The browser's second step of signing in (/signin/mfa) and the setup page.

`/signin` (the password form) and an identity provider's sign-in send a
session that still owes its second factor here. The code form is a plain
form post bound to the session's CSRF token; the security-key button runs
/static/mfa.js against the JSON API with the same token.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qsl, urlencode

from litestar import MediaType, Request, Response, get, post

from gateway.accounts import Caller, Pending
from gateway.auth import csrf_token_for
from gateway.context import gateway_of
from gateway.controllers.auth import client_info
from gateway.controllers.mfa import begin_check
from gateway.controllers.signin import MFA_PAGE_PATH, change_password_first
from gateway.controllers.signin import MFA_SETUP_PATH as SETUP_PATH
from gateway.errors import TooManyRequests
from gateway.guards import session_caller
from gateway.mfa.keys import SecurityKeys
from gateway.mfa.pages import second_step_page, setup_page
from gateway.mfa.service import SecondFactors, WrongCode
from gateway.oauth.pages import problem_page
from gateway.redirects import safe_next
from gateway.web.i18n import N_

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
TITLE = N_("Confirm it is you")


def _to(path: str, next_url: str) -> str:
    return f"{path}?{urlencode({'next': next_url})}"


def _redirect(location: str) -> Response[Any]:
    return Response("", status_code=303, headers={"Location": location})


async def _second_step(
    request: Request[Any, Any, Any],
    caller: Caller,
    session_token: str,
    next_url: str,
    status: int = 200,
    error: str = "",
) -> Response[Any]:
    gateway = gateway_of(request)
    mfa: SecondFactors = gateway.mfa
    found = await mfa.status(caller)
    return second_step_page(
        next_url=next_url,
        csrf=csrf_token_for(gateway.settings.jwt_secret, session_token),
        totp=found.totp,
        keys=bool(found.keys) and found.webauthn_available,
        recovery_codes=found.recovery_codes_left > 0,
        viewer=caller,
        status=status,
        error=error,
    )


def _elsewhere(request: Request[Any, Any, Any], caller: Caller, next_url: str) -> str | None:
    """Where a caller who owes no second factor goes instead of this page."""
    settings = gateway_of(request).settings
    pending = caller.pending(mfa_for_all=settings.mfa_required_for_all)
    if pending is Pending.SECOND_FACTOR:
        return None
    if pending is Pending.MFA_ENROLLMENT:
        return _to(SETUP_PATH, next_url)
    return next_url


@get(MFA_PAGE_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def second_step_form(request: Request[Any, Any, Any]) -> Response[Any]:
    """Whoever signed in with a first factor and owes a second: the form; anyone
    else goes on (or to sign in first)."""
    next_url = safe_next(request.query_params.get("next"))
    session = await session_caller(request)
    if session is None:
        return _redirect(_to("/signin", _to(MFA_PAGE_PATH, next_url)))
    caller, token = session
    elsewhere = _elsewhere(request, caller, next_url)
    if elsewhere is not None:
        return _redirect(elsewhere)
    return await _second_step(request, caller, token, next_url)


@post(MFA_PAGE_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def second_step(request: Request[Any, Any, Any]) -> Response[Any]:
    """The code form's post: an app code or a recovery code, throttled and audited."""
    gateway = gateway_of(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_MEDIA_TYPE:
        return problem_page(415, TITLE, f"send the form as {FORM_MEDIA_TYPE}")
    try:
        fields = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return problem_page(400, TITLE, N_("the form is not valid UTF-8"))
    next_url = safe_next(fields.get("next"))
    session = await session_caller(request)
    if session is None:
        return _redirect(_to("/signin", _to(MFA_PAGE_PATH, next_url)))
    caller, token = session
    expected = csrf_token_for(gateway.settings.jwt_secret, token)
    if not hmac.compare_digest(fields.get("csrf", "").encode(), expected.encode()):
        return problem_page(
            403,
            TITLE,
            N_("The form expired; please reload the page."),
            viewer=caller,
        )
    if not caller.mfa_pending:
        return _redirect(_elsewhere(request, caller, next_url) or next_url)
    code = fields.get("code", "")
    if not code or len(code) > 64:
        return await _second_step(request, caller, token, next_url, 400, N_("Enter a code."))
    try:
        attempt = await begin_check(request, caller)
    except TooManyRequests as exc:
        return await _second_step(request, caller, token, next_url, 429, str(exc))
    try:
        await gateway.mfa.verify_code(caller, code, client_info(request, gateway.settings))
    except WrongCode as exc:
        message = f"That code {exc}."
        return await _second_step(request, caller, token, next_url, 401, message)
    await gateway.throttle.succeeded(attempt)
    return _redirect(next_url)


@get(SETUP_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def setup_form(request: Request[Any, Any, Any]) -> Response[Any]:
    """Anyone signed in (who confirmed any second factor they have, and replaced a
    generated password): set one up."""
    gateway = gateway_of(request)
    next_url = safe_next(request.query_params.get("next"))
    session = await session_caller(request)
    if session is None:
        return _redirect(_to("/signin", _to(SETUP_PATH, next_url)))
    caller, token = session
    pending = caller.pending(mfa_for_all=gateway.settings.mfa_required_for_all)
    if pending is Pending.SECOND_FACTOR:
        return _redirect(_to(MFA_PAGE_PATH, _to(SETUP_PATH, next_url)))
    if pending is Pending.PASSWORD_CHANGE:
        # Every button of the page would be refused (the setup routes are not
        # reachable before the password is replaced): say so, as the other pages do.
        return change_password_first(caller, _to(SETUP_PATH, next_url))
    found = await gateway.mfa.status(caller)
    keys: SecurityKeys = gateway.security_keys
    return setup_page(
        next_url=next_url,
        csrf=csrf_token_for(gateway.settings.jwt_secret, token),
        totp=found.totp,
        keys=len(found.keys),
        required=found.required,
        webauthn=keys.rp.usable,
        viewer=caller,
    )
