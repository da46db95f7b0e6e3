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
from sqlalchemy.ext.asyncio import AsyncSession

from jhaas_runtime import failpoints
from jhaas_runtime.aio import wait_event
from jhaas_runtime.db import Database
from jhaas_runtime.logs import get_logger
from jhaas_schemas.envelope import Event, cloudevents_headers
from jhaas_schemas.events import encode_event

log = get_logger(__name__)


async def record_events(session: AsyncSession, outbox: sa.Table, *events: Event) -> None:
    """Add events to the outbox inside the caller's transaction."""
    if not events:
        return
    now = datetime.now(UTC)
    await session.execute(
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
    ) -> None:
        self._failpoints = failpoints
        self._db = db
        self._outbox = outbox
        self._js = js
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._keep_published = keep_published
        self._wake = asyncio.Event()
        self.published = 0

    def notify(self) -> None:
        self._wake.set()

    async def publish_pending(self) -> int:
        """Publish one batch; returns how many rows it published."""
        query = (
            sa.select(
                self._outbox.c.seq,
                self._outbox.c.subject,
                self._outbox.c.payload,
                self._outbox.c.headers,
            )
            .where(self._outbox.c.published_at.is_(None))
            .order_by(self._outbox.c.seq)
            .limit(self._batch_size)
        )
        if self._db.is_sqlite:
            # SQLite has one writer: read, publish, then mark in a short write,
            # so that the service's own writes do not wait on NATS round trips.
            async with self._db.reading() as session:
                rows = (await session.execute(query)).all()
            await self._publish(rows)
            if rows:
                failpoints.hit(self._failpoints, failpoints.AFTER_PUBLISH)
                async with self._db.transaction() as session:
                    await self._mark_published(session, rows)
        else:
            # Replicas share the work; a row another relay holds is skipped, not waited for.
            async with self._db.transaction() as session:
                rows = (await session.execute(query.with_for_update(skip_locked=True))).all()
                await self._publish(rows)
                if rows:
                    failpoints.hit(self._failpoints, failpoints.AFTER_PUBLISH)
                await self._mark_published(session, rows)
        self.published += len(rows)
        return len(rows)

    async def _publish(self, rows: Sequence[Any]) -> None:
        for row in rows:
            await self._js.publish(row.subject, row.payload, headers=dict(row.headers))

    async def _mark_published(self, session: AsyncSession, rows: Sequence[Any]) -> None:
        if rows:
            await session.execute(
                self._outbox.update()
                .where(self._outbox.c.seq.in_([r.seq for r in rows]))
                .values(published_at=datetime.now(UTC))
            )

    async def purge_published(self) -> None:
        cutoff = datetime.now(UTC) - self._keep_published
        async with self._db.transaction() as session:
            await session.execute(self._outbox.delete().where(self._outbox.c.published_at < cutoff))

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
            await wait_event(self._wake, self._poll_interval)
            self._wake.clear()
