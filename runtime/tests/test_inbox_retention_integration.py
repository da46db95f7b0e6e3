"""The inbox forgets ids after the retention, and forgetting never lets an event
apply twice: a copy that comes back within the retention is still skipped, and
a consumer that vanished and is recreated does not replay what it forgot.
Real NATS JetStream, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nats
import pytest
import sqlalchemy as sa
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from sqlalchemy.engine import Connection

from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually, publish, sample_submitted
from jhaas_runtime.db import Database
from jhaas_runtime.inbox import HISTORY_MARKER, InboxPurge, first_delivery
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.streams import REQUEST_STREAM

sys.path.insert(0, str(Path(__file__).parent))
import counter_service

pytestmark = pytest.mark.integration

inbox = counter_service.messaging.inbox
RETENTION = timedelta(days=30)
# Short enough for a test to wait it out; only the consumer tests use it.
SHORT = timedelta(seconds=2)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    versions = Path(counter_service.__file__).parent / "counter_migrations"
    await upgrade_to_head(database, counter_service.metadata, versions)
    yield database
    await database.dispose()


async def handled(db: Database, consumer: str, count: int, *, days_ago: float) -> list[str]:
    """`count` ids claimed by `consumer`, dated `days_ago`."""
    ids = [str(uuid.uuid4()) for _ in range(count)]

    def claim(conn: Connection) -> None:
        for event_id in ids:
            assert first_delivery(conn, inbox, consumer, event_id, "s")
        conn.execute(
            inbox.update()
            .where(inbox.c.event_id.in_(ids))
            .values(handled_at=datetime.now(UTC) - timedelta(days=days_ago))
        )

    await db.write(claim)
    return ids


async def remembered(db: Database) -> dict[str, set[str]]:
    rows = await db.read(
        lambda conn: conn.execute(sa.select(inbox.c.consumer, inbox.c.event_id)).all()
    )
    found: dict[str, set[str]] = {}
    for consumer, event_id in rows:
        found.setdefault(consumer, set()).add(event_id)
    return found


async def claim_again(db: Database, consumer: str, event_id: str) -> bool:
    return await db.write(first_delivery, inbox, consumer, event_id, "s")


async def test_purge_forgets_ids_older_than_the_retention_and_keeps_the_rest(db: Database) -> None:
    old = await handled(db, "a", 2500, days_ago=31)  # more than two batches
    old_b = await handled(db, "b", 3, days_ago=400)
    recent = await handled(db, "a", 5, days_ago=29)
    only_recent = await handled(db, "c", 2, days_ago=0)

    purge = InboxPurge(db, inbox, RETENTION, batch_size=1000, pause=0)
    assert await purge.purge() == 2503
    assert await remembered(db) == {
        "a": {*recent, HISTORY_MARKER},
        "b": {HISTORY_MARKER},  # it handled events before: a recreated consumer must know
        "c": set(only_recent),
    }
    assert await purge.purge() == 0  # the markers stay
    assert not await claim_again(db, "a", recent[0])  # still a duplicate
    assert await claim_again(db, "a", old[0])  # forgotten: older than anything that returns
    assert await claim_again(db, "b", old_b[0])


async def test_replicas_purging_at_once_share_the_rows(db: Database, database_url: str) -> None:
    await handled(db, "a", 3000, days_ago=40)
    recent = await handled(db, "a", 10, days_ago=1)
    replica = Database(database_url)
    try:
        purges = [
            InboxPurge(d, inbox, RETENTION, batch_size=200, pause=0) for d in (db, replica, db)
        ]
        counts = await asyncio.gather(*(p.purge() for p in purges))
    finally:
        await replica.dispose()
    assert sum(counts) == 3000
    assert await remembered(db) == {"a": {*recent, HISTORY_MARKER}}


# -- through a running service ------------------------------------------------


async def jetstream(url: str) -> tuple[NATS, JetStreamContext]:
    nc = await nats.connect(url)
    return nc, nc.jetstream()


async def effects(db: Database, request_id: str) -> int:
    table = counter_service.effects
    query = sa.select(sa.func.count()).where(table.c.request_id == request_id)
    return int(await db.read(lambda conn: conn.scalar(query.select_from(table))) or 0)


async def acked(js: JetStreamContext) -> int:
    info = await js.consumer_info(REQUEST_STREAM.name, counter_service.CONSUMER)
    return int(info.ack_floor.stream_seq if info.ack_floor else 0)


async def consumer_exists(js: JetStreamContext) -> bool:
    try:
        await js.consumer_info(REQUEST_STREAM.name, counter_service.CONSUMER)
    except nats.js.errors.NotFoundError:
        return False
    return True


class Counters:
    """Starts the counter service (and stops what is still running at the end)."""

    def __init__(self, settings_for: Callable[..., RuntimeSettings]) -> None:
        self._settings_for = settings_for
        self.running: list[ServiceRuntime] = []

    async def start(self, retention: timedelta) -> ServiceRuntime:
        settings = self._settings_for(counter_service.SERVICE, inbox_retention=retention)
        runtime = counter_service.build(settings)
        await runtime.start()
        self.running.append(runtime)
        return runtime

    async def stop(self, runtime: ServiceRuntime) -> None:
        self.running.remove(runtime)
        await runtime.stop()


@pytest.fixture
async def counters(settings_for: Callable[..., RuntimeSettings]) -> AsyncIterator[Counters]:
    started = Counters(settings_for)
    yield started
    for runtime in list(started.running):
        await started.stop(runtime)


async def forgotten(runtime: ServiceRuntime) -> bool:
    """Purge; True once that deleted something (an id outlived the retention)."""
    return await runtime.inbox_purge.purge() > 0


async def test_a_copy_within_the_retention_is_skipped_after_a_purge(
    counters: Counters, nats_server: NatsServer
) -> None:
    runtime = await counters.start(RETENTION)
    nc, js = await jetstream(nats_server.url)
    event = sample_submitted("r-kept")
    await publish(js, event, msg_id="first")
    await eventually(lambda: effects(runtime.db, "r-kept"), lambda n: n == 1)
    await handled(runtime.db, counter_service.CONSUMER, 50, days_ago=31)
    assert await runtime.inbox_purge.purge() == 50
    # A relay that came back after the duplicate window republishes it.
    await publish(js, event, msg_id="second")
    await eventually(lambda: acked(js), lambda n: n == 2)
    assert await effects(runtime.db, "r-kept") == 1
    assert runtime.consumers[0].duplicates == 1
    await nc.close()


async def test_a_consumer_that_vanishes_is_recreated_without_replaying_forgotten_events(
    counters: Counters, nats_server: NatsServer
) -> None:
    runtime = await counters.start(SHORT)
    nc, js = await jetstream(nats_server.url)
    await publish(js, sample_submitted("r-old"))
    await eventually(lambda: effects(runtime.db, "r-old"), lambda n: n == 1)
    await eventually(lambda: forgotten(runtime), timeout=30)
    await js.delete_consumer(REQUEST_STREAM.name, counter_service.CONSUMER)
    # The running service notices and creates it again.
    await eventually(lambda: consumer_exists(js), timeout=30)
    await publish(js, sample_submitted("r-new"))
    await eventually(lambda: effects(runtime.db, "r-new"), lambda n: n == 1)
    # r-old precedes r-new in the stream: a replay would have applied it by now.
    assert await effects(runtime.db, "r-old") == 1
    await nc.close()


async def test_a_consumer_recreated_at_start_does_not_replay_forgotten_events(
    counters: Counters, nats_server: NatsServer
) -> None:
    runtime = await counters.start(SHORT)
    nc, js = await jetstream(nats_server.url)
    await publish(js, sample_submitted("r-old"))
    await eventually(lambda: effects(runtime.db, "r-old"), lambda n: n == 1)
    await eventually(lambda: forgotten(runtime), timeout=30)
    await counters.stop(runtime)
    await js.delete_consumer(REQUEST_STREAM.name, counter_service.CONSUMER)

    runtime = await counters.start(SHORT)
    await publish(js, sample_submitted("r-new"))
    await eventually(lambda: effects(runtime.db, "r-new"), lambda n: n == 1)
    assert await effects(runtime.db, "r-old") == 1
    await nc.close()


async def test_a_consumer_without_history_starts_at_the_beginning_of_the_stream(
    counters: Counters, nats_server: NatsServer
) -> None:
    runtime = await counters.start(SHORT)  # creates the consumer; it handles nothing
    await counters.stop(runtime)
    nc, js = await jetstream(nats_server.url)
    await js.delete_consumer(REQUEST_STREAM.name, counter_service.CONSUMER)
    await publish(js, sample_submitted("r-1"))
    await publish(js, sample_submitted("r-2"))
    published = datetime.now(UTC)

    async def outlived_retention() -> bool:
        return datetime.now(UTC) > published + SHORT

    await eventually(outlived_retention)
    runtime = await counters.start(SHORT)
    await eventually(lambda: effects(runtime.db, "r-2"), lambda n: n == 1)
    assert await effects(runtime.db, "r-1") == 1
    await nc.close()


async def test_a_consumer_created_with_a_start_keeps_it_at_every_later_start(
    counters: Counters, nats_server: NatsServer
) -> None:
    runtime = await counters.start(RETENTION)
    consumer = runtime.consumers[0]
    await counters.stop(runtime)
    nc, js = await jetstream(nats_server.url)
    await js.delete_consumer(REQUEST_STREAM.name, consumer.name)
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    await consumer.ensure(js, replay_from=since)  # as a start with history does
    before = await js.consumer_info(REQUEST_STREAM.name, consumer.name)

    # This start asks for the stream's beginning, which JetStream cannot apply
    # to an existing consumer: the consumer must be left as it is, not deleted
    # and created again at every start.
    runtime = await counters.start(RETENTION)
    await publish(js, sample_submitted("r-1"))
    await eventually(lambda: effects(runtime.db, "r-1"), lambda n: n == 1)
    after = await js.consumer_info(REQUEST_STREAM.name, consumer.name)
    assert after.created == before.created
    assert after.config.opt_start_time == since
    await nc.close()
