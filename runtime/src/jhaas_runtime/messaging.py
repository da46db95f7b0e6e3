"""NATS connection, idempotent JetStream set-up, and durable event consumers.

A consumer claims each event in the service's inbox in the same database
transaction as its effect and the events it emits (outbox), then acks. A
failing handler is redelivered with backoff; an event that cannot be decoded,
or that still fails after `max_deliver` attempts, is copied to the
dead-letter stream and terminated, so the consumer goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec
import nats
import sqlalchemy as sa
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from jhaas_runtime import failpoints
from jhaas_runtime.db import Database
from jhaas_runtime.inbox import first_delivery
from jhaas_runtime.logs import correlation, get_logger
from jhaas_runtime.outbox import OutboxRelay, record_events
from jhaas_runtime.tables import MessagingTables
from jhaas_schemas.envelope import Event
from jhaas_schemas.streams import ALL_STREAMS, StreamDefinition, dead_letter_subject

log = get_logger(__name__)

# A handler changes the service's state inside `session` and returns the events it emits.
EventHandler = Callable[[AsyncSession, Event], Awaitable[Sequence[Event]]]


async def connect(url: str, name: str) -> NATS:
    async def on_error(exc: Exception) -> None:
        log.warning("nats error", error=str(exc))

    async def on_disconnect() -> None:
        log.warning("nats disconnected; reconnecting")

    return await nats.connect(
        servers=[u.strip() for u in url.split(",")],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
    )


def stream_config(definition: StreamDefinition, replicas: int) -> StreamConfig:
    return StreamConfig(
        name=definition.name,
        description=definition.description,
        subjects=list(definition.subjects),
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=definition.duplicate_window_seconds,
        max_age=definition.max_age_days * 86400,
    )


async def ensure_streams(
    js: JetStreamContext,
    replicas: int,
    definitions: Sequence[StreamDefinition] = ALL_STREAMS,
) -> None:
    """Create or update every stream; safe to run from every replica at every start."""
    for definition in definitions:
        config = stream_config(definition, replicas)
        try:
            await js.add_stream(config)
        except BadRequestError:
            # The stream exists with other settings (e.g. replicas changed): update it.
            await js.update_stream(config)


class _TypeOnly(msgspec.Struct):
    type: str = ""


@dataclass
class EventConsumer:
    """A durable pull consumer on one stream, for the event types it has handlers for."""

    name: str
    stream: str
    handlers: Mapping[type[Event], EventHandler]
    decode: Callable[[bytes], Event]
    max_deliver: int = 5
    ack_wait_seconds: float = 30.0
    backoff_seconds: Sequence[float] = (0.5, 2.0, 10.0, 30.0)
    batch_size: int = 32
    failpoints: frozenset[str] = frozenset()
    handled: int = field(default=0, init=False)
    dead_lettered: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._by_type = {t.type_name(): h for t, h in self.handlers.items()}

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.name,
            description=f"{self.name} on {self.stream}",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_seconds,
            # One more than we try, so that the last attempt's failure still
            # reaches our dead-letter step instead of being dropped by the server.
            max_deliver=self.max_deliver + 1,
            filter_subjects=sorted(self._by_type),
            max_ack_pending=1000,
        )

    async def ensure(self, js: JetStreamContext) -> None:
        config = self.consumer_config()
        try:
            await js.add_consumer(self.stream, config)
        except BadRequestError:
            await js.delete_consumer(self.stream, self.name)
            await js.add_consumer(self.stream, config)

    async def run(
        self,
        js: JetStreamContext,
        db: Database,
        tables: MessagingTables,
        relay: OutboxRelay,
    ) -> None:
        sub = await js.pull_subscribe_bind(durable=self.name, stream=self.stream)
        while True:
            try:
                messages = await sub.fetch(self.batch_size, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue
            except NotFoundError:
                log.warning("consumer vanished; recreating", consumer=self.name)
                await self.ensure(js)
                sub = await js.pull_subscribe_bind(durable=self.name, stream=self.stream)
                continue
            for msg in messages:
                await self.handle(msg, js, db, tables, relay)

    async def handle(
        self,
        msg: Msg,
        js: JetStreamContext,
        db: Database,
        tables: MessagingTables,
        relay: OutboxRelay,
    ) -> None:
        deliveries = msg.metadata.num_delivered or 1
        try:
            handler = self._by_type.get(msgspec.json.decode(msg.data, type=_TypeOnly).type)
            if handler is None:
                await msg.ack()  # a type this consumer does not handle (e.g. a newer version)
                return
            event = self.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self._dead_letter(msg, js, f"undecodable: {exc}", deliveries)
            return
        with correlation(event.correlation_id, event_id=event.event_id, consumer=self.name):
            try:
                emitted = await self._apply(event, handler, db, tables)
            except Exception as exc:
                if deliveries >= self.max_deliver:
                    log.error("handler failed for the last time", exc_info=True)
                    await self._dead_letter(msg, js, f"handler failed: {exc!r}", deliveries)
                else:
                    delay = self.backoff_seconds[min(deliveries, len(self.backoff_seconds)) - 1]
                    log.warning("handler failed; redelivering", delay=delay, exc_info=True)
                    await msg.nak(delay=delay)
                return
            failpoints.hit(self.failpoints, failpoints.CONSUMER_AFTER_COMMIT)
            await msg.ack()
            self.handled += 1
            if emitted:
                relay.notify()

    async def _apply(
        self, event: Event, handler: EventHandler, db: Database, tables: MessagingTables
    ) -> bool:
        try:
            async with db.transaction() as session:
                if not await first_delivery(
                    session, tables.inbox, self.name, event.event_id, event.subject
                ):
                    log.info("duplicate event skipped")
                    return False
                emitted = await handler(session, event)
                await record_events(session, tables.outbox, *emitted)
                return bool(emitted)
        except IntegrityError:
            # Another replica handled the same event at the same moment.
            async with db.reading() as session:
                claimed = await session.scalar(
                    sa.select(sa.func.count()).where(
                        tables.inbox.c.consumer == self.name,
                        tables.inbox.c.event_id == event.event_id,
                    )
                )
            if claimed:
                return False
            raise

    async def _dead_letter(self, msg: Msg, js: JetStreamContext, reason: str, n: int) -> None:
        headers = dict(msg.headers or {})
        headers.update(
            {
                "jhaas-dead-letter-reason": reason[:500],
                "jhaas-deliveries": str(n),
                "jhaas-original-subject": msg.subject,
                "Nats-Msg-Id": f"dlq-{self.name}-{msg.metadata.sequence.stream}",
            }
        )
        await js.publish(dead_letter_subject(self.name, msg.subject), msg.data, headers=headers)
        await msg.term()
        self.dead_lettered += 1
        log.error("event sent to dead letter", reason=reason, subject=msg.subject)


async def run_forever(coro: Callable[[], Awaitable[None]], name: str) -> None:
    """Keep a background loop alive: log and restart it after an unexpected error."""
    while True:
        try:
            await coro()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop crashed; restarting", loop=name)
            await asyncio.sleep(1.0)
