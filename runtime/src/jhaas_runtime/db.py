"""Each service's database: SQLite (embedded default) or PostgreSQL.

A unit of work is a plain function of one connection, run whole in one
database thread: `await db.read(fn, ...)` or `await db.write(fn, ...)`. It
costs one hop to a thread and back, however many statements it runs, and its
statements are SQLAlchemy Core on the synchronous drivers (the standard
library's sqlite3, psycopg). What this replaced, the asyncio ORM session on
aiosqlite/asyncpg, cost 0.5-1 ms of CPU and six thread round trips per
statement; SQLite's own work for one is 5-50 us (docs/benchmarks.md).

Writers on SQLite take turns inside the process (`write` queues them first
come, first served), so a consumer, the outbox relay and the scheduler never
meet on SQLite's file lock, and never wait out its busy timeout; the timeout
is left for another process on the same file (a second replica, a CLI).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import DBAPIError

P = ParamSpec("P")
T = TypeVar("T")

# Driver names accepted in a database URL, and the driver that serves them.
# The asyncio drivers of earlier versions stay accepted, so existing settings
# keep working after an upgrade.
_DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",
}


def sync_url(url: str | URL) -> URL:
    """The URL with the driver this version uses; ValueError for another database."""
    parsed = make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database URL scheme {parsed.drivername!r}: "
            "use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST:PORT/NAME"
        )
    return parsed.set(drivername=driver)


def insert_for(conn: Connection, table: sa.Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that can say ON CONFLICT (DO NOTHING / DO UPDATE), in the
    connection's dialect: both databases have it, SQLAlchemy spells it per dialect."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, say when a transaction begins (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the one writer; busy_timeout makes a second
    # process (another replica, a CLI) wait for the lock instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # A writing transaction takes the write lock up front (BEGIN IMMEDIATE), so
    # two writers never both read first and then fail to upgrade (SQLITE_BUSY).
    if conn.get_execution_options().get("jhaas_write"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    # A read stays in SQLite's autocommit mode: each statement sees one
    # consistent snapshot, and two statements (BEGIN, COMMIT) are saved.


def on_loop(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """From inside a unit of work (a database thread): run `coro` on the
    service's event loop and wait for it. For the rare unit that must hold its
    transaction across network I/O (the outbox relay's row locks on PostgreSQL)."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


A = TypeVar("A")


def bound(
    work: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Callable[[A], T]:
    """`work` with its other arguments given: called with the unit's first one
    (a connection, or a service's unit of work)."""

    def call(first: A) -> T:
        return work(first, *args, **kwargs)

    return call


class Database:
    """One engine, its own threads, and the units of work that run on them."""

    def __init__(self, url: str | URL, *, pool_size: int = 16, echo: bool = False) -> None:
        self.url = sync_url(url)
        self.is_sqlite = self.url.get_backend_name() == "sqlite"
        # No overflow: callers beyond the pool wait for a connection instead of
        # opening one that is closed again when returned, and the database sees
        # a fixed count. LIFO keeps the same few connections warm.
        kwargs: dict[str, Any] = {
            "echo": echo,
            "pool_size": pool_size,
            "max_overflow": 0,
            "pool_use_lifo": True,
        }
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["poolclass"] = sa.QueuePool
            kwargs["connect_args"] = {"check_same_thread": False}
            # One connection more than threads: a `lookup` on the event loop
            # always finds one at once instead of waiting (and holding the
            # loop) while every thread is busy.
            kwargs["pool_size"] = pool_size + 1
        else:
            # A connection the server closed is noticed by the first statement
            # on it: the pool is invalidated and the unit runs once more (_run).
            # A ping before every unit would cost a round trip each.
            kwargs["pool_recycle"] = 1800
        self.engine: Engine = sa.create_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self._write_engine = self.engine.execution_options(jhaas_write=True)
        # Reads on PostgreSQL in autocommit: under READ COMMITTED each statement
        # sees its own snapshot inside a transaction too, so BEGIN and ROLLBACK
        # would only cost two more round trips per read (~130 us of CPU each read).
        self._read_engine = (
            self.engine
            if self.is_sqlite
            else self.engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        self._threads = concurrent.futures.ThreadPoolExecutor(
            max_workers=pool_size, thread_name_prefix="db"
        )
        # SQLite: one writer at a time inside this process, first come first served.
        self._write_turn: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None

    async def read(
        self, work: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `work(connection, ...)` for reading, in autocommit: each
        statement sees its own consistent snapshot (as it would in a READ
        COMMITTED transaction). A read that must see several tables at one
        instant, or lock rows, is a `write`."""
        call = bound(work, args, kwargs)
        return await self._in_thread(self._read_unit, call)

    async def lookup(
        self, work: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """A read by key of one row or a few (the principal of a request, one
        record by id): on SQLite it runs at once, on the caller's thread, since
        a WAL reader never waits for a writer and such a read costs 20-50 us,
        less than the hop to a thread and back it saves (docs/benchmarks.md);
        on PostgreSQL it is a `read` (a network round trip must not hold the
        event loop). Never for a read whose size grows with the data."""
        if self.is_sqlite:
            return self._read_unit(bound(work, args, kwargs))
        return await self.read(work, *args, **kwargs)

    async def write(
        self, work: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run `work(connection, ...)` in one transaction: committed when it
        returns, rolled back when it raises (the exception comes through).

        A caller cancelled while its unit runs does not stop the unit: it ends
        with its commit or rollback (and keeps SQLite's turn until then)."""
        call = bound(work, args, kwargs)
        if self._write_turn is None:
            return await self._in_thread(self._write_unit, call)
        await self._write_turn.acquire()
        try:
            future = self._submit(self._write_unit, call)
        except BaseException:
            self._write_turn.release()
            raise
        loop = asyncio.get_running_loop()
        turn = self._write_turn
        future.add_done_callback(lambda _f: loop.call_soon_threadsafe(turn.release))
        return await asyncio.wrap_future(future)

    def _read_unit(self, call: Callable[[Connection], T]) -> T:
        return self._run(self._read_engine, call)

    def _write_unit(self, call: Callable[[Connection], T]) -> T:
        return self._run(self._write_engine, call)

    @staticmethod
    def _run(engine: Engine, call: Callable[[Connection], T]) -> T:
        """One transaction; run once more on a new connection when the first
        one was found closed by the server while the unit ran (a PostgreSQL
        restart, an idle connection killed). Only then: the failure came before
        the commit, so nothing of the first run was kept. A unit is a plain
        function of its connection, so running it again does the same."""
        for attempt in (1, 2):
            with engine.connect() as conn:
                transaction = conn.begin()
                try:
                    result = call(conn)
                except DBAPIError as exc:
                    transaction.rollback()
                    if attempt == 1 and exc.connection_invalidated:
                        continue
                    raise
                except BaseException:
                    transaction.rollback()
                    raise
                transaction.commit()
                return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _submit(
        self, unit: Callable[[Callable[[Connection], T]], T], call: Callable[[Connection], T]
    ) -> concurrent.futures.Future[T]:
        # The caller's context (its log correlation) goes along into the thread.
        return self._threads.submit(contextvars.copy_context().run, unit, call)

    async def _in_thread(
        self, unit: Callable[[Callable[[Connection], T]], T], call: Callable[[Connection], T]
    ) -> T:
        return await asyncio.wrap_future(self._submit(unit, call))

    async def dispose(self) -> None:
        """Wait for units in flight, then close every connection."""
        await asyncio.get_running_loop().run_in_executor(None, self._close)

    def _close(self) -> None:
        self._threads.shutdown(wait=True)
        self.engine.dispose()
