"""Every service's migrations build exactly the schema its code declares (the
shared outbox and inbox included), on SQLite and on PostgreSQL: a table,
column or index added to one side only shows up here, not in production."""

from __future__ import annotations

import importlib
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head

sys.path.insert(0, str(Path(__file__).parent))
import counter_service

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def service_stores() -> list[str]:
    """`<module>.store` of every service package (each has `metadata` and `VERSIONS_DIR`)."""
    names = [
        tomllib.loads(path.read_text())["project"]["name"]
        for path in sorted(ROOT.glob("services/*/pyproject.toml"))
    ]
    return [f"{name.replace('-', '_')}.store" for name in names]


def differences(connection: Connection, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def migrated_differences(database_url: str, metadata: MetaData, versions: Path) -> list[Any]:
    db = Database(database_url)
    try:
        await upgrade_to_head(db, metadata, versions)
        return await db.read(differences, metadata)
    finally:
        await db.dispose()


def test_every_service_is_found() -> None:
    assert len(service_stores()) >= 5


@pytest.mark.parametrize("store", service_stores())
async def test_migrations_build_what_the_service_declares(database_url: str, store: str) -> None:
    # The composition root imports every module that adds tables to the service's
    # metadata (the deployer's roster tables live beside its store, not in it).
    importlib.import_module(store.replace(".store", ".app"))
    module = importlib.import_module(store)
    assert await migrated_differences(database_url, module.metadata, module.VERSIONS_DIR) == []


async def test_the_kit_test_service_migrations_match_too(database_url: str) -> None:
    versions = Path(counter_service.__file__).parent / "counter_migrations"
    assert await migrated_differences(database_url, counter_service.metadata, versions) == []


REBUILD_PARENT = """
import sqlalchemy as sa
from alembic import op

revision = "{revision}"
down_revision = {down}
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "{revision}" == "0001":
        op.create_table("parent", sa.Column("id", sa.Integer, primary_key=True))
        op.create_table(
            "child",
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("parent_id", sa.Integer, sa.ForeignKey("parent.id", ondelete="CASCADE")),
        )
        op.execute("INSERT INTO parent (id) VALUES (1)")
        op.execute("INSERT INTO child (id, parent_id) VALUES (1, 1)")
    else:
        # Changing a column's type rebuilds the table on SQLite (copy, DROP, rename).
        with op.batch_alter_table("parent", recreate="always") as batch:
            batch.add_column(sa.Column("name", sa.String(20), nullable=True))
"""


async def test_a_table_rebuilt_on_sqlite_keeps_the_rows_that_refer_to_it(tmp_path: Path) -> None:
    versions = tmp_path / "versions"
    versions.mkdir()
    for revision, down in (("0001", "None"), ("0002", '"0001"')):
        text = REBUILD_PARENT.format(revision=revision, down=down)
        (versions / f"{revision}_step.py").write_text(text)
    db = Database(f"sqlite:///{tmp_path / 'rebuild.db'}")
    try:
        await upgrade_to_head(db, MetaData(), versions)
        children = await db.read(
            lambda conn: conn.exec_driver_sql("SELECT id, parent_id FROM child").all()
        )
        assert [tuple(row) for row in children] == [(1, 1)]
        # Foreign keys are enforced again afterwards.
        enforced = await db.read(lambda conn: conn.exec_driver_sql("PRAGMA foreign_keys").scalar())
        assert enforced == 1
    finally:
        await db.dispose()
