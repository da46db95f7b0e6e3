"""The schedule survives SIGKILL: a deployer killed after scheduling and started
again after the course's start still deploys; killed while the hub is up and
started again after the end still tears it down. Real processes throughout:
deployer-svc (`python -m deployer_svc`), NATS, the database, JupyterHub."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from deployer_svc.backends.local import LocalBackend
from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually, publish
from jhaas_schemas.events import (
    CourseEnded,
    CourseStarted,
    DeploymentScheduled,
    HubDeleted,
    HubDeploying,
    HubReady,
)

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import approval, deployer_env, deployer_events

pytestmark = pytest.mark.integration


def start_deployer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "deployer_svc"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


async def until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


async def test_killed_deployer_still_deploys_and_tears_down_after_restart(
    nats_server: NatsServer, database_url: str, tmp_path: Path
) -> None:
    env = deployer_env(nats_server.url, database_url, tmp_path)
    log = tmp_path / "deployer.log"
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    deployer = start_deployer(env, log)
    try:
        now = datetime.now(UTC)
        starts_at, ends_at = now + timedelta(seconds=10), now + timedelta(seconds=35)
        await eventually(lambda: _stream_ready(js), timeout=60)
        await publish(js, approval(starts_at, ends_at))
        await eventually(
            lambda: deployer_events(js),
            lambda es: any(isinstance(e, DeploymentScheduled) for e in es),
        )

        deployer.send_signal(signal.SIGKILL)
        deployer.wait(10)
        await until(starts_at + timedelta(seconds=1))
        assert not any(isinstance(e, HubDeploying) for e in await deployer_events(js))

        deployer = start_deployer(env, log)  # after the start: the deploy is overdue
        events = await eventually(
            lambda: deployer_events(js),
            lambda es: any(isinstance(e, CourseStarted) for e in es),
            timeout=90,
        )
        assert any(isinstance(e, HubReady) for e in events)
        [folder] = list((tmp_path / "hubs").iterdir())

        deployer.send_signal(signal.SIGKILL)
        deployer.wait(10)
        await until(ends_at + timedelta(seconds=1))
        assert folder.exists(), "nobody tore it down while the deployer was dead"

        deployer = start_deployer(env, log)  # after the end: the teardown is overdue
        events = await eventually(
            lambda: deployer_events(js),
            lambda es: any(isinstance(e, HubDeleted) for e in es),
            timeout=90,
        )
        assert [type(e) for e in events] == [
            DeploymentScheduled,
            HubDeploying,
            HubReady,
            CourseStarted,
            CourseEnded,
            HubDeleted,
        ]
        assert not folder.exists()
    finally:
        if deployer.poll() is None:
            deployer.terminate()
            deployer.wait(20)
        await nc.close()
        # Hubs outlive their deployer by design: a failed run must not leave one behind.
        hubs = LocalBackend(tmp_path / "hubs", installation_id="test")  # as deployer_env
        for deployment_id in await hubs.list_managed():
            await hubs.teardown(deployment_id)


async def _stream_ready(js: nats.js.JetStreamContext) -> bool:
    try:
        await js.consumer_info("JHAAS_GOVERNANCE", "deployer-svc-governance")
    except nats.js.errors.NotFoundError:
        return False
    return True
