"""The leader's pages for asking (issue 11): `/requests/new`, the request form, and
`/courses/{id}/change`, the change form of an approved course (the HTML of
request_form.py).

They call the ops the API calls: request-svc's submit (POST /api/v1/requests),
get (GET /api/v1/requests/{id}) and propose_change (POST
/api/v1/requests/{id}/changes), and governance-svc's get_policy (GET
/api/v1/policy) for the limits the form shows. A refusal is shown on the form,
next to the inputs it names, with everything typed kept.
"""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath

from gateway.accounts import Caller
from gateway.errors import STATUS_OF_CODE
from gateway.numbers import whole_number
from gateway.oauth.pages import problem_page
from gateway.request_form import (
    NEW_PATH,
    TITLE_CHANGE,
    TITLE_EDIT,
    TITLE_NEW,
    ChangeForm,
    RequestForm,
    change_form_page,
    change_path,
    course_path,
    edit_path,
    environment_id,
    may_request,
    parse_change,
    parse_request,
    refusal_problems,
    request_form_page,
    rule_words,
    spec_update,
    words_for,
)
from gateway.web.actions import (
    call_service,
    first,
    foreign_form_page,
    form_fields,
    see_other,
    signed_in,
)
from gateway.web.i18n import N_
from gateway.web.render import Page
from jhaas_schemas.rpc import (
    ErrorCode,
    GetPolicy,
    GetRequest,
    GovernanceOps,
    HubRequest,
    PolicyView,
    ProposeChange,
    RequestOps,
    RpcError,
    SubmitRequest,
    UpdateRequest,
)

Request_ = Request[Any, Any, Any]
NOT_A_LEADER = N_("Only course leaders can request a hub. An administrator can make you one.")
NOT_THE_LEADER = N_("Only the course's leader can propose a change of it.")
NOT_YOUR_REQUEST = N_("Only the request's leader can edit it.")
INCOMPLETE = N_("This form is incomplete; open the page again and send it from there.")
NO_COURSE = N_("There is no such course, or it is not yours.")


def _refusal_page(title: str, refusal: RpcError, caller: Caller) -> Response[Any]:
    status = STATUS_OF_CODE.get(refusal.code, 503)
    message = NO_COURSE if refusal.code == ErrorCode.NOT_FOUND else refusal.message
    return problem_page(status, title, message, viewer=caller)


async def _policy(request: Request_, caller: Caller, title: str) -> PolicyView | Response[Any]:
    """The policy in force (its limits and presets), or the page saying it is unavailable."""
    policy = await call_service(request, caller, GovernanceOps.GET_POLICY, GetPolicy(), PolicyView)
    if isinstance(policy, RpcError):
        return _refusal_page(title, policy, caller)
    return policy


