"""The pages a join link opens: `/join` and `/join/{code}` (the HTML of join_pages.py).

A browser signed in by its session cookie applies with a plain form; the form
carries the session's CSRF token (csrf_token_for), which a cross-site page
cannot read. The API's JSON twin is `/api/v1/join/{code}` (courses.py).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath

from gateway.accounts import Caller
from gateway.context import gateway_of
from gateway.errors import STATUS_OF_CODE
from gateway.join_limit import TOO_MANY_MISSES
from gateway.join_pages import (
    TITLE,
    applied_page,
    apply_form_page,
    join_action,
    join_code_page,
    unknown_code_page,
)
from gateway.oauth.pages import problem_page
from gateway.schemas import ApplyBody
from gateway.web.actions import call_service, first, form_fields, signed_in
from gateway.web.i18n import N_
from gateway.web.render import viewer_of
from jhaas_schemas.rpc import (
    Apply,
    CoursePreview,
    ErrorCode,
    JoinCodeRef,
    ParticipantOps,
    Participation,
    RpcError,
)

UNAVAILABLE = N_("Joining is unavailable for a moment; please try again shortly.")
MESSAGE_RULE = N_(
    "The message may have up to 2000 characters: letters, digits, punctuation and line "
    "breaks, but no other control characters."
)
FOREIGN_FORM = N_(
    "This form did not come from this site or belongs to another sign-in; open the join link again."
)
Request_ = Request[Any, Any, Any]


def _valid_code(code: str) -> bool:
    try:
        msgspec.convert({"code": code}, JoinCodeRef)
    except msgspec.ValidationError:
        return False
    return True


async def _preview(request: Request_, caller: Caller, code: str) -> CoursePreview | Response[Any]:
    """The course the code opens, or the page saying why not."""
    limit = gateway_of(request).join_limit
    wait = limit.retry_after(caller.user_id)
    if wait is not None:
        page = problem_page(429, TITLE, TOO_MANY_MISSES.capitalize() + ".", viewer=caller)
        page.headers["Retry-After"] = str(wait)
        return page
    if not _valid_code(code):
        limit.missed(caller.user_id)
        return unknown_code_page(code, viewer=caller)
    found = await call_service(
        request, caller, ParticipantOps.FIND_BY_CODE, JoinCodeRef(code=code), CoursePreview
    )
    if not isinstance(found, RpcError):
        return found
    if found.code == ErrorCode.NOT_FOUND:
        limit.missed(caller.user_id)
        return unknown_code_page(code, viewer=caller)
    if found.code == ErrorCode.UNAVAILABLE:
        return problem_page(503, TITLE, UNAVAILABLE, viewer=caller)
    return problem_page(STATUS_OF_CODE[found.code], TITLE, found.message, viewer=caller)


@get("/join", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def join_start(request: Request_) -> Response[Any]:
    """Type a join code; a plain GET form cannot put it in the path, so this redirects."""
    code = request.query_params.get("code")
    if code is None:
        return join_code_page(viewer=await viewer_of(request))
    code = code.strip()
    if not code:
        return join_code_page(
            status=400, error=N_("Enter a join code."), viewer=await viewer_of(request)
        )
    if not _valid_code(code):
        return unknown_code_page(code, viewer=await viewer_of(request))
    return Response("", status_code=303, headers={"Location": join_action(code)})


@get("/join/{code:str}", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def join_course(request: Request_, code: FromPath[str]) -> Response[Any]:
    """The course a join link opens, and the form to apply; strangers sign in first."""
    visitor = await signed_in(request, join_action(code))
    if isinstance(visitor, Response):
        return visitor
    preview = await _preview(request, visitor.caller, code)
    if isinstance(preview, Response):
        return preview
    return apply_form_page(preview, code, visitor.csrf, viewer=visitor.caller)


@post("/join/{code:str}", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def apply_to_join(request: Request_, code: FromPath[str]) -> Response[Any]:
    """Apply with the form; the service's refusal is shown on the form in words."""
    fields = await form_fields(request, TITLE)
    if isinstance(fields, Response):
        return fields
    visitor = await signed_in(request, join_action(code))
    if isinstance(visitor, Response):
        return visitor
    caller, csrf = visitor.caller, visitor.csrf
    if not visitor.made(fields):
        return problem_page(403, TITLE, FOREIGN_FORM, viewer=caller)
    preview = await _preview(request, caller, code)
    if isinstance(preview, Response):
        return preview
    message = first(fields, "message")
    try:
        msgspec.convert({"message": message}, ApplyBody)
    except msgspec.ValidationError:
        return apply_form_page(
            preview, code, csrf, viewer=caller, status=422, message=message, error=MESSAGE_RULE
        )
    applied = await call_service(
        request, caller, ParticipantOps.APPLY, Apply(code=code, message=message), Participation
    )
    if not isinstance(applied, RpcError):
        return applied_page(preview, viewer=caller)
    if applied.code == ErrorCode.UNAVAILABLE:
        return problem_page(503, TITLE, UNAVAILABLE, viewer=caller)
    status = STATUS_OF_CODE[applied.code]
    return apply_form_page(
        preview,
        code,
        csrf,
        viewer=caller,
        status=status,
        message=message,
        error=applied.message,
    )
