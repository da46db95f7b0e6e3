"""What a hub cannot do on this host (the backend's warnings) is kept with its
deployment and listed to the leader, until a later deploy without warnings clears
it; on a real NATS JetStream and a real database (SQLite and PostgreSQL).

The backend here is in memory: what a backend warns about depends on the host
(root, cgroups), and the local backend's own tests cover its words; this test
needs a deploy with warnings and one without, on any machine.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest

from deployer_svc.app import build_app
from deployer_svc.backends.base import HubDeployment, HubPhase, HubStatus, Roster
from deployer_svc.settings import DeployerSettings
from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.rpc import RpcClient
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.events import HubReady
from jhaas_schemas.model import DeletionRecord, Principal, Role
from jhaas_schemas.rpc import (
    DeployerOps,
    Deployment,
    DeploymentList,
    DeploymentState,
    ListDeployments,
)

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import approval, deployer_events, scheduler_of

pytestmark = pytest.mark.integration

LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))
NO_ROOT = "participants cannot sign in: the deployer does not run as root"


class HostWithWarnings:
    """A backend whose hubs come up at once, saying what `warnings` holds at the time."""

    name = "memory"

    def __init__(self, warnings: tuple[str, ...]) -> None:
        self.warnings = warnings
        self.hubs: set[str] = set()

    async def deploy(self, hub: HubDeployment) -> HubStatus:
        self.hubs.add(hub.deployment_id)
        return await self.status(hub.deployment_id)

    async def status(self, deployment_id: str) -> HubStatus:
        if deployment_id not in self.hubs:
            return HubStatus(phase=HubPhase.ABSENT)
        url = f"http://127.0.0.1:1/{deployment_id}/"
        return HubStatus(phase=HubPhase.READY, url=url, warnings=self.warnings)

    async def sync_roster(self, deployment_id: str, roster: Roster) -> None:
        pass

    async def teardown(self, deployment_id: str) -> DeletionRecord:
        self.hubs.discard(deployment_id)
        return DeletionRecord(backend=self.name, deleted_at=datetime.now(UTC))

    async def list_managed(self) -> list[str]:
        return sorted(self.hubs)


async def test_a_deploys_warnings_are_listed_until_a_deploy_without_clears_them(
    settings_for: Callable[..., RuntimeSettings],
) -> None:
    host = HostWithWarnings((NO_ROOT, "memory and CPU limits are not enforced by the kernel"))
    settings = DeployerSettings(runtime=settings_for("deployer-svc"), lead_time=timedelta(hours=1))
    runtime = build_app(settings, backend=host)
    await runtime.start()
    nc = await nats.connect(settings.runtime.nats_url)
    try:
        js = nc.jetstream()
        now = datetime.now(UTC)
        approved = approval(now + timedelta(minutes=5), now + timedelta(hours=2))
        await publish(js, approved)
        client = RpcClient(nc)

        async def listed() -> list[Deployment]:
            found = await client.call(
                DeployerOps.LIST_DEPLOYMENTS,
                ListDeployments(request_id=approved.request_id),
                DeploymentList,
                principal=LEADER,
                correlation_id="c-list",
            )
            return found.items

        [first] = await eventually(listed, lambda ds: bool(ds) and ds[0].hub_url is not None)
        assert first.state == DeploymentState.RUNNING
        assert first.warnings == list(host.warnings)
        [announced] = [e for e in await deployer_events(js) if isinstance(e, HubReady)]
        assert announced.warnings == host.warnings

        # The hub is gone and comes back on a host that can do everything now.
        host.warnings = ()
        host.hubs.clear()
        rebuilt, _ = await scheduler_of(runtime).reconciler.reconcile()
        assert rebuilt == [first.deployment_id]

        async def announcements() -> list[HubReady]:
            return [e for e in await deployer_events(js) if isinstance(e, HubReady)]

        again = await eventually(announcements, lambda es: len(es) == 2)
        assert again[-1].warnings == ()
        # The outbox is written with the row: announced means stored.
        [second] = await listed()
        assert (second.state, second.warnings) == (DeploymentState.RUNNING, [])
    finally:
        await nc.close()
        await runtime.stop()
