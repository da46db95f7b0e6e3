"""deployer-svc follows approved changes, on a real NATS JetStream and a real
database (SQLite and PostgreSQL); the running hub follows them with the real
local backend and a real JupyterHub.

Governance's ChangeApproved / ChangeRejected are published on the real bus by the
test, as governance-svc would: a test double of the decision only.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import nats
import pytest
import sqlalchemy as sa
from nats.aio.client import Client as NATS

from deployer_svc.app import build_app, credential_box
from deployer_svc.backends.local import LocalBackend, processes_under
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import hub_credentials
from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.rpc import RpcClient
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import Event, envelope
from jhaas_schemas.events import (
    ChangeApproved,
    ChangeProposed,
    ChangeRejected,
    DeploymentScheduled,
    HubDeploying,
    HubReady,
    RequestApproved,
    RequestCancelled,
)
from jhaas_schemas.hubnames import hub_username
from jhaas_schemas.model import Principal, Resources, Role
from jhaas_schemas.rpc import (
    DeployerOps,
    Deployment,
    DeploymentList,
    DeploymentState,
    ListDeployments,
)

sys.path.insert(0, str(Path(__file__).parent))
from deployer_helpers import approval, deployer_events, of_request

pytestmark = pytest.mark.integration

ADMIN = Principal(user_id="u-admin", username="ada", roles=(Role.ADMIN,))
GRACE = timedelta(hours=2)


def approved_change(approved: RequestApproved, revision: int, **changes: object) -> ChangeApproved:
    return ChangeApproved(
        **envelope(source="governance-svc", correlation_id="c-change"),
        request_id=approved.request_id,
        change_id=str(uuid.uuid4()),
        decided_by="system",
        revision=revision,
        configuration=msgspec.structs.replace(approved.configuration, **changes),
    )


def proposed_and_rejected(
    approved: RequestApproved, revision: int, **changes: object
) -> tuple[ChangeProposed, ChangeRejected]:
    """A change the leader asks for and governance refuses."""
    change_id = str(uuid.uuid4())
    proposed = ChangeProposed(
        **envelope(source="request-svc", correlation_id="c-ask"),
        request_id=approved.request_id,
        change_id=change_id,
        leader_id=approved.leader_id,
        revision=revision,
        configuration=msgspec.structs.replace(approved.configuration, **changes),
        comment="more people signed up",
    )
    rejected = ChangeRejected(
        **envelope(source="governance-svc", correlation_id="c-ask"),
        request_id=approved.request_id,
        change_id=change_id,
        decided_by="u-gov",
        revision=revision,
        reason="the cluster is full that week",
    )
    return proposed, rejected


async def deployment(client: RpcClient, request_id: str) -> Deployment | None:
    found = await client.call(
        DeployerOps.LIST_DEPLOYMENTS,
        ListDeployments(request_id=request_id),
        DeploymentList,
        principal=ADMIN,
        correlation_id="c-list",
    )
    return found.items[0] if found.items else None


async def the_deployment(client: RpcClient, request_id: str) -> Deployment:
    found = await deployment(client, request_id)
    assert found is not None
    return found


async def handled_so_far(js: nats.js.JetStreamContext, client: RpcClient) -> None:
    """Wait until the deployer has handled everything published before on the
    governance and the request stream: a course approved and then cancelled after
    it (each consumer handles its stream in order) is gone."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=60)
    barrier = approval(start, start + timedelta(days=1), slug=f"b-{uuid.uuid4().hex[:8]}")
    await publish(js, barrier)
    await eventually(lambda: deployment(client, barrier.request_id), lambda d: d is not None)
    await publish(
        js,
        RequestCancelled(
            **envelope(source="request-svc", correlation_id="c-barrier"),
            request_id=barrier.request_id,
            cancelled_by="u-leader",
        ),
    )
    await eventually(
        lambda: the_deployment(client, barrier.request_id),
        lambda d: d.state == DeploymentState.DELETED,
    )


async def scheduled_ends(js: nats.js.JetStreamContext, request_id: str) -> list[datetime]:
    events = await deployer_events(js)
    return [
        e.ends_at
        for e in events
        if isinstance(e, DeploymentScheduled) and e.request_id == request_id
    ]


