"""The review store on both databases: what its callers rely on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from governance_svc import domain
from governance_svc.store import VERSIONS_DIR, ReviewRepository, metadata
from jhaas_launcher.testing import sample_submitted
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head

pytestmark = pytest.mark.integration


async def test_a_second_review_of_one_request_is_refused_and_reported(database_url: str) -> None:
    """`add` says whether it stored the review: the handler logs a lost race
    only when there was one (psycopg gives SQLAlchemy no row count for an INSERT)."""
    db = Database(database_url)
    await upgrade_to_head(db, metadata, VERSIONS_DIR)
    try:
        event = sample_submitted("r-store")
        now = datetime.now(UTC)
        first, second = (
            domain.on_request_submitted(None, event, review_id=str(uuid.uuid4()), now=now)
            for _ in range(2)
        )
        assert first is not None and second is not None
        assert await db.write(lambda conn: ReviewRepository(conn).add(first))
        assert not await db.write(lambda conn: ReviewRepository(conn).add(second))
        stored = await db.read(lambda conn: ReviewRepository(conn).get("r-store"))
        assert stored is not None and stored.review_id == first.review_id
    finally:
        await db.dispose()
