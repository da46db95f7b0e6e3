"""The browser's page to change one's password (/signin/password).

Where a person whose password was generated for them (the first admin, an
account made with `password_change_required`) is sent after the password
form, and where anyone signed in chooses a new password. A plain form post
bound to the session's CSRF token; the rules and the throttle are those of
POST /api/v1/auth/password. Every problem is shown next to its field; what
was typed is never sent back (they are passwords).
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode

from litestar import MediaType, Request, Response, get, post

from gateway.accounts import Caller, Pending, SignInEnded, WrongPassword, require_new_password
from gateway.auth import csrf_token_for
from gateway.context import gateway_of
from gateway.controllers.auth import _begin_attempt
from gateway.controllers.signin import MFA_PAGE_PATH, MFA_SETUP_PATH, PASSWORD_PATH
from gateway.errors import TooManyRequests
from gateway.guards import session_caller
from gateway.oauth.pages import problem_page
from gateway.password_rules import MIN_DISTINCT_CHARACTERS, MIN_PASSWORD_LENGTH
from gateway.redirects import safe_next
from gateway.web.i18n import N_
from gateway.web.render import Page
from jhaas_schemas.errors import InvalidInput

FORM_MEDIA_TYPE = "application/x-www-form-urlencoded"
TITLE = N_("Change your password")
MAX_PASSWORD = 1024


# The rules' words (password_rules.py, accounts.py) as whole sentences the catalog
# can translate; a rule without one here is shown in English, as a sentence.
RULE_SENTENCES = {
    "must not be the username": N_("The new password must not be your username."),
    "is one of the most common passwords; choose another": N_(
        "The new password is one of the most common passwords; choose another."
    ),
    "is a common password with digits or symbols added; choose one that is not built on a "
    "common word": N_(
        "The new password is a common word with digits or symbols added; choose one that is "
        "not built on a common word."
    ),
    f"must use at least {MIN_DISTINCT_CHARACTERS} different characters": N_(
        "The new password must use at least 5 different characters."
    ),
    "must differ from the current password": N_(
        "The new password must differ from your current password."
    ),
}


def rule_sentence(problem: str) -> str:
    """What is wrong with a new password, as a sentence of the catalog."""
    return RULE_SENTENCES.get(problem, f"The new password {problem}.")


def _to(path: str, next_url: str) -> str:
    return f"{path}?{urlencode({'next': next_url})}"


def _redirect(location: str) -> Response[Any]:
    return Response("", status_code=303, headers={"Location": location})


def password_page(
    *,
    next_url: str,
    csrf: str,
    viewer: Caller,
    required: bool,
    status: int = 200,
    error: str = "",
    errors: dict[str, str] | None = None,
) -> Page:
    """`errors` by field id (English, translated when shown); `error` about the whole form."""
    fields = dict(errors or {})
    problems = [("", error)] if error else []
    problems += list(fields.items())
    return Page(
        "password_change.html",
        title=TITLE,
        viewer=viewer,
        status=status,
        next_url=next_url,
        csrf=csrf,
        required=required,
        problems=problems,
        errors=fields,
        min_length=MIN_PASSWORD_LENGTH,
    )


def _after(caller: Caller, request: Request[Any, Any, Any], next_url: str) -> str:
    """Where the browser goes once the password is changed: to set up a second
    factor first when the account must have one, else on."""
    settings = gateway_of(request).settings
    changed = replace(caller, password_change_required=False)
    if changed.pending(mfa_for_all=settings.mfa_required_for_all) is Pending.MFA_ENROLLMENT:
        return _to(MFA_SETUP_PATH, next_url)
    return next_url


async def _session(
    request: Request[Any, Any, Any], next_url: str
) -> tuple[Caller, str] | Response[Any]:
    session = await session_caller(request)
    if session is None:
        return _redirect(_to("/signin", _to(PASSWORD_PATH, next_url)))
    caller, token = session
    if caller.mfa_pending:  # the second factor comes first
        return _redirect(_to(MFA_PAGE_PATH, _to(PASSWORD_PATH, next_url)))
    return caller, token


@get(PASSWORD_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def password_form(request: Request[Any, Any, Any]) -> Response[Any]:
    """Anyone signed in (strangers: to sign in first): the form."""
    next_url = safe_next(request.query_params.get("next"))
    session = await _session(request, next_url)
    if isinstance(session, Response):
        return session
    caller, token = session
    return password_page(
        next_url=next_url,
        csrf=csrf_token_for(gateway_of(request).settings.jwt_secret, token),
        viewer=caller,
        required=caller.password_change_required,
    )


def _problems(current: str, new: str, again: str) -> dict[str, str]:
    """What the form lacks, by field, before anything is checked against the account."""
    problems = {}
    if not current or len(current) > MAX_PASSWORD:
        problems["current_password"] = N_("Enter your current password.")
    if len(new) < MIN_PASSWORD_LENGTH or len(new) > MAX_PASSWORD:
        problems["new_password"] = N_("Choose a new password of at least 12 characters.")
    elif new != again:
        problems["again"] = N_("The two new passwords are not the same.")
    return problems


@post(PASSWORD_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def change_password(request: Request[Any, Any, Any]) -> Response[Any]:
    """Anyone signed in, with their current password: the new one (the rules of
    account creation); their other sessions end."""
    gateway = gateway_of(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_MEDIA_TYPE:
        return problem_page(415, TITLE, f"send the form as {FORM_MEDIA_TYPE}")
    try:
        fields = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
    except UnicodeDecodeError:
        return problem_page(400, TITLE, N_("the form is not valid UTF-8"))
    next_url = safe_next(fields.get("next"))
    session = await _session(request, next_url)
    if isinstance(session, Response):
        return session
    caller, token = session
    csrf = csrf_token_for(gateway.settings.jwt_secret, token)
    if not hmac.compare_digest(fields.get("csrf", "").encode(), csrf.encode()):
        return problem_page(
            403, TITLE, N_("The form expired; please reload the page."), viewer=caller
        )

    def again(status: int, error: str = "", errors: dict[str, str] | None = None) -> Page:
        return password_page(
            next_url=next_url,
            csrf=csrf,
            viewer=caller,
            required=caller.password_change_required,
            status=status,
            error=error,
            errors=errors,
        )

    current, new = fields.get("current_password", ""), fields.get("new_password", "")
    missing = _problems(current, new, fields.get("again", ""))
    if missing:
        return again(400, errors=missing)
    try:
        require_new_password(current, new, caller.username)
    except InvalidInput as exc:
        problem = exc.fields.get("new_password", str(exc))
        return again(422, errors={"new_password": rule_sentence(problem)})
    try:
        attempt = await _begin_attempt(gateway.throttle, gateway.settings, request, caller.username)
    except TooManyRequests as exc:
        return again(429, error=str(exc))
    try:
        await gateway.accounts.change_password(caller, current, new)
    except WrongPassword:
        return again(422, errors={"current_password": N_("That is not your current password.")})
    except SignInEnded:
        return _redirect(_to("/signin", _to(PASSWORD_PATH, next_url)))
    await gateway.throttle.succeeded(attempt)
    return _redirect(_after(caller, request, next_url))
