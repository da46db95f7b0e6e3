"""Units of work: what a service may rely on when it reads and writes."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jhaas_launcher.processes import PostgresServer
from jhaas_runtime.db import Database

pytestmark = pytest.mark.integration

metadata = sa.MetaData()
counts = sa.Table(
    "counts",
    metadata,
    sa.Column("name", sa.String(20), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
)


def _never_wait_for_sqlite_lock(dbapi_connection: Any, _record: Any) -> None:
    # A writer that met another one inside this process would fail at once
    # with "database is locked" instead of waiting out the busy timeout.
    dbapi_connection.execute("PRAGMA busy_timeout=0")


async def _ready(url: str) -> Database:
    db = Database(url, pool_size=8)
    if db.is_sqlite:
        sa.event.listen(db.engine, "connect", _never_wait_for_sqlite_lock)
    await db.write(lambda conn: metadata.create_all(conn))
    await db.write(lambda conn: conn.execute(counts.insert().values(name="a", n=0)))
    return db


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await _ready(database_url)
    yield database
    await database.dispose()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await _ready(f"sqlite:///{tmp_path / 'units.sqlite'}")
    yield database
    await database.dispose()


def _current(conn: Connection, *, lock: bool = False) -> int:
    query = sa.select(counts.c.n).where(counts.c.name == "a")
    # PostgreSQL: the row lock; SQLite (which has no FOR UPDATE): the writer's turn.
    return int(conn.scalar(query.with_for_update() if lock else query) or 0)


def _increment_slowly(conn: Connection, hold: float) -> None:
    n = _current(conn, lock=True)
    time.sleep(hold)  # a long unit: the lock is held, the next writer must wait its turn
    conn.execute(counts.update().where(counts.c.name == "a").values(n=n + 1))


async def test_writers_in_one_process_take_turns(db: Database) -> None:
    """Twenty concurrent writers, each reading then writing: none fails, none is lost."""
    await asyncio.gather(*(db.write(_increment_slowly, 0.01) for _ in range(20)))
    assert await db.read(_current) == 20


async def test_a_failing_unit_leaves_nothing_behind(db: Database) -> None:
    def half_then_fail(conn: Connection) -> None:
        conn.execute(counts.insert().values(name="half", n=1))
        raise ValueError("the second half failed")

    with pytest.raises(ValueError, match="second half"):
        await db.write(half_then_fail)
    rows = await db.read(lambda conn: conn.execute(sa.select(counts.c.name)).scalars().all())
    assert rows == ["a"]


async def test_a_cancelled_writer_finishes_its_unit_and_keeps_its_turn(
    sqlite_db: Database,
) -> None:
    """Cancelling the caller cannot cut a unit in half, and the next writer
    waits for it instead of meeting SQLite's lock."""
    slow = asyncio.create_task(sqlite_db.write(_increment_slowly, 0.3))
    await asyncio.sleep(0.05)  # the unit is running in its thread
    slow.cancel()
    await sqlite_db.write(_increment_slowly, 0)  # would fail with "database is locked"
    assert slow.cancelled()
    assert await sqlite_db.read(_current) == 2  # the cancelled caller's unit committed


@pytest.mark.parametrize("unit", ["read", "write"])
async def test_a_unit_survives_the_server_closing_its_connection(
    postgres_server: PostgresServer, unit: str
) -> None:
    """PostgreSQL restarted or an idle connection killed: the next unit gets a
    new connection instead of failing (there is no ping before each unit), and
    a write counts once."""
    url = postgres_server.create_database(f"units_{uuid.uuid4().hex[:8]}")
    db = await _ready(url)
    try:
        own_pid = await db.read(lambda conn: conn.scalar(sa.text("SELECT pg_backend_pid()")))
        killer = Database(url, pool_size=1)
        try:
            killed = await killer.read(
                lambda conn: conn.scalar(
                    sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": own_pid}
                )
            )
        finally:
            await killer.dispose()
        assert killed
        if unit == "read":
            assert await db.read(_current) == 0
        else:
            await db.write(_increment_slowly, 0)
            assert await db.read(_current) == 1
    finally:
        await db.dispose()


async def test_a_lookup_sees_what_was_committed_before_it(db: Database) -> None:
    """On SQLite a lookup runs at once on the event loop, on PostgreSQL in a
    thread; either way it reads the committed state, never a writer's half."""
    assert await db.lookup(_current) == 0
    await db.write(_increment_slowly, 0)
    assert await db.lookup(_current) == 1
    slow = asyncio.create_task(db.write(_increment_slowly, 0.2))
    await asyncio.sleep(0.05)  # the writer holds its transaction, uncommitted
    assert await db.lookup(_current) == 1
    await slow
    assert await db.lookup(_current) == 2
