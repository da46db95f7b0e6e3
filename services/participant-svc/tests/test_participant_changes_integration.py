"""participant-svc takes the participant limit of an approved change, and keeps
the approved one when a change is refused; on a real NATS JetStream and a real
database (SQLite and PostgreSQL).

Governance's ChangeApproved / ChangeRejected are published on the real bus by the
test, as governance-svc would: a test double of the decision only.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import msgspec
import nats
import pytest
from nats.aio.client import Client as NATS
from participant_helpers import LEADER, approval, person

from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import (
    ChangeApproved,
    ChangeProposed,
    ChangeRejected,
    RequestCancelled,
)
from jhaas_schemas.model import Principal
from jhaas_schemas.rpc import (
    Apply,
    Course,
    CourseRef,
    Decide,
    DeploymentState,
    ErrorCode,
    ParticipantOps,
    Participation,
    ParticipationList,
    ParticipationStatus,
)
from participant_svc.app import build_app

pytestmark = pytest.mark.integration


def past(limit: int) -> str:
    """How an acceptance past the approved number is refused."""
    return f"{ErrorCode.CONFLICT.value}: the approved limit of {limit} participants"


class Bus:
    def __init__(self, nc: NATS) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.rpc = RpcClient(nc, timeout=10)

    async def course(self, request_id: str) -> Course | None:
        try:
            return await self.rpc.call(
                ParticipantOps.COURSE,
                CourseRef(request_id=request_id),
                Course,
                principal=LEADER,
                correlation_id="c-t",
            )
        except RpcFailure:
            return None

    async def the_course(self, request_id: str) -> Course:
        found = await self.course(request_id)
        assert found is not None
        return found

    async def apply(self, who: Principal, code: str) -> Participation:
        return await self.rpc.call(
            ParticipantOps.APPLY, Apply(code=code), Participation, principal=who, correlation_id="c"
        )

    async def accept(self, request_id: str, ids: list[str]) -> ParticipationList | str:
        """The accepted participations, or the refusal's code and message."""
        try:
            return await self.rpc.call(
                ParticipantOps.ACCEPT,
                Decide(request_id=request_id, participation_ids=ids),
                ParticipationList,
                principal=LEADER,
                correlation_id="c",
            )
        except RpcFailure as failure:
            return f"{failure.error.code.value}: {failure.error.message}"

    async def handled_so_far(self) -> None:
        """Wait until participant-svc has handled everything published before on the
        governance and the request stream: a course approved, then cancelled, after
        it (each consumer handles its stream in order) shows as cancelled."""
        barrier = approval(f"r-barrier-{uuid.uuid4().hex[:8]}", limit=1)
        await publish(self.js, barrier)
        await eventually(lambda: self.course(barrier.request_id), lambda c: c is not None)
        await publish(
            self.js,
            RequestCancelled(
                **envelope(source="request-svc", correlation_id="c-barrier"),
                request_id=barrier.request_id,
                cancelled_by=LEADER.user_id,
            ),
        )
        await eventually(
            lambda: self.the_course(barrier.request_id),
            lambda c: c.hub_status == DeploymentState.CANCELLED,
        )


@pytest.fixture
async def bus(settings_for: Callable[..., RuntimeSettings]) -> AsyncIterator[Bus]:
    runtime: ServiceRuntime = build_app(settings_for("participant-svc"))
    await runtime.start()
    nc = await nats.connect(runtime.settings.nats_url)
    try:
        yield Bus(nc)
    finally:
        await nc.close()
        await runtime.stop()


async def test_the_participant_limit_follows_approved_changes_not_refused_ones(bus: Bus) -> None:
    approved = approval("r-1", limit=2)
    await publish(bus.js, approved)
    course = await eventually(lambda: bus.course("r-1"), lambda c: c is not None)
    assert course is not None and course.max_participants == 2
    applied = [await bus.apply(person(n), course.join_code) for n in range(5)]
    ids = [p.participation_id for p in applied]
    assert isinstance(await bus.accept("r-1", ids[:2]), ParticipationList)
    assert str(await bus.accept("r-1", ids[2:3])).startswith(past(2))

    # Asked for and refused: the course keeps the approved limit (and end).
    change_id = str(uuid.uuid4())
    more = msgspec.structs.replace(
        approved.configuration,
        expected_participants=4,
        ends_at=approved.configuration.ends_at + timedelta(days=7),
    )
    await publish(
        bus.js,
        ChangeProposed(
            **envelope(source="request-svc", correlation_id="c-ask"),
            request_id="r-1",
            change_id=change_id,
            leader_id=LEADER.user_id,
            revision=2,
            configuration=more,
        ),
    )
    await publish(
        bus.js,
        ChangeRejected(
            **envelope(source="governance-svc", correlation_id="c-ask"),
            request_id="r-1",
            change_id=change_id,
            decided_by="u-gov",
            revision=2,
            reason="the cluster is full that week",
        ),
    )
    await bus.handled_so_far()
    assert await bus.the_course("r-1") == msgspec.structs.replace(course, accepted=2)
    assert str(await bus.accept("r-1", ids[2:3])).startswith(past(2))

    # Approved (a second proposal): two more people can be accepted, not a third.
    await publish(
        bus.js,
        ChangeApproved(
            **envelope(source="governance-svc", correlation_id="c-yes"),
            request_id="r-1",
            change_id=str(uuid.uuid4()),
            decided_by="system",
            revision=3,
            configuration=more,
        ),
    )
    raised = await eventually(lambda: bus.the_course("r-1"), lambda c: c.max_participants == 4)
    assert raised.ends_at == more.ends_at
    accepted = await bus.accept("r-1", ids[2:4])
    assert isinstance(accepted, ParticipationList)
    assert [p.status for p in accepted.items] == [ParticipationStatus.ACCEPTED] * 2
    assert str(await bus.accept("r-1", ids[4:])).startswith(past(4))

    # Lowered below those accepted: everyone stays, nobody more is accepted.
    fewer = msgspec.structs.replace(more, expected_participants=3)
    await publish(
        bus.js,
        ChangeApproved(
            **envelope(source="governance-svc", correlation_id="c-fewer"),
            request_id="r-1",
            change_id=str(uuid.uuid4()),
            decided_by="system",
            revision=4,
            configuration=fewer,
        ),
    )
    lowered = await eventually(lambda: bus.the_course("r-1"), lambda c: c.max_participants == 3)
    assert lowered.accepted == 4

    # An older change (its first delivery failed) and the approval arriving late:
    # the limit approved last stays.
    await publish(
        bus.js,
        ChangeApproved(
            **envelope(source="governance-svc", correlation_id="c-late"),
            request_id="r-1",
            change_id=str(uuid.uuid4()),
            decided_by="system",
            revision=3,
            configuration=more,
        ),
    )
    await publish(bus.js, msgspec.structs.replace(approved, event_id=str(uuid.uuid4())))
    await bus.handled_so_far()
    assert await bus.the_course("r-1") == lowered
    assert str(await bus.accept("r-1", ids[4:])).startswith(past(3))
