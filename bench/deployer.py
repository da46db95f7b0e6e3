"""deployer-svc's durable schedule, run in-process against a real NATS:

1. deploy trigger -> hub answers: the scheduler fires a course's deploy
   (`HubDeploying.occurred_at`) until the local backend's JupyterHub answers
   with the deployer's token (`HubReady.occurred_at`), for N courses one after
   another, next to a bare JupyterHub (minimal config, same proxy) started
   from Popen until `GET /hub/api/` answers 200, measured in the same run;
2. trigger lateness: a few hundred instant `start_course` actions due over
   ~20 s, from the scheduler's own record (`Scheduler.fired`: planned vs.
   actual), next to the same planned times slept for with `asyncio.sleep`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import nats
from sqlalchemy.engine import Connection

from bench.common import deployer_runtime, no_lock_timeouts
from deployer_svc.app import build_app
from deployer_svc.backends.base import BackendError, HubDeployment, HubPhase, HubStatus, Roster
from deployer_svc.backends.local import processes_under
from deployer_svc.domain import DeploymentRecord
from deployer_svc.schedule import Action
from deployer_svc.scheduler import Scheduler, lateness_summary
from deployer_svc.settings import DeployerSettings
from deployer_svc.store import DeploymentRepository
from jhaas_launcher.processes import NatsServer, free_port, spawn
from jhaas_launcher.testing import create_streams, publish, sample_spec
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import (
    CourseStarted,
    HubDeploying,
    HubFailed,
    HubReady,
    RequestApproved,
    decode_event,
)
from jhaas_schemas.model import DeletionRecord
from jhaas_schemas.rpc import DeploymentState
from jhaas_schemas.streams import DEPLOYER_STREAM

HUB_TIMEOUT = 90.0
BARE_POLL = 0.05  # the local backend polls every 0.2 s (and also asks /users with its token)


def settings_for(server: NatsServer, root: Path) -> DeployerSettings:
    root.mkdir(parents=True, exist_ok=True)
    return DeployerSettings(
        runtime=deployer_runtime(
            server.url, f"sqlite:///{root / 'deployer.sqlite'}", root, pool=16
        ),
        # Every course below starts in a day: its deploy is due at once.
        lead_time=timedelta(days=2),
        hubs_dir=root / "hubs",
    )


def scheduler_of(runtime: ServiceRuntime) -> Scheduler:
    """The Scheduler build_app wired in (its `run` is the "schedule" background loop)."""
    [run] = [loop for name, loop in runtime.background if name == "schedule"]
    scheduler = getattr(run, "__self__", None)
    assert isinstance(scheduler, Scheduler)
    return scheduler


def approval(i: int) -> RequestApproved:
    start = datetime.now(UTC) + timedelta(days=1)
    return RequestApproved(
        **envelope(source="bench", correlation_id=f"bench-deploy-{i}"),
        request_id=str(uuid.uuid4()),
        review_id=str(uuid.uuid4()),
        leader_id="u-bench",
        decided_by="u-gov",
        revision=1,
        configuration=sample_spec(
            slug=f"bench-{i}", starts_at=start, ends_at=start + timedelta(days=1)
        ),
    )


# -- 1. a bare JupyterHub ------------------------------------------------------


@dataclass
class BareHub:
    folder: Path
    port: int


def bare_config(folder: Path) -> BareHub:
    folder.mkdir(parents=True)
    public, hub, api = free_port(), free_port(), free_port()
    while len({public, hub, api}) < 3:
        hub, api = free_port(), free_port()
    proxy = Path(sys.executable).parent / "configurable-http-proxy"
    token = secrets.token_hex(32)
    (folder / "jupyterhub_config.py").write_text(
        "\n".join(
            [
                "c = get_config()  # noqa: F821",
                f"c.JupyterHub.bind_url = 'http://127.0.0.1:{public}/'",
                f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{hub}'",
                f"c.JupyterHub.db_url = 'sqlite:///{folder / 'jupyterhub.sqlite'}'",
                f"c.JupyterHub.cookie_secret_file = '{folder / 'cookie_secret'}'",
                f"c.JupyterHub.pid_file = '{folder / 'hub.pid'}'",
                "c.JupyterHub.authenticator_class = 'null'",
                f"c.ConfigurableHTTPProxy.command = [{str(proxy)!r}]",
                f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{api}'",
                f"c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(32)!r}",
                f"c.ConfigurableHTTPProxy.pid_file = '{folder / 'proxy.pid'}'",
                f"c.JupyterHub.services = [{{'name': 'bench', 'api_token': {token!r}}}]",
                "",
            ]
        )
    )
    return BareHub(folder, public)


def stop_tree(pid: int, folder: Path) -> None:
    """SIGTERM the hub (it stops its proxy), then kill whatever still runs in `folder`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        time.sleep(0.05)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    for leftover in processes_under(folder):
        with contextlib.suppress(ProcessLookupError):
            os.kill(leftover, signal.SIGKILL)


