"""Reconciliation at start-up against a real JupyterHub backend and real NATS and
databases: a hub of no known course is removed; a running course whose hub is
gone gets it back, without announcing its start a second time."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from deployer_svc.app import build_app
from deployer_svc.backends.base import HubDeployment, HubPhase
from deployer_svc.backends.local import LocalBackend
from deployer_svc.domain import DeploymentRecord
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository
from jhaas_launcher.testing import eventually, sample_spec
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.events import CourseStarted, HubDeploying, HubReady
from jhaas_schemas.rpc import DeploymentState

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import deployer_events

pytestmark = pytest.mark.integration


def running_course(now: datetime) -> DeploymentRecord:
    spec = sample_spec(
        slug="live-1", starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(minutes=30)
    )
    return DeploymentRecord(
        deployment_id="dep-live-1",
        request_id="req-live-1",
        leader_id="u-leader",
        state=DeploymentState.RUNNING,
        configuration=spec,
        deploy_at=spec.starts_at - timedelta(minutes=30),
        starts_at=spec.starts_at,
        ends_at=spec.ends_at,
        teardown_at=spec.ends_at,
        created_at=now,
        updated_at=now,
        hub_url="http://127.0.0.1:1/",
        attempts=1,
        course_started=True,
    )


async def test_reconcile_removes_orphans_and_rebuilds_missing_hubs(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> None:
    hubs = LocalBackend(tmp_path / "hubs")
    settings = DeployerSettings(runtime=settings_for("deployer-svc"), hubs_dir=tmp_path / "hubs")
    orphan = HubDeployment(
        deployment_id="dep-orphan",
        request_id="req-gone",
        slug="gone-1",
        configuration=sample_spec(slug="gone-1"),
        api_token="t" * 64,
    )
    first = build_app(settings, backend=hubs)
    await first.start()  # migrations, streams
    await first.stop()
    async with first.db.transaction() as session:
        await DeploymentRepository(session).add(running_course(datetime.now(UTC)))
    await first.db.dispose()
    assert (await hubs.deploy(orphan)).phase == HubPhase.READY

    runtime = build_app(settings, backend=hubs)
    await runtime.start()
    nc = await nats.connect(settings.runtime.nats_url)
    try:
        js = nc.jetstream()
        events = await eventually(
            lambda: deployer_events(js),
            lambda es: any(isinstance(e, HubReady) for e in es),
            timeout=90,
        )
        assert [type(e) for e in events] == [HubDeploying, HubReady]
        assert all(e.request_id == "req-live-1" for e in events)  # type: ignore[attr-defined]
        assert not any(isinstance(e, CourseStarted) for e in events)
        assert await hubs.list_managed() == ["dep-live-1"]
        assert (await hubs.status("dep-orphan")).phase == HubPhase.ABSENT
        assert (await hubs.status("dep-live-1")).phase == HubPhase.READY
    finally:
        await nc.close()
        await runtime.stop()
        for deployment_id in await hubs.list_managed():
            await hubs.teardown(deployment_id)
