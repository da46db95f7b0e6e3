"""NATS connection, idempotent JetStream set-up, and durable event consumers.

A consumer claims each event in the service's inbox in the same database
transaction as its effect and the events it emits (outbox), then acks. A
failing handler is redelivered with backoff; an event that cannot be decoded,
or that still fails after `max_deliver` attempts, is copied to the
dead-letter stream and terminated, so the consumer goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import nats
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    ConsumerInfo,
    DeliverPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import (
    APIError,
    BadRequestError,
    NotFoundError,
    ServerError,
    ServiceUnavailableError,
)
from sqlalchemy.engine import Connection

from jhaas_runtime import failpoints
from jhaas_runtime.aio import wait_event
from jhaas_runtime.db import Database
from jhaas_runtime.inbox import (
    DEFAULT_REPLAY_WINDOW,
    REDELIVERY_BACKOFF_SECONDS,
    first_deliveries,
    has_history,
)
from jhaas_runtime.logs import correlation, get_logger
from jhaas_runtime.outbox import OutboxRelay, record_events
from jhaas_runtime.tables import MessagingTables
from jhaas_schemas.envelope import Event
from jhaas_schemas.streams import ALL_STREAMS, StreamDefinition, dead_letter_subject

log = get_logger(__name__)

# A refused request gets no answer at all: do not hold a start-up for long.
STREAM_UPDATE_TIMEOUT = 2.0
# JetStream's error codes for "stream not found" and "consumer not found".
STREAM_NOT_FOUND = 10059
CONSUMER_NOT_FOUND = 10014
MAX_STREAM_WAIT_PAUSE = 10.0

# A handler changes the service's state through `conn`, inside the consumer's
# transaction, and returns the events it emits. It runs in a database thread
# (jhaas_runtime.db): plain code, no awaiting.
EventHandler = Callable[[Connection, Event], Sequence[Event]]
# A batch handler is given the consecutive events of its type in a batch at
# once, in order, and returns what each of them emits (one sequence per event,
# in the same order), with the same effect as handling them one by one: so
# that a service stores a batch's rows with one statement. It binds the log
# correlation (`jhaas_runtime.logs.correlation`) itself around what it logs
# of one event.
BatchHandler = Callable[[Connection, Sequence[Event]], Sequence[Sequence[Event]]]


CLIENT_INBOX_PREFIX = "_INBOX"


def inbox_prefix(name: str) -> str:
    """Each process's replies arrive under its own name, so that NATS can let
    it read its own replies and nobody else's (see jhaas_launcher.natsauth)."""
    return f"{CLIENT_INBOX_PREFIX}.{name}"