async def bare_hub_start(root: Path, python: str) -> float:
    """Seconds from Popen of `python -m jupyterhub` until GET /hub/api/ answers 200."""
    hub = bare_config(root / f"bare-{uuid.uuid4().hex[:8]}")
    config = hub.folder / "jupyterhub_config.py"
    url = f"http://127.0.0.1:{hub.port}/hub/api/"
    t0 = time.perf_counter()
    handle = spawn(
        "bare-jupyterhub",
        [python, "-m", "jupyterhub", "-f", str(config)],
        log_path=hub.folder / "hub.log",
        cwd=hub.folder,
    )
    try:
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return time.perf_counter() - t0
                if handle.process.poll() is not None:
                    log = (hub.folder / "hub.log").read_text(errors="replace")
                    raise RuntimeError(f"bare JupyterHub exited:\n{log[-2000:]}")
                if time.perf_counter() - t0 > HUB_TIMEOUT:
                    raise TimeoutError("bare JupyterHub did not answer")
                await asyncio.sleep(BARE_POLL)
    finally:
        await asyncio.to_thread(stop_tree, handle.process.pid, hub.folder)
        with contextlib.suppress(Exception):
            handle.process.wait(5)
        shutil.rmtree(hub.folder, ignore_errors=True)


# -- 1. the deployer -----------------------------------------------------------


async def deploy_figure(server: NatsServer, root: Path, courses: int) -> None:
    settings = settings_for(server, root / "deploy")
    runtime = build_app(settings)
    scheduler = scheduler_of(runtime)
    backend = scheduler.backend
    nc = await nats.connect(server.url)
    js = nc.jetstream()
    seen: asyncio.Queue[object] = asyncio.Queue()

    async def on_event(msg: nats.aio.msg.Msg) -> None:
        seen.put_nowait(decode_event(msg.data))

    sub = await nc.subscribe(DEPLOYER_STREAM.subjects[0], cb=on_event)
    bare: list[float] = []
    deploys: list[float] = []
    approved_to_fired: list[float] = []
    await runtime.start()
    try:
        # Warm-up, not counted: the first JupyterHub start reads its modules from disk.
        await bare_hub_start(root, sys.executable)
        for i in range(courses):
            # Alternate, so both see the same machine at about the same time (and the
            # same number of deployed hubs idling next to them).
            bare.append(await bare_hub_start(root, sys.executable))
            event = approval(i)
            published = datetime.now(UTC)
            await publish(js, event)
            deploying: HubDeploying | None = None
            deadline = time.monotonic() + HUB_TIMEOUT
            while True:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    got = await seen.get()
                if getattr(got, "request_id", None) != event.request_id:
                    continue
                if isinstance(got, HubDeploying):
                    deploying = got
                elif isinstance(got, HubFailed):
                    raise RuntimeError(f"deploy failed: {got.reason}")
                elif isinstance(got, HubReady):
                    assert deploying is not None
                    deploys.append((got.occurred_at - deploying.occurred_at).total_seconds())
                    approved_to_fired.append((deploying.occurred_at - published).total_seconds())
                    break
    finally:
        await sub.unsubscribe()
        await nc.close()
        # Stop the service before removing its hubs, so nothing rebuilds them meanwhile.
        await runtime.stop()
        hubs = settings.local_hubs_dir
        if hubs.exists():
            for folder in hubs.iterdir():
                await backend.teardown(folder.name)

    def row(label: str, values: list[float]) -> str:
        return (
            f"  {label}: median {statistics.median(values):6.2f}s"
            f"  max {max(values):6.2f}s  ({', '.join(f'{v:.2f}' for v in values)})"
        )

    print(f"\n== deployer: deploy trigger -> hub answers, {courses} courses one after another ==")
    print(row("bare JupyterHub, Popen -> GET /hub/api/ 200   ", bare))
    print(row("deployer: HubDeploying -> HubReady (local hub)", deploys))
    overhead = statistics.median(deploys) - statistics.median(bare)
    worst = max(deploys) - max(bare)
    print(
        f"  overhead over bare: median {overhead:+.2f}s ({overhead / statistics.median(bare):+.0%})"
        f"  max {worst:+.2f}s;  RequestApproved published -> deploy fired:"
        f" median {statistics.median(approved_to_fired) * 1000:.0f}ms"
    )


# -- 2. trigger lateness -------------------------------------------------------


