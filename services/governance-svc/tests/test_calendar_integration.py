"""The capacity calendar, auto-approval and changes of approved courses, against a
real NATS JetStream and a real database (SQLite and PostgreSQL), with two
governance-svc replicas on one database where decisions race."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats
import nats.errors
import pytest
import sqlalchemy as sa
from nats.aio.client import Client as NATS

from governance_svc import reservations as reservations_module
from governance_svc.app import build_app
from governance_svc.audit import list_entries
from governance_svc.calendar import CalendarSettings
from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import Event, envelope
from jhaas_schemas.events import (
    ChangeApproved,
    ChangeProposed,
    ChangeRejected,
    HubDeleted,
    RequestApproved,
    RequestCancelled,
    RequestSubmitted,
    RequestUpdated,
    decode_event,
)
from jhaas_schemas.model import DeletionRecord, HubSpec, Principal, Resources, Role
from jhaas_schemas.policy import AutoApproval, Capacity, Policy, Preset, fixed
from jhaas_schemas.rpc import (
    ApproveRequest,
    CalendarView,
    ChangeReview,
    ChangeState,
    DecideChange,
    ErrorCode,
    GetCalendar,
    GetReview,
    GovernanceOps,
    ListAudit,
    ListReviews,
    Review,
    ReviewList,
    ReviewState,
)
from jhaas_schemas.streams import GOVERNANCE_STREAM

pytestmark = pytest.mark.integration

LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))
GUS = Principal(user_id="u-gov", username="gus", roles=(Role.GOVERNANCE,))
GIA = Principal(user_id="u-gov2", username="gia", roles=(Role.GOVERNANCE,))
IMAGE = "quay.io/jupyter/scipy-notebook:2024-12-02"
# A Monday a few weeks ahead: the courses below run Monday to Friday.
_today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
WEEK = _today + timedelta(days=28 - _today.weekday())
CAPACITY = Capacity(cpu="40", memory="200Gi", storage="2Ti", gpus=0, enforced=True)
PRESET = Preset(
    name="scipy",
    title="Scientific Python",
    image=IMAGE,
    resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
)
AUTO = AutoApproval(
    enabled=True,
    max_participants=40,
    max_per_user=Resources(cpu="2", memory="4Gi", storage="10Gi"),
    max_duration_days=30,
    presets_only=True,
)


def course(title: str, people: int, week: int = 0, **overrides: object) -> HubSpec:
    start = WEEK + timedelta(weeks=week)
    values: dict[str, object] = {
        "title": title,
        "slug": title.lower().replace(" ", "-"),
        "starts_at": start,
        "ends_at": start + timedelta(days=4),
        "image": IMAGE,
        "resources": Resources(cpu="1", memory="2Gi", storage="5Gi"),
        "expected_participants": people,
    }
    values.update(overrides)
    return HubSpec(**values)  # type: ignore[arg-type]


def env(correlation_id: str) -> Any:
    return envelope(source="request-svc", correlation_id=correlation_id)


def submitted(spec: HubSpec, request_id: str | None = None) -> RequestSubmitted:
    return RequestSubmitted(
        **env("c-submit"),
        request_id=request_id or str(uuid.uuid4()),
        leader_id=LEADER.user_id,
        revision=1,
        spec=spec,
    )


class Replica:
    def __init__(self, runtime: ServiceRuntime, nc: NATS) -> None:
        self.runtime, self.nc, self.client = runtime, nc, RpcClient(nc)

    async def call(self, op: str, payload: Any, reply: type[Any], who: Principal) -> Any:
        return await self.client.call(op, payload, reply, principal=who, correlation_id="c-t")

    async def review(self, request_id: str, who: Principal = GUS) -> Review:
        return await self.call(  # type: ignore[no-any-return]
            GovernanceOps.GET_REVIEW, GetReview(request_id=request_id), Review, who
        )

    async def approve(self, request_id: str, who: Principal = GUS) -> Review:
        return await self.call(  # type: ignore[no-any-return]
            GovernanceOps.APPROVE, ApproveRequest(request_id=request_id), Review, who
        )

    async def submit(self, event: RequestSubmitted | RequestUpdated | Event) -> None:
        await publish(self.nc.jetstream(), event)

    async def opened(self, request_id: str, state: ReviewState | None = None) -> Review:
        async def probe() -> Review | None:
            try:
                review = await self.review(request_id)
            except RpcFailure:
                return None
            return review if state is None or review.state == state else None

        found = await eventually(probe)
        assert found is not None
        return found

    async def calendar(self, start: datetime, end: datetime) -> CalendarView:
        return await self.call(  # type: ignore[no-any-return]
            GovernanceOps.CALENDAR, GetCalendar(start=start, end=end), CalendarView, GUS
        )

    def held(self) -> list[str]:
        table = reservations_module.reservations
        with self.runtime.db.engine.connect() as conn:
            query = sa.select(table.c.request_id).where(table.c.state == "held")
            return sorted(conn.execute(query).scalars())


@pytest.fixture
async def replicas(
    settings_for: Callable[..., RuntimeSettings],
) -> AsyncIterator[Callable[..., Any]]:
    """`await start(policy)`: a governance-svc replica on this test's NATS and database."""
    started: list[Replica] = []

    async def start(policy: Policy) -> Replica:
        runtime = build_app(
            settings_for("governance-svc"),
            policy=fixed(policy),
            calendar=CalendarSettings(lead_time=timedelta(minutes=30)),
        )
        await runtime.start()
        replica = Replica(runtime, await nats.connect(runtime.settings.nats_url))
        started.append(replica)
        return replica

    try:
        yield start
    finally:
        for replica in started:
            await replica.nc.close()
            await replica.runtime.stop()


