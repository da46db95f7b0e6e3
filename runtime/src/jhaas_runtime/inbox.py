"""Inbox: a consumer records each handled event id in the same transaction as
its effect, so a redelivered event has exactly one effect."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession


async def first_delivery(
    session: AsyncSession, inbox: sa.Table, consumer: str, event_id: str, subject: str
) -> bool:
    """Claim an event for this consumer; False when it was handled before.

    Two replicas racing on the same event both see "first"; the loser's
    transaction then fails on the primary key and rolls back its effect.
    """
    seen = await session.scalar(
        sa.select(sa.literal(1)).where(inbox.c.consumer == consumer, inbox.c.event_id == event_id)
    )
    if seen is not None:
        return False
    await session.execute(
        inbox.insert().values(
            consumer=consumer, event_id=event_id, subject=subject, handled_at=datetime.now(UTC)
        )
    )
    return True
