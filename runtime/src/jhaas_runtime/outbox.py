"""Transactional outbox: an event is stored in the same transaction as the
state change that caused it, and a relay publishes it to JetStream with
``Nats-Msg-Id = event_id`` so a republish after a crash is dropped as a
duplicate by the stream."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from nats.js import JetStreamContext
from sqlalchemy.engine import Connection

from jhaas_runtime import failpoints
from jhaas_runtime.aio import wait_event
from jhaas_runtime.alive import Heartbeat
from jhaas_runtime.db import Database, on_loop
from jhaas_runtime.logs import get_logger
from jhaas_schemas.envelope import Event, cloudevents_headers
from jhaas_schemas.events import encode_event

log = get_logger(__name__)

# How long a batch waits for its PubAcks before it counts as failed (and is retried).
PUBLISH_TIMEOUT_SECONDS = 10.0


def record_events(conn: Connection, outbox: sa.Table, *events: Event) -> None:
    """Add events to the outbox inside the caller's transaction (one statement)."""
    if not events:
        return
    now = datetime.now(UTC)
    conn.execute(
        outbox.insert(),
        [
            {
                "event_id": e.event_id,
                "subject": e.subject,
                "payload": encode_event(e),
                "headers": cloudevents_headers(e),
                "created_at": now,
                "published_at": None,
            }
            for e in events
        ],
    )


class OutboxRelay:
    """Publishes unpublished outbox rows in order; wakes on `notify()` or every `poll_interval`."""

    def __init__(
        self,
        db: Database,
        outbox: sa.Table,
        js: JetStreamContext,
        *,
        batch_size: int = 100,
        poll_interval: float = 1.0,
        keep_published: timedelta = timedelta(days=7),
        failpoints: frozenset[str] = frozenset(),
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._failpoints = failpoints
        # Touched on every pass: the workers' liveness probe (jhaas_runtime.alive).
        self._heartbeat = heartbeat or Heartbeat(None, "outbox-relay")
        self._db = db
        self._outbox = outbox
        self._js = js
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._keep_published = keep_published
        self._wake = asyncio.Event()
        self.published = 0
        self._pending_query = (
            sa.select(outbox.c.seq, outbox.c.subject, outbox.c.payload, outbox.c.headers)
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(batch_size)
        )

    def notify(self) -> None:
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows it published."""
        if self._db.is_sqlite:
            # SQLite has one writer: read, publish, then mark in a short write,
            # so that the service's own writes do not wait on NATS round trips.
            rows = await self._db.read(self._pending, lock=False)
            await self._publish(rows)
            if rows:
                failpoints.hit(self._failpoints, failpoints.AFTER_PUBLISH)
                await self._db.write(self._mark_published, rows)
        else:
            # Replicas share the work; a row another relay holds is skipped, not
            # waited for. The rows stay locked while they are published: the
            # unit waits in its thread for the publishing done on the loop.
            loop = asyncio.get_running_loop()

            def claim_publish_mark(conn: Connection) -> list[Any]:
                claimed = self._pending(conn, lock=True)
                on_loop(loop, self._publish(claimed))
                if claimed:
                    failpoints.hit(self._failpoints, failpoints.AFTER_PUBLISH)
                self._mark_published(conn, claimed)
                return claimed

            rows = await self._db.write(claim_publish_mark)
        self.published += len(rows)
        return len(rows)

    def _pending(self, conn: Connection, *, lock: bool) -> list[Any]:
        query = self._pending_query
        if lock:
            query = query.with_for_update(skip_locked=True)
        return list(conn.execute(query).all())

    async def _publish(self, rows: Sequence[Any]) -> None:
        """Publish in order, sending each message without waiting for the
        previous one's PubAck: NATS keeps one connection's messages in order,
        so the stream stores them in the rows' order. A failure is raised once
        every ack is in or the time is up; nothing is marked then, and what did
        reach the stream is dropped there when published again (Nats-Msg-Id
        is the event id, inside the stream's duplicate window)."""
        acks: list[asyncio.Future[Any]] = []
        try:
            for row in rows:
                acks.append(
                    await self._js.publish_async(
                        row.subject, row.payload, headers=dict(row.headers)
                    )
                )
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                results = await asyncio.gather(*acks, return_exceptions=True)
        finally:
            for ack in acks:
                ack.cancel()  # a no-op for those answered; frees the client's slot of the rest
        for result in results:
            if isinstance(result, BaseException):
                raise result

    def _mark_published(self, conn: Connection, rows: Sequence[Any]) -> None:
        if rows:
            conn.execute(
                self._outbox.update()
                .where(self._outbox.c.seq.in_([r.seq for r in rows]))
                .values(published_at=datetime.now(UTC))
            )

    async def purge_published(self) -> None:
        cutoff = datetime.now(UTC) - self._keep_published

        def purge(conn: Connection) -> None:
            conn.execute(self._outbox.delete().where(self._outbox.c.published_at < cutoff))

        await self._db.write(purge)

    async def run(self) -> None:
        last_purge = datetime.min.replace(tzinfo=UTC)
        while True:
            try:
                while await self.publish_pending() == self._batch_size:
                    pass
                if datetime.now(UTC) - last_purge > timedelta(hours=1):
                    await self.purge_published()
                    last_purge = datetime.now(UTC)
            except asyncio.CancelledError:
                raise
            except Exception:
                # NATS or the database is away for a moment: the rows stay and are retried.
                log.warning("outbox relay could not publish; will retry", exc_info=True)
            self._heartbeat.beat()
            await wait_event(self._wake, self._poll_interval)
            self._wake.clear()
