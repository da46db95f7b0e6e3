"""Changes after approval in request-svc, on a real NATS JetStream and a real
database (SQLite and PostgreSQL).

Governance's answers (ChangeApproved / ChangeRejected) are published on the real
bus by the test, as governance-svc would: a test double of the decision only.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import msgspec
import nats
import pytest

from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import (
    ChangeApproved,
    ChangeProposed,
    ChangeRejected,
    RequestApproved,
    decode_event,
)
from jhaas_schemas.model import HubSpec, Principal, Resources, Role
from jhaas_schemas.policy import (
    CourseLimits,
    ImageRules,
    PerUserLimits,
    Policy,
    Preset,
    Span,
    fixed,
)
from jhaas_schemas.rpc import (
    CancelRequest,
    ErrorCode,
    GetRequest,
    HubRequest,
    HubSpecUpdate,
    ProposeChange,
    RequestOps,
    ResourcesUpdate,
    SubmitRequest,
)
from jhaas_schemas.streams import REQUEST_STREAM
from request_svc.app import build_app

pytestmark = pytest.mark.integration

LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))
STRANGER = Principal(user_id="u-other", username="leo", roles=(Role.LEADER,))
GOVERNANCE = Principal(user_id="u-gov", username="gus", roles=(Role.GOVERNANCE,))
POLICY = Policy(course=CourseLimits(max_participants=40))


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def spec(slug: str) -> HubSpec:
    start = datetime.now(UTC) + timedelta(days=7)
    return HubSpec(
        title="Data Science 101",
        slug=slug,
        starts_at=start,
        ends_at=start + timedelta(days=30),
        image="quay.io/jupyter/scipy-notebook:2024-12-02",
        resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
        expected_participants=30,
    )


class Course:
    """request-svc with a clock the test moves, and a leader's calls to it."""

    def __init__(self, runtime: ServiceRuntime, nc: nats.NATS, clock: Clock) -> None:
        self.runtime = runtime
        self.clock = clock
        self.nc = nc
        self.client = RpcClient(nc)

    async def call(
        self, subject: str, payload: msgspec.Struct, who: Principal = LEADER
    ) -> HubRequest:
        return await self.client.call(
            subject, payload, HubRequest, principal=who, correlation_id="c"
        )

    async def get(self, request_id: str) -> HubRequest:
        return await self.call(RequestOps.GET, GetRequest(request_id=request_id))

    async def approved(self, slug: str) -> HubRequest:
        created = await self.call(RequestOps.SUBMIT, SubmitRequest(spec=spec(slug)))
        await publish(
            self.nc.jetstream(),
            RequestApproved(
                **envelope(source="governance-svc", correlation_id="c-g"),
                request_id=created.request_id,
                review_id="rv",
                leader_id=LEADER.user_id,
                decided_by=GOVERNANCE.user_id,
                revision=1,
                configuration=created.spec,
            ),
        )
        return await eventually(
            lambda: self.get(created.request_id), lambda r: r.status == "approved"
        )

    async def refused(
        self, payload: ProposeChange, who: Principal = LEADER
    ) -> tuple[ErrorCode, dict[str, str]]:
        with pytest.raises(RpcFailure) as refusal:
            await self.call(RequestOps.PROPOSE_CHANGE, payload, who)
        return refusal.value.error.code, refusal.value.error.fields


def change(request_id: str, revision: int | None = None, **fields: object) -> ProposeChange:
    return ProposeChange(
        request_id=request_id,
        changes=HubSpecUpdate(**fields),  # type: ignore[arg-type]
        comment="more people signed up",
        expected_revision=revision,
    )


@pytest.fixture
async def course(settings_for: Callable[..., RuntimeSettings]) -> AsyncIterator[Course]:
    settings = settings_for("request-svc")
    clock = Clock()
    runtime = build_app(settings, clock, fixed(POLICY))
    await runtime.start()
    nc = await nats.connect(settings.nats_url)
    try:
        yield Course(runtime, nc, clock)
    finally:
        await nc.close()
        await runtime.stop()


