"""The capacity calendar's check with 5,000 approved courses in it (issue 9).

Each check is what an approval does before it holds its reservation, in its own
write transaction (rolled back): take the calendar's lock (PostgreSQL: the
advisory lock; SQLite: BEGIN IMMEDIATE), read the held reservations whose
windows overlap the new course's, and sweep their boundaries against the
capacity (`governance_svc.calendar.check_fit`). Next to it, over the same table
and the same windows in the same run, a plain
`SELECT count(*) FROM reservations WHERE state = 'held' AND window_end > :start
AND window_start < :end` in a read, as the baseline.

The courses: start days spread over two years, lasting 1 to 120 days (most of
a term), with per-user resources times up to 200 participants.
"""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bench.common import no_lock_timeouts
from governance_svc.calendar import check_fit
from governance_svc.reservations import ReservationRepository
from governance_svc.store import VERSIONS_DIR, metadata
from jhaas_launcher.processes import PostgresServer
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.policy import Capacity
from jhaas_schemas.rpc import Amounts, ReservationView

COURSES = 5_000
CHECKS = 500
T0 = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
SPAN_DAYS = 730
# Large enough for all of them: a check that fits (a refusal would only add its message).
CAPACITY = Capacity(cpu="100000", memory="400Ti", storage="2000Ti", gpus=64, enforced=True)
COUNT = sa.text(
    "SELECT count(*) FROM reservations "
    "WHERE state = 'held' AND window_end > :start AND window_start < :end"
).bindparams(sa.bindparam("start", type_=UtcDateTime()), sa.bindparam("end", type_=UtcDateTime()))


def window(rng: random.Random) -> tuple[datetime, datetime]:
    start = T0 + timedelta(days=rng.uniform(0, SPAN_DAYS))
    return start, start + timedelta(days=rng.uniform(1, 120))


def course(i: int, rng: random.Random) -> ReservationView:
    start, end = window(rng)
    people = rng.randint(5, 200)
    return ReservationView(
        request_id=f"bench-{i:05d}",
        title=f"Course {i}",
        leader_id="u-bench",
        window_start=start,
        window_end=end,
        amounts=Amounts(
            cpu=1000 * people, memory=2 * 2**30 * people, storage=5 * 2**30 * people, gpus=0
        ),
    )


def fill(conn: Connection, rng: random.Random) -> None:
    repo = ReservationRepository(conn)
    for i in range(COURSES):
        repo.hold(course(i, rng), T0)


def timed(
    runs: list[tuple[datetime, datetime]], once: Callable[[datetime, datetime], object]
) -> list[float]:
    took = []
    for start, end in runs:
        began = time.perf_counter()
        once(start, end)
        took.append(time.perf_counter() - began)
    return took


def figures(took: list[float]) -> str:
    ordered = sorted(took)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:6.2f} ms, p99 {p99 * 1000:6.2f} ms"


async def run_once(database_url: str) -> list[str]:
    db = Database(database_url, pool_size=2)
    try:
        await upgrade_to_head(db, metadata, VERSIONS_DIR)
        rng = random.Random(9)
        await db.write(fill, rng)
        writer = db.engine.execution_options(jhaas_write=True)
        runs = [window(rng) for _ in range(CHECKS)]
        overlapping: list[int] = []

        def check(start: datetime, end: datetime) -> None:
            with writer.connect() as conn, conn.begin() as transaction:
                repo = ReservationRepository(conn)
                repo.lock()
                new = course(COURSES, rng)
                new = ReservationView(
                    request_id=new.request_id, title=new.title, leader_id=new.leader_id,
                    window_start=start, window_end=end, amounts=new.amounts,
                )  # fmt: skip
                held = repo.overlapping(start, end, besides=new.request_id)
                assert check_fit(new, held, CAPACITY).fits
                overlapping.append(len(held))
                transaction.rollback()

        def count(start: datetime, end: datetime) -> None:
            with db.engine.connect() as conn:
                conn.execute(COUNT, {"start": start, "end": end}).scalar_one()

        timed(runs[:20], check)  # warm-up
        timed(runs[:20], count)
        checked = timed(runs, check)
        counted = timed(runs, count)
        mean = statistics.mean(overlapping[20:]) if len(overlapping) > 20 else 0.0
        return [
            f"calendar check {figures(checked)}  ({mean:5.1f} overlapping courses on average)",
            f"plain count    {figures(counted)}",
        ]
    finally:
        await db.dispose()


async def main(postgres: bool) -> None:
    with (
        no_lock_timeouts("bench-calendar"),
        tempfile.TemporaryDirectory(prefix="jhaas-bench-calendar-") as tmp,
    ):
        root = Path(tmp)
        pg = None
        if postgres:
            pg = PostgresServer(data_dir=Path(tempfile.mkdtemp(prefix="jhaas-bench-pg-")) / "data")
            pg.start()
        try:
            print(
                f"\n== calendar: {COURSES:,d} approved courses over {SPAN_DAYS} days, "
                f"{CHECKS} checks of a new course (lock + overlapping reservations + sweep) "
                "next to a plain count of the overlapping rows =="
            )
            for name in ("sqlite", "postgresql") if pg else ("sqlite",):
                if pg is not None and name == "postgresql":
                    url = pg.create_database("bench_calendar")
                else:
                    url = f"sqlite:///{root / 'governance.sqlite'}"
                for line in await run_once(url):
                    print(f"  {name:10s} {line}")
        finally:
            if pg is not None:
                pg.stop()
                shutil.rmtree(pg.data_dir.parent, ignore_errors=True)
