"""The schedule under races, with the real scheduler, real NATS, both databases and
real JupyterHubs (the local backend, held on purpose at chosen points):

- a cancellation wins whatever the backend is doing: the hub is torn down, the
  course is never announced as ready or started, `HubDeleted` goes out once;
- one slow deploy does not hold up another course's start, end and deletion;
- an action slower than its lease keeps it (renewed), so a second replica never
  does it twice; an action that lost its lease stops before it emits anything.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from deployer_svc.app import build_app
from deployer_svc.backends.local import LocalBackend
from deployer_svc.domain import DeploymentRecord
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository, deployments
from jhaas_launcher.testing import eventually, publish, sample_spec
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import Event, envelope
from jhaas_schemas.events import (
    CourseEnded,
    CourseStarted,
    DeploymentScheduled,
    HubDeleted,
    HubDeploying,
    HubReady,
    RequestApproved,
    RequestCancelled,
)
from jhaas_schemas.rpc import DeploymentState

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import GatedBackend, approval, deployer_events, of_request, scheduler_of

pytestmark = pytest.mark.integration

LEASE = timedelta(seconds=3)


def settings_of(runtime: RuntimeSettings, tmp_path: Path, **overrides: object) -> DeployerSettings:
    values: dict[str, object] = {
        "runtime": runtime,
        "lead_time": timedelta(minutes=10),  # due for deployment at once
        "hubs_dir": tmp_path / "hubs",
        "lease": LEASE,
        "retry_backoff": timedelta(seconds=2),
        "installation_id": "test",
    }
    values.update(overrides)
    return DeployerSettings(**values)  # type: ignore[arg-type]


def cancellation(approved: RequestApproved) -> RequestCancelled:
    return RequestCancelled(
        **envelope(source="request-svc", correlation_id="c-cancel"),
        request_id=approved.request_id,
        cancelled_by="u-leader",
        reason="the course was called off",
    )


def seconds_until(moment: datetime) -> float:
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


async def state_of(runtime: ServiceRuntime, approved: RequestApproved) -> DeploymentState | None:
    found = await runtime.db.read(
        lambda conn: DeploymentRepository(conn).for_request(approved.request_id)
    )
    return found.state if found else None


@asynccontextmanager
async def deployers(
    settings: DeployerSettings, backend: GatedBackend, replicas: int = 1
) -> AsyncIterator[tuple[list[ServiceRuntime], nats.js.JetStreamContext]]:
    """`replicas` deployer-svc instances sharing `backend`, and a JetStream client;
    afterwards every hub the test caused is torn down (hubs outlive their deployer)."""
    runtimes = [build_app(settings, backend=backend) for _ in range(replicas)]  # type: ignore[arg-type]
    nc = None
    try:
        for runtime in runtimes:
            await runtime.start()
        nc = await nats.connect(settings.runtime.nats_url)
        yield runtimes, nc.jetstream()
    finally:
        if nc is not None:
            await nc.close()
        for runtime in runtimes:
            await runtime.stop()
        for deployment_id in await backend.inner.list_managed():
            await backend.inner.teardown(deployment_id)


def gated(tmp_path: Path, **options: int) -> GatedBackend:
    return GatedBackend(LocalBackend(tmp_path / "hubs", installation_id="test"), **options)


async def events_of(js: nats.js.JetStreamContext, request_id: str) -> list[type[Event]]:
    return of_request(await deployer_events(js), request_id)


@pytest.mark.parametrize("point", ["deploy", "starting", "deployed", "retry"])
async def test_a_cancellation_wins_at_every_step_of_a_deploy(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path, point: str
) -> None:
    backend = gated(tmp_path, fail_deploys=1 if point == "retry" else 0)
    if point != "retry":
        backend.hold(point)
    settings = settings_of(settings_for("deployer-svc"), tmp_path)
    async with deployers(settings, backend) as ([runtime], js):
        # The course starts a few seconds from now: were its hub ever taken for
        # ready, the start would be announced right after.
        now = datetime.now(UTC)
        approved = approval(now + timedelta(seconds=6), now + timedelta(minutes=30))
        await publish(js, approved)
        if point == "retry":
            # The first attempt failed; the deployment waits for its retry, unleased.
            await eventually(lambda: asyncio.sleep(0, backend.calls), lambda c: len(c) == 1)
        else:
            async with asyncio.timeout(60):  # a hang guard, not a timing claim
                await backend.reached(point)
        await publish(js, cancellation(approved))
        gone = (DeploymentState.ENDING, DeploymentState.DELETED)
        await eventually(lambda: state_of(runtime, approved), lambda s: s in gone)
        if point != "retry":
            backend.release(point)  # whatever the backend does now comes too late

        kinds = await eventually(
            lambda: events_of(js, approved.request_id),
            lambda ks: HubDeleted in ks,
            timeout=90,
        )
        # Until past the course's start: nothing more may come.
        await asyncio.sleep(seconds_until(approved.configuration.starts_at) + 1.5)
        kinds = await events_of(js, approved.request_id)
        assert kinds == [DeploymentScheduled, HubDeploying, HubDeleted], kinds
        assert await backend.inner.list_managed() == []
        assert not (tmp_path / "hubs").exists() or list((tmp_path / "hubs").iterdir()) == []
        [record] = await runtime.db.read(
            lambda conn: DeploymentRepository(conn).list_deployments(request_id=approved.request_id)
        )
        assert record.state == DeploymentState.DELETED


def running_record(now: datetime, starts_in: float, lasts: float) -> DeploymentRecord:
    spec = sample_spec(
        slug="other-1",
        starts_at=now + timedelta(seconds=starts_in),
        ends_at=now + timedelta(seconds=starts_in + lasts),
    )
    return DeploymentRecord(
        deployment_id=str(uuid.uuid4()),
        request_id=str(uuid.uuid4()),
        leader_id="u-leader",
        state=DeploymentState.RUNNING,
        configuration=spec,
        deploy_at=now - timedelta(minutes=1),
        starts_at=spec.starts_at,
        ends_at=spec.ends_at,
        teardown_at=spec.ends_at,
        created_at=now,
        updated_at=now,
        hub_url="http://127.0.0.1:1/",
        attempts=1,
    )


async def test_one_slow_deploy_holds_up_no_other_course(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> None:
    backend = gated(tmp_path)
    backend.hold("deploy")  # a 10-minute image pull, say
    settings = settings_of(settings_for("deployer-svc"), tmp_path)
    async with deployers(settings, backend) as ([runtime], js):
        now = datetime.now(UTC)
        slow = approval(now + timedelta(minutes=5), now + timedelta(minutes=30))
        await publish(js, slow)
        async with asyncio.timeout(60):  # a hang guard
            await backend.reached("deploy")
        # Meanwhile another course starts, ends and is deleted.
        other = running_record(datetime.now(UTC), starts_in=1.0, lasts=1.0)
        assert await runtime.db.write(lambda conn: DeploymentRepository(conn).add(other))
        scheduler_of(runtime).notify()
        kinds = await eventually(
            lambda: events_of(js, other.request_id),
            lambda ks: HubDeleted in ks,
            timeout=30,
        )
        assert kinds == [CourseStarted, CourseEnded, HubDeleted]
        # ... all while the slow deploy is still in the backend's hands.
        assert await events_of(js, slow.request_id) == [DeploymentScheduled, HubDeploying]
        backend.release("deploy")
        await eventually(
            lambda: events_of(js, slow.request_id), lambda ks: HubReady in ks, timeout=90
        )


async def test_two_replicas_never_do_an_action_slower_than_its_lease_twice(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> None:
    backend = gated(tmp_path)  # one call log for both replicas
    backend.delays = {"deploy": 3 * LEASE.total_seconds(), "teardown": 3 * LEASE.total_seconds()}
    settings = settings_of(settings_for("deployer-svc"), tmp_path)
    async with deployers(settings, backend, replicas=2) as (_, js):
        now = datetime.now(UTC)
        course = approval(now + timedelta(seconds=5), now + timedelta(seconds=30))
        await publish(js, course)
        kinds = await eventually(
            lambda: events_of(js, course.request_id),
            lambda ks: HubDeleted in ks,
            timeout=150,
        )
        await asyncio.sleep(2 * LEASE.total_seconds())  # a second claim would show by now
        kinds = await events_of(js, course.request_id)
        assert kinds == [
            DeploymentScheduled,
            HubDeploying,
            HubReady,
            CourseStarted,
            CourseEnded,
            HubDeleted,
        ], kinds
        assert Counter(what for what, _ in backend.calls) == {"deploy": 1, "teardown": 1}
        assert backend.stopped == []


@pytest.mark.parametrize("point", ["deployed", "teardown"])
async def test_an_action_that_lost_its_lease_stops_before_it_emits_anything(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path, point: str
) -> None:
    backend = gated(tmp_path)
    backend.hold(point)
    settings = settings_of(settings_for("deployer-svc"), tmp_path)
    async with deployers(settings, backend) as ([runtime], js):
        now = datetime.now(UTC)
        ends = now + timedelta(seconds=12 if point == "teardown" else 600)
        course = approval(now + timedelta(seconds=6), ends)
        await publish(js, course)
        async with asyncio.timeout(120):  # a hang guard
            await backend.reached(point)
        before = await events_of(js, course.request_id)
        # Another worker owns the row now (say this one was paused past its lease).
        taken = (
            deployments.update()
            .where(deployments.c.request_id == course.request_id)
            .values(lease_owner="another-worker", lease_until=now + timedelta(hours=1))
        )
        await runtime.db.write(lambda conn: conn.execute(taken))
        await eventually(lambda: asyncio.sleep(0, backend.stopped), lambda s: s == [point])
        backend.release(point)
        await asyncio.sleep(LEASE.total_seconds())  # anything it would still emit shows by now
        assert await events_of(js, course.request_id) == before
        assert HubReady not in before if point == "deployed" else HubDeleted not in before


async def test_work_waiting_for_a_free_slot_is_not_polled_in_a_loop(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> None:
    backend = gated(tmp_path)
    backend.hold("deploy")
    settings = settings_of(settings_for("deployer-svc"), tmp_path, max_parallel_actions=1)
    async with deployers(settings, backend) as ([runtime], js):
        scheduler = scheduler_of(runtime)
        now = datetime.now(UTC)
        first, second = (
            approval(now + timedelta(minutes=5), now + timedelta(minutes=30), slug=f"slot-{i}")
            for i in range(2)
        )
        await publish(js, first)
        async with asyncio.timeout(60):  # a hang guard
            await backend.reached("deploy")
        await publish(js, second)  # due at once, and the only slot is taken
        await eventually(lambda: state_of(runtime, second), lambda s: s is not None)
        before, seconds = scheduler.ticks, 3.0
        await asyncio.sleep(seconds)
        # About one look a second (other replicas' changes) plus wake-ups; a loop
        # that polls the waiting work would look dozens of times.
        assert scheduler.ticks - before <= 2 * seconds + 2, scheduler.ticks - before
        assert await events_of(js, second.request_id) == [DeploymentScheduled]
        backend.release("deploy")
        await eventually(
            lambda: events_of(js, second.request_id), lambda ks: HubReady in ks, timeout=120
        )
