"""Shared by the deployer's schedule tests."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import datetime
from pathlib import Path

import nats

from deployer_svc.backends.base import BackendError, HubDeployment, HubStatus, Roster
from deployer_svc.backends.local import LocalBackend
from deployer_svc.scheduler import Scheduler
from jhaas_launcher.testing import sample_spec
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import Event, envelope
from jhaas_schemas.events import RequestApproved, decode_event
from jhaas_schemas.model import DeletionRecord
from jhaas_schemas.streams import DEPLOYER_STREAM


def approval(starts_at: datetime, ends_at: datetime, slug: str = "soon-1") -> RequestApproved:
    return RequestApproved(
        **envelope(source="governance-svc", correlation_id="c-course"),
        request_id=str(uuid.uuid4()),
        review_id=str(uuid.uuid4()),
        leader_id="u-leader",
        decided_by="u-gov",
        revision=1,
        configuration=sample_spec(slug=slug, starts_at=starts_at, ends_at=ends_at),
    )


async def deployer_events(js: nats.js.JetStreamContext) -> list[Event]:
    info = await js.stream_info(DEPLOYER_STREAM.name)
    events: list[Event] = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages:
            events.append(decode_event((await js.get_msg(DEPLOYER_STREAM.name, seq)).data or b""))
    return events


def deployer_env(nats_url: str, database_url: str, data_dir: Path) -> dict[str, str]:
    """The environment of a `python -m deployer_svc` process under test: deploys at
    once (no lead time), hubs under `data_dir/hubs`."""
    return {
        **os.environ,
        "JHAAS_NATS_URL": nats_url,
        "JHAAS_DATA_DIR": str(data_dir),
        "JHAAS_DEPLOYER_SVC_DATABASE_URL": database_url,
        # Every replica (and a restarted one) must read what another sealed.
        "JHAAS_DEPLOYER_SECRET_KEYS": "test-deployer-secret-0123456789abcdef",
        # ... and name the hubs alike.
        "JHAAS_INSTALLATION_ID": "test",
        "JHAAS_LOCAL_HUBS_DIR": str(data_dir / "hubs"),
        "JHAAS_DEPLOY_LEAD_MINUTES": "0",
        "JHAAS_LOG_FORMAT": "console",
    }


def scheduler_of(runtime: ServiceRuntime) -> Scheduler:
    """The Scheduler build_app wired in (its `run` is the "schedule" background loop)."""
    [run] = [loop for name, loop in runtime.background if name == "schedule"]
    scheduler = getattr(run, "__self__", None)
    assert isinstance(scheduler, Scheduler)
    return scheduler


class GatedBackend:
    """The real local backend, held on purpose at named points so that a test can act
    while an action is in flight (a slow Kubernetes apply, a slow image pull).

    `hold(point)` makes the next call stop at `point` until `release(point)`;
    `reached(point)` is set when a call stops there. Every call is recorded in
    `calls`, shared by all replicas that use this object. Points: "deploy" (the
    backend was called, nothing built yet), "starting" (the hub's processes run, it
    does not answer yet), "deployed" (the hub answers, the call has not returned),
    "teardown" (called, nothing removed yet). `fail_deploys`
    makes that many deploy calls fail temporarily before doing anything.
    """

    name = "local"

    def __init__(self, inner: LocalBackend, *, fail_deploys: int = 0) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []
        self.fail_deploys = fail_deploys
        self._held: dict[str, asyncio.Event] = {}
        self._reached: dict[str, asyncio.Event] = {}
        self.delays: dict[str, float] = {}  # point -> seconds every call spends there
        self.stopped: list[str] = []

    def hold(self, point: str) -> None:
        self._held[point] = asyncio.Event()
        self._reached[point] = asyncio.Event()

    def release(self, point: str) -> None:
        self._held.pop(point).set()

    async def reached(self, point: str) -> None:
        await self._reached[point].wait()

    async def _at(self, point: str) -> None:
        if point in self._reached:
            self._reached[point].set()
        try:
            gate = self._held.get(point)
            if gate is not None:
                await gate.wait()
            if self.delays.get(point):
                await asyncio.sleep(self.delays[point])
        except asyncio.CancelledError:
            self.stopped.append(point)  # the scheduler stopped the action here
            raise

    async def deploy(self, hub: HubDeployment) -> HubStatus:
        self.calls.append(("deploy", hub.deployment_id))
        await self._at("deploy")
        if self.fail_deploys > 0:
            self.fail_deploys -= 1
            raise BackendError("the image could not be pulled (on purpose)", temporary=True)
        inner = asyncio.ensure_future(self.inner.deploy(hub))
        try:
            if "starting" in self._held:
                # The hub's processes run (state.json is written right after the
                # start), it does not answer yet: hold here while it comes up.
                state = self.inner.root / hub.deployment_id / "state.json"
                while not state.exists() and not inner.done():  # noqa: ASYNC110 - a file, no event
                    await asyncio.sleep(0.01)
                await self._at("starting")
            status = await inner
        finally:
            if not inner.done():
                inner.cancel()
                await asyncio.wait({inner})
        await self._at("deployed")
        return status

    async def teardown(self, deployment_id: str) -> DeletionRecord:
        self.calls.append(("teardown", deployment_id))
        await self._at("teardown")
        return await self.inner.teardown(deployment_id)

    async def status(self, deployment_id: str) -> HubStatus:
        return await self.inner.status(deployment_id)

    async def sync_roster(self, deployment_id: str, roster: Roster) -> None:
        await self.inner.sync_roster(deployment_id, roster)

    async def list_managed(self) -> list[str]:
        return await self.inner.list_managed()

    async def close(self) -> None:
        await self.inner.close()


def of_request(events: list[Event], request_id: str) -> list[type[Event]]:
    return [type(e) for e in events if getattr(e, "request_id", None) == request_id]
