"""participant-svc against a real NATS JetStream and a real database (SQLite and
PostgreSQL): the course appears from its approval, people apply and are decided
on over RPC, every change is published, and a deleted hub leaves no one behind."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
import nats
import pytest
import sqlalchemy as sa
from nats.aio.client import Client as NATS
from participant_helpers import LEADER, approval, person

from jhaas_launcher.testing import eventually
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import Event, cloudevents_headers, envelope
from jhaas_schemas.events import (
    HubDeleted,
    HubReady,
    RequestCancelled,
    decode_event,
    encode_event,
)
from jhaas_schemas.model import DeletionRecord, Principal, Role
from jhaas_schemas.rpc import (
    Apply,
    Course,
    CourseAccess,
    CourseRef,
    CourseRole,
    Decide,
    DeploymentState,
    Empty,
    ErrorCode,
    ListParticipations,
    MyCourseList,
    ParticipantOps,
    Participation,
    ParticipationList,
    ParticipationStatus,
    RejectParticipations,
    TutorRef,
    UserRef,
    UserWithdrawn,
)
from jhaas_schemas.streams import PARTICIPANT_STREAM
from participant_svc.app import build_app
from participant_svc.store import messaging, metadata, purged_courses

pytestmark = pytest.mark.integration

R = TypeVar("R")
TUTOR = Principal(user_id="u-tom", username="tom")
OTHER_LEADER = Principal(user_id="u-eve", username="eve", roles=(Role.LEADER,))
ADMIN = Principal(user_id="u-adm", username="adm", roles=(Role.ADMIN,))


class Bus:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.rpc = RpcClient(nc, timeout=10)

    async def call(self, who: Principal, subject: str, payload: msgspec.Struct, typ: type[R]) -> R:
        return await self.rpc.call(subject, payload, typ, principal=who, correlation_id="c-t")

    async def refused(
        self, who: Principal, subject: str, payload: msgspec.Struct, code: ErrorCode
    ) -> str:
        with pytest.raises(RpcFailure) as failure:
            await self.call(who, subject, payload, msgspec.Raw)
        assert failure.value.error.code is code, failure.value.error
        return failure.value.error.message

    async def publish(self, event: Event) -> None:
        await self.nc.jetstream().publish(
            event.subject, encode_event(event), headers=cloudevents_headers(event)
        )

    async def course_of(self, request_id: str) -> Course:
        async def probe() -> Course | None:
            try:
                return await self.call(
                    LEADER, ParticipantOps.COURSE, CourseRef(request_id=request_id), Course
                )
            except RpcFailure:
                return None

        found = await eventually(probe, lambda c: c is not None)
        assert found is not None
        return found

    async def apply(self, who: Principal, code: str) -> Participation:
        return await self.call(who, ParticipantOps.APPLY, Apply(code=code), Participation)


@pytest.fixture
async def runtimes(
    settings_for: Callable[..., RuntimeSettings],
) -> AsyncIterator[list[ServiceRuntime]]:
    """Two replicas on one database, as in a cluster."""
    started = [build_app(settings_for("participant-svc")) for _ in range(2)]
    for runtime in started:
        await runtime.start()
    try:
        yield started
    finally:
        for runtime in started:
            await runtime.stop()


@pytest.fixture
async def bus(runtimes: list[ServiceRuntime]) -> AsyncIterator[Bus]:
    nc = await nats.connect(runtimes[0].settings.nats_url)
    try:
        yield Bus(nc)
    finally:
        await nc.close()


async def published(nc: NATS, count: int) -> list[Event]:
    sub = await nc.jetstream().pull_subscribe(
        PARTICIPANT_STREAM.subjects[0],
        durable=f"probe-{uuid.uuid4().hex[:8]}",
        stream=PARTICIPANT_STREAM.name,
    )
    events: list[Event] = []

    async def fetch() -> int:
        with contextlib.suppress(asyncio.TimeoutError):
            events.extend(decode_event(m.data) for m in await sub.fetch(count, timeout=1))
        return len(events)

    await eventually(fetch, lambda n: n >= count)
    return events


async def test_a_course_fills_up_to_its_approved_limit_and_not_past_it(bus: Bus) -> None:
    await bus.publish(approval("r-1", limit=2))
    course = await bus.course_of("r-1")
    assert (course.max_participants, course.join_open, course.hub_status) == (
        2,
        True,
        DeploymentState.SCHEDULED,
    )
    code = course.join_code.lower()  # people type it as they like
    applied = [await bus.apply(person(n), code) for n in range(3)]
    assert all(p.status is ParticipationStatus.PENDING for p in applied)

    assert "already" in await bus.refused(
        person(0), ParticipantOps.APPLY, Apply(code=code), ErrorCode.CONFLICT
    )
    assert "leader" in await bus.refused(
        LEADER, ParticipantOps.APPLY, Apply(code=code), ErrorCode.CONFLICT
    )
    assert "join code" in await bus.refused(
        person(9), ParticipantOps.APPLY, Apply(code="ZZZZZZZZZZ"), ErrorCode.NOT_FOUND
    )

    ids = [p.participation_id for p in applied]
    limit = await bus.refused(
        LEADER,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-1", participation_ids=ids),
        ErrorCode.CONFLICT,
    )
    assert "limit of 2" in limit
    listed = await bus.call(
        LEADER,
        ParticipantOps.LIST,
        ListParticipations(request_id="r-1", status=ParticipationStatus.ACCEPTED),
        ParticipationList,
    )
    assert listed.items == []  # all or none

    # Another leader is not told the course exists (as request-svc hides the
    # request); someone who applied knows it, and is refused.
    hidden = await bus.refused(
        OTHER_LEADER,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-1", participation_ids=ids[:1]),
        ErrorCode.NOT_FOUND,
    )
    assert hidden == "no course 'r-1'"  # as for an id that names no course
    await bus.refused(
        person(0),
        ParticipantOps.ACCEPT,
        Decide(request_id="r-1", participation_ids=ids[:1]),
        ErrorCode.FORBIDDEN,
    )
    await bus.refused(
        LEADER,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-1", participation_ids=["p-never"]),
        ErrorCode.NOT_FOUND,
    )

    accepted = await bus.call(
        LEADER,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-1", participation_ids=ids[:2]),
        ParticipationList,
    )
    assert [p.status for p in accepted.items] == [ParticipationStatus.ACCEPTED] * 2
    rejected = await bus.call(
        LEADER,
        ParticipantOps.REJECT,
        RejectParticipations(request_id="r-1", participation_ids=ids[2:], reason="full"),
        ParticipationList,
    )
    assert rejected.items[0].reason == "full"

    access = await bus.call(
        person(0), ParticipantOps.ACCESS, CourseRef(request_id="r-1"), CourseAccess
    )
    assert access.role is CourseRole.PARTICIPANT
    outsider = await bus.call(
        person(2), ParticipantOps.ACCESS, CourseRef(request_id="r-1"), CourseAccess
    )
    assert (outsider.role, outsider.participation_status) == (None, ParticipationStatus.REJECTED)
    await bus.refused(
        person(0), ParticipantOps.ACCESS, CourseRef(request_id="r-404"), ErrorCode.NOT_FOUND
    )

    mine = await bus.call(person(2), ParticipantOps.MY_COURSES, Empty(), MyCourseList)
    assert [(c.request_id, c.role, c.participation_status) for c in mine.items] == [
        ("r-1", None, ParticipationStatus.REJECTED)
    ]
    led = await bus.call(LEADER, ParticipantOps.MY_COURSES, Empty(), MyCourseList)
    assert [(c.request_id, c.role) for c in led.items] == [("r-1", CourseRole.LEADER)]

    events = await published(bus.nc, 6)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ParticipantApplied"] * 3 + ["ParticipantAccepted"] * 2 + [
        "ParticipantRejected"
    ]
    for event in events:
        assert "message" not in msgspec.to_builtins(event)  # ids only


async def test_two_replicas_accepting_at_once_stop_at_the_limit(bus: Bus) -> None:
    await bus.publish(approval("r-2", limit=5))
    code = (await bus.course_of("r-2")).join_code
    applied = [await bus.apply(person(n), code) for n in range(12)]

    async def accept_one(p: Participation) -> str:
        try:
            await bus.call(
                LEADER,
                ParticipantOps.ACCEPT,
                Decide(request_id="r-2", participation_ids=[p.participation_id]),
                ParticipationList,
            )
        except RpcFailure as failure:
            return failure.error.code.value
        return "accepted"

    results = await asyncio.gather(*(accept_one(p) for p in applied))
    assert sorted(results) == ["accepted"] * 5 + ["conflict"] * 7
    course = await bus.course_of("r-2")
    assert course.accepted == 5


async def test_tutors_decide_but_do_not_name_tutors(bus: Bus) -> None:
    await bus.publish(approval("r-3", limit=3))
    code = (await bus.course_of("r-3")).join_code
    await bus.refused(  # not a tutor yet: a stranger to the course
        TUTOR,
        ParticipantOps.ADD_TUTOR,
        TutorRef(request_id="r-3", user_id=TUTOR.user_id),
        ErrorCode.NOT_FOUND,
    )
    named = await bus.call(
        LEADER, ParticipantOps.ADD_TUTOR, TutorRef(request_id="r-3", user_id=TUTOR.user_id), Course
    )
    assert named.tutors == [TUTOR.user_id]
    assert "tutor" in await bus.refused(
        TUTOR, ParticipantOps.APPLY, Apply(code=code), ErrorCode.CONFLICT
    )
    await bus.refused(
        TUTOR, ParticipantOps.ROTATE_JOIN, CourseRef(request_id="r-3"), ErrorCode.FORBIDDEN
    )
    await bus.refused(
        TUTOR,
        ParticipantOps.ADD_TUTOR,
        TutorRef(request_id="r-3", user_id="u-x"),
        ErrorCode.FORBIDDEN,
    )
    p = await bus.apply(person(1), code)
    accepted = await bus.call(
        TUTOR,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-3", participation_ids=[p.participation_id]),
        ParticipationList,
    )
    assert accepted.items[0].decided_by == TUTOR.user_id
    tutored = await bus.call(TUTOR, ParticipantOps.MY_COURSES, Empty(), MyCourseList)
    assert [(c.request_id, c.role) for c in tutored.items] == [("r-3", CourseRole.TUTOR)]

    # Someone once rejected becomes a tutor: listed once, as the tutor.
    rejected = await bus.apply(person(2), code)
    await bus.call(
        LEADER,
        ParticipantOps.REJECT,
        RejectParticipations(request_id="r-3", participation_ids=[rejected.participation_id]),
        ParticipationList,
    )
    await bus.refused(
        LEADER,
        ParticipantOps.ADD_TUTOR,
        TutorRef(request_id="r-3", user_id=person(1).user_id),
        ErrorCode.CONFLICT,
    )
    await bus.call(
        LEADER,
        ParticipantOps.ADD_TUTOR,
        TutorRef(request_id="r-3", user_id=person(2).user_id),
        Course,
    )
    theirs = await bus.call(person(2), ParticipantOps.MY_COURSES, Empty(), MyCourseList)
    assert [(c.request_id, c.role) for c in theirs.items] == [("r-3", CourseRole.TUTOR)]
    access = await bus.call(
        person(2), ParticipantOps.ACCESS, CourseRef(request_id="r-3"), CourseAccess
    )
    assert access.role is CourseRole.TUTOR


async def test_a_cancelled_course_takes_no_one_and_a_ready_hub_shows_its_link(bus: Bus) -> None:
    await bus.publish(approval("r-4", limit=3))
    code = (await bus.course_of("r-4")).join_code
    await bus.publish(
        HubReady(
            **envelope(source="deployer-svc", correlation_id="c"),
            deployment_id="d-4",
            request_id="r-4",
            url="http://hub.test/r-4/",
        )
    )
    ready = await eventually(
        lambda: bus.course_of("r-4"), lambda c: c.hub_status is DeploymentState.RUNNING
    )
    assert ready.hub_url == "http://hub.test/r-4/"
    await bus.publish(
        RequestCancelled(
            **envelope(source="request-svc", correlation_id="c"),
            request_id="r-4",
            cancelled_by=LEADER.user_id,
        )
    )
    await eventually(
        lambda: bus.course_of("r-4"), lambda c: c.hub_status is DeploymentState.CANCELLED
    )
    assert "join code" in await bus.refused(
        person(1), ParticipantOps.APPLY, Apply(code=code), ErrorCode.NOT_FOUND
    )


def rows_naming(conn: sa.Connection, values: set[str]) -> dict[str, list[Any]]:
    """Every row of every table of the service that holds one of `values`."""
    found: dict[str, list[Any]] = {}
    for table in metadata.sorted_tables:
        for row in conn.execute(sa.select(table)):
            if values & {str(v) for v in row}:
                found.setdefault(table.name, []).append(tuple(row))
    return found


async def test_a_deleted_hub_leaves_no_one_of_its_course(
    bus: Bus, runtimes: list[ServiceRuntime]
) -> None:
    await bus.publish(approval("r-5", limit=3))
    course = await bus.course_of("r-5")
    await bus.call(
        LEADER, ParticipantOps.ADD_TUTOR, TutorRef(request_id="r-5", user_id=TUTOR.user_id), Course
    )
    applied = [await bus.apply(person(n), course.join_code) for n in range(3)]
    await bus.call(
        LEADER,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-5", participation_ids=[applied[0].participation_id]),
        ParticipationList,
    )
    # Another course, which must keep its people.
    await bus.publish(approval("r-6", limit=3))
    kept = await bus.apply(person(0), (await bus.course_of("r-6")).join_code)
    # Another course's application is not this course's to decide on.
    await bus.refused(
        LEADER,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-5", participation_ids=[kept.participation_id]),
        ErrorCode.NOT_FOUND,
    )

    deleted = HubDeleted(
        **envelope(source="deployer-svc", correlation_id="c-del"),
        deployment_id="d-5",
        request_id="r-5",
        record=DeletionRecord(backend="local", deleted_at=datetime.now(UTC)),
    )
    await bus.publish(deleted)
    await eventually(lambda: _gone(bus, "r-5"))
    # The leader and person 0 are in r-6 as well; everyone else was only in r-5.
    people = {TUTOR.user_id, applied[1].user_id, applied[2].user_id}
    ids = {"r-5", *(p.participation_id for p in applied), *people, course.join_code}
    db = runtimes[0].db
    # The outbox and inbox are the message log (ids only, published events are
    # deleted after their retention); the tombstone keeps the course id alone.
    left = await db.read(rows_naming, ids)
    for log_table in (messaging.outbox.name, messaging.inbox.name):
        left.pop(log_table, None)
    tombstone = left.pop(purged_courses.name)
    assert left == {}
    assert [t[:2] for t in tombstone] == [("r-5", "d-5")]
    assert await db.read(rows_naming, {kept.participation_id})  # r-6 keeps its own

    purged = [e for e in await published(bus.nc, 7) if type(e).__name__ == "RosterPurged"]
    assert [(e.request_id, e.purged_participations) for e in purged] == [("r-5", 3)]  # type: ignore[attr-defined]

    # A late approval does not bring the course back.
    await bus.publish(approval("r-5", limit=3))
    await bus.publish(approval("r-7", limit=3))
    await bus.course_of("r-7")
    await bus.refused(
        LEADER, ParticipantOps.COURSE, CourseRef(request_id="r-5"), ErrorCode.NOT_FOUND
    )


async def _gone(bus: Bus, request_id: str) -> bool:
    try:
        await bus.call(LEADER, ParticipantOps.COURSE, CourseRef(request_id=request_id), Course)
    except RpcFailure as failure:
        return failure.error.code is ErrorCode.NOT_FOUND
    return False


async def test_a_class_of_300_is_accepted_in_one_call(bus: Bus) -> None:
    await bus.publish(approval("r-8", limit=300))
    code = (await bus.course_of("r-8")).join_code
    applied = await asyncio.gather(*(bus.apply(person(n), code) for n in range(300)))
    ids = [p.participation_id for p in applied]
    accepted = await bus.call(
        LEADER,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-8", participation_ids=ids),
        ParticipationList,
    )
    assert [p.participation_id for p in accepted.items] == ids
    assert {p.status for p in accepted.items} == {ParticipationStatus.ACCEPTED}
    assert (await bus.course_of("r-8")).accepted == 300
    events = await published(bus.nc, 600)
    assert sum(type(e).__name__ == "ParticipantAccepted" for e in events) == 300
    one_more = await bus.apply(person(300), code)
    message = await bus.refused(
        LEADER,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-8", participation_ids=[one_more.participation_id]),
        ErrorCode.CONFLICT,
    )
    assert "limit of 300" in message


async def test_a_deleted_account_leaves_every_course_it_was_in(bus: Bus) -> None:
    """Withdrawing a user: their pending and accepted participations end as if they
    had left (so the deployer removes their hub user), and they tutor nothing."""
    for request_id in ("r-w1", "r-w2", "r-w3"):
        await bus.publish(approval(request_id, limit=3))
    codes = {r: (await bus.course_of(r)).join_code for r in ("r-w1", "r-w2", "r-w3")}
    leaving, staying = person(1), person(2)
    accepted = await bus.apply(leaving, codes["r-w1"])
    await bus.call(
        LEADER,
        ParticipantOps.ACCEPT,
        Decide(request_id="r-w1", participation_ids=[accepted.participation_id]),
        ParticipationList,
    )
    pending = await bus.apply(leaving, codes["r-w2"])
    other = await bus.apply(staying, codes["r-w1"])
    await bus.call(
        LEADER, ParticipantOps.ADD_TUTOR, TutorRef(request_id="r-w3", user_id="u-1"), Course
    )
    mine = await bus.call(leaving, ParticipantOps.MY_PARTICIPATIONS, Empty(), ParticipationList)
    assert {(p.request_id, p.status) for p in mine.items} == {
        ("r-w1", ParticipationStatus.ACCEPTED),
        ("r-w2", ParticipationStatus.PENDING),
    }

    # Nobody else but an admin may do it for them.
    await bus.refused(
        staying, ParticipantOps.WITHDRAW_USER, UserRef(user_id="u-1"), ErrorCode.FORBIDDEN
    )
    await bus.refused(
        LEADER, ParticipantOps.WITHDRAW_USER, UserRef(user_id="u-1"), ErrorCode.FORBIDDEN
    )
    done = await bus.call(
        ADMIN, ParticipantOps.WITHDRAW_USER, UserRef(user_id="u-1"), UserWithdrawn
    )
    assert {p.participation_id for p in done.left} == {
        accepted.participation_id,
        pending.participation_id,
    }
    assert all(p.status is ParticipationStatus.LEFT for p in done.left)
    assert done.tutor_of == ["r-w3"]

    after = await bus.call(leaving, ParticipantOps.MY_PARTICIPATIONS, Empty(), ParticipationList)
    assert {p.status for p in after.items} == {ParticipationStatus.LEFT}
    theirs = await bus.call(leaving, ParticipantOps.MY_COURSES, Empty(), MyCourseList)
    assert [c.role for c in theirs.items] == [None, None]
    assert (await bus.course_of("r-w3")).tutors == []
    assert (await bus.course_of("r-w1")).accepted == 0
    untouched = await bus.call(
        staying, ParticipantOps.MY_PARTICIPATIONS, Empty(), ParticipationList
    )
    assert [(p.participation_id, p.status) for p in untouched.items] == [
        (other.participation_id, ParticipationStatus.PENDING)
    ]

    # Again (a retried deletion): nothing more to do, nothing more published.
    again = await bus.call(
        leaving, ParticipantOps.WITHDRAW_USER, UserRef(user_id="u-1"), UserWithdrawn
    )
    assert (again.left, again.tutor_of) == ([], [])
    events = await published(bus.nc, 8)
    ended = [e for e in events if type(e).__name__ in ("ParticipantLeft", "TutorRemoved")]
    assert sorted(type(e).__name__ for e in ended) == ["ParticipantLeft"] * 2 + ["TutorRemoved"]
    assert {getattr(e, "user_id", None) for e in ended} == {"u-1"}
