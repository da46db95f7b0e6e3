"""Housekeeping as history grows: with 0 and with 10,000 finished courses behind
it (deployments in state deleted, and the ~7 inbox ids each course's events
left, handled longer ago than the inbox retention), a handful of live courses:

- one deployer reconciliation pass (`Reconciler.reconcile`, the real local
  backend on an empty hubs folder), next to reading every deployment row, which
  is what a pass cost before it read only the listed hubs and running courses;
- the inbox's row count after one purge (`InboxPurge.purge`), next to the count
  before it;
- one event's inbox claim (`first_delivery`, its own transaction), after the purge.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bench.common import deployer_runtime, no_lock_timeouts
from deployer_svc.app import GOVERNANCE_CONSUMER, REQUESTS_CONSUMER
from deployer_svc.backends.local import LocalBackend
from deployer_svc.domain import DeploymentRecord
from deployer_svc.reconcile import Reconciler
from deployer_svc.store import VERSIONS_DIR, DeploymentRepository, messaging, metadata
from jhaas_launcher.processes import PostgresServer
from jhaas_launcher.testing import sample_spec
from jhaas_runtime.inbox import first_delivery
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.rpc import DeploymentState

HISTORIES = (0, 10_000)
LIVE_COURSES = 5
# A course's events across the services (approval, scheduled, deploying, ready,
# started, ended, deleted), all put into this one inbox: the worst case.
IDS_PER_COURSE = 7
PASSES = 50
CLAIMS = 200


def settings(database_url: str, root: Path) -> RuntimeSettings:
    (root / "hubs").mkdir(parents=True)  # the local backend's, left empty
    # NATS is never connected: nothing here publishes.
    return deployer_runtime("nats://127.0.0.1:9", database_url, root, pool=4)


def course(i: int, state: DeploymentState, starts_at: datetime) -> DeploymentRecord:
    ends_at = starts_at + timedelta(days=90)
    return DeploymentRecord(
        deployment_id=str(uuid.uuid4()),
        request_id=f"bench-{state.value}-{i}",
        leader_id="u-bench",
        state=state,
        configuration=sample_spec(slug=f"course-{i}", starts_at=starts_at, ends_at=ends_at),
        deploy_at=starts_at - timedelta(minutes=30),
        starts_at=starts_at,
        ends_at=ends_at,
        created_at=starts_at - timedelta(days=30),
        updated_at=ends_at,
        teardown_at=ends_at,
    )


def inbox_rows(courses: int, handled_at: Callable[[int], datetime]) -> list[dict[str, object]]:
    consumers = (GOVERNANCE_CONSUMER, REQUESTS_CONSUMER)
    return [
        {
            "consumer": consumers[n % 2],
            "event_id": str(uuid.uuid4()),
            "subject": "jhaas.evt.bench.v1",
            "handled_at": handled_at(i),
        }
        for i in range(courses)
        for n in range(IDS_PER_COURSE)
    ]


def add_courses(conn: Connection, records: list[DeploymentRecord]) -> None:
    repo = DeploymentRepository(conn)
    for record in records:
        assert repo.add(record)


def insert_inbox(conn: Connection, rows: list[dict[str, object]]) -> None:
    conn.execute(messaging.inbox.insert(), rows)


async def fill(runtime: ServiceRuntime, history: int, retention: timedelta) -> None:
    now = datetime.now(UTC)
    past = [now - timedelta(days=400 - 360 * i / max(history, 1)) for i in range(history)]
    finished = [course(i, DeploymentState.DELETED, starts_at) for i, starts_at in enumerate(past)]
    live = [
        course(i, DeploymentState.SCHEDULED, now + timedelta(days=i + 1))
        for i in range(LIVE_COURSES)
    ]
    await runtime.db.write(add_courses, finished + live)
    old = inbox_rows(history, lambda i: min(past[i] + timedelta(days=91), now) - retention)
    recent = inbox_rows(LIVE_COURSES, lambda i: now - timedelta(hours=i + 1))
    rows = old + recent
    for start in range(0, len(rows), 5000):
        await runtime.db.write(insert_inbox, rows[start : start + 5000])


async def median_ms(action: Callable[[], Awaitable[object]], times: int) -> float:
    took = []
    for _ in range(times):
        t0 = time.perf_counter()
        await action()
        took.append(time.perf_counter() - t0)
    return statistics.median(took) * 1000


def count_inbox(conn: Connection) -> int:
    return int(conn.scalar(sa.select(sa.func.count()).select_from(messaging.inbox)) or 0)


def read_every_row(conn: Connection) -> None:
    DeploymentRepository(conn).list_deployments()


def claim_one(conn: Connection) -> bool:
    return first_delivery(conn, messaging.inbox, GOVERNANCE_CONSUMER, str(uuid.uuid4()), "s")


async def run_once(database_url: str, root: Path, history: int) -> str:
    runtime = ServiceRuntime(
        settings(database_url, root), metadata=metadata, tables=messaging, versions_dir=VERSIONS_DIR
    )
    try:
        await upgrade_to_head(runtime.db, metadata, VERSIONS_DIR)
        await fill(runtime, history, runtime.inbox_purge.retention)
        backend = LocalBackend(root / "hubs")
        reconciler = Reconciler(
            runtime.db, backend, clock=lambda: datetime.now(UTC), notify=lambda: None
        )

        reconcile = await median_ms(reconciler.reconcile, PASSES)
        every_row = await median_ms(lambda: runtime.db.read(read_every_row), 5)
        before = await runtime.db.read(count_inbox)
        t0 = time.perf_counter()
        await runtime.inbox_purge.purge()
        purge_s = time.perf_counter() - t0
        after = await runtime.db.read(count_inbox)

        async def claim() -> None:
            assert await runtime.db.write(claim_one)

        claim_ms = await median_ms(claim, CLAIMS)
        longest = runtime.inbox_purge.longest_batch * 1000
        return (
            f"reconcile {reconcile:5.2f} ms/pass (reading every row: {every_row:6.1f} ms);"
            f" inbox claim {claim_ms:4.2f} ms\n{'':30s}inbox {before:6,d} -> {after:3d} rows"
            f" after one purge ({purge_s:4.2f} s; longest write {longest:3.0f} ms)"
        )
    finally:
        await runtime.db.dispose()


async def main(postgres: bool) -> None:
    with (
        no_lock_timeouts("bench-housekeeping"),
        tempfile.TemporaryDirectory(prefix="jhaas-bench-housekeeping-") as tmp,
    ):
        root = Path(tmp)
        pg = None
        if postgres:
            pg = PostgresServer(data_dir=Path(tempfile.mkdtemp(prefix="jhaas-bench-pg-")) / "data")
            pg.start()
        try:
            print(
                f"\n== housekeeping: {LIVE_COURSES} live courses, with 0 and 10,000 finished ones"
                f" behind them ({IDS_PER_COURSE} inbox ids each, older than the retention) =="
            )
            for name in ("sqlite", "postgresql") if pg else ("sqlite",):
                for history in HISTORIES:
                    if pg is not None and name == "postgresql":
                        url = pg.create_database(f"bench_housekeeping_{history}")
                    else:
                        url = f"sqlite:///{root / f'deployer-{history}.sqlite'}"
                    figures = await run_once(url, root / f"{name}-{history}", history)
                    print(f"  {name:10s} {history:6,d} finished: {figures}")
        finally:
            if pg is not None:
                pg.stop()
                shutil.rmtree(pg.data_dir.parent, ignore_errors=True)