async def governance_events(nc: NATS, accept: Callable[[list[Event]], bool]) -> list[Event]:
    """The governance stream's events, read until `accept` takes them (the outbox
    relay publishes after the commit)."""
    sub = await nc.jetstream().pull_subscribe(
        GOVERNANCE_STREAM.subjects[0], durable=f"probe-{uuid.uuid4().hex[:6]}",
        stream=GOVERNANCE_STREAM.name,
    )  # fmt: skip
    seen: list[Event] = []

    async def probe() -> list[Event] | None:
        try:
            messages = await sub.fetch(50, timeout=0.3)
        except nats.errors.TimeoutError:
            messages = []
        for message in messages:
            await message.ack()
            seen.append(decode_event(message.data))
        return seen if accept(seen) else None

    found = await eventually(probe)
    assert found is not None
    return found


def having(kind: type[Event]) -> Callable[[list[Event]], bool]:
    return lambda events: any(isinstance(e, kind) for e in events)


async def audit_actions(replica: Replica, request_id: str) -> list[tuple[str, str]]:
    """Who did what to the request, as the audit trail recorded it (oldest first)."""
    with replica.runtime.db.engine.connect() as conn:
        page = list_entries(conn, ListAudit(request_id=request_id))
    return [(e.actor, e.action.value) for e in reversed(page.items)]


async def nothing_held(replica: Replica) -> None:
    async def probe() -> bool:
        return replica.held() == []

    await eventually(probe)


# --- 1. the calendar refuses what overbooks -------------------------------------------


async def test_two_courses_that_together_overbook_a_week_cannot_both_be_approved(
    replicas: Callable[..., Any],
) -> None:
    gov = await replicas(Policy(capacity=CAPACITY))
    first, second = submitted(course("Big Data", 30)), submitted(course("Deep Learning", 20))
    await gov.submit(first)
    await gov.submit(second)
    await gov.opened(first.request_id)
    pending = await gov.opened(second.request_id)
    # Before any approval the second fits: the reviewer sees nothing overlapping.
    assert pending.checks is not None and pending.checks.calendar is not None
    assert pending.checks.calendar.fits and pending.checks.calendar.overlapping == []

    await gov.approve(first.request_id)
    # Now the reviewer sees that the second would overbook, and with which course.
    seen = (await gov.review(second.request_id)).checks
    assert seen is not None and seen.calendar is not None
    assert not seen.calendar.fits and not seen.passed
    assert [r.request_id for r in seen.calendar.overlapping] == [first.request_id]
    assert [s.resource for s in seen.calendar.short] == ["cpu"]

    with pytest.raises(RpcFailure) as refused:
        await gov.approve(second.request_id, who=GIA)
    error = refused.value.error
    assert error.code == ErrorCode.CONFLICT
    assert "'Big Data'" in error.message and first.request_id in error.message
    assert "cpu: 50 cores would be reserved" in error.message
    assert "the capacity is 40 cores" in error.message
    assert set(error.fields) == {"calendar.cpu", "calendar.overlapping"}
    # Nothing of the refused approval was kept.
    assert (await gov.review(second.request_id)).state == ReviewState.PENDING
    assert gov.held() == [first.request_id]

    # The reservations and free capacity over the week, for the reviewer.
    week = await gov.calendar(WEEK - timedelta(days=1), WEEK + timedelta(days=6))
    assert [r.request_id for r in week.reservations] == [first.request_id]
    assert week.capacity.cpu == 40_000 and week.enforced
    assert [(s.at, s.reserved.cpu, s.free.cpu) for s in week.steps] == [
        (WEEK - timedelta(days=1), 0, 40_000),
        (WEEK - timedelta(minutes=30), 30_000, 10_000),
        (WEEK + timedelta(days=4), 0, 40_000),
    ]

    # Cancelling the first course releases its reservation: the second fits now.
    await gov.submit(
        RequestCancelled(
            **env("c-cancel"), request_id=first.request_id, cancelled_by=LEADER.user_id
        )
    )
    await nothing_held(gov)
    assert (await gov.approve(second.request_id, who=GIA)).state == ReviewState.APPROVED
    assert gov.held() == [second.request_id]