async def test_a_change_is_refused_for_each_reason_and_nothing_is_stored(course: Course) -> None:
    approved = await course.approved("ds101")
    rid = approved.request_id
    more = change(rid, expected_participants=35)
    assert (await course.refused(more, STRANGER))[0] == ErrorCode.NOT_FOUND
    assert (await course.refused(more, GOVERNANCE))[0] == ErrorCode.FORBIDDEN
    assert await course.refused(change(rid, expected_participants=41)) == (
        ErrorCode.INVALID,
        {
            "spec.expected_participants": "course.max_participants: 41 participants is above "
            "the policy's maximum of 40"
        },
    )
    assert await course.refused(change(rid, expected_participants=30)) == (
        ErrorCode.INVALID,
        {"changes": "changes nothing"},
    )
    later_start = approved.spec.starts_at + timedelta(days=1)
    code, fields = await course.refused(change(rid, slug="ds102", starts_at=later_start))
    assert code == ErrorCode.INVALID
    assert fields == {
        "changes.slug": "cannot change after approval",
        "changes.starts_at": "cannot change after approval",
    }
    early_end = approved.spec.starts_at - timedelta(days=1)
    code, fields = await course.refused(change(rid, ends_at=early_end))
    assert (code, list(fields)) == (ErrorCode.INVALID, ["spec.ends_at"])
    assert (await course.refused(change(rid, revision=5, expected_participants=35)))[0] == (
        ErrorCode.CONFLICT
    )
    # Not approved yet: edited, not changed.
    waiting = await course.call(RequestOps.SUBMIT, SubmitRequest(spec=spec("waiting")))
    assert (await course.refused(change(waiting.request_id, expected_participants=3)))[0] == (
        ErrorCode.CONFLICT
    )
    assert await course.get(rid) == approved  # nothing of any refusal was stored

    # One open change at a time.
    proposed = await course.call(
        RequestOps.PROPOSE_CHANGE, change(rid, 1, expected_participants=35)
    )
    assert proposed.revision == 2 and proposed.change is not None
    assert proposed.change.status == "pending"
    assert proposed.spec == approved.spec  # the course runs as approved meanwhile
    code, _ = await course.refused(change(rid, 2, expected_participants=36))
    assert code == ErrorCode.CONFLICT

    # The course is over: cancelled, or its end has passed.
    other = await course.approved("ds102")
    await course.call(RequestOps.CANCEL, CancelRequest(request_id=other.request_id))
    code, _ = await course.refused(change(other.request_id, expected_participants=35))
    assert code == ErrorCode.CONFLICT
    third = await course.approved("ds103")
    course.clock.now = third.spec.ends_at + timedelta(minutes=1)
    with pytest.raises(RpcFailure) as over:
        await course.call(
            RequestOps.PROPOSE_CHANGE,
            change(third.request_id, resources=ResourcesUpdate(memory="4Gi")),
        )
    assert over.value.error.code == ErrorCode.CONFLICT
    assert "the course is over" in over.value.error.message


