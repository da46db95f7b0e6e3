"""Inbox: a consumer records each handled event id in the same transaction as
its effect, so a redelivered event has exactly one effect.

The ids are kept for a retention (`JHAAS_INBOX_RETENTION_DAYS`, 30 days) and
then purged, so the table follows the traffic of the last weeks, not the
product's whole history. What can bring an id back to a consumer, and why the
retention covers it:

1. JetStream redelivers an unacked message: at most `max_deliver + 1` times,
   each after at most the ack wait or the longest backoff (`shortest_retention`);
   a message left unacked by a service that is down comes back when it returns.
2. The outbox relay republishes a row after a crash between publish and mark:
   the stream drops the copy inside its 10-minute duplicate window, but a relay
   that restarts later (a service down for hours) publishes a copy the stream
   keeps, and only the inbox stands in its way.
3. A durable consumer that vanished is recreated: from the stream's beginning
   it would replay up to 365 days of events whose ids are long purged. So a
   consumer whose inbox shows that it existed before starts a little less
   than the retention ago (`replay_window_for`), where every id is still here;
   only a consumer that never handled anything starts at the beginning. Once
   a consumer's last ids are purged, a marker row keeps that knowledge.

So the retention must be longer than any service may stay down: 1 and 2 bring
an id back when the service that holds or republishes it returns.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from jhaas_runtime.db import Database, insert_for
from jhaas_runtime.logs import get_logger
from jhaas_schemas.streams import EVENT_STREAMS

log = get_logger(__name__)

DEFAULT_RETENTION = timedelta(days=30)
# Pauses before the 2nd, 3rd, ... delivery of an event whose handler failed.
REDELIVERY_BACKOFF_SECONDS = (0.5, 2.0, 10.0, 30.0)
# The row that says "this consumer handled events before" once its ids are purged;
# never an event id (those are UUIDs) and never purged.
HISTORY_MARKER = "~handled-before"


def shortest_retention(max_deliver: int, ack_wait_seconds: float) -> timedelta:
    """The time within which an id comes back by itself while the services run:
    the streams' duplicate window plus the redelivery span."""
    window = max(s.duplicate_window_seconds for s in EVENT_STREAMS)
    per_delivery = ack_wait_seconds + max(REDELIVERY_BACKOFF_SECONDS)
    return timedelta(seconds=window + (max_deliver + 1) * per_delivery)


def replay_window_for(retention: timedelta) -> timedelta:
    """How far back a recreated consumer with history starts: 1% of the retention
    (7 hours of 30 days) inside what the inbox still holds, so that an event
    replayed near that edge is handled long before the hourly purge reaches its
    id, and NATS's and the service's clocks may disagree by that much."""
    return retention - retention / 100


DEFAULT_REPLAY_WINDOW = replay_window_for(DEFAULT_RETENTION)


# One claim statement per inbox table and dialect, built on first use (each
# service has its own tables), so that SQLAlchemy compiles it once; a
# `.values(rows)` built per batch was compiled again every time, and cost ~5x
# as much CPU per event.
_claims: dict[tuple[sa.Table, str], sa.Executable] = {}


def _claim(conn: Connection, inbox: sa.Table) -> sa.Executable:
    key = (inbox, conn.dialect.name)
    claim = _claims.get(key)
    if claim is None:
        claim = _claims[key] = (
            _claim_listed(inbox)
            if conn.dialect.name == "postgresql"
            else insert_for(conn, inbox)
            .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
            .returning(inbox.c.event_id)
        )
    return claim


def _claim_listed(inbox: sa.Table) -> sa.Executable:
    """PostgreSQL: the ids and subjects as two array parameters (unnest), so the
    statement's text is the same for every batch. With a placeholder per value
    (SQLAlchemy's multi-row INSERT, as on SQLite) it is long and changes with
    the batch's size, and psycopg converts the placeholders of such a text
    anew every time."""
    text_array = postgresql.ARRAY(sa.String)
    listed = (
        sa.func.unnest(
            sa.bindparam("event_ids", type_=text_array),
            sa.bindparam("subjects", type_=text_array),
        )
        .table_valued("event_id", "subject")
        .render_derived(name="listed")
    )
    rows = sa.select(
        sa.bindparam("consumer", type_=inbox.c.consumer.type),
        listed.c.event_id,
        listed.c.subject,
        sa.bindparam("handled_at", type_=inbox.c.handled_at.type),
    )
    return (
        postgresql.insert(inbox)
        .from_select(["consumer", "event_id", "subject", "handled_at"], rows)
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
        .returning(inbox.c.event_id)
    )


