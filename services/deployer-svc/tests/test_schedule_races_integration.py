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
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa

from deployer_svc.app import build_app
from deployer_svc.backends.local import LocalBackend
from deployer_svc.domain import DeploymentRecord
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository, deployments
from jhaas_launcher.testing import eventually, publish
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
from deployer_helpers import GatedBackend, approval, deployer_events, of_request

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
    async with runtime.db.reading() as session:
        found = await DeploymentRepository(session).for_request(approved.request_id)
    return found.state if found else None


async def events_of(js: nats.js.JetStreamContext, request_id: str) -> list[type[Event]]:
    return of_request(await deployer_events(js), request_id)


@pytest.mark.parametrize("point", ["deploy", "starting", "deployed", "retry"])
async def test_a_cancellation_wins_at_every_step_of_a_deploy(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path, point: str
) -> None:
    inner = LocalBackend(tmp_path / "hubs", installation_id="test")
    backend = GatedBackend(inner, fail_deploys=1 if point == "retry" else 0)
    if point != "retry":
        backend.hold(point)
    settings = settings_of(settings_for("deployer-svc"), tmp_path)
    runtime = build_app(settings, backend=backend)  # type: ignore[arg-type]
    await runtime.start()
    nc = await nats.connect(settings.runtime.nats_url)
    js = nc.jetstream()
    try:
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
        assert await inner.list_managed() == []
        assert not (tmp_path / "hubs").exists() or list((tmp_path / "hubs").iterdir()) == []
        async with runtime.db.reading() as session:
            [record] = await DeploymentRepository(session).list_deployments(
                request_id=approved.request_id
            )
        assert record.state == DeploymentState.DELETED
    finally:
        await nc.close()
        await runtime.stop()
        for deployment_id in await inner.list_managed():
            await inner.teardown(deployment_id)
