"""The frame every service runs in: database, migrations, NATS, streams,
outbox relay, event consumers and RPC routes, started and stopped in order."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import msgspec
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from jhaas_runtime import failpoints
from jhaas_runtime.aio import cancel_and_wait
from jhaas_runtime.alive import Heartbeat
from jhaas_runtime.db import Database, bound
from jhaas_runtime.inbox import InboxPurge, replay_window_for
from jhaas_runtime.logs import get_logger
from jhaas_runtime.messaging import EventConsumer, connect, ensure_streams, run_forever
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_runtime.outbox import OutboxRelay, record_events
from jhaas_runtime.rpc import CallContext, RpcServer
from jhaas_runtime.settings import RuntimeSettings
from jhaas_runtime.tables import MessagingTables
from jhaas_schemas.bus import owned_streams
from jhaas_schemas.envelope import Event
from jhaas_schemas.streams import rpc_subject

log = get_logger(__name__)

STOP_GRACE_SECONDS = 10.0

P = ParamSpec("P")
T = TypeVar("T")


@dataclass
class UnitOfWork:
    """One transaction: the state change and the events it emits commit together."""

    conn: Connection
    events: list[Event] = field(default_factory=list)

    def emit(self, *events: Event) -> None:
        self.events.extend(events)


class Health(msgspec.Struct, frozen=True):
    service: str
    status: str


class HealthCheck(msgspec.Struct, frozen=True):
    pass


class ServiceRuntime:
    def __init__(
        self,
        settings: RuntimeSettings,
        *,
        metadata: MetaData,
        tables: MessagingTables,
        versions_dir: Path,
    ) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, pool_size=settings.db_pool_size)
        self.metadata = metadata
        self.tables = tables
        self.versions_dir = versions_dir
        self.rpc = RpcServer(settings.service)
        self.inbox_purge = InboxPurge(self.db, tables.inbox, settings.inbox_retention)
        self.consumers: list[EventConsumer] = []
        self.background: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._relay: OutboxRelay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._consumer_tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self.stop_grace_seconds = STOP_GRACE_SECONDS
        self.rpc.route(
            rpc_subject(settings.service.removesuffix("-svc"), "health"), HealthCheck, self._health
        )

    async def _health(self, _ctx: CallContext, _payload: HealthCheck) -> Health:
        return Health(service=self.settings.service, status="ok")

    @property
    def js(self) -> JetStreamContext:
        assert self._js is not None, "runtime not started"
        return self._js

    @property
    def nc(self) -> NATS:
        assert self._nc is not None, "runtime not started"
        return self._nc

    @property
    def relay(self) -> OutboxRelay:
        assert self._relay is not None, "runtime not started"
        return self._relay

    def add_consumer(self, consumer: EventConsumer) -> None:
        consumer.max_deliver = self.settings.max_deliver
        consumer.ack_wait_seconds = self.settings.ack_wait_seconds
        consumer.failpoints = self.settings.failpoints
        consumer.replay_window = replay_window_for(self.settings.inbox_retention)
        self.consumers.append(consumer)

    def add_background(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self.background.append((name, loop))

    async def write(
        self,
        work: Callable[Concatenate[UnitOfWork, P], T],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        """Run `work(uow, ...)` in one transaction in a database thread: what it
        changes through `uow.conn` and the events it `uow.emit`s commit together."""
        call: Callable[[UnitOfWork], T] = bound(work, args, kwargs)
        result, emitted = await self.db.write(self._unit, call)
        if emitted:
            failpoints.hit(self.settings.failpoints, failpoints.AFTER_COMMIT)
            if self._relay is not None:
                self._relay.notify()
        return result

    def _unit(self, conn: Connection, call: Callable[[UnitOfWork], T]) -> tuple[T, bool]:
        uow = UnitOfWork(conn)
        result = call(uow)
        record_events(conn, self.tables.outbox, *uow.events)
        return result, bool(uow.events)

    async def start(self) -> None:
        await upgrade_to_head(self.db, self.metadata, self.versions_dir)
        self._nc = await connect(
            self.settings.nats_url,
            self.settings.service,
            self.settings.nats_seed_file,
            self.settings.nats_ca_file,
        )
        self._js = self._nc.jetstream()
        await ensure_streams(
            self._js, self.settings.stream_replicas, owned_streams(self.settings.service)
        )
        self._relay = OutboxRelay(
            self.db,
            self.tables.outbox,
            self._js,
            failpoints=self.settings.failpoints,
            heartbeat=Heartbeat.from_env("outbox-relay"),
        )
        for consumer in self.consumers:
            # A consumer of a stream that does not exist yet waits for it in its own task.
            await consumer.try_ensure(self._js, self.db, self.tables)
        self._spawn("outbox-relay", self._relay.run)
        self._spawn("inbox-purge", self.inbox_purge.run)
        for consumer in self.consumers:
            self._consumer_tasks.append(
                asyncio.create_task(
                    run_forever(self._consumer_loop(consumer), consumer.name, self._stopping),
                    name=consumer.name,
                )
            )
        for name, loop in self.background:
            self._spawn(name, loop)
        await self.rpc.start(self._nc)
        log.info(
            "service started",
            nats=self.settings.nats_url,
            database=self.db.url.render_as_string(hide_password=True),
        )

    def _consumer_loop(self, consumer: EventConsumer) -> Callable[[], Awaitable[None]]:
        async def loop() -> None:
            await consumer.run(self.js, self.db, self.tables, self.relay, self._stopping)

        return loop

    def _spawn(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.create_task(run_forever(loop, name), name=name))

    async def stop(self) -> None:
        """Stop in order, every step bounded: a task that ignores its
        cancellation is logged and left behind, it never hangs the shutdown."""
        grace = self.stop_grace_seconds
        stuck = await self.rpc.stop(grace)
        # Consumers finish the batch in hand (commit + ack) instead of being cut
        # off inside a database call; those still busy after the grace are cancelled.
        self._stopping.set()
        for consumer, task in zip(self.consumers, self._consumer_tasks, strict=True):
            if not consumer.busy:
                task.cancel()  # idle in fetch: nothing in hand to lose
        if self._consumer_tasks:
            await asyncio.wait(self._consumer_tasks, timeout=grace)
        stuck += await cancel_and_wait([*self._consumer_tasks, *self._tasks], grace)
        self._consumer_tasks.clear()
        self._tasks.clear()
        if stuck:
            log.error("tasks did not stop when cancelled; left behind", tasks=stuck)
        if self._relay is not None:
            # Publish what was committed before we were asked to stop.
            with suppress(Exception):
                async with asyncio.timeout(grace):
                    await self._relay.publish_pending()
        if self._nc is not None and not self._nc.is_closed:
            try:
                async with asyncio.timeout(grace):
                    await self._nc.drain()
            except Exception:
                log.warning("nats did not drain in time; closing", exc_info=True)
                with suppress(Exception):
                    await self._nc.close()
        await self.db.dispose()
        log.info("service stopped")

    async def serve(self) -> None:
        """Start, run until SIGINT or SIGTERM, then stop cleanly."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()


def run_service(runtime: ServiceRuntime) -> None:
    """Run a service until SIGINT/SIGTERM, on uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        asyncio.run(runtime.serve())
        return
    uvloop.run(runtime.serve())
