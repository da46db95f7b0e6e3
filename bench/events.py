"""Events handled per second through one consumer (deployer-svc's RequestApproved
consumer: inbox row + deployment row + outbox row in one transaction, then the
relay's publish of DeploymentScheduled), next to raw JetStream publishes with
PubAck measured in the same run against the same server. The run fails if the
service logged a database lock timeout."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats

from bench.common import deployer_runtime, no_lock_timeouts
from deployer_svc.app import GOVERNANCE_CONSUMER, build_app
from deployer_svc.settings import DeployerSettings
from jhaas_launcher.processes import NatsServer, PostgresServer
from jhaas_launcher.testing import create_streams, publish, sample_spec
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import RequestApproved
from jhaas_schemas.streams import DEPLOYER_STREAM


def approval(i: int) -> RequestApproved:
    start = datetime.now(UTC) + timedelta(days=10)
    return RequestApproved(
        **envelope(source="bench", correlation_id=f"bench-{i}"),
        request_id=str(uuid.uuid4()),
        review_id=str(uuid.uuid4()),
        leader_id="u-bench",
        decided_by="u-gov",
        revision=1,
        configuration=sample_spec(
            slug=f"course-{i}", starts_at=start, ends_at=start + timedelta(days=30)
        ),
    )


def without_schedule(runtime: ServiceRuntime) -> ServiceRuntime:
    """The same service with its scheduler and reconciliation loops left out: what the
    consumer alone achieves, to show what the scheduler costs it."""
    runtime.background = [(n, loop) for n, loop in runtime.background if n == "outbox-relay"]
    return runtime


async def run_once(
    database_url: str, root: Path, count: int, *, schedule: bool = True
) -> tuple[float, float, float]:
    """Raw publishes per second, events applied and relayed per second, and the
    CPU seconds of this process (service and all) per event meanwhile."""
    server = NatsServer(store_dir=root / "js").start()
    try:
        await create_streams(server.url)
        settings = DeployerSettings(
            runtime=deployer_runtime(server.url, database_url, root, pool=8),
            hubs_dir=root / "hubs",
        )
        runtime = build_app(settings)
        # Start once so streams and the consumer exist, then stop: the events
        # wait in the stream and the measured run starts with a full backlog.
        await runtime.start()
        await runtime.stop()
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        events = [approval(i) for i in range(count)]
        t0 = time.perf_counter()
        for event in events:
            await publish(js, event)
        raw = count / (time.perf_counter() - t0)

        runtime = build_app(settings)
        if not schedule:
            without_schedule(runtime)
        t0, cpu0 = time.perf_counter(), time.process_time()
        await runtime.start()
        [consumer] = [c for c in runtime.consumers if c.name == GOVERNANCE_CONSUMER]
        # The stream is asked only once the consumer is through: asked all along,
        # the question cost the process under measurement 3-5% of its CPU.
        while consumer.handled < count:  # noqa: ASYNC110 - a counter, no event to wait for
            await asyncio.sleep(0.01)
        while (await js.stream_info(DEPLOYER_STREAM.name)).state.messages < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        handled = count / (time.perf_counter() - t0)
        cpu = (time.process_time() - cpu0) / count
        await runtime.stop()
        await nc.close()
        return raw, handled, cpu
    finally:
        server.stop()


async def main(count: int, postgres: bool) -> None:
    with (
        no_lock_timeouts("bench-events"),
        tempfile.TemporaryDirectory(prefix="jhaas-bench-") as tmp,
    ):
        root = Path(tmp)

        def sqlite_db(name: str) -> str:
            return f"sqlite:///{root / (name + '.sqlite')}"

        databases: list[tuple[str, Callable[[str], str]]] = [("sqlite", sqlite_db)]
        pg = None
        if postgres:
            pg_root = Path(tempfile.mkdtemp(prefix="jhaas-bench-pg-"))
            pg = PostgresServer(data_dir=pg_root / "data").start()
            databases.append(("postgresql", pg.create_database))
        try:
            print(f"\n== events: {count} RequestApproved through deployer-svc's consumer ==")
            for name, database in databases:
                raw, handled, cpu = await run_once(database("bench_deployer"), root / name, count)
                _, alone, _ = await run_once(
                    database("bench_alone"), root / f"{name}-alone", count, schedule=False
                )
                print(f"  {name:10s} raw JetStream publish (PubAck each): {raw:8.0f} msg/s")
                print(
                    f"  {name:10s} consumed + DB write + outbox publish: {handled:8.0f} events/s"
                    f"  ({handled / raw:.0%} of raw; {cpu * 1e6:.0f} us CPU per event)"
                )
                print(
                    f"  {name:10s} the same with the scheduler left out: {alone:8.0f} events/s"
                    f"  (with the scheduler: {handled / alone:.0%} of that)"
                )
        finally:
            if pg:
                pg.stop()
                shutil.rmtree(pg.data_dir.parent, ignore_errors=True)
