"""The course's leader and tutors see what its hub cannot do on its host
(HubReady.warnings) on the course and in "my courses", until a later HubReady
without warnings clears it; a participant is not shown the host's troubles. On a
real NATS JetStream and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import msgspec
import nats
import pytest

from jhaas_launcher.testing import eventually, publish, sample_spec
from jhaas_runtime.rpc import RpcClient
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import HubReady, RequestApproved
from jhaas_schemas.model import Principal, Role
from jhaas_schemas.rpc import (
    Apply,
    Course,
    CourseRef,
    Decide,
    Empty,
    MyCourseList,
    ParticipantOps,
    Participation,
    ParticipationList,
    TutorRef,
)
from participant_svc.app import build_app

pytestmark = pytest.mark.integration

R = TypeVar("R")
LEADER = Principal(user_id="u-lea", username="lea", roles=(Role.LEADER,))
TUTOR = Principal(user_id="u-tom", username="tom")
PARTICIPANT = Principal(user_id="u-pat", username="pat", roles=(Role.PARTICIPANT,))
NO_ROOT = (
    "participants cannot sign in: the deployer does not run as root, so their servers "
    "could not be isolated from each other"
)
NO_LIMITS = "memory and CPU limits are not enforced by the kernel: /sys/fs/cgroup is read-only"


async def test_the_staff_see_the_hubs_warnings_until_a_hub_without_them(
    settings_for: Callable[..., RuntimeSettings],
) -> None:
    settings = settings_for("participant-svc")
    runtime = build_app(settings)
    await runtime.start()
    nc = await nats.connect(settings.nats_url)
    try:
        js, rpc = nc.jetstream(), RpcClient(nc)

        async def call(who: Principal, subject: str, payload: msgspec.Struct, typ: type[R]) -> R:
            return await rpc.call(subject, payload, typ, principal=who, correlation_id="c-t")

        async def views(who: Principal) -> list[list[str]]:
            """The warnings `who` sees: on the course (staff only), then in "my courses"."""
            mine = await call(who, ParticipantOps.MY_COURSES, Empty(), MyCourseList)
            seen = [c.hub_warnings for c in mine.items]
            if who != PARTICIPANT:
                ref = CourseRef(request_id="r-w")
                seen.insert(0, (await call(who, ParticipantOps.COURSE, ref, Course)).hub_warnings)
            return seen

        await publish(
            js,
            RequestApproved(
                **envelope(source="governance-svc", correlation_id="c-g"),
                request_id="r-w",
                review_id="rv-1",
                leader_id=LEADER.user_id,
                decided_by="u-gov",
                revision=1,
                configuration=sample_spec(),
            ),
        )

        async def course() -> Course | None:
            mine = await call(LEADER, ParticipantOps.MY_COURSES, Empty(), MyCourseList)
            if not mine.items:
                return None
            return await call(LEADER, ParticipantOps.COURSE, CourseRef(request_id="r-w"), Course)

        found = await eventually(course, lambda c: c is not None)
        assert found is not None
        ref = TutorRef(request_id="r-w", user_id=TUTOR.user_id)
        await call(LEADER, ParticipantOps.ADD_TUTOR, ref, Course)
        applied = await call(
            PARTICIPANT, ParticipantOps.APPLY, Apply(code=found.join_code), Participation
        )
        decide = Decide(request_id="r-w", participation_ids=[applied.participation_id])
        await call(LEADER, ParticipantOps.ACCEPT, decide, ParticipationList)
        t0 = datetime.now(UTC)

        async def hub_ready(seconds: int, *warnings: str) -> None:
            when = t0 + timedelta(seconds=seconds)
            await publish(
                js,
                HubReady(
                    **envelope(source="deployer-svc", correlation_id="c-d", now=when),
                    deployment_id="d-w",
                    request_id="r-w",
                    url="http://hub.test/r-w/",
                    warnings=warnings,
                ),
            )

        await hub_ready(1, NO_ROOT, NO_LIMITS)
        warned = [NO_ROOT, NO_LIMITS]
        await eventually(lambda: views(LEADER), lambda seen: seen == [warned, warned])
        assert await views(TUTOR) == [warned, warned]
        assert await views(PARTICIPANT) == [[]]

        await hub_ready(2)
        await eventually(lambda: views(LEADER), lambda seen: seen == [[], []])
        assert await views(TUTOR) == [[], []]
    finally:
        await nc.close()
        await runtime.stop()
