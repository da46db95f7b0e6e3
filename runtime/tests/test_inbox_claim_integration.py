"""A batch's inbox claim says exactly which of its events were never handled
before, on SQLite and PostgreSQL: duplicates of earlier batches, repeats inside
the batch and another consumer's ids included, over more rows than one
multi-row INSERT carries."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jhaas_runtime.db import Database
from jhaas_runtime.inbox import first_deliveries
from jhaas_runtime.migrate import upgrade_to_head

sys.path.insert(0, str(Path(__file__).parent))
import counter_service

pytestmark = pytest.mark.integration

inbox = counter_service.messaging.inbox


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    versions = Path(counter_service.__file__).parent / "counter_migrations"
    await upgrade_to_head(database, counter_service.metadata, versions)
    yield database
    await database.dispose()


def ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


async def claim(db: Database, consumer: str, event_ids: list[str]) -> set[str]:
    return await db.write(first_deliveries, inbox, consumer, [(e, "s") for e in event_ids])


async def test_a_claim_returns_exactly_the_ids_never_handled_before(db: Database) -> None:
    earlier = ids(700)
    assert await claim(db, "a", earlier) == set(earlier)
    assert await claim(db, "b", earlier[:10]) == set(earlier[:10])  # another consumer's inbox

    new = ids(1500)
    # New ids between ids handled before, and some new ones twice in the batch.
    batch = [e for pair in zip(new, earlier * 3, strict=False) for e in pair]
    batch += new[700:] + new[:50]
    assert await claim(db, "a", batch) == set(new)
    assert await claim(db, "a", batch) == set()

    def stored(conn: Connection) -> list[tuple[str, int]]:
        query = sa.select(inbox.c.consumer, sa.func.count()).group_by(inbox.c.consumer)
        return sorted((row[0], row[1]) for row in conn.execute(query))

    assert await db.read(stored) == [("a", 2200), ("b", 10)]


async def test_a_rolled_back_claim_leaves_the_ids_to_claim_again(db: Database) -> None:
    batch = ids(5)

    def claim_and_fail(conn: Connection) -> None:
        assert first_deliveries(conn, inbox, "a", [(e, "s") for e in batch]) == set(batch)
        raise RuntimeError("the batch's handler failed")

    with pytest.raises(RuntimeError):
        await db.write(claim_and_fail)
    assert await claim(db, "a", batch) == set(batch)
