"""An account that never chose a language follows the browser (issue 11): migration
0005 on SQLite and PostgreSQL, the profile's "" choice, and mails in English for it."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from gateway.account_mail import reset_mail
from gateway.settings import GatewaySettings
from gateway.store import VERSIONS_DIR, metadata
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import alembic_config, upgrade_to_head

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, Client, create_user, login, make_client, token_for

pytestmark = pytest.mark.integration

CHOSE_EN = "7d0f4a52-4a43-4d5c-9d32-5ee0f1c6a0e1"
NEVER_CHOSE = "7d0f4a52-4a43-4d5c-9d32-5ee0f1c6a0e2"
CHOSE_DE = "7d0f4a52-4a43-4d5c-9d32-5ee0f1c6a0e3"
NAMED_ONLY = "7d0f4a52-4a43-4d5c-9d32-5ee0f1c6a0e4"


def _at_0004(connection: Connection, config: object) -> None:
    command.upgrade(config, "0004")  # type: ignore[arg-type]
    now = datetime.now(UTC)
    for user_id, name, language in (
        (CHOSE_EN, "chose-en", "en"),
        (NEVER_CHOSE, "never-chose", "en"),
        (CHOSE_DE, "chose-de", "de"),
        (NAMED_ONLY, "named-only", "en"),
    ):
        connection.execute(
            sa.text(
                "INSERT INTO users (user_id, username, display_name, password_hash, disabled,"
                " created_at, updated_at, preferred_language) VALUES (:id, :name, '', 'x',"
                " false, :now, :now, :language)"
            ),
            {"id": user_id, "name": name, "now": now, "language": language},
        )
    for user_id, fields in ((CHOSE_EN, ["preferred_language"]), (NAMED_ONLY, ["display_name"])):
        connection.execute(
            sa.text(
                "INSERT INTO audit_log (at, kind, outcome, actor_id, subject_id, details)"
                " VALUES (:now, 'profile.updated', 'ok', :id, :id, :details)"
            ),
            {"now": now, "id": user_id, "details": json.dumps({"fields": fields})},
        )


async def test_the_migration_keeps_chosen_languages_and_lets_the_rest_follow_the_browser(
    gateway_settings: GatewaySettings,
) -> None:
    db = Database(gateway_settings.runtime.database_url)
    config = alembic_config(metadata, VERSIONS_DIR)

    def to_0004(connection: Connection) -> None:
        config.attributes["connection"] = connection
        _at_0004(connection, config)

    def languages(connection: Connection) -> dict[str, str]:
        rows = connection.execute(sa.text("SELECT user_id, preferred_language FROM users"))
        return {row[0]: row[1] for row in rows}

    def add_without_language(connection: Connection) -> str:
        connection.execute(
            sa.text(
                "INSERT INTO users (user_id, username, display_name, password_hash, disabled,"
                " created_at, updated_at) VALUES ('7d0f4a52-4a43-4d5c-9d32-5ee0f1c6a0e5',"
                " 'later', '', 'x', false, :now, :now)"
            ),
            {"now": datetime.now(UTC)},
        )
        return str(
            connection.execute(
                sa.text(
                    "SELECT preferred_language FROM users"
                    " WHERE user_id = '7d0f4a52-4a43-4d5c-9d32-5ee0f1c6a0e5'"
                )
            ).scalar_one()
        )

    def down_to_0004(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")

    try:
        await db.write(to_0004)
        await upgrade_to_head(db, metadata, VERSIONS_DIR)  # as the gateway does at start
        after = await db.read(languages)
        assert after[CHOSE_EN] == "en"  # a choice, in the audit log: kept
        assert after[CHOSE_DE] == "de"
        assert after[NEVER_CHOSE] == ""  # the old default: now the browser's
        assert after[NAMED_ONLY] == ""  # changed the name, never the language
        assert await db.write(add_without_language) == ""  # the column's default
        await db.write(down_to_0004)
        before = await db.read(languages)
        assert set(before.values()) <= {"en", "de"}
    finally:
        await db.dispose()


async def test_a_new_account_follows_the_browser_until_it_chooses(client: Client) -> None:
    await create_user(client, await token_for(client, *ADMIN), "lang", "lang password 1234")
    token = (await login(client, "lang", "lang password 1234")).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    profile = await client.get("/api/v1/me", headers=headers)
    assert profile.json()["preferred_language"] == ""
    chose = await client.patch("/api/v1/me", headers=headers, json={"preferred_language": "de"})
    assert chose.status_code == 200 and chose.json()["preferred_language"] == "de"
    back = await client.patch("/api/v1/me", headers=headers, json={"preferred_language": ""})
    assert back.status_code == 200 and back.json()["preferred_language"] == ""
    odd = await client.patch("/api/v1/me", headers=headers, json={"preferred_language": "fr"})
    assert odd.status_code == 422


def test_a_mail_to_someone_who_chose_no_language_is_in_english() -> None:
    mail = reset_mail(to="a@b.example", username="ann", link="L", minutes=30, language="")
    assert mail.subject == "Reset your JHaaS password"


async def test_the_first_admin_follows_the_browser(gateway_settings: GatewaySettings) -> None:
    async with make_client(gateway_settings) as client:
        token = await token_for(client, *ADMIN)
        profile = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert profile.json()["preferred_language"] == ""
