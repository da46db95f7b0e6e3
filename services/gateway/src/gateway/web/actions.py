"""What every signed-in page route needs, in one place: who is looking (or where
they must go first), the form a browser posted (and whether this site made it),
a call to a service whose refusal a page can show, and the redirect after a
successful POST (post/redirect/get).

    visitor = await signed_in(request, "/courses")
    if isinstance(visitor, Response):
        return visitor                       # a stranger: to sign in; a step left: to it
    fields = await form_fields(request, TITLE)
    if isinstance(fields, Response):
        return fields                        # not a form, or not UTF-8: a page saying so
    if not visitor.made(fields):
        return foreign_form_page(TITLE, visitor.caller)
    answer = await call_service(request, visitor.caller, Ops.X, payload, Result)
    if isinstance(answer, RpcError):
        ...                                  # show answer.message / answer.fields on the form
    return see_other("/courses/...")

A page's form carries `visitor.csrf` in a hidden field named "csrf": bound to
the session (csrf_token_for), so a cross-site page cannot make one.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode

import msgspec
from litestar import Request, Response

from gateway.accounts import Caller
from gateway.auth import csrf_token_for
from gateway.context import NotReady, correlation_id_for, gateway_of
from gateway.controllers.signin import FORM_MEDIA_TYPE, NOT_UTF8, SIGN_IN_PATH, pending_page
from gateway.dependencies import ServiceCalls
from gateway.guards import session_caller
from gateway.oauth.pages import problem_page
from gateway.redirects import safe_next
from gateway.web.i18n import N_
from jhaas_runtime.rpc import RpcFailure
from jhaas_schemas.rpc import ErrorCode, RpcError

Request_ = Request[Any, Any, Any]
R = TypeVar("R")
CSRF_FIELD = "csrf"
MAX_FORM_BYTES = 256 * 1024  # more than any page's form; the app's body limit is the backstop

UNAVAILABLE = N_("This is unavailable for a moment; please try again shortly.")
FOREIGN_FORM = N_(
    "This form did not come from this site or belongs to another sign-in; "
    "open the page again and send it from there."
)


@dataclass(frozen=True)
class Visitor:
    """A fully signed-in browser: its caller and the CSRF token its forms carry."""

    caller: Caller
    csrf: str

    def made(self, fields: dict[str, list[str]]) -> bool:
        """Whether this site made the posted form, for this session."""
        sent = first(fields, CSRF_FIELD)
        return hmac.compare_digest(sent.encode(), self.csrf.encode())


def first(fields: dict[str, list[str]], name: str, default: str = "") -> str:
    """A form field's first value (a browser sends one per input)."""
    values = fields.get(name)
    return values[0] if values else default


def see_other(location: str) -> Response[str]:
    """After a POST that worked: the browser GETs `location` (reloading it repeats nothing)."""
    return Response(
        "", status_code=303, headers={"Location": location, "Cache-Control": "no-store"}
    )


def to_sign_in(next_url: str) -> Response[str]:
    return see_other(f"{SIGN_IN_PATH}?{urlencode({'next': safe_next(next_url)})}")


async def signed_in(request: Request_, here: str) -> Visitor | Response[Any]:
    """The visitor of a page at `here` (its path, where they come back to), or where
    they must go first: a stranger to sign in, a session with a step left to it."""
    found = await session_caller(request)
    if found is None:
        return to_sign_in(here)
    caller, session_token = found
    gateway = gateway_of(request)
    step = pending_page(caller, gateway.settings, here)
    if step is not None:
        return step
    return Visitor(caller=caller, csrf=csrf_token_for(gateway.settings.jwt_secret, session_token))


async def form_fields(request: Request_, title: str) -> dict[str, list[str]] | Response[Any]:
    """The posted form's fields (every value of each), or the page saying why it is
    not one: 415 for another media type, 413 too large, 400 not UTF-8."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_MEDIA_TYPE:
        return problem_page(415, title, f"send the form as {FORM_MEDIA_TYPE}")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return problem_page(413, title, N_("The form is too large."))
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        return problem_page(400, title, NOT_UTF8)
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return fields


def foreign_form_page(title: str, caller: Caller) -> Response[Any]:
    return problem_page(403, title, FOREIGN_FORM, viewer=caller)


async def call_service(
    request: Request_, caller: Caller, subject: str, payload: msgspec.Struct, result: type[R]
) -> R | RpcError:
    """The service's answer, or its refusal (with `fields` naming what it concerns)
    for the page to show in words. A service failing on its side is raised: the
    error handler logs it with its correlation id."""
    try:
        return await ServiceCalls(
            rpc=gateway_of(request).rpc,
            principal=caller.principal,
            correlation_id=correlation_id_for(request.scope),
        )(subject, payload, result)
    except NotReady:
        return RpcError(code=ErrorCode.UNAVAILABLE, message=UNAVAILABLE)
    except RpcFailure as exc:
        if exc.error.code == ErrorCode.INTERNAL:
            raise
        return exc.error
