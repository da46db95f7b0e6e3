"""Two deployer-svc replicas (real processes) against one NATS and one database:
each course gets one hub, deployed once, started once, announced once."""

from __future__ import annotations

import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from deployer_svc.backends.local import LocalBackend
from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually, publish
from jhaas_schemas.events import CourseStarted, DeploymentScheduled, HubDeploying, HubReady

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import approval, deployer_env, deployer_events
from test_schedule_recovery_integration import _stream_ready, start_deployer

pytestmark = pytest.mark.integration


async def test_two_replicas_deploy_each_course_once(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    env = deployer_env(nats_server.url, database_url, tmp_path)
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    first = start_deployer(env, tmp_path / "deployer-1.log")
    replicas = [first]
    try:
        await eventually(lambda: _stream_ready(js), timeout=60)
        replicas.append(start_deployer(env, tmp_path / "deployer-2.log"))
        now = datetime.now(UTC)
        starts_at = now + timedelta(seconds=8)
        courses = [
            approval(starts_at, starts_at + timedelta(minutes=10), slug=f"twin-{i}")
            for i in range(2)
        ]
        for course in courses:
            await publish(js, course)

        events = await eventually(
            lambda: deployer_events(js),
            lambda es: sum(isinstance(e, CourseStarted) for e in es) == len(courses),
            timeout=120,
        )
        for kind in (DeploymentScheduled, HubDeploying, HubReady, CourseStarted):
            per_course = Counter(e.request_id for e in events if isinstance(e, kind))  # type: ignore[attr-defined]
            assert per_course == {c.request_id: 1 for c in courses}, kind.__name__
        assert all(e.attempt == 1 for e in events if isinstance(e, HubDeploying))
        assert len(list((tmp_path / "hubs").iterdir())) == len(courses)
        assert all(p.poll() is None for p in replicas), "both replicas kept running"
    finally:
        for process in replicas:
            if process.poll() is None:
                process.terminate()
                process.wait(20)
        backend = LocalBackend(tmp_path / "hubs", installation_id="test")  # as deployer_env
        for deployment_id in await backend.list_managed():
            await backend.teardown(deployment_id)
        await nc.close()
