"""Single-use mail links at the level of their unit of work, on SQLite and PostgreSQL:
the conditional UPDATE alone (without the route's earlier look) uses a link once,
also when two uses race."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Connection

from gateway.links import Purpose, add_link, new_link_token, use_link
from gateway.store import VERSIONS_DIR, AccountStore, UserRecord, metadata
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_schemas.errors import Conflict

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=4)
    await upgrade_to_head(database, metadata, VERSIONS_DIR)
    try:
        yield database
    finally:
        await database.dispose()


async def a_link(db: Database) -> str:
    user = UserRecord(
        user_id=str(uuid.uuid4()),
        username=f"u{uuid.uuid4().hex[:8]}",
        display_name="",
        password_hash="x",
        roles=(),
        disabled=False,
        created_at=NOW,
        updated_at=NOW,
    )
    token = new_link_token()

    def add(conn: Connection) -> None:
        AccountStore(conn).add_user(user)
        add_link(
            conn,
            token=token,
            user_id=user.user_id,
            purpose=Purpose.PASSWORD_RESET,
            email=None,
            now=NOW,
            expires_at=NOW + timedelta(minutes=30),
        )

    await db.write(add)
    return token


async def test_a_link_is_used_once(db: Database) -> None:
    token = await a_link(db)
    await db.write(use_link, token, Purpose.PASSWORD_RESET, NOW)
    with pytest.raises(Conflict, match="used already"):
        await db.write(use_link, token, Purpose.PASSWORD_RESET, NOW)


async def test_of_two_racing_uses_one_wins(db: Database) -> None:
    token = await a_link(db)
    outcomes = await asyncio.gather(
        *(db.write(use_link, token, Purpose.PASSWORD_RESET, NOW) for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["Conflict", "UsedLink"]


async def test_an_expired_link_is_not_used(db: Database) -> None:
    token = await a_link(db)
    with pytest.raises(Conflict, match="expired"):
        await db.write(use_link, token, Purpose.PASSWORD_RESET, NOW + timedelta(minutes=31))