async def test_the_view_follows_governances_answers(course: Course) -> None:
    approved = await course.approved("ds101")
    rid = approved.request_id
    later = approved.spec.ends_at + timedelta(days=14)
    proposed = await course.call(
        RequestOps.PROPOSE_CHANGE,
        change(rid, 1, ends_at=later, resources=ResourcesUpdate(memory="4Gi")),
    )
    js = course.nc.jetstream()
    sub = await js.pull_subscribe(
        "jhaas.evt.request.change_proposed.v1", durable="probe", stream=REQUEST_STREAM.name
    )
    event = decode_event((await sub.fetch(1, timeout=5))[0].data)
    assert isinstance(event, ChangeProposed)
    assert proposed.change is not None
    assert (event.change_id, event.revision) == (proposed.change.change_id, 2)
    assert event.configuration.ends_at == later
    assert event.configuration.resources.memory == "4Gi"

    answer = ChangeApproved(
        **envelope(source="governance-svc", correlation_id="c-g"),
        request_id=rid,
        change_id=event.change_id,
        decided_by="system",
        revision=2,
        configuration=event.configuration,
    )
    await publish(js, answer)
    seen = await eventually(
        lambda: course.get(rid), lambda r: r.change is not None and r.change.status == "approved"
    )
    assert seen.spec == event.configuration
    assert seen.approved_revision == 2
    assert seen.change is not None and seen.change.decided_by == "system"

    # A second change, refused: the course keeps the configuration approved last.
    fewer = await course.call(RequestOps.PROPOSE_CHANGE, change(rid, 2, expected_participants=10))
    assert fewer.change is not None
    await publish(js, answer, msg_id="copy-of-the-first-answer")  # a late copy: ignored
    await publish(
        js,
        ChangeRejected(
            **envelope(source="governance-svc", correlation_id="c-g"),
            request_id=rid,
            change_id=fewer.change.change_id,
            decided_by=GOVERNANCE.user_id,
            revision=3,
            reason="the cluster is full that week",
        ),
    )
    seen = await eventually(
        lambda: course.get(rid), lambda r: r.change is not None and r.change.status == "rejected"
    )
    assert seen.spec == event.configuration
    assert seen.approved_revision == 2
    assert seen.change is not None
    assert seen.change.answer == "the cluster is full that week"
    assert seen.revision == 3


STRICT = Policy(
    limits=PerUserLimits(memory=Span(min="256Mi", max="8Gi")),
    course=CourseLimits(max_participants=40, max_duration_days=60),
    images=ImageRules(allow_custom=False),
    presets=(
        Preset(
            name="scipy",
            title="Scientific Python",
            image="quay.io/jupyter/scipy-notebook:2024-12-02",
            resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
        ),
        Preset(
            name="r",
            title="R",
            image="quay.io/jupyter/r-notebook:2024-12-02",
            resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
        ),
    ),
)


@pytest.fixture
async def strict_course(settings_for: Callable[..., RuntimeSettings]) -> AsyncIterator[Course]:
    settings = settings_for("request-svc")
    clock = Clock()
    runtime = build_app(settings, clock, fixed(STRICT))
    await runtime.start()
    nc = await nats.connect(settings.nats_url)
    try:
        yield Course(runtime, nc, clock)
    finally:
        await nc.close()
        await runtime.stop()


async def test_a_change_that_breaks_a_rule_is_refused_naming_the_rule(
    strict_course: Course,
) -> None:
    course = strict_course
    approved = await course.approved("ds101")
    rid = approved.request_id
    # An image that is no preset's, where the policy allows presets only.
    assert await course.refused(change(rid, image="docker.io/someone/miner:1")) == (
        ErrorCode.INVALID,
        {
            "spec.image": "images.allow_custom: docker.io/someone/miner:1 is not the image of "
            "a preset, and the policy allows presets only"
        },
    )
    code, fields = await course.refused(change(rid, resources=ResourcesUpdate(memory="16Gi")))
    assert code == ErrorCode.INVALID
    assert list(fields) == ["spec.resources.memory"]
    assert fields["spec.resources.memory"].startswith("limits.memory.max: ")
    too_long = approved.spec.starts_at + timedelta(days=61)
    code, fields = await course.refused(change(rid, ends_at=too_long))
    assert code == ErrorCode.INVALID
    assert list(fields) == ["spec.ends_at"]
    assert fields["spec.ends_at"].startswith("course.max_duration_days: ")
    assert await course.get(rid) == approved  # nothing of any refusal was stored

    # Another preset's image is a change governance can decide on.
    other = await course.call(
        RequestOps.PROPOSE_CHANGE, change(rid, 1, image="quay.io/jupyter/r-notebook:2024-12-02")
    )
    assert other.change is not None and other.change.status == "pending"
    assert other.change.configuration.image == "quay.io/jupyter/r-notebook:2024-12-02"
    assert other.spec == approved.spec
