"""The course pages (issue 11): "my courses" (`/courses`), a course's page
(`/courses/{id}`), its live status timeline (`/courses/{id}/timeline`, server-sent
events) and the actions of its page (POST `/courses/{id}/...`).

Authorization is the services': each page asks the same RPC ops the API routes of
controllers/courses.py and requests.py ask, and shows a refusal as a page. Who sees
what of a course follows from what the services answer: request-svc shows a
request to its leader (and governance, admins), participant-svc a course to its
leader and tutors, and "my courses" lists the caller's own participations.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import msgspec
from litestar import MediaType, Request, Response, get, post
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage

from gateway.accounts import Caller
from gateway.context import gateway_of
from gateway.controllers.courses import course_view
from gateway.errors import STATUS_OF_CODE
from gateway.guards import session_caller
from gateway.mfa.totp import qr_svg_data_uri
from gateway.oauth import revoke_hub_grants
from gateway.oauth.pages import problem_page
from gateway.web.actions import (
    Visitor,
    call_service,
    first,
    foreign_form_page,
    form_fields,
    see_other,
    signed_in,
)
from gateway.web.i18n import N_, choose_language, translations
from gateway.web.render import Page
from jhaas_schemas.model import RequestStatus
from jhaas_schemas.rpc import (
    CancelRequest,
    Course,
    CourseRef,
    Decide,
    DeploymentState,
    Empty,
    ErrorCode,
    GetRequest,
    HubRequest,
    HubRequestList,
    ListParticipations,
    ListRequests,
    MyCourse,
    MyCourseList,
    ParticipantOps,
    Participation,
    ParticipationList,
    ParticipationStatus,
    RejectParticipations,
    RequestOps,
    RpcError,
    SetJoinOpen,
    TutorRef,
    WithdrawRequest,
)

Request_ = Request[Any, Any, Any]

MY_COURSES = N_("My courses")
COURSE = N_("Course")
UNAVAILABLE = N_("Courses are unavailable for a moment; please try again shortly.")
NO_SUCH_COURSE = N_("There is no such course, or it is not yours to see.")
PICK_SOME = N_("Select at least one application first.")
NOT_ONE_OF_THEM = N_(
    "One of the selected applications is not one of this course's pending applications; "
    "open the page again and choose from its list."
)
NAME_A_TUTOR = N_("Enter the user name of the person who should tutor this course.")
CONFIRM_CANCEL = N_("Tick the box to confirm that the course should be cancelled.")
REASON_RULE = N_("The reason may have up to 2000 characters, without control characters.")
NO_SUCH_USER = N_("There is no user with that name.")

# How the stream watches a course: it asks the service every POLL_SECONDS, sends
# a comment line when HEARTBEAT_SECONDS passed without an event (so a proxy keeps
# the connection open), and ends after STREAM_SECONDS (the browser's EventSource
# connects again, and the route checks the caller again).
POLL_SECONDS = 2.0
HEARTBEAT_SECONDS = 15.0
STREAM_SECONDS = 15 * 60
RECONNECT_MS = 5000
# Live streams one person may hold open at once (a tab each; browsers keep at most
# six connections to a site): more is refused with 429, so one account cannot make
# the gateway poll the services without bound.
MAX_STREAMS_PER_PERSON = 6
TOO_MANY_STREAMS = N_(
    "Too many live views of courses are open; close some of your tabs and reload this page."
)
_open_streams: Counter[str] = Counter()

# The steps of a course's life, as its timeline shows them.
STEPS: tuple[tuple[str, str], ...] = (
    ("requested", N_("Requested")),
    ("approved", N_("Approved")),
    ("deploying", N_("Deploying")),
    ("running", N_("Running")),
    ("ending", N_("Ending")),
    ("deleted", N_("Deleted")),
)
STATUS_LABELS: dict[str, str] = {
    "submitted": N_("Waiting for review"),
    "changes_requested": N_("Changes requested"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "withdrawn": N_("Withdrawn"),
    "deploying": N_("Deploying"),
    "running": N_("Running"),
    "ending": N_("Ending"),
    "deleted": N_("Deleted"),
    "cancelled": N_("Cancelled"),
    "failed": N_("Deployment failed"),
    # A hub as participant-svc reports it (DeploymentState).
    "scheduled": N_("Approved, not yet deployed"),
}
# status -> (the step it is at, whether the course stopped there)
STEP_OF: dict[str, tuple[int, bool]] = {
    "submitted": (0, False),
    "changes_requested": (0, False),
    "rejected": (0, True),
    "withdrawn": (0, True),
    "approved": (1, False),
    "scheduled": (1, False),
    "cancelled": (1, True),
    "deploying": (2, False),
    "failed": (2, True),
    "running": (3, False),
    "ending": (4, False),
    "deleted": (5, False),
}
# After these a course's status does not change any more: the stream ends.
FINAL = frozenset({"deleted", "rejected", "withdrawn"})
# A participation that ended: its person's stream ends too.
ENDED = frozenset(
    {ParticipationStatus.REJECTED, ParticipationStatus.REMOVED, ParticipationStatus.LEFT}
)
PARTICIPATION_LABELS: dict[str, str] = {
    "pending": N_("Application pending"),
    "accepted": N_("Accepted"),
    "rejected": N_("Application rejected"),
    "removed": N_("Removed from the course"),
    "left": N_("Left the course"),
}
ROLE_LABELS: dict[str, str] = {
    "leader": N_("Leader"),
    "tutor": N_("Tutor"),
    "participant": N_("Participant"),
}
# What a redirect after an action says on the page (`?done=`): fixed texts only.
DONE: dict[str, str] = {
    "accepted": N_("The selected applications were accepted."),
    "rejected": N_("The selected applications were rejected."),
    "rotated": N_("The join code was replaced; the old link no longer works."),
    "opened": N_("Joining with the code is open."),
    "closed": N_("Joining with the code is closed."),
    "tutor-added": N_("The tutor was added."),
    "tutor-removed": N_("The tutor was removed."),
    "cancelled": N_("The course was cancelled."),
    "withdrawn": N_("The request was withdrawn."),
    "left": N_("You left the course."),
}


def course_path(request_id: str, tail: str = "") -> str:
    return f"/courses/{quote(request_id, safe='')}{tail}"


def when(moment: datetime | None) -> str:
    """A moment as people read it, in UTC (the pages' one time zone for now)."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


# --- the timeline -------------------------------------------------------------


@dataclass(frozen=True)
class Timeline:
    """Where a course is in its life: one entry per step, in order."""

    status: str
    label: str  # English; translated where shown
    steps: list[dict[str, str]]
    hub_url: str | None = None
    final: bool = False

    def as_event(self, tr: Callable[[str], str]) -> str:
        return json.dumps(
            {
                "status": self.status,
                "label": tr(self.label),
                "steps": [
                    {
                        "state": s["state"],
                        "note": tr(s["note"]) if s["note"] else "",
                        "time": s["time"],
                    }
                    for s in self.steps
                ],
                "hub_url": self.hub_url or "",
                "final": self.final,
            }
        )


def timeline(
    status: str,
    *,
    requested_at: datetime | None = None,
    since: datetime | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    hub_url: str | None = None,
) -> Timeline:
    """The steps done, the current one (or the one the course stopped at: rejected,
    withdrawn, cancelled, failed) and those to come, with the times known."""
    at, stopped = STEP_OF.get(status, (0, False))
    label = STATUS_LABELS.get(status, status)
    planned = {0: requested_at, 3: starts_at, 4: ends_at}
    steps = []
    for index, (name, _step_label) in enumerate(STEPS):
        if index < at:
            state = "done"
        elif index == at:
            state = "stopped" if stopped else "current"
        else:
            state = "skipped" if stopped else "todo"
        # Known times: when it was requested, since when it is where it is, and
        # when the course is to start and end (while those are still to come).
        moment = None
        if index == 0:
            moment = requested_at
        elif index == at:
            moment = since
        elif state == "todo":
            moment = planned.get(index)
        steps.append(
            {
                "name": name,
                "state": state,
                "note": label if index == at and (stopped or status != name) else "",
                "time": when(moment),
            }
        )
    running = status == "running" and hub_url
    return Timeline(
        status=status,
        label=label,
        steps=steps,
        hub_url=hub_url if running else None,
        final=status in FINAL,
    )


def request_timeline(request: HubRequest) -> Timeline:
    return timeline(
        str(request.status),
        requested_at=request.created_at,
        since=request.updated_at,
        starts_at=request.spec.starts_at,
        ends_at=request.spec.ends_at,
        hub_url=request.hub_url,
    )


def hub_timeline(course: MyCourse | Course) -> Timeline:
    """The hub's status as participant-svc reports it; its link only for those who
    may enter (not for someone whose application waits or was rejected)."""
    may_open = isinstance(course, Course) or course.role is not None
    shown = timeline(
        str(course.hub_status),
        starts_at=course.starts_at,
        ends_at=course.ends_at,
        hub_url=course.hub_url if may_open else None,
    )
    if isinstance(course, MyCourse) and course.participation_status in ENDED:
        # Rejected, removed or left: nothing more of this course is theirs to watch.
        return replace(shown, final=True)
    return shown


# --- reading what a course page shows ---------------------------------------------


@dataclass
class Refusal:
    """A refusal shown next to the action it concerns, or at the top."""

    status: int
    messages: dict[str, str] = field(default_factory=dict)  # section -> message
    fields: dict[str, str] = field(default_factory=dict)  # input id -> message
    typed: dict[str, str] = field(default_factory=dict)  # input id -> what was typed


async def _names(request: Request_, user_ids: list[str]) -> dict[str, tuple[str, str]]:
    return await gateway_of(request).accounts.names_of(sorted(set(user_ids)))


def _person(names: Mapping[str, tuple[str, str]], user_id: str) -> dict[str, str]:
    username, display = names.get(user_id, (user_id, ""))
    return {"user_id": user_id, "username": username, "display_name": display}


def _unavailable(caller: Caller, title: str = COURSE) -> Response[Any]:
    return problem_page(503, title, UNAVAILABLE, viewer=caller)


def _refused(answer: RpcError, caller: Caller, title: str = COURSE) -> Response[Any]:
    """A refusal of the whole page: 404 (or 403) as the service said, in words."""
    if answer.code == ErrorCode.UNAVAILABLE:
        return _unavailable(caller, title)
    if answer.code == ErrorCode.NOT_FOUND:
        return problem_page(
            404, title, NO_SUCH_COURSE, viewer=caller, action=("/courses", MY_COURSES)
        )
    return problem_page(
        STATUS_OF_CODE[answer.code],
        title,
        answer.message,
        viewer=caller,
        action=("/courses", MY_COURSES),
    )


@dataclass
class Seen:
    """What the caller may see of one course: as its leader (the request, and the
    course once approved), as its tutor (the course), or their own participation."""

    request: HubRequest | None = None
    course: Course | None = None
    mine: MyCourse | None = None

    @property
    def title(self) -> str:
        for source in (self.course, self.mine):
            if source is not None:
                return source.title
        return self.request.spec.title if self.request is not None else ""

    def timeline(self) -> Timeline:
        if self.request is not None:
            return request_timeline(self.request)
        if self.course is not None:
            return hub_timeline(self.course)
        assert self.mine is not None
        return hub_timeline(self.mine)


async def _my_course(request: Request_, caller: Caller, request_id: str) -> MyCourse | RpcError:
    listed = await call_service(request, caller, ParticipantOps.MY_COURSES, Empty(), MyCourseList)
    if isinstance(listed, RpcError):
        return listed
    for item in listed.items:
        if item.request_id == request_id:
            return item
    return RpcError(code=ErrorCode.NOT_FOUND, message=NO_SUCH_COURSE)


def _valid_id(request_id: str) -> bool:
    try:
        msgspec.convert({"request_id": request_id}, CourseRef)
    except msgspec.ValidationError:
        return False
    return True


async def look(request: Request_, caller: Caller, request_id: str) -> Seen | RpcError:
    """What the services let the caller see of the course, or their refusal."""
    if not _valid_id(request_id):
        return RpcError(code=ErrorCode.NOT_FOUND, message=NO_SUCH_COURSE)
    seen = Seen()
    got = await call_service(
        request, caller, RequestOps.GET, GetRequest(request_id=request_id), HubRequest
    )
    if isinstance(got, RpcError) and got.code != ErrorCode.NOT_FOUND:
        return got
    if not isinstance(got, RpcError):
        seen.request = got
    course = await call_service(
        request, caller, ParticipantOps.COURSE, CourseRef(request_id=request_id), Course
    )
    if isinstance(course, RpcError):
        if course.code not in (ErrorCode.NOT_FOUND, ErrorCode.FORBIDDEN):
            return course
    else:
        seen.course = course
    if seen.request is None and seen.course is None:
        mine = await _my_course(request, caller, request_id)
        if isinstance(mine, RpcError):
            return mine
        seen.mine = mine
    return seen


async def _course_page(
    request: Request_,
    visitor: Visitor,
    seen: Seen,
    *,
    refusal: Refusal | None = None,
) -> Response[Any]:
    caller = visitor.caller
    refusal = refusal or Refusal(status=200)
    values: dict[str, Any] = {
        "csrf": visitor.csrf,
        "request_id": "",
        "course_title": seen.title,
        "timeline": seen.timeline(),
        "step_labels": [label for _name, label in STEPS],
        "status_labels": STATUS_LABELS,
        "participation_labels": PARTICIPATION_LABELS,
        "role_labels": ROLE_LABELS,
        "leader": False,
        "hub_request": seen.request,
        "course": seen.course,
        "mine": seen.mine,
        "join_url": "",
        "qr": "",
        "applications": [],
        "roster": [],
        "others": [],
        "tutors": [],
        "errors": refusal.messages,
        # The error summary's links: to the input a refusal names, else to its section's notice.
        "problems": [
            (next(iter(refusal.fields), f"{section}-error"), message)
            for section, message in refusal.messages.items()
        ],
        "field_errors": refusal.fields,
        "typed": refusal.typed,
        "done": DONE.get(request.query_params.get("done", ""), ""),
        "times": {},
    }
    request_id = (
        seen.request.request_id
        if seen.request is not None
        else (seen.course or seen.mine).request_id  # type: ignore[union-attr]
    )
    values["request_id"] = request_id
    values["base"] = course_path(request_id)
    values["leader"] = seen.request is not None and seen.request.leader_id == caller.user_id
    if seen.request is not None:
        values["times"] = {
            "starts": when(seen.request.spec.starts_at),
            "ends": when(seen.request.spec.ends_at),
        }
    if seen.course is not None:
        course = seen.course
        view = course_view(course, gateway_of(request).settings)
        values["join_url"] = view.join_url
        values["qr"] = qr_svg_data_uri(view.join_url)
        values["times"] = {"starts": when(course.starts_at), "ends": when(course.ends_at)}
        listed = await call_service(
            request,
            caller,
            ParticipantOps.LIST,
            ListParticipations(request_id=request_id),
            ParticipationList,
        )
        if isinstance(listed, RpcError):
            return _refused(listed, caller)
        names = await _names(request, [p.user_id for p in listed.items] + course.tutors)
        rows = [
            {
                "id": p.participation_id,
                "status": str(p.status),
                "message": p.message,
                "applied": when(p.applied_at),
                "decided": when(p.decided_at),
                **_person(names, p.user_id),
            }
            for p in listed.items
        ]
        values["applications"] = [r for r in rows if r["status"] == ParticipationStatus.PENDING]
        values["roster"] = [r for r in rows if r["status"] == ParticipationStatus.ACCEPTED]
        values["others"] = [
            r
            for r in rows
            if r["status"] not in (ParticipationStatus.PENDING, ParticipationStatus.ACCEPTED)
        ]
        values["tutors"] = [_person(names, user_id) for user_id in course.tutors]
    elif seen.mine is not None:
        values["times"] = {"starts": when(seen.mine.starts_at), "ends": when(seen.mine.ends_at)}
    return Page(
        "courses/course.html",
        title=COURSE,
        viewer=caller,
        status=refusal.status,
        **values,
    )


# --- the pages ------------------------------------------------------------------------


@get("/courses", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def my_courses_page(request: Request_) -> Response[Any]:
    """The caller's requests (as a leader) and the courses they tutor, take part in
    or applied to, each with its status and a link."""
    visitor = await signed_in(request, "/courses")
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    requests = await call_service(
        request, caller, RequestOps.LIST, ListRequests(scope="mine"), HubRequestList
    )
    if isinstance(requests, RpcError):
        return _refused(requests, caller, MY_COURSES)
    courses = await call_service(request, caller, ParticipantOps.MY_COURSES, Empty(), MyCourseList)
    if isinstance(courses, RpcError):
        return _refused(courses, caller, MY_COURSES)
    led = {r.request_id for r in requests.items}
    order = sorted(requests.items, key=lambda r: r.spec.starts_at, reverse=True)
    mine = [
        {
            "href": course_path(r.request_id),
            "title": r.spec.title,
            "status": str(r.status),
            "starts": when(r.spec.starts_at),
            "ends": when(r.spec.ends_at),
            "hub_url": r.hub_url if r.status == RequestStatus.RUNNING else None,
        }
        for r in order
    ]
    taking = [
        {
            "href": course_path(c.request_id),
            "title": c.title,
            "role": str(c.role) if c.role is not None else "",
            "participation": str(c.participation_status or ""),
            "hub_status": str(c.hub_status),
            "starts": when(c.starts_at),
            "ends": when(c.ends_at),
            "hub_url": c.hub_url if _may_open(c) else None,
        }
        for c in sorted(courses.items, key=lambda c: c.starts_at, reverse=True)
        if c.request_id not in led
    ]
    return Page(
        "courses/mine.html",
        title=MY_COURSES,
        viewer=caller,
        led=mine,
        taking=taking,
        is_leader="leader" in caller.roles,
        status_labels=STATUS_LABELS,
        participation_labels=PARTICIPATION_LABELS,
        role_labels=ROLE_LABELS,
        done=DONE.get(request.query_params.get("done", ""), ""),
    )


def _may_open(course: MyCourse) -> bool:
    return (
        course.role is not None
        and course.hub_status == DeploymentState.RUNNING
        and course.hub_url is not None
    )


@get("/courses/{request_id:str}", media_type=MediaType.HTML, include_in_schema=False, security=[])
async def course_page(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """A course as its leader, a tutor or a participant may see it."""
    visitor = await signed_in(request, course_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    seen = await look(request, visitor.caller, request_id)
    if isinstance(seen, RpcError):
        return _refused(seen, visitor.caller)
    return await _course_page(request, visitor, seen)


@get(
    "/courses/{request_id:str}/timeline",
    media_type="text/event-stream",
    include_in_schema=False,
    security=[],
)
async def course_timeline(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """The course's status as server-sent events: one `status` event at once, one
    more each time it changes; comment lines as heartbeats; it ends when the course
    is deleted (or cannot change any more), the browser leaves, or after a while."""
    visitor = await signed_in(request, course_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    caller = visitor.caller
    if _open_streams[caller.user_id] >= MAX_STREAMS_PER_PERSON:
        busy = problem_page(429, COURSE, TOO_MANY_STREAMS, viewer=caller)
        busy.headers["Retry-After"] = str(RECONNECT_MS // 1000)
        return busy
    seen = await look(request, caller, request_id)
    if isinstance(seen, RpcError):
        return _refused(seen, caller)
    language = choose_language(caller.preferred_language, request.headers.get("accept-language"))
    tr = translations(language).gettext
    leader_view = seen.request is not None

    async def current(caller: Caller) -> Timeline | None:
        """The course's timeline now; None: it is gone for this caller (deleted)."""
        if leader_view:
            got = await call_service(
                request, caller, RequestOps.GET, GetRequest(request_id=request_id), HubRequest
            )
            return None if isinstance(got, RpcError) else request_timeline(got)
        mine = await _my_course(request, caller, request_id)
        if isinstance(mine, RpcError):
            course = await call_service(
                request, caller, ParticipantOps.COURSE, CourseRef(request_id=request_id), Course
            )
            return None if isinstance(course, RpcError) else hub_timeline(course)
        return hub_timeline(mine)

    async def still_signed_in() -> Caller | None:
        """The caller as their session stands now (roles may have changed); None once
        it ended (signed out, revoked, the account disabled or deleted)."""
        found = await session_caller(request)
        if found is None or found[0].session_id != caller.session_id:
            return None
        return found[0]

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        _open_streams[caller.user_id] += 1
        try:
            async for message in watch():
                yield message
        finally:
            _open_streams[caller.user_id] -= 1
            if _open_streams[caller.user_id] <= 0:
                del _open_streams[caller.user_id]

    async def watch() -> AsyncIterator[ServerSentEventMessage]:
        loop = asyncio.get_running_loop()
        started = last_sent = loop.time()
        shown = seen.timeline()
        yield ServerSentEventMessage(event="status", data=shown.as_event(tr), retry=RECONNECT_MS)
        while not shown.final and loop.time() - started < STREAM_SECONDS:
            await asyncio.sleep(POLL_SECONDS)
            now_caller = await still_signed_in()
            if now_caller is None:
                # The session ended: nothing more for it. EventSource connects again
                # and is sent to sign in, as the page would be.
                return
            now = await current(now_caller)
            if now is None:  # deleted: its course and request are gone for this caller
                gone = timeline("deleted")
                yield ServerSentEventMessage(event="status", data=gone.as_event(tr))
                return
            if now != shown:
                shown = now
                last_sent = loop.time()
                yield ServerSentEventMessage(event="status", data=now.as_event(tr))
            elif loop.time() - last_sent >= HEARTBEAT_SECONDS:
                last_sent = loop.time()
                yield ServerSentEventMessage(comment="still here")
        # Nothing more will come: tell EventSource not to connect again.
        if shown.final:
            yield ServerSentEventMessage(event="end", data="")

    return ServerSentEvent(
        events(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


# --- the actions --------------------------------------------------------------------


async def _acting(
    request: Request_, request_id: str
) -> tuple[Visitor, dict[str, list[str]]] | Response[Any]:
    """The visitor and the form of an action, or the page that answers instead."""
    fields = await form_fields(request, COURSE)
    if isinstance(fields, Response):
        return fields
    visitor = await signed_in(request, course_path(request_id))
    if isinstance(visitor, Response):
        return visitor
    if not visitor.made(fields):
        return foreign_form_page(COURSE, visitor.caller)
    return visitor, fields


async def _refused_here(
    request: Request_,
    visitor: Visitor,
    request_id: str,
    answer: RpcError,
    section: str,
    *,
    fields: Mapping[str, str] | None = None,
    typed: Mapping[str, str] | None = None,
) -> Response[Any]:
    """The course page again, with the refusal next to the action it concerns."""
    if answer.code == ErrorCode.UNAVAILABLE:
        return _unavailable(visitor.caller)
    seen = await look(request, visitor.caller, request_id)
    if isinstance(seen, RpcError):
        return _refused(seen, visitor.caller)
    status = STATUS_OF_CODE.get(answer.code, 422)
    refusal = Refusal(
        status=status,
        messages={section: answer.message},
        fields=dict(fields or {}),
        typed=dict(typed or {}),
    )
    return await _course_page(request, visitor, seen, refusal=refusal)


def _invalid(message: str) -> RpcError:
    return RpcError(code=ErrorCode.INVALID, message=message)


@post(
    "/courses/{request_id:str}/applications",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def decide_applications(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Accept or reject applications: the ticked ones (`participation`, with
    `decision` accept or reject), or one by its own button (`accept_one`,
    `reject_one`). All or none, as participant-svc decides them."""
    acting = await _acting(request, request_id)
    if isinstance(acting, Response):
        return acting
    visitor, fields = acting
    reason = first(fields, "reason")
    typed = {"reason": reason}
    if first(fields, "accept_one") or first(fields, "reject_one"):
        accept = bool(first(fields, "accept_one"))
        ids = [first(fields, "accept_one") or first(fields, "reject_one")]
    else:
        decision = first(fields, "decision")
        if decision not in ("accept", "reject"):
            return await _refused_here(
                request, visitor, request_id, _invalid(PICK_SOME), "applications", typed=typed
            )
        accept = decision == "accept"
        ids = [i for i in fields.get("participation", []) if i]
    if not ids:
        return await _refused_here(
            request, visitor, request_id, _invalid(PICK_SOME), "applications", typed=typed
        )
    try:
        if accept:
            payload: msgspec.Struct = msgspec.convert(
                {"request_id": request_id, "participation_ids": ids}, Decide
            )
        else:
            payload = msgspec.convert(
                {"request_id": request_id, "participation_ids": ids, "reason": reason},
                RejectParticipations,
            )
    except msgspec.ValidationError as exc:
        message = REASON_RULE if "reason" in str(exc) else NOT_ONE_OF_THEM
        section_fields = {"reason": REASON_RULE} if message == REASON_RULE else {}
        return await _refused_here(
            request,
            visitor,
            request_id,
            _invalid(message),
            "applications",
            fields=section_fields,
            typed=typed,
        )
    op = ParticipantOps.ACCEPT if accept else ParticipantOps.REJECT
    answer = await call_service(request, visitor.caller, op, payload, ParticipationList)
    if isinstance(answer, RpcError):
        if answer.code == ErrorCode.NOT_FOUND and "participation_ids" in answer.fields:
            answer = RpcError(code=ErrorCode.NOT_FOUND, message=NOT_ONE_OF_THEM)
        return await _refused_here(
            request, visitor, request_id, answer, "applications", typed=typed
        )
    done = "accepted" if accept else "rejected"
    return see_other(course_path(request_id, f"?done={done}#applications"))


@post(
    "/courses/{request_id:str}/join-code/rotate",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def rotate_join_code_page(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """A new join code; the old link stops working at once."""
    acting = await _acting(request, request_id)
    if isinstance(acting, Response):
        return acting
    visitor, _fields = acting
    if not _valid_id(request_id):
        return _refused(RpcError(code=ErrorCode.NOT_FOUND, message=NO_SUCH_COURSE), visitor.caller)
    answer = await call_service(
        request,
        visitor.caller,
        ParticipantOps.ROTATE_JOIN,
        CourseRef(request_id=request_id),
        Course,
    )
    if isinstance(answer, RpcError):
        return await _refused_here(request, visitor, request_id, answer, "joining")
    return see_other(course_path(request_id, "?done=rotated#joining"))


@post(
    "/courses/{request_id:str}/join-code",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def set_joining_page(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Open (`open=yes`) or close (`open=no`) joining with the code."""
    acting = await _acting(request, request_id)
    if isinstance(acting, Response):
        return acting
    visitor, fields = acting
    wanted = first(fields, "open")
    if wanted not in ("yes", "no") or not _valid_id(request_id):
        return await _refused_here(
            request,
            visitor,
            request_id,
            _invalid(N_("Choose whether joining is open or closed.")),
            "joining",
        )
    payload = SetJoinOpen(request_id=request_id, open=wanted == "yes")
    answer = await call_service(
        request, visitor.caller, ParticipantOps.SET_JOIN_OPEN, payload, Course
    )
    if isinstance(answer, RpcError):
        return await _refused_here(request, visitor, request_id, answer, "joining")
    done = "opened" if wanted == "yes" else "closed"
    return see_other(course_path(request_id, f"?done={done}#joining"))


@post(
    "/courses/{request_id:str}/tutors",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def add_tutor_page(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Name a tutor by their user name."""
    acting = await _acting(request, request_id)
    if isinstance(acting, Response):
        return acting
    visitor, fields = acting
    username = first(fields, "username").strip()
    typed = {"username": first(fields, "username")}
    if not username:
        return await _refused_here(
            request,
            visitor,
            request_id,
            _invalid(NAME_A_TUTOR),
            "tutors",
            fields={"username": NAME_A_TUTOR},
            typed=typed,
        )
    # As the API route does: an unknown name is refused before any service is asked;
    # a known one is only a user id to participant-svc, which decides.
    seen = await look(request, visitor.caller, request_id)
    if isinstance(seen, RpcError):
        return _refused(seen, visitor.caller)
    user = await gateway_of(request).accounts.find_user(username)
    if user is None:
        return await _refused_here(
            request,
            visitor,
            request_id,
            RpcError(code=ErrorCode.NOT_FOUND, message=NO_SUCH_USER),
            "tutors",
            fields={"username": NO_SUCH_USER},
            typed=typed,
        )
    payload = TutorRef(request_id=request_id, user_id=user.user_id)
    answer = await call_service(request, visitor.caller, ParticipantOps.ADD_TUTOR, payload, Course)
    if isinstance(answer, RpcError):
        return await _refused_here(
            request,
            visitor,
            request_id,
            answer,
            "tutors",
            fields={"username": answer.message},
            typed=typed,
        )
    return see_other(course_path(request_id, "?done=tutor-added#tutors"))


@post(
    "/courses/{request_id:str}/tutors/remove",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def remove_tutor_page(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Take a tutor's role away (the form names them by `user_id`)."""
    acting = await _acting(request, request_id)
    if isinstance(acting, Response):
        return acting
    visitor, fields = acting
    try:
        payload = msgspec.convert(
            {"request_id": request_id, "user_id": first(fields, "user_id")}, TutorRef
        )
    except msgspec.ValidationError:
        return await _refused_here(
            request,
            visitor,
            request_id,
            _invalid(N_("Choose a tutor of this course to remove.")),
            "tutors",
        )
    answer = await call_service(
        request, visitor.caller, ParticipantOps.REMOVE_TUTOR, payload, Course
    )
    if isinstance(answer, RpcError):
        return await _refused_here(request, visitor, request_id, answer, "tutors")
    # As the API route does: after participant-svc committed, the hub's grants go.
    await revoke_hub_grants(gateway_of(request).db, payload.user_id, request_id)
    return see_other(course_path(request_id, "?done=tutor-removed#tutors"))


@post(
    "/courses/{request_id:str}/cancel",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def cancel_course_page(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Cancel the course (approved, deploying, running, failed) or withdraw the
    request (still in review); the form's box `confirm` must be ticked."""
    acting = await _acting(request, request_id)
    if isinstance(acting, Response):
        return acting
    visitor, fields = acting
    reason = first(fields, "cancel-reason")
    typed = {"cancel-reason": reason}
    if first(fields, "confirm") != "yes":
        return await _refused_here(
            request,
            visitor,
            request_id,
            _invalid(CONFIRM_CANCEL),
            "cancel",
            fields={"confirm": CONFIRM_CANCEL},
            typed=typed,
        )
    seen = await look(request, visitor.caller, request_id)
    if isinstance(seen, RpcError):
        return _refused(seen, visitor.caller)
    in_review = seen.request is not None and seen.request.status in (
        RequestStatus.SUBMITTED,
        RequestStatus.CHANGES_REQUESTED,
    )
    try:
        if in_review:
            payload: msgspec.Struct = msgspec.convert({"request_id": request_id}, WithdrawRequest)
            op = RequestOps.WITHDRAW
        else:
            payload = msgspec.convert({"request_id": request_id, "reason": reason}, CancelRequest)
            op = RequestOps.CANCEL
    except msgspec.ValidationError:
        return await _refused_here(
            request,
            visitor,
            request_id,
            _invalid(REASON_RULE),
            "cancel",
            fields={"cancel-reason": REASON_RULE},
            typed=typed,
        )
    answer = await call_service(request, visitor.caller, op, payload, HubRequest)
    if isinstance(answer, RpcError):
        return await _refused_here(request, visitor, request_id, answer, "cancel", typed=typed)
    return see_other(course_path(request_id, f"?done={'withdrawn' if in_review else 'cancelled'}"))


@post(
    "/courses/{request_id:str}/leave",
    media_type=MediaType.HTML,
    include_in_schema=False,
    security=[],
)
async def leave_course_page(request: Request_, request_id: FromPath[str]) -> Response[Any]:
    """Leave a course you take part in, or withdraw your application."""
    acting = await _acting(request, request_id)
    if isinstance(acting, Response):
        return acting
    visitor, _fields = acting
    if not _valid_id(request_id):
        return _refused(RpcError(code=ErrorCode.NOT_FOUND, message=NO_SUCH_COURSE), visitor.caller)
    answer = await call_service(
        request,
        visitor.caller,
        ParticipantOps.LEAVE,
        CourseRef(request_id=request_id),
        Participation,
    )
    if isinstance(answer, RpcError):
        return await _refused_here(request, visitor, request_id, answer, "leave")
    await revoke_hub_grants(gateway_of(request).db, answer.user_id, answer.request_id)
    return see_other("/courses?done=left")


__all__ = [
    "add_tutor_page",
    "cancel_course_page",
    "course_page",
    "course_timeline",
    "decide_applications",
    "leave_course_page",
    "my_courses_page",
    "remove_tutor_page",
    "rotate_join_code_page",
    "set_joining_page",
]
