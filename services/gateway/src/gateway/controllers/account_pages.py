"""Your account's page (issue 11): /account and its forms, the second-factor check
that changes ask for (/account/confirm), and signing out (/signout).

Templates web/templates/account/*.html. Each form calls what the API route of
the same thing calls: `Profiles.update` (PATCH /api/v1/me, with its recent-proof
rule and throttle for a new e-mail address), `Accounts.end_other_session` /
`end_every_session` / `end_session` (the /api/v1/auth session routes),
`PersonalTokens.revoke` (DELETE /api/v1/tokens/{id}), `SecondFactors.verify_code`
(POST /api/v1/auth/mfa/verify, throttled like it). Someone else's session or
token id is unknown (404 page), as in the API.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath

from gateway.accounts import Caller
from gateway.auth import csrf_token_for
from gateway.context import gateway_of
from gateway.controllers.auth import _expired, client_info
from gateway.controllers.me import profiles
from gateway.controllers.mfa import begin_check
from gateway.controllers.signin import MFA_SETUP_PATH, PASSWORD_PATH, SIGN_IN_PATH
from gateway.errors import STATUS_OF_CODE, ApiError, TooManyRequests, body_error_fields
from gateway.guards import session_caller
from gateway.mfa.service import WrongCode
from gateway.oauth.pages import problem_page
from gateway.redirects import safe_next
from gateway.self_schemas import ProfileUpdate
from gateway.throttle import TooManyAttempts
from gateway.web.actions import (
    Visitor,
    first,
    foreign_form_page,
    form_fields,
    see_other,
    signed_in,
)
from gateway.web.i18n import N_
from gateway.web.render import Page
from jhaas_schemas.errors import DomainError

Request_ = Request[Any, Any, Any]

ACCOUNT_PATH = "/account"
CONFIRM_PATH = "/account/confirm"
SIGN_OUT_PATH = "/signout"
EXPORT_URL = "/api/v1/me/export"

TITLE = N_("Your account")
CONFIRM_TITLE = N_("Confirm it is you")
SIGN_OUT_TITLE = N_("Sign out")
LANGUAGES = (
    ("", N_("The browser's language")),
    ("en", "English"),
    ("de", "Deutsch"),
)
NO_SUCH_SESSION = N_("You have no such session.")
NO_SUCH_TOKEN = N_("You have no such API token.")
DONE = {
    "profile": N_("Your profile was saved."),
    "email": N_("A link was mailed to the new address: open it to confirm the address."),
    "session": N_("The session was ended."),
    "token": N_("The API token was revoked."),
}
PROFILE_FIELDS = ("display_name", "email", "preferred_language")


def local_refusal(exc: DomainError | ApiError) -> tuple[int, str, dict[str, str]]:
    """A gateway function's refusal: (status, message, fields), as the API answers it."""
    if isinstance(exc, ApiError):
        return exc.status, exc.message, exc.fields
    return STATUS_OF_CODE[exc.code], exc.message, exc.fields


def _when(moment: Any) -> str:
    return "" if moment is None else str(moment.strftime("%Y-%m-%d %H:%M UTC"))


# --- /account ---------------------------------------------------------------------


async def _account_page(
    request: Request_,
    visitor: Visitor,
    *,
    status: int = 200,
    notice: str = "",
    typed: Mapping[str, str] | None = None,
    errors: Mapping[str, str] | None = None,
    action_error: tuple[str, str] | None = None,
) -> Page:
    gateway = gateway_of(request)
    caller = visitor.caller
    profile = await profiles(request).get(caller.user_id)
    second = await gateway.mfa.status(caller)
    sessions = await gateway.accounts.sessions_of(caller.user_id)
    tokens = await gateway.personal_tokens.list(caller.user_id)
    shown = {
        "display_name": profile.display_name,
        "email": profile.pending_email or profile.email or "",
        "preferred_language": profile.preferred_language,
        **dict(typed or {}),
    }
    problems = [(name, message) for name, message in (errors or {}).items()]
    if action_error is not None:
        problems.append(action_error)
    return Page(
        "account/account.html",
        title=TITLE,
        viewer=caller,
        status=status,
        csrf=visitor.csrf,
        notice=notice,
        profile=profile,
        shown=shown,
        errors=dict(errors or {}),
        problems=problems,
        action_error=action_error,
        languages=LANGUAGES,
        mfa={
            "enrolled": profile.mfa_enrolled,
            "totp": second.totp,
            "key_count": len(second.keys),
            "recovery_codes_left": second.recovery_codes_left,
            "required": second.required,
        },
        setup_url=f"{MFA_SETUP_PATH}?{urlencode({'next': ACCOUNT_PATH})}",
        password_url=f"{PASSWORD_PATH}?{urlencode({'next': ACCOUNT_PATH})}",
        sessions=[
            {
                "id": s.session_id,
                "started": _when(s.created_at),
                "expires": _when(s.expires_at),
                "method": s.method,
                "address": s.address or "",
                "agent": (s.user_agent or "")[:120],
                "current": s.session_id == caller.session_id,
            }
            for s in sessions
        ],
        tokens=[
            {
                "id": t.token_id,
                "name": t.name,
                "roles": ", ".join(role.value for role in t.roles),
                "created": _when(t.created_at),
                "expires": _when(t.expires_at),
                "last_used": _when(t.last_used_at),
                "revoked": t.revoked_at is not None,
            }
            for t in tokens
        ],
        export_url=EXPORT_URL,
    )


