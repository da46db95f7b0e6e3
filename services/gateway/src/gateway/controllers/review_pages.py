"""The reviewer's pages (issue 11): the queue, one request with its checks and the
capacity calendar drawn, the decision form, a change's decision, the calendar over
a period and the governance audit trail (the HTML of review_views.py).

Every page calls the op its API twin calls (controllers/reviews.py, calendar.py,
governance_audit.py) with the same payload; governance-svc decides who may see
and decide, and a refusal is shown as a page, or next to the action it concerns.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath

from gateway.accounts import Caller
from gateway.context import gateway_of
from gateway.controllers.calendar import DEFAULT_DAYS, period
from gateway.controllers.governance_audit import CURSOR
from gateway.errors import STATUS_OF_CODE, ApiError
from gateway.numbers import whole_number
from gateway.oauth.pages import problem_page
from gateway.review_views import (
    AUDIT_TITLE,
    CALENDAR_TITLE,
    QUEUE_TITLE,
    REVIEW_TITLE,
    ChangeForm,
    DecisionForm,
    audit_page,
    calendar_page,
    demand_of,
    period_around,
    queue_page,
    review_page,
)
from gateway.schemas import ApproveBody, ChangeDecisionBody, ChangesBody, RejectBody
from gateway.web.actions import (
    call_service,
    first,
    foreign_form_page,
    form_fields,
    see_other,
    signed_in,
)
from gateway.web.i18n import N_
from jhaas_schemas.rpc import (
    AUDIT_PAGE_MAX,
    ApproveRequest,
    AuditAction,
    CalendarView,
    ChangeReview,
    DecideChange,
    ErrorCode,
    GetCalendar,
    GetReview,
    GovernanceAuditPage,
    GovernanceOps,
    ListAudit,
    ListReviews,
    RejectRequest,
    RequestChanges,
    Review,
    ReviewList,
    ReviewState,
    RpcError,
)

Request_ = Request[Any, Any, Any]

COMMENT_RULE = N_(
    "The comment may have up to 2000 characters: letters, digits, punctuation and line "
    "breaks, but no other control characters."
)
REASON_NEEDED = N_("Give the reason for your decision: the leader reads it.")
CHANGES_NEEDED = N_("Say what the leader should change.")
NOT_A_DECISION = N_("Choose approve, reject or request changes with one of the form's buttons.")
BAD_FORM = N_("The form is incomplete or was changed; open the page again and send it from there.")
BAD_DATE = N_("Enter a date such as 2027-01-31.")
FIRST_YEAR, LAST_YEAR = 2000, 9000
BAD_CURSOR = N_("This page link is not valid any more; start again from the first page.")
NO_SUCH_REQUEST = N_("There is no such request.")
TOO_LONG = N_("At most 64 characters.")
BAD_LIMIT = N_("A whole number from 1 to 1000.")
UNKNOWN_ACTION = N_("Choose one of the listed actions.")
AUDIT_PAGE_SIZE = 50
DECISIONS = ("approve", "reject", "changes")
CHANGE_DECISIONS = ("approve", "reject")


def review_path(request_id: str) -> str:
    return "/reviews/" + quote(request_id, safe="")


def refused_page(title: str, answer: RpcError, caller: Caller) -> Response[Any]:
    return problem_page(STATUS_OF_CODE[answer.code], title, answer.message, viewer=caller)


async def usernames(request: Request_, user_ids: set[str]) -> dict[str, str]:
    """Each known user id's username (the gateway's own accounts)."""
    ids = sorted(user_id for user_id in user_ids if user_id)
    found = await gateway_of(request).accounts.names_of(ids) if ids else {}
    return {user_id: names[0] for user_id, names in found.items()}


# --- the queue ---------------------------------------------------------------------------


@get("/reviews", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def review_queue(request: Request_) -> Response[Any]:
    """Pending requests and pending changes, oldest first, each with its checks in a line."""
    visitor = await signed_in(request, "/reviews")
    if isinstance(visitor, Response):
        return visitor
    listed = await call_service(
        request,
        visitor.caller,
        GovernanceOps.LIST_REVIEWS,
        ListReviews(state=ReviewState.PENDING),
        ReviewList,
    )
    if isinstance(listed, RpcError):
        return refused_page(QUEUE_TITLE, listed, visitor.caller)
    leaders = {r.leader_id for r in listed.items} | {c.leader_id for c in listed.changes}
    names = await usernames(request, leaders)
    return queue_page(listed.items, listed.changes, names, viewer=visitor.caller)


# --- one request -------------------------------------------------------------------------


async def show_review(
    request: Request_,
    caller: Caller,
    csrf: str,
    request_id: str,
    *,
    status: int = 200,
    form: DecisionForm | None = None,
    change_form: ChangeForm | None = None,
    done: str = "",
) -> Response[Any]:
    """The request with its checks, its calendar drawn and the decision form, or the
    page saying why not (unknown to the caller: 404; not a reviewer: 403)."""
    review = await call_service(
        request, caller, GovernanceOps.GET_REVIEW, GetReview(request_id=request_id), Review
    )
    if isinstance(review, RpcError):
        if review.code == ErrorCode.INVALID:  # no request has an id like that
            return problem_page(404, REVIEW_TITLE, NO_SUCH_REQUEST, viewer=caller)
        return refused_page(REVIEW_TITLE, review, caller)
    demand = demand_of(review.checks, review.spec.starts_at, review.spec.ends_at)
    start, end = period_around(demand)
    view = await call_service(
        request, caller, GovernanceOps.CALENDAR, GetCalendar(start=start, end=end), CalendarView
    )
    if isinstance(view, RpcError):
        # The calendar is governance's and admins': whoever may not read it (the
        # request's own leader, say) is no reviewer of it either.
        return refused_page(REVIEW_TITLE, view, caller)
    people = {review.leader_id} | {d.decided_by for d in review.decisions}
    people |= {c.decided_by or "" for c in review.changes}
    checks = review.checks
    if checks is not None and checks.calendar is not None:
        people |= {o.leader_id for o in checks.calendar.overlapping}
    names = await usernames(request, people)
    return review_page(
        review,
        view,
        demand,
        names,
        csrf,
        viewer=caller,
        status=status,
        form=form,
        change_form=change_form,
        done=done,
    )


@get("/reviews/{request_id:str}", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def review_request(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    visitor = await signed_in(request, review_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    done = request.query_params.get("done", "")
    return await show_review(request, visitor.caller, visitor.csrf, request_id, done=done)


def _revision(fields: dict[str, list[str]]) -> int | str | None:
    """The revision the reviewer looked at (hidden field): an int, None, or "" when bad."""
    raw = first(fields, "revision").strip()
    if not raw:
        return None
    revision = whole_number(raw, 12)
    if revision is None or revision < 1:
        return ""
    return revision


def _decision_payload(
    request_id: str, decision: str, comment: str, revision: int | None
) -> msgspec.Struct | str:
    """The op's payload, checked by the API's own body rules, or what is wrong with
    the comment (in words, for the field)."""
    try:
        if decision == "approve":
            msgspec.convert({"comment": comment, "revision": revision}, ApproveBody)
            return ApproveRequest(request_id=request_id, comment=comment, revision=revision)
        if decision == "reject":
            if not comment.strip():
                return REASON_NEEDED
            msgspec.convert({"reason": comment, "revision": revision}, RejectBody)
            return RejectRequest(request_id=request_id, reason=comment, revision=revision)
        if not comment.strip():
            return CHANGES_NEEDED
        msgspec.convert({"comment": comment, "revision": revision}, ChangesBody)
        return RequestChanges(request_id=request_id, comment=comment, revision=revision)
    except msgspec.ValidationError:
        return COMMENT_RULE


OPS = {
    "approve": GovernanceOps.APPROVE,
    "reject": GovernanceOps.REJECT,
    "changes": GovernanceOps.REQUEST_CHANGES,
}


@post("/reviews/{request_id:str}", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def decide_request(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Approve, reject or request changes; a refusal is shown next to the action, the
    comment kept."""
    fields = await form_fields(request, REVIEW_TITLE)
    if isinstance(fields, Response):
        return fields
    visitor = await signed_in(request, review_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    caller, csrf = visitor.caller, visitor.csrf
    if not visitor.made(fields):
        return foreign_form_page(REVIEW_TITLE, caller)
    decision = first(fields, "decision")
    comment = first(fields, "comment")
    revision = _revision(fields)
    form = DecisionForm(decision=decision, comment=comment)
    if decision not in DECISIONS or revision == "":
        form.refusal = NOT_A_DECISION if decision not in DECISIONS else BAD_FORM
        return await show_review(request, caller, csrf, request_id, status=400, form=form)
    assert not isinstance(revision, str)
    payload = _decision_payload(request_id, decision, comment, revision)
    if isinstance(payload, str):
        form.error = payload
        return await show_review(request, caller, csrf, request_id, status=422, form=form)
    answer = await call_service(request, caller, OPS[decision], payload, Review)
    if not isinstance(answer, RpcError):
        return see_other(f"{review_path(request_id)}?done={decision}")
    if answer.code == ErrorCode.NOT_FOUND:
        return refused_page(REVIEW_TITLE, answer, caller)
    if answer.code == ErrorCode.INVALID and answer.fields:
        form.error = next(iter(answer.fields.values()))
    else:
        form.refusal = answer.message
    status = STATUS_OF_CODE[answer.code]
    return await show_review(request, caller, csrf, request_id, status=status, form=form)


@post(
    "/reviews/{request_id:str}/changes/{change_id:str}",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def decide_change(
    request: Request_, request_id: FromPath[str], change_id: FromPath[str]
) -> Response[Any]:
    """Approve or reject a pending change of an approved course (a reason to reject)."""
    fields = await form_fields(request, REVIEW_TITLE)
    if isinstance(fields, Response):
        return fields
    visitor = await signed_in(request, review_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    caller, csrf = visitor.caller, visitor.csrf
    if not visitor.made(fields):
        return foreign_form_page(REVIEW_TITLE, caller)
    decision = first(fields, "decision")
    comment = first(fields, "comment")
    form = ChangeForm(change_id=change_id, decision=decision, comment=comment)
    if decision not in CHANGE_DECISIONS:
        form.refusal = N_("Choose approve or reject with one of the change's buttons.")
        return await show_review(request, caller, csrf, request_id, status=400, change_form=form)
    try:
        if decision == "reject":
            if not comment.strip():
                form.error = REASON_NEEDED
            else:
                msgspec.convert({"reason": comment}, RejectBody)
        else:
            msgspec.convert({"comment": comment}, ChangeDecisionBody)
    except msgspec.ValidationError:
        form.error = COMMENT_RULE
    if form.error:
        return await show_review(request, caller, csrf, request_id, status=422, change_form=form)
    try:
        payload = msgspec.convert(
            {"request_id": request_id, "change_id": change_id, "comment": comment}, DecideChange
        )
    except msgspec.ValidationError:
        return problem_page(404, REVIEW_TITLE, N_("There is no such change."), viewer=caller)
    op = GovernanceOps.APPROVE_CHANGE if decision == "approve" else GovernanceOps.REJECT_CHANGE
    answer = await call_service(request, caller, op, payload, ChangeReview)
    if not isinstance(answer, RpcError):
        return see_other(f"{review_path(request_id)}?done=change-{decision}")
    if answer.code == ErrorCode.NOT_FOUND:
        return refused_page(REVIEW_TITLE, answer, caller)
    if answer.code == ErrorCode.INVALID and answer.fields:
        form.error = next(iter(answer.fields.values()))
    else:
        form.refusal = answer.message
    status = STATUS_OF_CODE[answer.code]
    return await show_review(request, caller, csrf, request_id, status=status, change_form=form)


# --- the capacity calendar over a period ---------------------------------------------------


def _date(raw: str) -> date | None:
    """A day typed as YYYY-MM-DD, within the years a calendar can reason about."""
    try:
        value = date.fromisoformat(raw.strip())
    except ValueError:
        return None
    return value if FIRST_YEAR <= value.year <= LAST_YEAR else None


def _midnight(value: date) -> datetime:
    return datetime.combine(value, time(0), tzinfo=UTC)


@get("/governance/calendar", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def capacity_calendar(request: Request_) -> Response[Any]:
    """The calendar from one day to another (a GET form; default: the next four weeks)."""
    visitor = await signed_in(request, "/governance/calendar")
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    today = datetime.now(UTC).date()
    raw_from = request.query_params.get("from", "").strip()
    raw_to = request.query_params.get("to", "").strip()
    values = {
        "from": raw_from or today.isoformat(),
        "to": raw_to or (today + timedelta(days=DEFAULT_DAYS)).isoformat(),
    }
    errors: dict[str, str] = {}
    start_day, end_day = _date(values["from"]), _date(values["to"])
    if start_day is None:
        errors["from"] = BAD_DATE
    if end_day is None:
        errors["to"] = BAD_DATE
    if start_day is not None and end_day is not None:
        try:
            # The API's rule for a period; the last day counts whole.
            start, end = period(
                _midnight(start_day).isoformat(),
                _midnight(end_day + timedelta(days=1)).isoformat(),
                datetime.now(UTC),
            )
        except ApiError as exc:
            errors.update(exc.fields or {"to": exc.message})
    if errors:
        return calendar_page(None, values, errors, viewer=caller, status=400)
    view = await call_service(
        request, caller, GovernanceOps.CALENDAR, GetCalendar(start=start, end=end), CalendarView
    )
    if isinstance(view, RpcError):
        if view.code == ErrorCode.INVALID:
            return calendar_page(None, values, {"to": view.message}, viewer=caller, status=422)
        return refused_page(CALENDAR_TITLE, view, caller)
    return calendar_page(view, values, errors, viewer=caller)


# --- the governance audit trail -------------------------------------------------------------

AUDIT_FILTERS = ("request_id", "actor", "action", "since", "until", "limit")


@get("/governance/audit", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def governance_audit(request: Request_) -> Response[Any]:
    """Who decided what, when, with which checks and comment: the API's filters as a
    GET form, newest first, a page at a time (the cursor in the next page's link)."""
    visitor = await signed_in(request, "/governance/audit")
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    query = request.query_params
    values = {name: query.get(name, "").strip() for name in AUDIT_FILTERS}
    cursor = query.get("cursor", "").strip()
    errors: dict[str, str] = {}
    for name in ("request_id", "actor"):
        if len(values[name]) > 64:
            errors[name] = TOO_LONG
    action: AuditAction | None = None
    if values["action"]:
        try:
            action = AuditAction(values["action"])
        except ValueError:
            errors["action"] = UNKNOWN_ACTION
    moments: dict[str, datetime | None] = {}
    for name in ("since", "until"):
        typed = _date(values[name]) if values[name] else None
        if values[name] and typed is None:
            errors[name] = BAD_DATE
        # "until" counts its whole day: entries before the next midnight.
        shift = timedelta(days=1) if name == "until" else timedelta(0)
        moments[name] = None if typed is None else _midnight(typed) + shift
    limit = AUDIT_PAGE_SIZE
    if values["limit"]:
        raw = values["limit"]
        asked = whole_number(raw, 5)
        if asked is not None and 1 <= asked <= AUDIT_PAGE_MAX:
            limit = asked
        else:
            errors["limit"] = BAD_LIMIT
    if cursor and not re.fullmatch(CURSOR, cursor):
        errors["cursor"] = BAD_CURSOR
    actor = values["actor"] or None
    if actor is not None and "actor" not in errors:
        # A username is what a person types; the trail records user ids.
        account = await gateway_of(request).accounts.find_user(actor)
        if account is not None:
            actor = account.user_id
    first_href = "/governance/audit"
    if errors:
        return audit_page(None, values, errors, {}, viewer=caller, status=400)
    listing = ListAudit(
        request_id=values["request_id"] or None,
        actor=actor,
        action=action,
        since=moments["since"],
        until=moments["until"],
        cursor=cursor or None,
        limit=limit,
    )
    found = await call_service(
        request, caller, GovernanceOps.LIST_AUDIT, listing, GovernanceAuditPage
    )
    if isinstance(found, RpcError):
        if found.code == ErrorCode.INVALID:
            fields = {k: v for k, v in found.fields.items() if k in AUDIT_FILTERS}
            return audit_page(
                None, values, fields or {"cursor": found.message}, {}, viewer=caller, status=422
            )
        return refused_page(AUDIT_TITLE, found, caller)
    shown = {name: value for name, value in values.items() if value}
    next_href = ""
    if found.next_cursor:
        next_href = "/governance/audit?" + urlencode({**shown, "cursor": found.next_cursor})
    if shown:
        first_href += "?" + urlencode(shown)
    names = await usernames(request, {entry.actor for entry in found.items})
    return audit_page(
        found,
        values,
        errors,
        names,
        viewer=caller,
        next_href=next_href,
        first_href=first_href if cursor else "",
    )