def first_deliveries(
    conn: Connection, inbox: sa.Table, consumer: str, events: Sequence[tuple[str, str]]
) -> set[str]:
    """Claim events (id, subject) for this consumer in one statement; returns
    the ids never handled before.

    INSERT ... ON CONFLICT DO NOTHING RETURNING: only the rows inserted come
    back. On PostgreSQL a replica claiming the same event at the same moment
    waits for the first one's commit and then sees the conflict, so exactly
    one of them applies the effect.
    """
    if not events:
        return set()
    now = datetime.now(UTC)
    subjects = dict(events)
    claim = _claim(conn, inbox)
    if conn.dialect.name == "postgresql":
        listed = {
            "consumer": consumer,
            "event_ids": list(subjects),
            "subjects": list(subjects.values()),
            "handled_at": now,
        }
        return set(conn.scalars(claim, listed))
    # Executed with a list of rows, SQLAlchemy sends multi-row INSERTs pasted
    # into SQL it compiled once ("insertmanyvalues").
    rows = [
        {"consumer": consumer, "event_id": event_id, "subject": subject, "handled_at": now}
        for event_id, subject in subjects.items()
    ]
    return set(conn.scalars(claim, rows))


def first_delivery(
    conn: Connection, inbox: sa.Table, consumer: str, event_id: str, subject: str
) -> bool:
    """Claim one event for this consumer; False when it was handled before."""
    return bool(first_deliveries(conn, inbox, consumer, [(event_id, subject)]))


def _has_history(conn: Connection, inbox: sa.Table, consumer: str) -> bool:
    found = conn.scalar(sa.select(inbox.c.event_id).where(inbox.c.consumer == consumer).limit(1))
    return found is not None


async def has_history(db: Database, inbox: sa.Table, consumer: str) -> bool:
    """Whether this consumer handled an event before (an id or the marker is kept)."""
    return await db.read(_has_history, inbox, consumer)


class InboxPurge:
    """Deletes ids handled longer than `retention` ago, every `every`, in batches
    of `batch_size` rows, each its own short transaction with a pause between
    them, so that on SQLite the service's writers are never held up for long."""

    def __init__(
        self,
        db: Database,
        inbox: sa.Table,
        retention: timedelta,
        *,
        batch_size: int = 1000,
        pause: float = 0.05,
        every: timedelta = timedelta(hours=1),
    ) -> None:
        self._db = db
        self._inbox = inbox
        self.retention = retention
        self._batch_size = batch_size
        self._pause = pause
        self._every = every
        self.purged = 0  # rows deleted since start
        self.longest_batch = 0.0  # seconds: the longest a batch held the write lock

    async def purge(self) -> int:
        """Delete every id older than the retention; returns how many."""
        cutoff = datetime.now(UTC) - self.retention
        total = 0
        while True:
            began = time.perf_counter()
            deleted = await self._purge_batch(cutoff)
            self.longest_batch = max(self.longest_batch, time.perf_counter() - began)
            total += deleted
            if deleted < self._batch_size:
                break
            await asyncio.sleep(self._pause)
        self.purged += total
        return total

    async def _purge_batch(self, cutoff: datetime) -> int:
        c = self._inbox.c
        batch = (
            sa.select(c.consumer, c.event_id)
            .where(c.handled_at < cutoff, c.event_id != HISTORY_MARKER)
            .limit(self._batch_size)
        )
        if not self._db.is_sqlite:
            # Replicas purging at the same moment take different rows instead of queueing.
            batch = batch.with_for_update(skip_locked=True)

        def purge(conn: Connection) -> int:
            consumers = conn.scalars(
                self._inbox.delete()
                .where(sa.tuple_(c.consumer, c.event_id).in_(batch))
                .returning(c.consumer)
            ).all()
            for consumer in sorted(set(consumers)):
                conn.execute(
                    insert_for(conn, self._inbox)
                    .values(
                        consumer=consumer,
                        event_id=HISTORY_MARKER,
                        subject="",
                        handled_at=datetime.now(UTC),
                    )
                    .on_conflict_do_nothing(index_elements=[c.consumer, c.event_id])
                )
            return len(consumers)

        return await self._db.write(purge)

    async def run(self) -> None:
        """Purge at start and then every `every`; a failure waits for the next turn."""
        while True:
            try:
                purged = await self.purge()
                if purged:
                    log.info("inbox purged", rows=purged, retention=str(self.retention))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("inbox purge failed; will try again", exc_info=True)
            await asyncio.sleep(self._every.total_seconds())