@get(NEW_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def request_form(request: Request_) -> Response[Any]:
    """The request form, with the policy's presets and limits."""
    visitor = await signed_in(request, NEW_PATH)
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    if not may_request(caller):
        return problem_page(403, TITLE_NEW, NOT_A_LEADER, viewer=caller)
    policy = await _policy(request, caller, TITLE_NEW)
    if isinstance(policy, Response):
        return policy
    return request_form_page(
        policy=policy,
        form=RequestForm.blank(policy),
        csrf=visitor.csrf,
        rules=rule_words(policy, words_for(request, caller)),
        viewer=caller,
        detect_zone=True,
    )


@post(NEW_PATH, media_type=MediaType.HTML, include_in_schema=False, security=[])
async def submit_request(request: Request_) -> Response[Any]:
    """Submit the form: 303 to the course's page, or the form again with the problems."""
    visitor = await signed_in(request, NEW_PATH)
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    fields = await form_fields(request, TITLE_NEW)
    if isinstance(fields, Response):
        return fields
    if not visitor.made(fields):
        return foreign_form_page(TITLE_NEW, caller)
    if not may_request(caller):
        return problem_page(403, TITLE_NEW, NOT_A_LEADER, viewer=caller)
    policy = await _policy(request, caller, TITLE_NEW)
    if isinstance(policy, Response):
        return policy
    say = words_for(request, caller)
    rules = rule_words(policy, say)
    form = RequestForm.posted(fields)

    def again(status: int, errors: dict[str, str], summary: list[tuple[str, str]]) -> Page:
        return request_form_page(
            policy=policy,
            form=form,
            csrf=visitor.csrf,
            rules=rules,
            viewer=caller,
            status=status,
            errors=errors,
            summary=summary,
        )

    draft, problems = parse_request(form, policy, say)
    if draft is None:
        return again(422, problems, list(problems.items()))
    submitted = await call_service(
        request, caller, RequestOps.SUBMIT, SubmitRequest(spec=draft), HubRequest
    )
    if not isinstance(submitted, RpcError):
        return see_other(course_path(submitted.request_id))
    if submitted.code == ErrorCode.FORBIDDEN:
        return problem_page(403, TITLE_NEW, submitted.message, viewer=caller)
    errors, summary = refusal_problems(
        submitted, rules, environment_input=environment_id(form.environment, policy)
    )
    return again(STATUS_OF_CODE.get(submitted.code, 503), errors, summary)


async def _own_course(
    request: Request_,
    caller: Caller,
    request_id: str,
    title: str = TITLE_CHANGE,
    not_theirs: str = NOT_THE_LEADER,
) -> HubRequest | Response[Any]:
    """The course as request-svc shows it to the caller, if the caller leads it."""
    course = await call_service(
        request, caller, RequestOps.GET, GetRequest(request_id=request_id), HubRequest
    )
    if isinstance(course, RpcError):
        if course.code == ErrorCode.INVALID:  # not even an id: no such course either
            return problem_page(404, title, NO_COURSE, viewer=caller)
        return _refusal_page(title, course, caller)
    if course.leader_id != caller.user_id:
        # Governance and admins see every request; a change or an edit is its leader's
        # (request-svc refuses anyone else too).
        return problem_page(403, title, not_theirs, viewer=caller)
    return course


@get("/courses/{request_id:str}/change", media_type=MediaType.HTML, include_in_schema=False,
     security=[])  # fmt: skip
async def change_form(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """The change form, showing the course's current values and its latest change."""
    visitor = await signed_in(request, change_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    course = await _own_course(request, caller, request_id)
    if isinstance(course, Response):
        return course
    policy = await _policy(request, caller, TITLE_CHANGE)
    if isinstance(policy, Response):
        return policy
    return change_form_page(
        course=course,
        policy=policy,
        form=ChangeForm.current(course),
        csrf=visitor.csrf,
        rules=rule_words(policy, words_for(request, caller)),
        viewer=caller,
        fresh=True,
        sent=request.query_params.get("sent") == "1",
    )


@post("/courses/{request_id:str}/change", media_type=MediaType.HTML, include_in_schema=False,
      security=[])  # fmt: skip
async def propose_change(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Propose the change: back to the form, which shows governance's answer."""
    visitor = await signed_in(request, change_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    fields = await form_fields(request, TITLE_CHANGE)
    if isinstance(fields, Response):
        return fields
    if not visitor.made(fields):
        return foreign_form_page(TITLE_CHANGE, caller)
    course = await _own_course(request, caller, request_id)
    if isinstance(course, Response):
        return course
    policy = await _policy(request, caller, TITLE_CHANGE)
    if isinstance(policy, Response):
        return policy
    say = words_for(request, caller)
    rules = rule_words(policy, say)
    form = ChangeForm.posted(fields)

    def again(status: int, errors: dict[str, str], summary: list[tuple[str, str]]) -> Page:
        return change_form_page(
            course=course,
            policy=policy,
            form=form,
            csrf=visitor.csrf,
            rules=rules,
            viewer=caller,
            status=status,
            errors=errors,
            summary=summary,
        )

    changes, comment, revision, problems = parse_change(form, course.spec, policy, say)
    if changes is None:
        return again(422, problems, list(problems.items()))
    payload = ProposeChange(
        request_id=course.request_id,
        changes=changes,
        comment=comment,
        expected_revision=revision,
    )
    proposed = await call_service(request, caller, RequestOps.PROPOSE_CHANGE, payload, HubRequest)
    if not isinstance(proposed, RpcError):
        return see_other(change_path(course.request_id) + "?sent=1")
    if proposed.code in (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND):
        return _refusal_page(TITLE_CHANGE, proposed, caller)
    errors, summary = refusal_problems(proposed, rules, environment_input="image")
    if "changes" in proposed.fields:
        summary = [("", say(N_("The form changes nothing: change a value first.")))]
    return again(STATUS_OF_CODE.get(proposed.code, 503), errors, summary)


@get("/requests/{request_id:str}/edit", media_type=MediaType.HTML, include_in_schema=False,
     security=[])  # fmt: skip
async def edit_form(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """The request form holding a request that waits for review."""
    visitor = await signed_in(request, edit_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    course = await _own_course(request, caller, request_id, TITLE_EDIT, NOT_YOUR_REQUEST)
    if isinstance(course, Response):
        return course
    policy = await _policy(request, caller, TITLE_EDIT)
    if isinstance(policy, Response):
        return policy
    return request_form_page(
        policy=policy,
        form=RequestForm.of_request(course, policy),
        csrf=visitor.csrf,
        rules=rule_words(policy, words_for(request, caller)),
        viewer=caller,
        detect_zone=True,
        editing=course,
    )


@post("/requests/{request_id:str}/edit", media_type=MediaType.HTML, include_in_schema=False,
      security=[])  # fmt: skip
async def save_edit(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Save the edited request (what differs, at the revision the form showed)."""
    visitor = await signed_in(request, edit_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    fields = await form_fields(request, TITLE_EDIT)
    if isinstance(fields, Response):
        return fields
    if not visitor.made(fields):
        return foreign_form_page(TITLE_EDIT, caller)
    course = await _own_course(request, caller, request_id, TITLE_EDIT, NOT_YOUR_REQUEST)
    if isinstance(course, Response):
        return course
    policy = await _policy(request, caller, TITLE_EDIT)
    if isinstance(policy, Response):
        return policy
    say = words_for(request, caller)
    rules = rule_words(policy, say)
    form = RequestForm.posted(fields)
    revision = first(fields, "expected_revision")

    def again(status: int, errors: dict[str, str], summary: list[tuple[str, str]]) -> Page:
        return request_form_page(
            policy=policy,
            form=form,
            csrf=visitor.csrf,
            rules=rules,
            viewer=caller,
            status=status,
            errors=errors,
            summary=summary,
            editing=course,
            revision=revision,
        )

    draft, problems = parse_request(form, policy, say)
    expected = whole_number(revision, 10)
    if expected is None or not 0 < expected < 2**31:
        problems.setdefault("", say(INCOMPLETE))
    if draft is None or problems or expected is None:
        return again(422, problems, list(problems.items()))
    payload = UpdateRequest(
        request_id=course.request_id,
        changes=spec_update(draft, course.spec),
        expected_revision=expected,
    )
    saved = await call_service(request, caller, RequestOps.UPDATE, payload, HubRequest)
    if not isinstance(saved, RpcError):
        return see_other(course_path(saved.request_id))
    if saved.code in (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND):
        return _refusal_page(TITLE_EDIT, saved, caller)
    errors, summary = refusal_problems(
        saved, rules, environment_input=environment_id(form.environment, policy)
    )
    return again(STATUS_OF_CODE.get(saved.code, 503), errors, summary)
