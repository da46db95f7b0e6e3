"""Thin handlers: decode, load, call the domain, save with the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

from jhaas_runtime.logs import get_logger
from jhaas_runtime.rpc import CallContext
from jhaas_runtime.service import ServiceRuntime, UnitOfWork
from jhaas_schemas.envelope import Envelope, Event, envelope
from jhaas_schemas.errors import Conflict
from jhaas_schemas.events import (
    ChangeApproved,
    CourseEnded,
    HubDeleted,
    HubDeploying,
    HubFailed,
    HubReady,
    RequestApproved,
    RequestCancelled,
    RosterPurged,
)
from jhaas_schemas.rpc import (
    Apply,
    Course,
    CourseAccess,
    CoursePreview,
    CourseRef,
    CourseRole,
    Decide,
    Empty,
    JoinCodeRef,
    ListParticipations,
    MyCourse,
    MyCourseList,
    Participation,
    ParticipationList,
    ParticipationRef,
    ParticipationStatus,
    RejectParticipations,
    RemoveParticipant,
    SetJoinOpen,
    TutorRef,
    UserRef,
    UserWithdrawn,
)
from participant_svc import domain, projection
from participant_svc.domain import CourseState, ParticipationState
from participant_svc.store import (
    CourseRepository,
    ParticipationRepository,
    PurgedCourseRepository,
    courses_of,
)

SOURCE = "participant-svc"
Clock = Callable[[], datetime]

log = get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class ParticipantHandlers:
    def __init__(self, runtime: ServiceRuntime, clock: Clock = utcnow) -> None:
        self.runtime = runtime
        self.clock = clock

    def _env_maker(self, ctx: CallContext, now: datetime) -> Callable[[], Envelope]:
        return lambda: envelope(source=SOURCE, correlation_id=ctx.correlation_id, now=now)

    # --- reads ---------------------------------------------------------------

    async def course(self, ctx: CallContext, payload: CourseRef) -> Course:
        def read(conn: Connection) -> CourseState:
            course = _visible(conn, ctx, _course(conn, payload.request_id))
            domain.require_staff(course, ctx.principal)
            return course

        return (await self.runtime.db.read(read)).view()

    async def find_by_code(self, _ctx: CallContext, payload: JoinCodeRef) -> CoursePreview:
        found = await self.runtime.db.read(_by_code, payload.code)
        course = domain.joinable(found, payload.code)
        return CoursePreview(
            request_id=course.request_id,
            title=course.title,
            starts_at=course.starts_at,
            ends_at=course.ends_at,
        )

    async def list_participations(
        self, ctx: CallContext, payload: ListParticipations
    ) -> ParticipationList:
        def read(conn: Connection) -> list[ParticipationState]:
            course = _visible(conn, ctx, _course(conn, payload.request_id))
            domain.require_staff(course, ctx.principal)
            return ParticipationRepository(conn).list(payload.request_id, payload.status)

        found = await self.runtime.db.read(read)
        return ParticipationList(items=[p.view() for p in found])

    async def my_courses(self, ctx: CallContext, _payload: Empty) -> MyCourseList:
        found = await self.runtime.db.read(courses_of, ctx.principal.user_id)
        # A tutor may also hold an old (rejected, left) application: the role wins.
        first = {
            course.request_id: (course, how, status) for course, how, status in reversed(found)
        }
        items = [_my_course(course, how, status) for course, how, status in first.values()]
        items.sort(key=lambda c: (c.starts_at, c.title, c.request_id))
        return MyCourseList(items=items)

    async def my_participations(self, ctx: CallContext, _payload: Empty) -> ParticipationList:
        user_id = ctx.principal.user_id
        found = await self.runtime.db.read(
            lambda conn: ParticipationRepository(conn).of_user_everywhere(user_id)
        )
        return ParticipationList(items=[p.view() for p in found])

    async def access(self, ctx: CallContext, payload: CourseRef) -> CourseAccess:
        user_id = ctx.principal.user_id

        def read(conn: Connection) -> tuple[CourseState, ParticipationState | None]:
            course = _course(conn, payload.request_id)
            return course, ParticipationRepository(conn).of_user(course.request_id, user_id)

        course, participation = await self.runtime.db.read(read)
        role = course.staff_role(user_id)
        status = participation.status if participation else None
        if role is None and status is ParticipationStatus.ACCEPTED:
            role = CourseRole.PARTICIPANT
        return CourseAccess(
            request_id=course.request_id, title=course.title, role=role, participation_status=status
        )

    # --- the course's own settings -------------------------------------------

    async def rotate_join(self, ctx: CallContext, payload: CourseRef) -> Course:
        code = domain.new_join_code()
        return await self._change_course(
            ctx,
            payload.request_id,
            lambda c, now: domain.rotate_join_code(c, ctx.principal, code, now),
        )

    async def set_join_open(self, ctx: CallContext, payload: SetJoinOpen) -> Course:
        return await self._change_course(
            ctx,
            payload.request_id,
            lambda c, now: domain.set_join_open(c, ctx.principal, payload.open, now),
        )

    async def _change_course(
        self,
        ctx: CallContext,
        request_id: str,
        change: Callable[[CourseState, datetime], CourseState],
    ) -> Course:
        now = self.clock()

        def apply(uow: UnitOfWork) -> CourseState:
            repo = CourseRepository(uow.conn)
            new = change(_visible(uow.conn, ctx, _locked(repo, request_id)), now)
            repo.save(new)
            return new

        return (await self.runtime.write(apply)).view()

    async def add_tutor(self, ctx: CallContext, payload: TutorRef) -> Course:
        now = self.clock()
        env = self._env_maker(ctx, now)()

        def apply(uow: UnitOfWork) -> CourseState:
            repo = CourseRepository(uow.conn)
            course = _visible(uow.conn, ctx, _locked(repo, payload.request_id))
            existing = ParticipationRepository(uow.conn).of_user(course.request_id, payload.user_id)
            new, event = domain.add_tutor(
                course, payload.user_id, existing, principal=ctx.principal, now=now, env=env
            )
            if event is not None:
                repo.add_tutor(course.request_id, payload.user_id)
                uow.emit(event)
            return new

        return (await self.runtime.write(apply)).view()

    async def remove_tutor(self, ctx: CallContext, payload: TutorRef) -> Course:
        now = self.clock()
        env = self._env_maker(ctx, now)()

        def apply(uow: UnitOfWork) -> CourseState:
            repo = CourseRepository(uow.conn)
            course = _visible(uow.conn, ctx, _locked(repo, payload.request_id))
            new, event = domain.remove_tutor(
                course, payload.user_id, principal=ctx.principal, now=now, env=env
            )
            repo.remove_tutor(course.request_id, payload.user_id)
            uow.emit(event)
            return new

        return (await self.runtime.write(apply)).view()

    # --- participations ------------------------------------------------------

    async def apply(self, ctx: CallContext, payload: Apply) -> Participation:
        now = self.clock()
        env = self._env_maker(ctx, now)()
        code = domain.normalized_code(payload.code)

        def store(uow: UnitOfWork) -> ParticipationState:
            course = domain.joinable(CourseRepository(uow.conn).by_code(code), payload.code)
            repo = ParticipationRepository(uow.conn)
            existing = repo.of_user(course.request_id, ctx.principal.user_id)
            participation, event = domain.apply(
                course,
                existing,
                principal=ctx.principal,
                message=payload.message,
                participation_id=str(uuid.uuid4()),
                now=now,
                env=env,
            )
            if not repo.add(participation):
                raise Conflict("you applied to this course already")
            uow.emit(event)
            return participation

        return (await self.runtime.write(store)).view()

    async def accept(self, ctx: CallContext, payload: Decide) -> ParticipationList:
        return await self._decide(ctx, payload.request_id, payload.participation_ids, None)

    async def reject(self, ctx: CallContext, payload: RejectParticipations) -> ParticipationList:
        return await self._decide(
            ctx, payload.request_id, payload.participation_ids, payload.reason
        )

    async def _decide(
        self, ctx: CallContext, request_id: str, ids: Sequence[str], reason: str | None
    ) -> ParticipationList:
        """Accept (`reason` None) or reject the applications `ids`, all or none."""
        now = self.clock()
        new_env = self._env_maker(ctx, now)

        def decide(uow: UnitOfWork) -> list[ParticipationState]:
            # Counting and accepting in one unit under the course's lock: two replicas
            # accepting at once cannot together pass the approved limit.
            course = _visible(uow.conn, ctx, _locked(CourseRepository(uow.conn), request_id))
            domain.require_staff(course, ctx.principal)
            repo = ParticipationRepository(uow.conn)
            picked = domain.chosen(repo.chosen(course.request_id, ids), ids)
            if reason is None:
                changed, events = domain.accept(
                    course, picked, principal=ctx.principal, now=now, new_env=new_env
                )
            else:
                changed, events = domain.reject(
                    course, picked, principal=ctx.principal, reason=reason, now=now,
                    new_env=new_env,
                )  # fmt: skip
            repo.save_decided(changed)
            uow.emit(*events)
            return _merged(picked, changed)

        return ParticipationList(items=[p.view() for p in await self.runtime.write(decide)])

    async def remove(self, ctx: CallContext, payload: RemoveParticipant) -> Participation:
        now = self.clock()
        env = self._env_maker(ctx, now)()

        def change(uow: UnitOfWork) -> ParticipationState:
            course, p, repo = _one(uow.conn, ctx, payload.request_id, payload.participation_id)
            removed, event = domain.remove(
                course, p, principal=ctx.principal, reason=payload.reason, now=now, env=env
            )
            repo.save(removed)
            uow.emit(event)
            return removed

        return (await self.runtime.write(change)).view()

    async def reopen(self, ctx: CallContext, payload: ParticipationRef) -> Participation:
        now = self.clock()

        def change(uow: UnitOfWork) -> ParticipationState:
            course, p, repo = _one(uow.conn, ctx, payload.request_id, payload.participation_id)
            reopened = domain.reopen(course, p, principal=ctx.principal, now=now)
            repo.save(reopened)
            return reopened

        return (await self.runtime.write(change)).view()

    async def leave(self, ctx: CallContext, payload: CourseRef) -> Participation:
        now = self.clock()
        env = self._env_maker(ctx, now)()

        def change(uow: UnitOfWork) -> ParticipationState:
            course = _locked(CourseRepository(uow.conn), payload.request_id)
            repo = ParticipationRepository(uow.conn)
            p = repo.of_user(course.request_id, ctx.principal.user_id)
            left, event = domain.leave(p, principal=ctx.principal, now=now, env=env)
            repo.save(left)
            uow.emit(event)
            return left

        return (await self.runtime.write(change)).view()

    async def withdraw_user(self, ctx: CallContext, payload: UserRef) -> UserWithdrawn:
        """Before an account is deleted: nothing is left of it on any roster or staff."""
        now = self.clock()
        new_env = self._env_maker(ctx, now)
        user_id = payload.user_id

        def change(uow: UnitOfWork) -> tuple[list[ParticipationState], list[str]]:
            participations = ParticipationRepository(uow.conn)
            courses = CourseRepository(uow.conn)
            tutored = courses.tutored_by(user_id)
            left, events = domain.withdraw_user(
                user_id,
                participations.of_user_everywhere(user_id, for_update=True),
                tutored,
                principal=ctx.principal,
                now=now,
                new_env=new_env,
            )
            for p in left:
                participations.save(p)
            for request_id in tutored:
                courses.remove_tutor(request_id, user_id)
            uow.emit(*events)
            return left, tutored

        left, tutored = await self.runtime.write(change)
        return UserWithdrawn(left=[p.view() for p in left], tutor_of=tutored)

    # --- events from other services ------------------------------------------

    def on_approved(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestApproved)
        if PurgedCourseRepository(conn).get(event.request_id) is not None:
            return ()  # a late approval must not bring a deleted course back
        repo = CourseRepository(conn)
        existing = repo.get(event.request_id, for_update=True)
        # A code collision (1 in ~1e14 per pair) fails the unit; the redelivery draws anew.
        course = projection.on_approved(
            existing, event, join_code=domain.new_join_code(), now=self.clock()
        )
        if existing is None:
            repo.add(course)
        else:
            repo.save(course)
        return ()

    def on_change_approved(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, ChangeApproved)
        repo = CourseRepository(conn)
        course = repo.get(event.request_id, for_update=True)
        if course is None:  # purged, or never approved here
            return ()
        changed = projection.on_change_approved(course, event, now=self.clock())
        if changed is not None:
            repo.save(changed)
        return ()

    def on_cancelled(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestCancelled)
        repo = CourseRepository(conn)
        course = repo.get(event.request_id, for_update=True)
        if course is not None:
            repo.save(projection.on_cancelled(course, event, now=self.clock()))
        return ()

    def on_deployer_event(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, HubDeploying | HubReady | HubFailed | CourseEnded)
        repo = CourseRepository(conn)
        course = repo.get(event.request_id, for_update=True)
        new = course and projection.on_deployer_event(course, event, now=self.clock())
        if new:
            repo.save(new)
        return ()

    def on_hub_deleted(self, conn: Connection, event: Event) -> Sequence[Event]:
        """Delete the course's people from every table and leave a tombstone of ids,
        so that a late event does not bring the course back."""
        assert isinstance(event, HubDeleted)
        now = self.clock()
        tombstones = PurgedCourseRepository(conn)
        marked = domain.on_hub_deleted(tombstones.get(event.request_id), event, now=now)
        if marked is None or not tombstones.add(marked):
            log.info("course already purged", request_id=event.request_id)
            return ()
        purged = CourseRepository(conn).purge(event.request_id)
        env = envelope(
            source=SOURCE, correlation_id=event.correlation_id, causation_id=event.event_id, now=now
        )
        return (RosterPurged(**env, request_id=event.request_id, purged_participations=purged),)


def _course(conn: Connection, request_id: str) -> CourseState:
    return domain.require_course(CourseRepository(conn).get(request_id), request_id)


def _visible(conn: Connection, ctx: CallContext, course: CourseState) -> CourseState:
    """`course`, unless the caller has no tie to it (domain.hide_from_stranger)."""
    principal = ctx.principal
    if course.staff_role(principal.user_id) is None:
        mine = ParticipationRepository(conn).of_user(course.request_id, principal.user_id)
        domain.hide_from_stranger(course, principal, mine)
    return course


def _by_code(conn: Connection, code: str) -> CourseState | None:
    return CourseRepository(conn).by_code(domain.normalized_code(code))


def _locked(repo: CourseRepository, request_id: str) -> CourseState:
    return domain.require_course(repo.get(request_id, for_update=True), request_id)


def _one(
    conn: Connection, ctx: CallContext, request_id: str, participation_id: str
) -> tuple[CourseState, ParticipationState, ParticipationRepository]:
    """The locked course and one of its participations; to staff only (403 before
    404, so that nobody else learns which participation ids exist)."""
    course = _visible(conn, ctx, _locked(CourseRepository(conn), request_id))
    domain.require_staff(course, ctx.principal)
    repo = ParticipationRepository(conn)
    p = domain.require_participation(
        repo.get(course.request_id, participation_id), participation_id
    )
    return course, p, repo


def _merged(
    picked: Sequence[ParticipationState], changed: Sequence[ParticipationState]
) -> list[ParticipationState]:
    by_id = {p.participation_id: p for p in changed}
    return [by_id.get(p.participation_id, p) for p in picked]


def _my_course(course: CourseState, how: str, status: str | None) -> MyCourse:
    participation_status = ParticipationStatus(status) if status else None
    role: CourseRole | None
    if how == "leader":
        role = CourseRole.LEADER
    elif how == "tutor":
        role = CourseRole.TUTOR
    elif participation_status is ParticipationStatus.ACCEPTED:
        role = CourseRole.PARTICIPANT
    else:
        role = None
    return MyCourse(
        request_id=course.request_id,
        title=course.title,
        role=role,
        starts_at=course.starts_at,
        ends_at=course.ends_at,
        hub_status=course.hub_status,
        hub_url=course.hub_url,
        participation_status=participation_status,
        # For the staff, who can act on them: the words may name the host's folders
        # and its kernel's refusals, which are none of a participant's business.
        hub_warnings=list(course.hub_warnings) if how != "participation" else [],
    )