async def test_the_same_two_courses_in_separate_weeks_are_both_approved(
    replicas: Callable[..., Any],
) -> None:
    gov = await replicas(Policy(capacity=CAPACITY))
    first, second = submitted(course("Big Data", 30)), submitted(course("Deep Learning", 20, 1))
    for event in (first, second):
        await gov.submit(event)
        await gov.opened(event.request_id)
    assert (await gov.approve(first.request_id)).state == ReviewState.APPROVED
    assert (await gov.approve(second.request_id, who=GIA)).state == ReviewState.APPROVED
    assert gov.held() == sorted([first.request_id, second.request_id])


async def test_a_deleted_hub_releases_its_reservation(replicas: Callable[..., Any]) -> None:
    gov = await replicas(Policy(capacity=CAPACITY))
    first = submitted(course("Big Data", 30))
    await gov.submit(first)
    await gov.opened(first.request_id)
    await gov.approve(first.request_id)
    assert gov.held() == [first.request_id]
    await gov.submit(
        HubDeleted(
            **envelope(source="deployer-svc", correlation_id="c-del"),
            deployment_id=str(uuid.uuid4()),
            request_id=first.request_id,
            record=DeletionRecord(backend="local", deleted_at=datetime.now(UTC)),
        )
    )
    await nothing_held(gov)


async def test_an_unenforced_calendar_shows_the_overbooking_but_approves(
    replicas: Callable[..., Any],
) -> None:
    gov = await replicas(Policy(capacity=msgspec.structs.replace(CAPACITY, enforced=False)))
    first, second = submitted(course("Big Data", 30)), submitted(course("Deep Learning", 20))
    for event in (first, second):
        await gov.submit(event)
        await gov.opened(event.request_id)
    await gov.approve(first.request_id)
    seen = (await gov.review(second.request_id)).checks
    assert seen is not None and seen.calendar is not None
    assert not seen.calendar.fits and not seen.calendar.enforced and seen.passed
    assert (await gov.approve(second.request_id, who=GIA)).state == ReviewState.APPROVED


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (WEEK + timedelta(days=2), WEEK, "to"),
        (WEEK, WEEK + timedelta(days=800), "to"),
        (WEEK.replace(tzinfo=None), WEEK + timedelta(days=2), "from"),
    ],
)
async def test_a_bad_calendar_period_is_refused_naming_the_parameter(
    replicas: Callable[..., Any], start: datetime, end: datetime, field: str
) -> None:
    gov = await replicas(Policy(capacity=CAPACITY))
    with pytest.raises(RpcFailure) as refused:
        await gov.calendar(start, end)
    assert refused.value.error.code == ErrorCode.INVALID
    assert list(refused.value.error.fields) == [field]


# --- two replicas, two reviewers, the same moment ----------------------------------------