@get(
    ACCOUNT_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def account_page(request: Request_) -> Response[Any]:
    """Anyone signed in: profile, second factor, sessions, API tokens, export, sign out.
    `?email=` fills in the address (as after the check a new address asks for)."""
    visitor = await signed_in(request, ACCOUNT_PATH)
    if isinstance(visitor, Response):
        return visitor
    query = request.query_params
    typed = {name: query[name][:320] for name in PROFILE_FIELDS if name in query}
    notice = DONE.get(query.get("done") or "", "")
    return await _account_page(request, visitor, notice=notice, typed=typed)


async def _posted(
    request: Request_, title: str = TITLE
) -> tuple[Visitor, dict[str, list[str]]] | Response[Any]:
    fields = await form_fields(request, title)
    if isinstance(fields, Response):
        return fields
    visitor = await signed_in(request, ACCOUNT_PATH)
    if isinstance(visitor, Response):
        return visitor
    if not visitor.made(fields):
        return foreign_form_page(title, visitor.caller)
    return visitor, fields


def _proof_first(request: Request_, caller: Caller, back: str) -> Response[Any] | None:
    """PATCH /api/v1/me's rule for a new address: a second factor confirmed (or, without
    one, a sign-in) within JHAAS_STEP_UP_SECONDS; else to the check, then back."""
    gateway = gateway_of(request)
    if caller.authenticated_within(gateway.settings.step_up_seconds, gateway.accounts.clock()):
        return None
    path = CONFIRM_PATH if caller.mfa_enrolled else SIGN_IN_PATH
    return see_other(f"{path}?{urlencode({'next': back})}")


@post(
    f"{ACCOUNT_PATH}/profile",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def account_profile(request: Request_) -> Response[Any]:
    """Name, language ("" the browser's) and e-mail address at once; a new address is
    mailed a link (PATCH /api/v1/me)."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    visitor, fields = posted
    caller = visitor.caller
    typed = {name: first(fields, name) for name in PROFILE_FIELDS}
    gateway = gateway_of(request)
    current = await profiles(request).get(caller.user_id)
    change: dict[str, Any] = {
        "display_name": typed["display_name"],
        "preferred_language": typed["preferred_language"],
    }
    email = typed["email"].strip()
    known = {(current.email or "").lower(), (current.pending_email or "").lower()}
    if email and email.lower() not in known:
        change["email"] = email
    try:
        data = msgspec.convert(change, ProfileUpdate)
    except msgspec.ValidationError as exc:
        errors = {
            name if name in PROFILE_FIELDS else "display_name": message
            for name, message in body_error_fields(exc).items()
        }
        return await _account_page(request, visitor, status=422, typed=typed, errors=errors)
    client = client_info(request, gateway.settings)
    if "email" in change:
        back = f"{ACCOUNT_PATH}?{urlencode(typed)}"
        detour = _proof_first(request, caller, back)
        if detour is not None:
            return detour
        try:
            await gateway.reset_throttle.begin(
                f"verify-email:{caller.user_id}", client.address or ""
            )
        except TooManyAttempts as exc:
            message = (
                f"Too many e-mail addresses asked for; try again in {exc.retry_after} seconds."
            )
            return await _account_page(
                request, visitor, status=429, typed=typed, errors={"email": message}
            )
    try:
        await profiles(request).update(caller, data, client)
    except (DomainError, ApiError) as exc:
        status, message, problem_fields = local_refusal(exc)
        errors = {
            name: f"{name.replace('_', ' ')} {text}"
            for name, text in problem_fields.items()
            if name in PROFILE_FIELDS
        } or {"email" if "email" in change else "display_name": message}
        return await _account_page(request, visitor, status=status, typed=typed, errors=errors)
    return see_other(f"{ACCOUNT_PATH}?done={'email' if 'email' in change else 'profile'}")


@post(
    f"{ACCOUNT_PATH}/sessions/{{session_id:str}}/end",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def account_end_session(request: Request_, session_id: FromPath[str]) -> Response[Any]:
    """End one of your sessions (this one too: then you are signed out here)."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    visitor, _ = posted
    gateway = gateway_of(request)
    try:
        await gateway.accounts.end_other_session(
            visitor.caller, session_id, client_info(request, gateway.settings)
        )
    except (DomainError, ApiError) as exc:
        status, message, _ = local_refusal(exc)
        if status == 404:
            return problem_page(404, TITLE, NO_SUCH_SESSION, viewer=visitor.caller)
        return await _account_page(
            request, visitor, status=status, action_error=("sessions", message)
        )
    if session_id == visitor.caller.session_id:
        return _expire(request, see_other("/"))
    return see_other(f"{ACCOUNT_PATH}?done=session#sessions")


@post(
    f"{ACCOUNT_PATH}/sessions/end-all",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def account_end_every_session(request: Request_) -> Response[Any]:
    """Sign out everywhere: every session of yours, this one included."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    visitor, _ = posted
    gateway = gateway_of(request)
    await gateway.accounts.end_every_session(visitor.caller, client_info(request, gateway.settings))
    return _expire(request, see_other("/"))


@post(
    f"{ACCOUNT_PATH}/tokens/{{token_id:str}}/revoke",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def account_revoke_token(request: Request_, token_id: FromPath[str]) -> Response[Any]:
    """Revoke one of your API tokens; it stops working at once."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    visitor, _ = posted
    gateway = gateway_of(request)
    try:
        await gateway.personal_tokens.revoke(
            visitor.caller, token_id, client_info(request, gateway.settings).address
        )
    except (DomainError, ApiError) as exc:
        status, message, _ = local_refusal(exc)
        if status == 404:
            return problem_page(404, TITLE, NO_SUCH_TOKEN, viewer=visitor.caller)
        return await _account_page(
            request, visitor, status=status, action_error=("tokens", message)
        )
    return see_other(f"{ACCOUNT_PATH}?done=token#tokens")


def _expire(request: Request_, response: Response[Any]) -> Response[Any]:
    """The session and CSRF cookies cleared (as the API's logout clears them)."""
    response.cookies.extend(_expired(gateway_of(request).settings))
    return response


# --- /signout ---------------------------------------------------------------------


@post(
    SIGN_OUT_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def sign_out(request: Request_) -> Response[Any]:
    """End this session (in any state: also one still owing a step) and clear its
    cookies; then the front page. A browser already signed out just goes there."""
    fields = await form_fields(request, SIGN_OUT_TITLE)
    if isinstance(fields, Response):
        return fields
    gateway = gateway_of(request)
    session = await session_caller(request)
    if session is None:
        return _expire(request, see_other("/"))
    caller, token = session
    expected = csrf_token_for(gateway.settings.jwt_secret, token)
    if not hmac.compare_digest(first(fields, "csrf").encode(), expected.encode()):
        return foreign_form_page(SIGN_OUT_TITLE, caller)
    await gateway.accounts.end_session(caller, client_info(request, gateway.settings))
    return _expire(request, see_other("/"))


# --- /account/confirm: the step-up check ------------------------------------------


async def _confirm_page(
    request: Request_, visitor: Visitor, next_url: str, *, status: int = 200, error: str = ""
) -> Response[Any]:
    found = await gateway_of(request).mfa.status(visitor.caller)
    keys = bool(found.keys) and found.webauthn_available
    return Page(
        "account/confirm.html",
        title=CONFIRM_TITLE,
        viewer=visitor.caller,
        status=status,
        csrf=visitor.csrf,
        next_url=next_url,
        totp=found.totp,
        keys=keys,
        code_form=found.totp or found.recovery_codes_left > 0,
        error=error,
        minutes=max(1, gateway_of(request).settings.step_up_seconds // 60),
    )


def _here(next_url: str) -> str:
    return f"{CONFIRM_PATH}?{urlencode({'next': next_url})}"


@get(
    CONFIRM_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def confirm_form(request: Request_) -> Response[Any]:
    """Anyone signed in with a second factor: confirm it again, for a change that asks
    for a recent check (the API's step-up); then back to `next`. Without a second
    factor: sign in again (the same proof for such an account)."""
    next_url = safe_next(request.query_params.get("next"))
    visitor = await signed_in(request, _here(next_url))
    if isinstance(visitor, Response):
        return visitor
    if not visitor.caller.mfa_enrolled:
        return see_other(f"{SIGN_IN_PATH}?{urlencode({'next': next_url})}")
    return await _confirm_page(request, visitor, next_url)


@post(
    CONFIRM_PATH,
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def confirm(request: Request_) -> Response[Any]:
    """The code form: an app code or a recovery code, throttled and audited as
    POST /api/v1/auth/mfa/verify."""
    fields = await form_fields(request, CONFIRM_TITLE)
    if isinstance(fields, Response):
        return fields
    next_url = safe_next(first(fields, "next"))
    visitor = await signed_in(request, _here(next_url))
    if isinstance(visitor, Response):
        return visitor
    if not visitor.made(fields):
        return foreign_form_page(CONFIRM_TITLE, visitor.caller)
    caller = visitor.caller
    if not caller.mfa_enrolled:
        return see_other(f"{SIGN_IN_PATH}?{urlencode({'next': next_url})}")
    code = first(fields, "code")
    if not code.strip() or len(code) > 64:
        return await _confirm_page(
            request, visitor, next_url, status=400, error=N_("Enter a code.")
        )
    gateway = gateway_of(request)
    try:
        attempt = await begin_check(request, caller)
    except TooManyRequests as exc:
        return await _confirm_page(request, visitor, next_url, status=429, error=exc.message)
    try:
        await gateway.mfa.verify_code(caller, code, client_info(request, gateway.settings))
    except WrongCode as exc:
        return await _confirm_page(
            request, visitor, next_url, status=401, error=f"That code {exc}."
        )
    await gateway.throttle.succeeded(attempt)
    return see_other(next_url)
