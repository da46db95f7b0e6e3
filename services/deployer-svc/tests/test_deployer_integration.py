"""deployer-svc against a real NATS JetStream and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
import sqlalchemy as sa
from nats.aio.client import Client as NATS
from sqlalchemy.engine import Connection

from deployer_svc.app import GOVERNANCE_CONSUMER, build_app
from deployer_svc.backends.local import LocalBackend
from deployer_svc.credentials import SEALED_PREFIX, CredentialBox
from deployer_svc.scheduler import Scheduler
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository, hub_credentials
from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.alive import Heartbeat
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import (
    DeploymentScheduled,
    HubDeleted,
    HubFailed,
    RequestApproved,
    RequestCancelled,
    decode_event,
)
from jhaas_schemas.model import HubSpec, Principal, Resources, Role
from jhaas_schemas.rpc import (
    DeployerOps,
    Deployment,
    DeploymentList,
    DeploymentState,
    ErrorCode,
    ListDeployments,
    RedeployHub,
)
from jhaas_schemas.streams import DEPLOYER_STREAM

pytestmark = pytest.mark.integration


def env(source: str, correlation_id: str, **more: Any) -> dict[str, Any]:
    """A new event's envelope, typed for `**` into an event's constructor."""
    return envelope(source=source, correlation_id=correlation_id, **more)


LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))
OTHER_LEADER = Principal(user_id="u-other", username="otto", roles=(Role.LEADER,))
REVIEWER = Principal(user_id="u-gov", username="gus", roles=(Role.GOVERNANCE,))
PARTICIPANT = Principal(user_id="u-part", username="pat", roles=(Role.PARTICIPANT,))


def approval(request_id: str, starts_at: datetime) -> RequestApproved:
    return RequestApproved(
        **env(source="governance-svc", correlation_id=f"c-{uuid.uuid4().hex[:8]}"),
        request_id=request_id,
        review_id=str(uuid.uuid4()),
        leader_id=LEADER.user_id,
        decided_by=REVIEWER.user_id,
        revision=1,
        configuration=HubSpec(
            title="Data Science 101",
            slug="ds101",
            starts_at=starts_at,
            ends_at=starts_at + timedelta(days=90),
            image="quay.io/jupyter/scipy-notebook:2024-12-02",
            resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
            expected_participants=30,
        ),
    )


@pytest.fixture
async def service(
    settings_for: Callable[..., RuntimeSettings],
) -> AsyncIterator[tuple[ServiceRuntime, NATS, RpcClient]]:
    # The default lead time: 30 minutes.
    settings = DeployerSettings(runtime=settings_for("deployer-svc"))
    runtime = build_app(settings)
    await runtime.start()
    nc = await nats.connect(runtime.settings.nats_url)
    try:
        yield runtime, nc, RpcClient(nc)
    finally:
        await nc.close()
        await runtime.stop()
        # Hubs outlive the deployer by design; a test (e.g. a redeploy, due at
        # once) must not leave one running on the machine.
        hubs = LocalBackend(settings.local_hubs_dir)
        for deployment_id in await hubs.list_managed():
            await hubs.teardown(deployment_id)


async def deployments(
    client: RpcClient, principal: Principal, request_id: str | None = None
) -> DeploymentList:
    return await client.call(
        DeployerOps.LIST_DEPLOYMENTS,
        ListDeployments(request_id=request_id),
        DeploymentList,
        principal=principal,
        correlation_id="c-list",
    )


async def test_an_approval_schedules_exactly_one_deployment(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    runtime, nc, client = service
    [consumer] = [c for c in runtime.consumers if c.name == GOVERNANCE_CONSUMER]
    start = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    approved = approval(str(uuid.uuid4()), start)
    await publish(nc.jetstream(), approved)

    async def scheduled() -> DeploymentList | None:
        found = await deployments(client, REVIEWER)
        return found if found.items else None

    [deployment] = (await eventually(scheduled)).items
    assert (deployment.request_id, deployment.leader_id) == (approved.request_id, LEADER.user_id)
    assert deployment.state == DeploymentState.SCHEDULED
    assert deployment.deploy_at == start - timedelta(minutes=30)
    assert (deployment.starts_at, deployment.ends_at) == (start, start + timedelta(days=90))
    assert deployment.configuration == approved.configuration
    assert deployment.hub_url is None

    sub = await nc.jetstream().pull_subscribe(
        DEPLOYER_STREAM.subjects[0], durable="probe", stream=DEPLOYER_STREAM.name
    )
    [message] = await sub.fetch(10, timeout=5)
    event = decode_event(message.data)
    assert isinstance(event, DeploymentScheduled)
    assert (event.deployment_id, event.request_id) == (
        deployment.deployment_id,
        approved.request_id,
    )
    assert event.deploy_at == start - timedelta(minutes=30)
    assert (event.starts_at, event.ends_at) == (start, start + timedelta(days=90))
    assert (event.source, event.causation_id, event.correlation_id) == (
        "deployer-svc",
        approved.event_id,
        approved.correlation_id,
    )
    assert message.headers is not None
    assert message.headers["ce-type"] == "jhaas.evt.deployer.deployment_scheduled.v1"

    # The same event redelivered, and a second approval of the same request.
    await publish(nc.jetstream(), approved, msg_id=f"{approved.event_id}-again")
    await publish(nc.jetstream(), approval(approved.request_id, start + timedelta(days=1)))

    async def all_handled() -> bool | None:
        return True if consumer.handled + consumer.duplicates >= 3 else None

    await eventually(all_handled)
    assert consumer.dead_lettered == 0
    assert [d.deployment_id for d in (await deployments(client, REVIEWER)).items] == [
        deployment.deployment_id
    ]
    # Nothing else was emitted: the outbox holds the one event, and so does the stream.
    await runtime.relay.publish_pending()
    outbox = sa.select(sa.func.count()).select_from(runtime.tables.outbox)
    assert await runtime.db.read(lambda conn: conn.scalar(outbox)) == 1
    info = await nc.jetstream().stream_info(DEPLOYER_STREAM.name)
    assert info.state.messages == 1


async def test_the_scheduler_is_told_of_a_change_only_once_it_is_committed(
    settings_for: Callable[..., RuntimeSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Told while the consumer's transaction is still open, the scheduler could
    # read the schedule without the change and sleep past it.
    start = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    approved = approval(str(uuid.uuid4()), start)
    told: list[tuple[datetime | None, bool]] = []

    def committed() -> bool:
        with runtime.db.engine.connect() as conn:  # another connection: sees only commits
            return DeploymentRepository(conn).for_request(approved.request_id) is not None

    original = Scheduler.notify

    def notify(self: Scheduler, at: datetime | None = None) -> None:
        told.append((at, committed()))
        original(self, at)

    monkeypatch.setattr(Scheduler, "notify", notify)
    runtime = build_app(DeployerSettings(runtime=settings_for("deployer-svc")))
    await runtime.start()
    nc = await nats.connect(runtime.settings.nats_url)
    try:
        await publish(nc.jetstream(), approved)
        await eventually(lambda: asyncio.sleep(0, told), lambda t: len(t) > 0)
        assert told == [(start - timedelta(minutes=30), True)]
    finally:
        await nc.close()
        await runtime.stop()


async def test_who_sees_which_deployments(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    _runtime, nc, client = service
    start = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    first, second = approval(str(uuid.uuid4()), start), approval(str(uuid.uuid4()), start)
    await publish(nc.jetstream(), first)
    await publish(nc.jetstream(), second)

    async def both() -> DeploymentList | None:
        found = await deployments(client, REVIEWER)
        return found if len(found.items) == 2 else None

    await eventually(both)
    only_first = await deployments(client, REVIEWER, request_id=first.request_id)
    assert [d.request_id for d in only_first.items] == [first.request_id]
    assert len((await deployments(client, LEADER)).items) == 2
    assert (await deployments(client, OTHER_LEADER)).items == []
    with pytest.raises(RpcFailure) as refused:
        await deployments(client, PARTICIPANT)
    assert refused.value.error.code == ErrorCode.FORBIDDEN


async def test_a_cancellation_that_overtakes_the_approval_never_builds_a_hub(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    runtime, nc, client = service
    start = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    approved = approval(str(uuid.uuid4()), start)  # due for deployment at once
    cancelled = RequestCancelled(
        **env("request-svc", "c-cancel"), request_id=approved.request_id, cancelled_by="u"
    )
    # They travel on different streams; here the cancellation is handled first.
    await publish(nc.jetstream(), cancelled)

    def cancelled_before(conn: Connection) -> bool:
        return DeploymentRepository(conn).cancelled_before_approval(approved.request_id)

    async def remembered() -> bool | None:
        return True if await runtime.db.read(cancelled_before) else None

    await eventually(remembered)
    await publish(nc.jetstream(), approved)

    async def closed() -> DeploymentList | None:
        found = await deployments(client, REVIEWER, approved.request_id)
        return found if found.items else None

    [deployment] = (await eventually(closed)).items
    assert deployment.state == DeploymentState.DELETED
    js = nc.jetstream()
    # The relay publishes what the consumer committed a moment later.
    info = await eventually(
        lambda: js.stream_info(DEPLOYER_STREAM.name), lambda i: i.state.messages > 0
    )
    assert info.state.messages == 1  # no DeploymentScheduled, no HubDeploying: only HubDeleted
    only = decode_event((await js.get_msg(DEPLOYER_STREAM.name, info.state.last_seq)).data or b"")
    assert isinstance(only, HubDeleted)
    assert only.request_id == approved.request_id
    assert only.record.objects == ()


async def scheduled_a_week_ahead(nc: NATS, client: RpcClient) -> tuple[RequestApproved, Deployment]:
    """Approve a course starting in a week; return the approval and its deployment."""
    start = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    approved = approval(str(uuid.uuid4()), start)
    await publish(nc.jetstream(), approved)

    async def scheduled() -> DeploymentList | None:
        found = await deployments(client, REVIEWER, approved.request_id)
        return found if found.items else None

    [deployment] = (await eventually(scheduled)).items
    return approved, deployment


async def test_an_admin_redeploys_a_failed_hub(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    runtime, nc, client = service
    approved, deployment = await scheduled_a_week_ahead(nc, client)
    admin = Principal(user_id="u-admin", username="ada", roles=(Role.ADMIN,))

    async def redeploy(principal: Principal) -> Deployment:
        return await client.call(
            DeployerOps.REDEPLOY,
            RedeployHub(request_id=approved.request_id),
            Deployment,
            principal=principal,
            correlation_id="c-redeploy",
        )

    with pytest.raises(RpcFailure) as not_failed:
        await redeploy(admin)
    assert not_failed.value.error.code == ErrorCode.CONFLICT

    def fail(conn: Connection) -> None:
        repo = DeploymentRepository(conn)
        record = repo.get(deployment.deployment_id, for_update=True)
        assert record is not None
        repo.save(
            replace(
                record, state=DeploymentState.FAILED, attempts=3, failure_reason="image pull failed"
            )
        )

    await runtime.db.write(fail)
    with pytest.raises(RpcFailure) as leader:
        await redeploy(LEADER)
    assert leader.value.error.code == ErrorCode.FORBIDDEN
    again = await redeploy(admin)
    assert (again.state, again.attempts, again.failure_reason) == (DeploymentState.SCHEDULED, 0, "")
    with pytest.raises(RpcFailure) as unknown:
        await client.call(
            DeployerOps.REDEPLOY,
            RedeployHub(request_id="nope"),
            Deployment,
            principal=admin,
            correlation_id="c-x",
        )
    assert unknown.value.error.code == ErrorCode.NOT_FOUND


async def test_the_scheduler_stops_when_cancelled_as_it_is_woken(
    service: tuple[ServiceRuntime, NATS, RpcClient], tmp_path: Path
) -> None:
    # A redeploy or a new approval wakes the scheduler; a shutdown arriving in the
    # same loop iteration once got swallowed and the service never stopped.
    runtime, _nc, _client = service
    settings = DeployerSettings(runtime=runtime.settings, hubs_dir=tmp_path / "other-hubs")
    scheduler = Scheduler(
        runtime,
        LocalBackend(settings.local_hubs_dir),
        settings,
        credentials=CredentialBox.from_key_file(tmp_path),
    )
    task = asyncio.create_task(scheduler.run())
    await asyncio.sleep(0.5)  # its first look done: asleep until woken
    scheduler.notify()
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=60)  # a hang guard, not a timing claim
    assert done == {task}
    assert task.cancelled()


def probe(*files: Path) -> subprocess.CompletedProcess[str]:
    """The deployer's liveness probe, as deploy/kubernetes/deployer-svc.yaml runs it."""
    return subprocess.run(
        [sys.executable, "-m", "jhaas_runtime.alive", "--max-age", "120", *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )


async def test_a_wedged_scheduler_fails_the_liveness_probe(
    service: tuple[ServiceRuntime, NATS, RpcClient], tmp_path: Path
) -> None:
    """The probe checks the file the scheduler touches after every look at the
    schedule: a running scheduler keeps it fresh; one stuck in a look (a database
    call that never returns) lets it age, and the kubelet restarts the pod."""
    runtime, _nc, _client = service
    settings = DeployerSettings(runtime=runtime.settings, hubs_dir=tmp_path / "other-hubs")
    alive = tmp_path / "alive"
    scheduler = Scheduler(
        runtime,
        LocalBackend(settings.local_hubs_dir),
        settings,
        credentials=CredentialBox.from_key_file(tmp_path),
        heartbeat=Heartbeat(alive, "scheduler"),
    )
    beat = alive / "scheduler"
    assert "never written" in probe(beat).stderr
    task = asyncio.create_task(scheduler.run())
    try:
        await eventually(lambda: asyncio.sleep(0, beat.exists()))
        # An hour without a beat, as far as the probe can tell ...
        os.utime(beat, (beat.stat().st_atime, beat.stat().st_mtime - 3600))
        assert probe(beat).returncode == 1
        # ... and the running scheduler beats again.
        await eventually(lambda: asyncio.sleep(0, probe(beat).returncode == 0))

        stuck = asyncio.Event()

        async def wedged() -> None:
            stuck.set()
            await asyncio.Event().wait()  # a look at the schedule that never returns

        scheduler.tick = wedged  # type: ignore[method-assign]
        scheduler.notify()
        await stuck.wait()
        then = time.time() - 3600
        os.utime(beat, (then, then))
        failed = probe(beat)
        assert failed.returncode == 1
        assert re.search(r"scheduler: last written 360\d s ago \(allowed: 120 s\)", failed.stderr)
    finally:
        task.cancel()
        await asyncio.wait([task], timeout=60)


async def test_hub_credentials_are_sealed_and_a_clear_one_is_sealed_when_read(
    service: tuple[ServiceRuntime, NATS, RpcClient], tmp_path: Path
) -> None:
    runtime, _nc, _client = service
    box = CredentialBox.from_key_file(tmp_path)
    clear = "c" * 64

    def make(conn: Connection) -> str:
        made = DeploymentRepository(conn).api_token("dep-new", "n" * 64, box)
        # A row as a version before encryption left it.
        conn.execute(hub_credentials.insert().values(deployment_id="dep-old", api_token=clear))
        return made

    def again(conn: Connection) -> tuple[str, str]:
        repo = DeploymentRepository(conn)
        return repo.api_token("dep-new", "other", box), repo.api_token("dep-old", "other", box)

    made = await runtime.db.write(make)
    assert made == "n" * 64
    assert await runtime.db.write(again) == (made, clear)  # made once; the clear one kept
    rows = await runtime.db.read(lambda conn: conn.execute(sa.select(hub_credentials)).all())
    stored = {row.deployment_id: row.api_token for row in rows}
    assert all(value.startswith(SEALED_PREFIX) for value in stored.values())
    assert box.open(stored["dep-new"]) == made
    assert box.open(stored["dep-old"]) == clear


async def test_a_credential_no_key_opens_fails_the_deploy_naming_the_setting(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    runtime, nc, client = service
    approved, deployment = await scheduled_a_week_ahead(nc, client)
    # A credential sealed under a key this deployer does not have (the keys were
    # changed without keeping the old one); then the deploy falls due.
    foreign = CredentialBox(["f" * 40]).seal("t" * 64)

    def due_now_with_foreign_credential(conn: Connection) -> None:
        conn.execute(
            hub_credentials.insert().values(
                deployment_id=deployment.deployment_id, api_token=foreign
            )
        )
        repo = DeploymentRepository(conn)
        record = repo.get(deployment.deployment_id, for_update=True)
        assert record is not None
        repo.save(replace(record, deploy_at=datetime.now(UTC)))

    await runtime.db.write(due_now_with_foreign_credential)

    async def failed() -> list[HubFailed]:
        js = nc.jetstream()
        info = await js.stream_info(DEPLOYER_STREAM.name)
        events = [
            decode_event((await js.get_msg(DEPLOYER_STREAM.name, seq)).data or b"")
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
        return [e for e in events if isinstance(e, HubFailed)]

    [event] = await eventually(failed, timeout=30)
    assert event.request_id == approved.request_id
    assert "JHAAS_DEPLOYER_SECRET_KEYS" in event.reason
    assert (await deployments(client, REVIEWER, approved.request_id)).items[
        0
    ].state == DeploymentState.FAILED