@pytest.fixture
def approvals_meet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each approval, once it has checked the calendar and held its reservation,
    waits (up to 2 s, then goes on) for the other to get as far before it
    commits. Unserialized, both get there and both commit; under the calendar's
    lock the second cannot check before the first commits, and sees it."""
    meeting = threading.Barrier(2)
    hold = reservations_module.ReservationRepository.hold

    def hold_then_meet(self: Any, reservation: Any, now: datetime) -> None:
        hold(self, reservation, now)
        with contextlib.suppress(threading.BrokenBarrierError):
            meeting.wait(timeout=2)

    monkeypatch.setattr(reservations_module.ReservationRepository, "hold", hold_then_meet)


async def test_two_reviewers_on_two_replicas_cannot_both_overbook(
    replicas: Callable[..., Any], approvals_meet: None
) -> None:
    one, two = await replicas(Policy(capacity=CAPACITY)), await replicas(Policy(capacity=CAPACITY))
    first, second = submitted(course("Big Data", 30)), submitted(course("Deep Learning", 20))
    for event in (first, second):
        await one.submit(event)
        await one.opened(event.request_id)

    outcomes = await asyncio.gather(
        one.approve(first.request_id, who=GUS),
        two.approve(second.request_id, who=GIA),
        return_exceptions=True,
    )
    approved = [o for o in outcomes if isinstance(o, Review)]
    refused = [o for o in outcomes if isinstance(o, RpcFailure)]
    assert len(approved) == 1 and len(refused) == 1, outcomes
    winner = approved[0]
    assert refused[0].error.code == ErrorCode.CONFLICT
    assert winner.request_id in refused[0].error.message
    assert f"'{winner.spec.title}'" in refused[0].error.message
    assert one.held() == [winner.request_id]


async def test_two_reviewers_on_two_replicas_approve_courses_in_separate_weeks(
    replicas: Callable[..., Any], approvals_meet: None
) -> None:
    one, two = await replicas(Policy(capacity=CAPACITY)), await replicas(Policy(capacity=CAPACITY))
    first, second = submitted(course("Big Data", 30)), submitted(course("Deep Learning", 20, 1))
    for event in (first, second):
        await one.submit(event)
        await one.opened(event.request_id)
    outcomes = await asyncio.gather(
        one.approve(first.request_id, who=GUS), two.approve(second.request_id, who=GIA)
    )
    assert [o.state for o in outcomes] == [ReviewState.APPROVED, ReviewState.APPROVED]
    assert one.held() == sorted([first.request_id, second.request_id])


# --- 3. auto-approval ----------------------------------------------------------------------


def auto_policy(**auto: object) -> Policy:
    return Policy(
        presets=(PRESET,),
        capacity=CAPACITY,
        auto_approval=msgspec.structs.replace(AUTO, **auto),
    )


async def test_a_request_inside_the_envelope_is_approved_by_the_system(
    replicas: Callable[..., Any],
) -> None:
    gov = await replicas(auto_policy())
    inside = submitted(course("Intro Python", 30))
    await gov.submit(inside)
    review = await gov.opened(inside.request_id, ReviewState.APPROVED)
    [decision] = review.decisions
    assert decision.decided_by == "system"
    [event] = await governance_events(gov.nc, having(RequestApproved))
    assert isinstance(event, RequestApproved)
    assert (event.request_id, event.decided_by) == (inside.request_id, "system")
    assert event.causation_id == inside.event_id
    assert gov.held() == [inside.request_id]
    assert await audit_actions(gov, inside.request_id) == [("system", "auto_approved")]


@pytest.mark.parametrize(
    ("policy", "spec"),
    [
        (auto_policy(), course("Too Many", 41)),
        (
            auto_policy(),
            course("Too Much", 10, resources=Resources(cpu="3", memory="2Gi", storage="5Gi")),
        ),
        (auto_policy(), course("Too Long", 10, ends_at=WEEK + timedelta(days=31))),
        (auto_policy(), course("Own Image", 10, image="quay.io/someone/custom:1")),
        (auto_policy(), course("Calendar Full", 10)),  # after a 35-core course: 45 > 40
        (auto_policy(enabled=False), course("Disabled", 10)),
    ],
    ids=["participants", "per-user", "duration", "image", "calendar", "disabled"],
)
async def test_a_request_outside_the_envelope_waits_for_a_reviewer(
    replicas: Callable[..., Any], policy: Policy, spec: HubSpec
) -> None:
    gov = await replicas(policy)
    if spec.title == "Calendar Full":
        big = submitted(course("Big One", 35))
        await gov.submit(big)
        await gov.opened(big.request_id, ReviewState.APPROVED)
    request = submitted(spec)
    await gov.submit(request)
    review = await gov.opened(request.request_id)
    # The consumer is done with it: a later marker event is seen after it.
    marker = submitted(course("Marker", 41))
    await gov.submit(marker)
    await gov.opened(marker.request_id)
    review = await gov.review(request.request_id)
    assert review.state == ReviewState.PENDING and review.decisions == []
    assert request.request_id not in gov.held()


async def test_a_resubmission_inside_the_envelope_is_approved_by_the_system(
    replicas: Callable[..., Any],
) -> None:
    gov = await replicas(auto_policy())
    too_many = submitted(course("Intro Python", 41))
    await gov.submit(too_many)
    await gov.opened(too_many.request_id)
    await gov.submit(
        RequestUpdated(
            **env("c-edit"),
            request_id=too_many.request_id,
            leader_id=LEADER.user_id,
            revision=2,
            spec=course("Intro Python", 25),
        )
    )
    review = await gov.opened(too_many.request_id, ReviewState.APPROVED)
    assert review.decisions[-1].decided_by == "system" and review.revision == 2


# --- 4. changes of approved courses -------------------------------------------------------


def proposed(request_id: str, spec: HubSpec, revision: int = 2) -> ChangeProposed:
    return ChangeProposed(
        **env("c-change"),
        request_id=request_id,
        change_id=str(uuid.uuid4()),
        leader_id=LEADER.user_id,
        revision=revision,
        configuration=spec,
        comment="please",
    )


async def approved_course(gov: Replica, spec: HubSpec) -> RequestSubmitted:
    event = submitted(spec)
    await gov.submit(event)
    await gov.opened(event.request_id)
    await gov.approve(event.request_id)
    return event


async def change_in(gov: Replica, request_id: str, change_id: str) -> ChangeReview:
    async def probe() -> ChangeReview | None:
        review = await gov.review(request_id)
        return next((c for c in review.changes if c.change_id == change_id), None)

    found = await eventually(probe)
    assert found is not None
    return found


async def test_a_change_that_raises_nothing_applies_at_once(replicas: Callable[..., Any]) -> None:
    gov = await replicas(Policy(capacity=CAPACITY))  # auto-approval disabled
    first = await approved_course(gov, course("Big Data", 30))
    fewer = course("Big Data", 20, ends_at=WEEK + timedelta(days=3))
    change = proposed(first.request_id, fewer)
    await gov.submit(change)
    seen = await change_in(gov, first.request_id, change.change_id)
    assert (seen.state, seen.decided_by) == (ChangeState.APPROVED, "system")
    review = await gov.review(first.request_id)
    assert (review.spec, review.revision) == (fewer, 2)
    events = await governance_events(gov.nc, having(ChangeApproved))
    applied = [e for e in events if isinstance(e, ChangeApproved)]
    assert [(e.change_id, e.decided_by, e.configuration) for e in applied] == [
        (change.change_id, "system", fewer)
    ]
    # The reservation was replaced: 20 cores now.
    week = await gov.calendar(WEEK, WEEK + timedelta(days=1))
    assert [r.amounts.cpu for r in week.reservations] == [20_000]
    assert ("system", "change_auto_approved") in await audit_actions(gov, first.request_id)


async def test_a_change_outside_the_envelope_waits_and_a_reviewer_decides(
    replicas: Callable[..., Any],
) -> None:
    gov = await replicas(Policy(capacity=CAPACITY))
    first = await approved_course(gov, course("Big Data", 30))
    more = course("Big Data", 35)
    change = proposed(first.request_id, more)
    await gov.submit(change)
    waiting = await change_in(gov, first.request_id, change.change_id)
    assert waiting.state == ChangeState.PENDING and waiting.checks is not None
    # The course keeps its approved configuration meanwhile.
    assert (await gov.review(first.request_id)).spec.expected_participants == 30
    queue = await gov.call(GovernanceOps.LIST_REVIEWS, ListReviews(), ReviewList, GUS)
    assert [(c.kind, c.change_id) for c in queue.changes] == [("change", change.change_id)]

    # The leader cannot decide; a reject needs a reason.
    with pytest.raises(RpcFailure) as own:
        await gov.call(
            GovernanceOps.APPROVE_CHANGE,
            DecideChange(request_id=first.request_id, change_id=change.change_id),
            ChangeReview,
            LEADER,
        )
    assert own.value.error.code == ErrorCode.FORBIDDEN
    with pytest.raises(RpcFailure) as bare:
        await gov.call(
            GovernanceOps.REJECT_CHANGE,
            DecideChange(request_id=first.request_id, change_id=change.change_id),
            ChangeReview,
            GUS,
        )
    assert bare.value.error.code == ErrorCode.INVALID

    decided = await gov.call(
        GovernanceOps.APPROVE_CHANGE,
        DecideChange(request_id=first.request_id, change_id=change.change_id, comment="ok"),
        ChangeReview,
        GUS,
    )
    assert (decided.state, decided.decided_by) == (ChangeState.APPROVED, GUS.user_id)
    assert (await gov.review(first.request_id)).spec == more
    with pytest.raises(RpcFailure) as twice:
        await gov.call(
            GovernanceOps.REJECT_CHANGE,
            DecideChange(request_id=first.request_id, change_id=change.change_id, comment="no"),
            ChangeReview,
            GUS,
        )
    assert twice.value.error.code == ErrorCode.CONFLICT
    assert (GUS.user_id, "change_approved") in await audit_actions(gov, first.request_id)


async def test_a_change_that_would_overbook_is_refused_on_approval(
    replicas: Callable[..., Any],
) -> None:
    gov = await replicas(Policy(capacity=CAPACITY))
    first = await approved_course(gov, course("Big Data", 30))
    await approved_course(gov, course("Small Group", 8))
    change = proposed(first.request_id, course("Big Data", 35))  # 35 + 8 > 40
    await gov.submit(change)
    await change_in(gov, first.request_id, change.change_id)
    with pytest.raises(RpcFailure) as refused:
        await gov.call(
            GovernanceOps.APPROVE_CHANGE,
            DecideChange(request_id=first.request_id, change_id=change.change_id),
            ChangeReview,
            GUS,
        )
    assert refused.value.error.code == ErrorCode.CONFLICT
    assert "'Small Group'" in refused.value.error.message

    rejected = await gov.call(
        GovernanceOps.REJECT_CHANGE,
        DecideChange(request_id=first.request_id, change_id=change.change_id, comment="full"),
        ChangeReview,
        GUS,
    )
    assert rejected.state == ChangeState.REJECTED
    events = await governance_events(gov.nc, having(ChangeRejected))
    assert [(e.change_id, e.reason) for e in events if isinstance(e, ChangeRejected)] == [
        (change.change_id, "full")
    ]
    assert (await gov.review(first.request_id)).spec.expected_participants == 30


async def test_a_change_made_stale_by_another_is_refused(replicas: Callable[..., Any]) -> None:
    gov = await replicas(Policy(capacity=CAPACITY))
    first = await approved_course(gov, course("Big Data", 30))
    waiting = proposed(first.request_id, course("Big Data", 35), revision=2)
    await gov.submit(waiting)
    await change_in(gov, first.request_id, waiting.change_id)
    applied = proposed(first.request_id, course("Big Data", 25), revision=3)
    await gov.submit(applied)
    assert (await change_in(gov, first.request_id, applied.change_id)).state == (
        ChangeState.APPROVED
    )
    with pytest.raises(RpcFailure) as stale:
        await gov.call(
            GovernanceOps.APPROVE_CHANGE,
            DecideChange(request_id=first.request_id, change_id=waiting.change_id),
            ChangeReview,
            GUS,
        )
    assert stale.value.error.code == ErrorCode.CONFLICT
    assert "changed since this change was proposed" in stale.value.error.message


async def test_a_change_of_a_cancelled_course_is_refused_by_the_system(
    replicas: Callable[..., Any],
) -> None:
    gov = await replicas(Policy(capacity=CAPACITY))
    first = await approved_course(gov, course("Big Data", 30))
    await gov.submit(
        RequestCancelled(
            **env("c-cancel"), request_id=first.request_id, cancelled_by=LEADER.user_id
        )
    )
    await gov.opened(first.request_id, ReviewState.CANCELLED)
    late = proposed(first.request_id, course("Big Data", 20))
    await gov.submit(late)
    seen = await change_in(gov, first.request_id, late.change_id)
    assert (seen.state, seen.decided_by) == (ChangeState.REJECTED, "system")
    assert "cancelled" in seen.reason
    events = await governance_events(gov.nc, having(ChangeRejected))
    assert [e.change_id for e in events if isinstance(e, ChangeRejected)] == [late.change_id]
    queue = await gov.call(GovernanceOps.LIST_REVIEWS, ListReviews(), ReviewList, GUS)
    assert queue.changes == []
