"""Reconciliation at start-up against real JupyterHubs (local backend), real NATS and
real databases:

- a running course whose hub is gone gets it back, without announcing its start
  a second time;
- what is left of a finished course's hub is removed;
- a hub the database does not know is never removed by reconciliation (a reset or
  restored database, or another installation's hub on the same machine): it is
  reported, and only the operator's command removes it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
from sqlalchemy.engine import Connection

from deployer_svc.app import build_app
from deployer_svc.backends.base import BackendError, HubDeployment, HubPhase
from deployer_svc.backends.local import LocalBackend
from deployer_svc.domain import DeploymentRecord
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository
from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually, sample_spec
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.events import CourseStarted, HubDeploying, HubReady
from jhaas_schemas.rpc import DeploymentState

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import deployer_env, deployer_events, scheduler_of

pytestmark = pytest.mark.integration


def running_course(now: datetime, deployment_id: str = "dep-live-1") -> DeploymentRecord:
    spec = sample_spec(
        slug="live-1", starts_at=now - timedelta(minutes=5), ends_at=now + timedelta(minutes=30)
    )
    return DeploymentRecord(
        deployment_id=deployment_id,
        request_id=f"req-{deployment_id}",
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


def hub(deployment_id: str) -> HubDeployment:
    return HubDeployment(
        deployment_id=deployment_id,
        request_id=f"req-{deployment_id}",
        slug="any-1",
        configuration=sample_spec(slug="any-1"),
        api_token="t" * 64,
    )


async def migrated(settings: DeployerSettings, backend: LocalBackend) -> None:
    first = build_app(settings, backend=backend)
    await first.start()  # migrations, streams
    await first.stop()


async def test_reconcile_rebuilds_missing_hubs_removes_finished_ones_and_keeps_unknown_ones(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> None:
    hubs = LocalBackend(tmp_path / "hubs", installation_id="test")
    settings = DeployerSettings(runtime=settings_for("deployer-svc"), hubs_dir=tmp_path / "hubs")
    await migrated(settings, hubs)
    now = datetime.now(UTC)
    finished = replace(running_course(now, "dep-done"), state=DeploymentState.DELETED)
    runtime = build_app(settings, backend=hubs)

    def add_both(conn: Connection) -> None:
        assert DeploymentRepository(conn).add(running_course(now))
        assert DeploymentRepository(conn).add(finished)

    await runtime.db.write(add_both)
    for leftover in ("dep-done", "dep-unknown"):
        assert (await hubs.deploy(hub(leftover))).phase == HubPhase.READY

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
        assert all(e.request_id == "req-dep-live-1" for e in events)  # type: ignore[attr-defined]
        assert not any(isinstance(e, CourseStarted) for e in events)
        await eventually(hubs.list_managed, lambda ids: ids == ["dep-live-1", "dep-unknown"])
        assert (await hubs.status("dep-done")).phase == HubPhase.ABSENT
        assert (await hubs.status("dep-live-1")).phase == HubPhase.READY
        # Unknown to the database: left as it is, a user's data may be in it.
        assert (await hubs.status("dep-unknown")).phase == HubPhase.READY
    finally:
        await nc.close()
        await runtime.stop()
        for deployment_id in await hubs.list_managed():
            await hubs.teardown(deployment_id)


def orphans_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "deployer_svc", "orphans", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_reset_database_and_another_installation_delete_nothing(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    # Installation "test" runs a course; its deployer then starts on an empty database
    # (reset, or a fresh install pointed at the old hubs folder). On the same machine
    # and the same hubs folder, installation "other" runs its own deployer.
    env = deployer_env(nats_server.url, database_url, tmp_path)
    ours = LocalBackend(tmp_path / "hubs", installation_id="test")
    assert (await ours.deploy(hub("dep-course"))).phase == HubPhase.READY
    other_env = {**env, "JHAAS_INSTALLATION_ID": "other"}
    other_env["JHAAS_DEPLOYER_SVC_DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"
    try:
        for service_env in (env, other_env):
            settings = DeployerSettings.from_env(service_env)
            backend = LocalBackend(tmp_path / "hubs", installation_id=settings.installation_id)
            runtime = build_app(settings, backend=backend)
            reconciler = scheduler_of(runtime).reconciler
            await runtime.start()  # reconciles at once
            try:
                await eventually(lambda: asyncio.sleep(0, reconciler.passes), timeout=60)  # noqa: B023
            finally:
                await runtime.stop()
            assert (await ours.status("dep-course")).phase == HubPhase.READY

        # The other installation does not even see it, and cannot remove it.
        listed = orphans_command(other_env)
        assert json.loads(listed.stdout) == {"orphans": [], "database_has_deployments": False}
        refused = orphans_command(other_env, "--remove", "dep-course")
        assert refused.returncode == 2, refused.stderr
        other = LocalBackend(tmp_path / "hubs", installation_id="other")
        with pytest.raises(BackendError, match="belongs to installation 'test'"):
            await other.teardown("dep-course")
        assert (await ours.status("dep-course")).phase == HubPhase.READY

        # Ours reports it, and removes it only when the operator says so.
        listed = orphans_command(env)
        assert json.loads(listed.stdout) == {
            "orphans": ["dep-course"],
            "database_has_deployments": False,
        }
        removed = orphans_command(env, "--remove", "dep-course")
        assert removed.returncode == 0, removed.stderr
        assert json.loads(removed.stdout)["removed"] == "dep-course"
        assert (await ours.status("dep-course")).phase == HubPhase.ABSENT
    finally:
        for deployment_id in await ours.list_managed():
            await ours.teardown(deployment_id)