@pytest.fixture
async def service(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> AsyncIterator[tuple[ServiceRuntime, NATS, RpcClient]]:
    settings = DeployerSettings(
        runtime=settings_for("deployer-svc"), grace=GRACE, hubs_dir=tmp_path / "hubs"
    )
    runtime = build_app(settings)
    await runtime.start()
    nc = await nats.connect(settings.runtime.nats_url)
    try:
        yield runtime, nc, RpcClient(nc)
    finally:
        await nc.close()
        await runtime.stop()
        hubs = LocalBackend(settings.local_hubs_dir)
        for deployment_id in await hubs.list_managed():
            await hubs.teardown(deployment_id)


async def test_an_approved_change_moves_the_teardown_later_and_earlier(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    _, nc, client = service
    js = nc.jetstream()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    approved = approval(start, start + timedelta(days=30))
    await publish(js, approved)
    first = await eventually(
        lambda: deployment(client, approved.request_id), lambda d: d is not None
    )
    assert first is not None
    assert first.teardown_at == start + timedelta(days=30) + GRACE

    later_end = start + timedelta(days=44)
    more = Resources(cpu="2", memory="4Gi", storage="5Gi")
    image = "quay.io/jupyter/r-notebook:2024-12-02"
    change = approved_change(approved, 2, ends_at=later_end, resources=more, image=image)
    await publish(js, change)
    moved = await eventually(
        lambda: the_deployment(client, approved.request_id), lambda d: d.ends_at == later_end
    )
    assert moved.configuration == change.configuration  # the new image is recorded
    assert moved.teardown_at == later_end + GRACE
    assert (moved.state, moved.deploy_at) == (first.state, first.deploy_at)

    # An earlier end moves the teardown earlier.
    earlier_end = start + timedelta(days=10)
    earlier = approved_change(approved, 3, ends_at=earlier_end, resources=more, image=image)
    await publish(js, earlier)
    await publish(js, earlier, msg_id="a-copy")  # a redelivery changes nothing more
    shortened = await eventually(
        lambda: the_deployment(client, approved.request_id), lambda d: d.ends_at == earlier_end
    )
    assert shortened.teardown_at == earlier_end + GRACE
    assert shortened.configuration == earlier.configuration

    # An older change that arrives late (its first delivery failed): the newer stays.
    await publish(js, approved_change(approved, 2, ends_at=start + timedelta(days=99)))

    # The schedule is announced again with each move, once each.
    await handled_so_far(js, client)
    assert await deployment(client, approved.request_id) == shortened
    ends = await scheduled_ends(js, approved.request_id)
    assert ends == [start + timedelta(days=30), later_end, earlier_end]


async def test_a_refused_change_leaves_the_course_as_approved(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    _, nc, client = service
    js = nc.jetstream()
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)
    approved = approval(start, start + timedelta(days=30))
    await publish(js, approved)
    before = await eventually(
        lambda: deployment(client, approved.request_id), lambda d: d is not None
    )

    # Waiting for review, then refused: the course keeps its end, teardown and limits.
    proposed, rejected = proposed_and_rejected(
        approved,
        2,
        ends_at=start + timedelta(days=60),
        expected_participants=80,
        resources=Resources(cpu="4", memory="8Gi", storage="5Gi"),
        image="quay.io/jupyter/r-notebook:2024-12-02",
    )
    await publish(js, proposed)
    await publish(js, rejected)
    await handled_so_far(js, client)
    assert await deployment(client, approved.request_id) == before
    assert await scheduled_ends(js, approved.request_id) == [approved.configuration.ends_at]


async def test_a_running_hub_follows_an_approved_change_not_a_refused_one(
    settings_for: Callable[..., RuntimeSettings], tmp_path: Path
) -> None:
    settings = DeployerSettings(
        runtime=settings_for("deployer-svc"),
        lead_time=timedelta(hours=1),
        hubs_dir=tmp_path / "hubs",
    )
    runtime = build_app(settings)
    await runtime.start()
    nc = await nats.connect(settings.runtime.nats_url)
    js = nc.jetstream()
    rpc = RpcClient(nc)
    try:
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=30)
        approved = approval(start, start + timedelta(days=1))
        await publish(js, approved)
        first = await eventually(
            lambda: ready_events(js, approved.request_id), lambda e: len(e) == 1, timeout=120
        )
        api = first[0].url.rstrip("/") + "/hub/api"
        [sealed] = await runtime.db.read(
            lambda conn: conn.scalars(sa.select(hub_credentials.c.api_token)).all()
        )
        auth = {"Authorization": f"token {credential_box(settings).open(sealed)}"}
        leader = hub_username(approved.leader_id)
        [folder] = list((tmp_path / "hubs").iterdir())
        # The JupyterHub API answers a spawn after up to its slow_spawn_timeout (10 s).
        async with httpx.AsyncClient(base_url=api, headers=auth, timeout=120) as client:

            async def leader_known() -> bool:
                return (await client.get(f"/users/{leader}")).status_code == 200

            await eventually(leader_known, timeout=120, interval=0.25)  # the roster arrived
            started = await client.post(f"/users/{leader}/server")
            assert started.status_code in (201, 202), started.text

            async def leader_server_ready() -> bool:
                server = (await client.get(f"/users/{leader}")).json()["servers"].get("")
                return bool(server and server.get("ready"))

            await eventually(leader_server_ready, timeout=120, interval=0.25)
            pids = server_pids(folder, leader)
            assert pids, "the leader's server runs in their home inside the hub's folder"
            approved_limits = (2 * 2**30, 1.0, 30)
            assert hub_limits(folder) == approved_limits
            hub_pid = hub_process(folder)

            # Refused: the hub keeps running as approved, untouched.
            proposed, rejected = proposed_and_rejected(
                approved,
                2,
                expected_participants=45,
                resources=Resources(cpu="2", memory="4Gi", storage="5Gi"),
            )
            await publish(js, proposed)
            await publish(js, rejected)
            await handled_so_far(js, rpc)
            assert hub_limits(folder) == approved_limits
            assert hub_process(folder) == hub_pid
            assert len(await ready_events(js, approved.request_id)) == 1

            # Approved: servers started from now on get the new limits; the hub takes
            # the new number of participants; the server started before runs on.
            bigger = Resources(cpu="2", memory="3Gi", storage="5Gi")
            change = approved_change(approved, 3, resources=bigger, expected_participants=45)
            await publish(js, change)
            await eventually(
                lambda: ready_events(js, approved.request_id), lambda e: len(e) == 2, timeout=120
            )
            assert hub_limits(folder) == (3 * 2**30, 2.0, 45)
            assert hub_process(folder) != hub_pid
            # The server's own process runs on (its children may come and go).
            assert min(pids) in server_pids(folder, leader)
            # The restarted hub finds the server again: it polls the running servers
            # at start and, past its init_spawners_timeout (10 s on a loaded machine),
            # goes on serving while it finishes them; the server is ready once it has.
            await eventually(leader_server_ready, timeout=120, interval=0.25)
        found = await the_deployment(rpc, approved.request_id)
        assert found.state == DeploymentState.RUNNING
        assert found.configuration == change.configuration
        kinds = of_request(await deployer_events(js), approved.request_id)
        assert kinds.count(HubDeploying) == 2 and kinds.count(HubReady) == 2
    finally:
        await nc.close()
        await runtime.stop()
        hubs = LocalBackend(settings.local_hubs_dir)
        for deployment_id in await hubs.list_managed():
            await hubs.teardown(deployment_id)


async def ready_events(js: nats.js.JetStreamContext, request_id: str) -> list[HubReady]:
    events: list[Event] = await deployer_events(js)
    return [e for e in events if isinstance(e, HubReady) and e.request_id == request_id]


def hub_limits(folder: Path) -> tuple[int, float, int]:
    """What the hub gives a server it starts (memory in bytes, CPUs) and how many
    servers it runs at once, from the settings file it reads at start."""
    config = json.loads((folder / "hub_settings.json").read_text())["config"]
    spawner = config["Spawner"]
    return (
        int(spawner["mem_limit"]),
        float(spawner["cpu_limit"]),
        int(config["JupyterHub"]["active_server_limit"]),
    )


def hub_process(folder: Path) -> int:
    return int(json.loads((folder / "state.json").read_text())["pid"])


def server_pids(folder: Path, user: str) -> list[int]:
    home = str(folder / "home" / user)
    found = []
    for pid in processes_under(folder):
        try:
            if Path(f"/proc/{pid}/cwd").readlink().as_posix() == home:
                found.append(pid)
        except OSError:
            continue
    return found
