"""A consumer with a batch handler, on a real JetStream and real databases: the
consecutive events of one type come in one call, in order, every event keeps
its own outcome (its effect, what it emits, a duplicate skipped), a failing
event rolls its batch back and fails alone, and the service hears of a batch
only once it committed."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import create_streams, eventually, publish, sample_submitted
from jhaas_runtime.messaging import EventConsumer
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import Event, envelope
from jhaas_schemas.events import RequestCancelled, RequestSubmitted, RequestWithdrawn, decode_event
from jhaas_schemas.streams import REQUEST_STREAM

sys.path.insert(0, str(Path(__file__).parent))
import counter_service

pytestmark = pytest.mark.integration

effects = counter_service.effects


class Batched:
    """RequestSubmitted in batches (one INSERT each), RequestWithdrawn one by one."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []  # the request ids of each call, per call
        self.committed_at_hook: list[list[str]] = []
        self.runtime: ServiceRuntime | None = None

    def submitted(self, conn: Connection, events: Sequence[Event]) -> list[Sequence[Event]]:
        batch = [e for e in events if isinstance(e, RequestSubmitted)]
        self.calls.append([e.request_id for e in batch])
        if any(e.spec.title.startswith("fail") for e in batch):
            raise RuntimeError("this handler fails for titles starting with 'fail'")
        now = datetime.now(UTC)
        conn.execute(
            effects.insert(), [{"request_id": e.request_id, "handled_at": now} for e in batch]
        )
        return [self._emitted(e) for e in batch]

    @staticmethod
    def _emitted(event: RequestSubmitted) -> Sequence[Event]:
        if not event.spec.title.startswith("emit"):
            return ()
        caused = envelope(
            source="counter-svc", correlation_id=event.correlation_id, causation_id=event.event_id
        )
        return (RequestCancelled(**caused, request_id=event.request_id, cancelled_by="u"),)

    def withdrawn(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestWithdrawn)
        self.calls.append([f"withdrawn:{event.request_id}"])
        handled = {"request_id": f"withdrawn:{event.request_id}", "handled_at": datetime.now(UTC)}
        conn.execute(effects.insert(), handled)
        return ()

    def after_batch(self) -> None:
        assert self.runtime is not None
        # Another connection: it sees only what was committed.
        with self.runtime.db.engine.connect() as conn:
            self.committed_at_hook.append(effect_ids(conn))


def effect_ids(conn: Connection) -> list[str]:
    return list(conn.scalars(sa.select(effects.c.request_id).order_by(effects.c.id)))


@pytest.fixture
async def batched(
    settings_for: Callable[..., RuntimeSettings], nats_server: NatsServer
) -> AsyncIterator[tuple[Batched, ServiceRuntime, nats.NATS]]:
    handlers = Batched()
    runtime = ServiceRuntime(
        settings_for(counter_service.SERVICE, max_deliver=2),
        metadata=counter_service.metadata,
        tables=counter_service.messaging,
        versions_dir=Path(counter_service.__file__).parent / "counter_migrations",
    )
    runtime.add_consumer(
        EventConsumer(
            name=counter_service.CONSUMER,
            stream=REQUEST_STREAM.name,
            handlers={RequestWithdrawn: handlers.withdrawn},
            batch_handlers={RequestSubmitted: handlers.submitted},
            decode=decode_event,
            after_batch=handlers.after_batch,
        )
    )
    runtime.consumers[0].backoff_seconds = (0.05,)
    handlers.runtime = runtime
    await create_streams(nats_server.url)
    nc = await nats.connect(nats_server.url)
    try:
        yield handlers, runtime, nc
    finally:
        await nc.close()
        await runtime.stop()


def withdrawn(request_id: str) -> RequestWithdrawn:
    return RequestWithdrawn(
        **envelope(source="test", correlation_id=f"corr-{request_id}"),
        request_id=request_id,
        leader_id="u-leader",
    )


async def settled(runtime: ServiceRuntime, count: int) -> None:
    consumer = runtime.consumers[0]

    async def done() -> bool:
        return consumer.handled + consumer.duplicates + consumer.dead_lettered >= count

    await eventually(done)


async def test_consecutive_events_of_a_type_come_together_and_keep_their_own_outcome(
    batched: tuple[Batched, ServiceRuntime, nats.NATS],
) -> None:
    handlers, runtime, nc = batched
    js = nc.jetstream()
    first = sample_submitted("s1")
    emitting = sample_submitted("s5", title="emit a cancellation")
    # All in the stream before the consumer starts: one fetched batch.
    for event in (first, sample_submitted("s2"), withdrawn("w3"), sample_submitted("s4")):
        await publish(js, event)
    await publish(js, first, msg_id="a-copy")  # a duplicate between two of one run
    for event in (emitting, sample_submitted("s6")):
        await publish(js, event)
    await runtime.start()
    await settled(runtime, 7)

    order = ["s1", "s2", "withdrawn:w3", "s4", "s5", "s6"]
    assert handlers.calls == [["s1", "s2"], ["withdrawn:w3"], ["s4", "s5", "s6"]]
    assert await runtime.db.read(effect_ids) == order
    consumer = runtime.consumers[0]
    assert (consumer.handled, consumer.duplicates, consumer.dead_lettered) == (6, 1, 0)
    # The hook ran once the batch was committed, not before.
    assert handlers.committed_at_hook[0] == order

    outbox = runtime.tables.outbox
    rows = await runtime.db.read(
        lambda conn: conn.execute(sa.select(outbox.c.payload)).scalars().all()
    )
    [cancelled] = [decode_event(row) for row in rows]
    assert isinstance(cancelled, RequestCancelled)
    assert (cancelled.request_id, cancelled.causation_id) == ("s5", emitting.event_id)


async def test_a_failing_event_rolls_its_batch_back_and_fails_alone(
    batched: tuple[Batched, ServiceRuntime, nats.NATS],
) -> None:
    handlers, runtime, nc = batched
    js = nc.jetstream()
    for event in (
        sample_submitted("s1"),
        sample_submitted("s2", title="fail always"),
        sample_submitted("s3"),
    ):
        await publish(js, event)
    await runtime.start()
    await settled(runtime, 3)

    # The batch, then each event in its own transaction; s2 again when redelivered.
    assert handlers.calls[:4] == [["s1", "s2", "s3"], ["s1"], ["s2"], ["s3"]]
    assert set(map(tuple, handlers.calls[4:])) == {("s2",)}
    assert await runtime.db.read(effect_ids) == ["s1", "s3"]
    consumer = runtime.consumers[0]
    assert (consumer.handled, consumer.dead_lettered) == (2, 1)
    assert handlers.committed_at_hook[0] == ["s1", "s3"]


def test_a_type_with_two_handlers_is_refused() -> None:
    def one(conn: Connection, event: Event) -> Sequence[Event]:
        return ()

    def many(conn: Connection, events: Sequence[Event]) -> list[Sequence[Event]]:
        return [() for _ in events]

    with pytest.raises(ValueError, match="two handlers for \\['RequestSubmitted'\\]"):
        EventConsumer(
            name="c",
            stream=REQUEST_STREAM.name,
            handlers={RequestSubmitted: one},
            batch_handlers={RequestSubmitted: many},
            decode=decode_event,
        )
