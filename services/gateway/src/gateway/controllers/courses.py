"""Courses, join codes and participants, served by participant-svc."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Response
from litestar.status_codes import HTTP_200_OK

from gateway.accounts import Accounts
from gateway.context import gateway_of
from gateway.dependencies import ServiceCalls
from gateway.errors import SERVICE_ERRORS, TooManyRequests, error_responses
from gateway.guards import requires_authenticated
from gateway.join_limit import TOO_MANY_MISSES, JoinCodeGuessLimit
from gateway.oauth import revoke_hub_grants
from gateway.schemas import (
    AcceptBody,
    ApplyBody,
    CourseView,
    JoinOpenBody,
    RejectApplicationsBody,
    RemoveBody,
    TutorBody,
)
from gateway.settings import GatewaySettings
from jhaas_runtime.rpc import RpcFailure
from jhaas_schemas.errors import NotFound
from jhaas_schemas.rpc import (
    Apply,
    Course,
    CoursePreview,
    CourseRef,
    Decide,
    Empty,
    ErrorCode,
    JoinCodeRef,
    ListParticipations,
    MyCourseList,
    ParticipantOps,
    Participation,
    ParticipationList,
    ParticipationRef,
    ParticipationStatus,
    RejectParticipations,
    RemoveParticipant,
    SetJoinOpen,
    TutorRef,
)

ERRORS = error_responses(*SERVICE_ERRORS)
R = TypeVar("R")
# A spreadsheet runs a cell that starts with one of these as a formula; some
# (in East Asian locales) also take the full-width forms of = + - @ for them.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def course_view(course: Course, settings: GatewaySettings) -> CourseView:
    join_url = f"{settings.public_url.rstrip('/')}/join/{course.join_code}"
    return CourseView(**msgspec.structs.asdict(course), join_url=join_url)


class CourseController(Controller):
    path = "/courses"
    tags = ["courses"]
    guards = [requires_authenticated]

    @get("", responses=ERRORS)
    async def my_courses(self, services: NamedDependency[ServiceCalls]) -> MyCourseList:
        """The courses you lead, tutor or applied to, with each hub's status and link."""
        return await services(ParticipantOps.MY_COURSES, Empty(), MyCourseList)

    @get("/{request_id:str}", responses=ERRORS)
    async def get_course(
        self,
        request_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
        settings: NamedDependency[GatewaySettings],
    ) -> CourseView:
        """A course with its join code and link (leader, tutors)."""
        course = await services(ParticipantOps.COURSE, CourseRef(request_id=request_id), Course)
        return course_view(course, settings)

    @post("/{request_id:str}/join-code/rotate", status_code=HTTP_200_OK, responses=ERRORS)
    async def rotate_join_code(
        self,
        request_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
        settings: NamedDependency[GatewaySettings],
    ) -> CourseView:
        """A new join code (leader); the old one stops working at once."""
        payload = CourseRef(request_id=request_id)
        return course_view(await services(ParticipantOps.ROTATE_JOIN, payload, Course), settings)

    @put("/{request_id:str}/join-code", responses=ERRORS)
    async def set_joining(
        self,
        request_id: FromPath[str],
        data: JSONBody[JoinOpenBody],
        services: NamedDependency[ServiceCalls],
        settings: NamedDependency[GatewaySettings],
    ) -> CourseView:
        """Close (`open: false`) or re-open joining with the code (leader)."""
        payload = SetJoinOpen(request_id=request_id, open=data.open)
        return course_view(await services(ParticipantOps.SET_JOIN_OPEN, payload, Course), settings)

    @get("/{request_id:str}/participations", responses=ERRORS)
    async def list_participations(
        self,
        request_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
        status: FromQuery[ParticipationStatus | None] = None,
    ) -> ParticipationList:
        """Applications and participants, optionally of one status (leader, tutors)."""
        query = ListParticipations(request_id=request_id, status=status)
        return await services(ParticipantOps.LIST, query, ParticipationList)

    @post("/{request_id:str}/participations/accept", status_code=HTTP_200_OK, responses=ERRORS)
    async def accept(
        self,
        request_id: FromPath[str],
        data: JSONBody[AcceptBody],
        services: NamedDependency[ServiceCalls],
    ) -> ParticipationList:
        """Accept applications, all or none: 409 naming the limit when the approved
        number of participants would be exceeded."""
        payload = Decide(request_id=request_id, participation_ids=data.participation_ids)
        return await services(ParticipantOps.ACCEPT, payload, ParticipationList)

    @post("/{request_id:str}/participations/reject", status_code=HTTP_200_OK, responses=ERRORS)
    async def reject(
        self,
        request_id: FromPath[str],
        data: JSONBody[RejectApplicationsBody],
        services: NamedDependency[ServiceCalls],
    ) -> ParticipationList:
        """Reject pending applications, all or none, with one reason."""
        payload = RejectParticipations(
            request_id=request_id, participation_ids=data.participation_ids, reason=data.reason
        )
        return await services(ParticipantOps.REJECT, payload, ParticipationList)

    @post(
        "/{request_id:str}/participations/{participation_id:str}/remove",
        status_code=HTTP_200_OK,
        responses=ERRORS,
    )
    async def remove(
        self,
        request: Request[Any, Any, Any],
        request_id: FromPath[str],
        participation_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
        data: JSONBody[RemoveBody | None] = None,
    ) -> Participation:
        """Remove an accepted participant; they lose their way into the hub at once."""
        payload = RemoveParticipant(
            request_id=request_id,
            participation_id=participation_id,
            reason=data.reason if data is not None else "",
        )
        removed = await services(ParticipantOps.REMOVE, payload, Participation)
        # After participant-svc committed: a refused removal revokes nothing.
        await revoke_hub_grants(gateway_of(request).db, removed.user_id, removed.request_id)
        return removed

    @post(
        "/{request_id:str}/participations/{participation_id:str}/reopen",
        status_code=HTTP_200_OK,
        responses=ERRORS,
    )
    async def reopen(
        self,
        request_id: FromPath[str],
        participation_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
    ) -> Participation:
        """Make a rejected application pending again."""
        payload = ParticipationRef(request_id=request_id, participation_id=participation_id)
        return await services(ParticipantOps.REOPEN, payload, Participation)

    @post("/{request_id:str}/leave", status_code=HTTP_200_OK, responses=ERRORS)
    async def leave(
        self,
        request: Request[Any, Any, Any],
        request_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
    ) -> Participation:
        """Leave a course you take part in, or withdraw your application."""
        left = await services(ParticipantOps.LEAVE, CourseRef(request_id=request_id), Participation)
        await revoke_hub_grants(gateway_of(request).db, left.user_id, left.request_id)
        return left

    @post("/{request_id:str}/tutors", status_code=HTTP_200_OK, responses=ERRORS)
    async def add_tutor(
        self,
        request_id: FromPath[str],
        data: JSONBody[TutorBody],
        services: NamedDependency[ServiceCalls],
        accounts: NamedDependency[Accounts],
        settings: NamedDependency[GatewaySettings],
    ) -> CourseView:
        """Name a tutor by their user name (leader)."""
        user = await accounts.find_user(data.username)
        if user is None:
            raise NotFound(f"no user named {data.username!r}", {"username": "unknown"})
        payload = TutorRef(request_id=request_id, user_id=user.user_id)
        return course_view(await services(ParticipantOps.ADD_TUTOR, payload, Course), settings)

    @delete("/{request_id:str}/tutors/{user_id:str}", status_code=HTTP_200_OK, responses=ERRORS)
    async def remove_tutor(
        self,
        request: Request[Any, Any, Any],
        request_id: FromPath[str],
        user_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
        settings: NamedDependency[GatewaySettings],
    ) -> CourseView:
        """Take a tutor's role away (leader)."""
        payload = TutorRef(request_id=request_id, user_id=user_id)
        course = await services(ParticipantOps.REMOVE_TUTOR, payload, Course)
        await revoke_hub_grants(gateway_of(request).db, user_id, request_id)
        return course_view(course, settings)

    @get("/{request_id:str}/roster.csv", media_type="text/csv", responses=ERRORS)
    async def roster(
        self,
        request_id: FromPath[str],
        services: NamedDependency[ServiceCalls],
        accounts: NamedDependency[Accounts],
    ) -> Response[str]:
        """The roster as CSV: name, status, applied and decided dates (leader, tutors)."""
        course = await services(ParticipantOps.COURSE, CourseRef(request_id=request_id), Course)
        listed = await services(
            ParticipantOps.LIST, ListParticipations(request_id=request_id), ParticipationList
        )
        names = await accounts.names_of(sorted({p.user_id for p in listed.items}))
        return Response(
            roster_csv(listed.items, names),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="roster-{course.slug}.csv"'},
        )