async def connect(
    url: str, name: str, seed_file: Path | None = None, ca_file: Path | None = None
) -> NATS:
    """Connect as `name`, with this process's NKey seed when one is configured, over
    TLS verified against `ca_file` (the servers' CA) when one is."""

    async def on_error(exc: Exception) -> None:
        log.warning("nats error", error=str(exc))

    async def on_disconnect() -> None:
        # Also called on a clean close; a reconnect is logged by the client when it happens.
        log.info("nats disconnected")

    return await nats.connect(
        servers=[u.strip() for u in url.split(",")],
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        inbox_prefix=inbox_prefix(name),
        nkeys_seed=str(seed_file) if seed_file else None,
        tls=ssl.create_default_context(cafile=str(ca_file)) if ca_file else None,
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
    """Create or update every stream; safe to run from every replica at every start.

    A service's NATS credential may create its streams but not change them:
    a stream with other settings (e.g. replicas changed) is then left as it
    is, with a warning, until the operator applies them (`nats-streams`)."""
    for definition in definitions:
        config = stream_config(definition, replicas)
        try:
            await js.add_stream(config)
        except BadRequestError:
            try:
                async with asyncio.timeout(STREAM_UPDATE_TIMEOUT):
                    await js.update_stream(config)
            except (nats.errors.TimeoutError, TimeoutError, APIError) as exc:
                log.warning(
                    "the stream's settings differ from this version's and could not be "
                    "changed; apply them with the operator's credential "
                    "(python -m jhaas_launcher nats-streams)",
                    stream=definition.name,
                    error=str(exc) or type(exc).__name__,
                )


class _TypeOnly(msgspec.Struct):
    type: str = ""


@dataclass(frozen=True)
class _Outcome:
    emitted: bool = False
    duplicate: bool = False
    error: Exception | None = None


_DUPLICATE = _Outcome(duplicate=True)
_Work = tuple[Msg, str, Event]


def _one_by_one(handler: EventHandler) -> BatchHandler:
    """A per-event handler as a batch handler: each event under its own log correlation."""

    def handle(conn: Connection, events: Sequence[Event]) -> list[Sequence[Event]]:
        emitted = []
        for event in events:
            with correlation(event.correlation_id, event_id=event.event_id):
                emitted.append(handler(conn, event))
        return emitted

    return handle


def _deliveries(msg: Msg) -> int:
    return msg.metadata.num_delivered or 1


@dataclass
class EventConsumer:
    """A durable pull consumer on one stream, for the event types it has handlers
    (one event per call) or batch handlers (consecutive events of one type per
    call) for."""

    name: str
    stream: str
    handlers: Mapping[type[Event], EventHandler]
    decode: Callable[[bytes], Event]
    batch_handlers: Mapping[type[Event], BatchHandler] = field(default_factory=dict)
    # Called on the loop once a batch's units of work are over (committed, or
    # rolled back and applied one by one), before its messages are acked: to
    # tell another part of the service what the batch changed, which it must
    # not learn before the commit.
    after_batch: Callable[[], None] | None = None
    max_deliver: int = 5
    ack_wait_seconds: float = 30.0
    backoff_seconds: Sequence[float] = REDELIVERY_BACKOFF_SECONDS
    # Events fetched and applied per transaction. What a batch costs whatever
    # its size (a fetch round, a thread hop, the claim, a commit, a relay cycle)
    # is spread over more events: 128 instead of 32 took deployer-svc's CPU
    # per event from ~495 to ~405 us on SQLite and ~550 to ~475 on PostgreSQL
    # with one-by-one handlers, from ~370 to ~250 with its batch handler
    # (`./jhaas bench events`). A fetch returns what is there at once, never
    # waiting to fill the batch; on SQLite a full batch holds the write turn
    # for some 15-50 ms (a batch handler / one-by-one handlers).
    batch_size: int = 128
    failpoints: frozenset[str] = frozenset()
    # A consumer recreated after it vanished starts this long ago when its inbox
    # shows it existed before (jhaas_runtime.inbox: the ids still kept).
    replay_window: timedelta = DEFAULT_REPLAY_WINDOW
    handled: int = field(default=0, init=False)  # events applied (duplicates not counted)
    duplicates: int = field(default=0, init=False)  # redeliveries the inbox skipped
    busy: bool = field(default=False, init=False)  # applying a batch (not waiting in fetch)
    dead_lettered: int = field(default=0, init=False)
    ready: bool = field(default=False, init=False)  # the durable consumer exists

    def __post_init__(self) -> None:
        both = self.handlers.keys() & self.batch_handlers.keys()
        if both:
            raise ValueError(f"{self.name}: two handlers for {sorted(t.__name__ for t in both)}")
        self._by_type: dict[str, BatchHandler] = {
            **{t.type_name(): _one_by_one(h) for t, h in self.handlers.items()},
            **{t.type_name(): h for t, h in self.batch_handlers.items()},
        }

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

    async def ensure(self, js: JetStreamContext, *, replay_from: datetime | None = None) -> None:
        """Create the durable consumer, or update it in place (filter subjects,
        ack wait and max deliveries are editable; where it starts is not, so an
        existing consumer keeps its own). A new one starts at `replay_from`, or
        at the stream's beginning when None. A change the server cannot apply
        in place recreates it from the old one's ack floor, so the stream is
        not replayed from the start."""
        config = self.consumer_config()
        existing = await self._info(js)
        if existing is not None and existing.config.deliver_policy is not None:
            config.deliver_policy = existing.config.deliver_policy
            config.opt_start_seq = existing.config.opt_start_seq
            config.opt_start_time = existing.config.opt_start_time
        elif existing is None and replay_from is not None:
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = replay_from
            log.warning(
                "consumer created again; its inbox shows it existed before, so it "
                "replays only what the inbox still remembers",
                consumer=self.name,
                since=replay_from.isoformat(),
            )
        try:
            await js.add_consumer(self.stream, config)
        except (BadRequestError, ServerError):  # "... can not be updated"
            old = await js.consumer_info(self.stream, self.name)
            floor = old.ack_floor.stream_seq if old.ack_floor else 0
            await js.delete_consumer(self.stream, self.name)
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = (floor or 0) + 1
            config.opt_start_time = None
            await js.add_consumer(self.stream, config)
            log.warning(
                "consumer recreated", consumer=self.name, from_sequence=config.opt_start_seq
            )

    async def _info(self, js: JetStreamContext) -> ConsumerInfo | None:
        """The durable consumer, None when it does not exist (a missing stream raises)."""
        try:
            info: ConsumerInfo = await js.consumer_info(self.stream, self.name)
        except NotFoundError as exc:
            if exc.err_code != CONSUMER_NOT_FOUND:
                raise
            return None
        return info

    async def start_time(self, db: Database, tables: MessagingTables) -> datetime | None:
        """Where this consumer starts if it has to be created now: at the stream's
        beginning when it never handled an event (a new service, or a new
        consumer of an existing stream); else `replay_window` ago, since the
        stream keeps events far longer than the inbox keeps their ids."""
        if not await has_history(db, tables.inbox, self.name):
            return None
        start = datetime.now(UTC) - self.replay_window
        # The next whole second: replicas creating it at the same moment ask for
        # the same start, and never for one before what the inbox still holds.
        return start.replace(microsecond=0) + timedelta(seconds=1 if start.microsecond else 0)

    async def try_ensure(self, js: JetStreamContext, db: Database, tables: MessagingTables) -> bool:
        """`ensure()`, or False when the stream does not exist (yet)."""
        try:
            await self.ensure(js, replay_from=await self.start_time(db, tables))
        except NotFoundError as exc:
            if exc.err_code != STREAM_NOT_FOUND:
                raise
            return False
        self.ready = True
        return True

    async def wait_for_stream(
        self,
        js: JetStreamContext,
        db: Database,
        tables: MessagingTables,
        stopping: asyncio.Event,
    ) -> bool:
        """Create the consumer once its stream exists. The stream is created by
        the service that publishes into it, which may start later than we do
        (or be down): wait with growing pauses instead of failing. False when
        asked to stop first."""
        pause = 0.5
        while not await self.try_ensure(js, db, tables):
            if pause in (0.5, MAX_STREAM_WAIT_PAUSE):
                # Usual for a moment at a first start; a warning once it lasts.
                level = log.info if pause == 0.5 else log.warning
                level(
                    "waiting for the stream; the service that publishes into it creates it",
                    consumer=self.name,
                    stream=self.stream,
                )
            if await wait_event(stopping, pause):
                return False
            pause = min(pause * 2, MAX_STREAM_WAIT_PAUSE)
        if pause > 0.5:
            log.info("stream found; consumer ready", consumer=self.name, stream=self.stream)
        return True

    async def _vanished(self, js: JetStreamContext) -> bool:
        """Whether the durable consumer (or its stream) is gone; False when
        JetStream cannot say right now."""
        try:
            return await self._info(js) is None
        except NotFoundError:
            return True  # the stream itself
        except (APIError, nats.errors.Error, TimeoutError):
            return False

    async def run(
        self,
        js: JetStreamContext,
        db: Database,
        tables: MessagingTables,
        relay: OutboxRelay,
        stopping: asyncio.Event | None = None,
    ) -> None:
        """Fetch and apply batches until `stopping` is set (checked between batches,
        so a batch in hand is committed and acked before the loop ends)."""
        stopping = stopping or asyncio.Event()
        if not self.ready and not await self.wait_for_stream(js, db, tables, stopping):
            return
        sub = await js.pull_subscribe_bind(durable=self.name, stream=self.stream)
        try:
            while not stopping.is_set():
                try:
                    messages = await sub.fetch(self.batch_size, timeout=1.0)
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                except (NotFoundError, ServiceUnavailableError):
                    # A pull from a consumer that no longer exists finds no
                    # responder (503). The subscription pulls by name, so it
                    # serves the recreated consumer as well.
                    if not await self._vanished(js):
                        if await wait_event(stopping, 1.0):  # JetStream away for a moment
                            return
                        continue
                    log.warning("consumer vanished; recreating", consumer=self.name)
                    self.ready = False
                    if not await self.wait_for_stream(js, db, tables, stopping):
                        return
                    continue
                self.busy = True
                try:
                    await self.handle_batch(messages, js, db, tables, relay)
                finally:
                    self.busy = False
        finally:
            # Without this, draining the connection at shutdown waits for the
            # pull subscription's inbox until the drain timeout (30 s).
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def handle_batch(
        self,
        messages: Sequence[Msg],
        js: JetStreamContext,
        db: Database,
        tables: MessagingTables,
        relay: OutboxRelay,
    ) -> None:
        """Apply a fetched batch in one transaction, in one database thread call.

        The batch's events are claimed in the inbox with one statement and the
        events they emit go to the outbox with one more; no savepoint per
        event. When a handler fails (or the commit does), the whole batch is
        rolled back and its events are applied again one transaction each, so
        a bad event stays alone and is redelivered alone.
        """
        work = [item for msg in messages if (item := await self._decode(msg, js)) is not None]
        if not work:
            return
        events = [(type_name, event) for _msg, type_name, event in work]
        try:
            outcomes = await db.write(self._apply, events, tables)
        except Exception:
            log.info(
                "a batch could not be applied whole; applying its events one by one",
                consumer=self.name,
                exc_info=True,
            )
            outcomes = [await self._apply_one(item, db, tables) for item in events]
        finally:
            if self.after_batch is not None:
                self.after_batch()
        failpoints.hit(self.failpoints, failpoints.CONSUMER_AFTER_COMMIT)
        emitted = False
        for (msg, _type, event), outcome in zip(work, outcomes, strict=True):
            emitted |= await self._settle(msg, js, event, outcome)
        if emitted:
            relay.notify()

    async def _decode(self, msg: Msg, js: JetStreamContext) -> _Work | None:
        """The type and event of a message; None when it was settled here already."""
        try:
            type_name = msgspec.json.decode(msg.data, type=_TypeOnly).type
            if type_name not in self._by_type:
                await msg.ack()  # a type this consumer does not handle (e.g. a newer version)
                return None
            return msg, type_name, self.decode(msg.data)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await self._dead_letter(msg, js, f"undecodable: {exc}", _deliveries(msg))
            return None

    def _apply(
        self, conn: Connection, events: Sequence[tuple[str, Event]], tables: MessagingTables
    ) -> list[_Outcome]:
        """In a database thread: claim, apply, record what they emit. Raises
        (and so rolls everything back) when any handler raises.

        Consecutive new events of one type go to their handler in one call; a
        duplicate between them has no effect, so it does not split them."""
        new = first_deliveries(
            conn, tables.inbox, self.name, [(e.event_id, e.subject) for _t, e in events]
        )
        outcomes: list[_Outcome] = [_DUPLICATE] * len(events)
        runs: list[tuple[str, list[int]]] = []
        for i, (type_name, event) in enumerate(events):
            if event.event_id not in new:
                with correlation(event.correlation_id, event_id=event.event_id):
                    log.info("duplicate event skipped", consumer=self.name)
                continue
            new.discard(event.event_id)  # the same event twice in one batch
            if runs and runs[-1][0] == type_name:
                runs[-1][1].append(i)
            else:
                runs.append((type_name, [i]))
        emitted: list[Event] = []
        with structlog.contextvars.bound_contextvars(consumer=self.name):
            for type_name, indices in runs:
                results = self._by_type[type_name](conn, [events[i][1] for i in indices])
                if len(results) != len(indices):
                    raise ValueError(
                        f"the handler of {type_name} returned {len(results)} results "
                        f"for {len(indices)} events"
                    )
                for i, out in zip(indices, results, strict=True):
                    emitted.extend(out)
                    outcomes[i] = _Outcome(emitted=bool(out))
        record_events(conn, tables.outbox, *emitted)
        return outcomes

    async def _apply_one(
        self, item: tuple[str, Event], db: Database, tables: MessagingTables
    ) -> _Outcome:
        event = item[1]
        with correlation(event.correlation_id, event_id=event.event_id, consumer=self.name):
            try:
                [outcome] = await db.write(self._apply, [item], tables)
            except Exception as exc:
                return _Outcome(error=exc)
            return outcome

    async def _settle(
        self, msg: Msg, js: JetStreamContext, event: Event, outcome: _Outcome
    ) -> bool:
        """Ack, nak with backoff, or dead-letter; True when the event emitted events."""
        if outcome.error is None:
            # The usual case logs nothing, so binds no log correlation either.
            await msg.ack()
            self.handled += 0 if outcome.duplicate else 1
            self.duplicates += 1 if outcome.duplicate else 0
            return outcome.emitted
        deliveries = _deliveries(msg)
        with correlation(event.correlation_id, event_id=event.event_id, consumer=self.name):
            if deliveries >= self.max_deliver:
                log.error("handler failed for the last time", exc_info=outcome.error)
                await self._dead_letter(msg, js, f"handler failed: {outcome.error!r}", deliveries)
            else:
                delay = self.backoff_seconds[min(deliveries, len(self.backoff_seconds)) - 1]
                log.warning("handler failed; redelivering", delay=delay, exc_info=outcome.error)
                await msg.nak(delay=delay)
        return False

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


async def run_forever(
    coro: Callable[[], Awaitable[None]], name: str, stopping: asyncio.Event | None = None
) -> None:
    """Keep a background loop alive: log and restart it after an unexpected error,
    until it returns while `stopping` is set."""
    while True:
        try:
            await coro()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop crashed; restarting", loop=name)
        if stopping is not None and stopping.is_set():
            return
        # Also after a loop that returned by itself: restarting it at once could
        # spin without ever yielding (and so never see its cancellation).
        await asyncio.sleep(1.0)