class HubsUp:
    """A backend whose every hub is up and which builds nothing: the lateness run only
    fires instant actions, and a reconciliation pass must not rebuild 300 hubs that
    the rows below merely say are running."""

    name = "bench"

    async def deploy(self, hub: HubDeployment) -> HubStatus:
        raise BackendError("the lateness benchmark builds no hubs", temporary=False)

    async def status(self, deployment_id: str) -> HubStatus:
        return HubStatus(phase=HubPhase.READY)

    async def sync_roster(self, deployment_id: str, roster: Roster) -> None:
        return None

    async def teardown(self, deployment_id: str) -> DeletionRecord:
        return DeletionRecord(backend=self.name, deleted_at=datetime.now(UTC))

    async def list_managed(self) -> list[str]:
        return []

    async def close(self) -> None:
        return None


def running(now: datetime, starts_at: datetime, i: int) -> DeploymentRecord:
    """A deployment whose hub is (said to be) up, waiting for its course to start."""
    ends_at = now + timedelta(hours=1)
    return DeploymentRecord(
        deployment_id=str(uuid.uuid4()),
        request_id=f"bench-lateness-{i}",
        leader_id="u-bench",
        state=DeploymentState.RUNNING,
        configuration=sample_spec(slug=f"late-{i}", starts_at=starts_at, ends_at=ends_at),
        deploy_at=now - timedelta(minutes=30),
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=now,
        updated_at=now,
        teardown_at=ends_at,
        hub_url="http://127.0.0.1:9/",
        course_started=False,
    )


def planned_times(count: int, spread: float, lead: float) -> list[datetime]:
    t0 = datetime.now(UTC) + timedelta(seconds=lead)
    return [t0 + timedelta(seconds=spread * i / count) for i in range(count)]


async def sleep_lateness(planned: list[datetime]) -> list[float]:
    async def one(at: datetime) -> float:
        await asyncio.sleep(max(0.0, (at - datetime.now(UTC)).total_seconds()))
        return (datetime.now(UTC) - at).total_seconds()

    return list(await asyncio.gather(*(one(at) for at in planned)))


def add_all(conn: Connection, records: list[DeploymentRecord]) -> None:
    repo = DeploymentRepository(conn)
    for record in records:
        assert repo.add(record)


async def lateness_figure(server: NatsServer, root: Path, count: int, spread: float) -> None:
    baseline = sorted(await sleep_lateness(planned_times(count, spread, lead=1.0)))

    settings = settings_for(server, root / "lateness")
    runtime = build_app(settings, backend=HubsUp())
    scheduler = scheduler_of(runtime)
    nc = await nats.connect(server.url)
    received: dict[str, datetime] = {}

    async def on_event(msg: nats.aio.msg.Msg) -> None:
        event = decode_event(msg.data)
        if isinstance(event, CourseStarted):
            received[event.request_id] = datetime.now(UTC)

    sub = await nc.subscribe(DEPLOYER_STREAM.subjects[0], cb=on_event)
    await runtime.start()
    try:
        now = datetime.now(UTC)
        planned = planned_times(count, spread, lead=3.0)
        records = [running(now, at, i) for i, at in enumerate(planned)]
        await runtime.db.write(add_all, records)
        scheduler.notify()
        deadline = time.monotonic() + spread + 30
        while len(received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError("not every course start arrived")
            await asyncio.sleep(0.2)
    finally:
        await sub.unsubscribe()
        await nc.close()
        await runtime.stop()
    published = sorted((received[r.request_id] - r.starts_at).total_seconds() for r in records)
    fired = [f for f in scheduler.fired if f[0] == Action.START_COURSE]
    ticks = len({actual for _, _, actual in fired})

    def row(label: str, median: float, worst: float) -> str:
        return f"  {label:37s}: median {median * 1000:7.1f}ms  max {worst * 1000:7.1f}ms"

    print(
        f"\n== deployer: trigger lateness, {count} course starts due over {spread:.0f}s"
        " (actual - planned) =="
    )
    print(row("asyncio.sleep until the planned time", baseline[len(baseline) // 2], baseline[-1]))
    print(
        row("Scheduler.fired, start_course", *lateness_summary(fired))
        + f"  ({ticks} ticks for {len(fired)} triggers)"
    )
    print(
        row("CourseStarted received from NATS", published[len(published) // 2], published[-1])
        + "  (committed, relayed, published)"
    )


async def main(courses: int, triggers: int, spread: float) -> None:
    with (
        no_lock_timeouts("bench-deployer"),
        tempfile.TemporaryDirectory(prefix="jhaas-bench-deployer-") as tmp,
    ):
        root = Path(tmp)
        server = NatsServer(store_dir=root / "js").start()
        try:
            await create_streams(server.url)
            await deploy_figure(server, root, courses)
            await lateness_figure(server, root, triggers, spread)
        finally:
            server.stop()