def roster_csv(items: list[Participation], names: dict[str, tuple[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["username", "display_name", "status", "applied_at", "decided_at"])
    for p in items:
        username, display = names.get(p.user_id, (p.user_id, ""))
        writer.writerow(
            [
                safe_cell(username),
                safe_cell(display),
                p.status,
                _date(p.applied_at),
                _date(p.decided_at),
            ]
        )
    return out.getvalue()


def safe_cell(text: str) -> str:
    """A cell a spreadsheet shows as text, never runs as a formula (OWASP CSV injection)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _date(value: datetime | None) -> str:
    return value.isoformat() if value is not None else ""


class JoinController(Controller):
    path = "/join"
    tags = ["courses"]
    guards = [requires_authenticated]

    @get("/{code:str}", responses=ERRORS)
    async def preview(
        self,
        code: FromPath[str],
        services: NamedDependency[ServiceCalls],
        join_limit: NamedDependency[JoinCodeGuessLimit],
    ) -> CoursePreview:
        """Anyone signed in: what a join code opens; 404 for an unknown, closed or
        replaced code (too many of those in a short time: 429)."""
        payload = JoinCodeRef(code=code)
        return await by_code(
            services, join_limit, ParticipantOps.FIND_BY_CODE, payload, CoursePreview
        )

    @post("/{code:str}", responses=ERRORS)
    async def apply(
        self,
        code: FromPath[str],
        services: NamedDependency[ServiceCalls],
        join_limit: NamedDependency[JoinCodeGuessLimit],
        data: JSONBody[ApplyBody | None] = None,
    ) -> Participation:
        """Anyone signed in: apply to the course with its join code (201); the
        leader or a tutor decides."""
        payload = Apply(code=code, message=data.message if data is not None else "")
        return await by_code(services, join_limit, ParticipantOps.APPLY, payload, Participation)


async def by_code(
    services: ServiceCalls,
    limit: JoinCodeGuessLimit,
    subject: str,
    payload: msgspec.Struct,
    result: type[R],
) -> R:
    """A call naming a join code, counted against the caller's allowance of unknown codes."""
    user_id = services.principal.user_id
    wait = limit.retry_after(user_id)
    if wait is not None:
        raise TooManyRequests(TOO_MANY_MISSES, wait)
    try:
        return await services(subject, payload, result)
    except RpcFailure as exc:
        if exc.error.code == ErrorCode.NOT_FOUND:
            limit.missed(user_id)
        raise
