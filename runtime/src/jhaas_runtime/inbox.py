"""Inbox: a consumer records each handled event id in the same transaction as
its effect, so a redelivered event has exactly one effect."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


async def first_delivery(
    session: AsyncSession, inbox: sa.Table, consumer: str, event_id: str, subject: str
) -> bool:
    """Claim an event for this consumer; False when it was handled before.

    One INSERT ... ON CONFLICT DO NOTHING: on PostgreSQL a replica claiming the
    same event at the same moment waits for the first one's commit and then
    sees the conflict, so exactly one of them applies the effect.
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = await session.execute(
        insert(inbox)
        .values(consumer=consumer, event_id=event_id, subject=subject, handled_at=datetime.now(UTC))
        .on_conflict_do_nothing(index_elements=[inbox.c.consumer, inbox.c.event_id])
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]  # CursorResult
