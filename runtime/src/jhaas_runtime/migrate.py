"""Run a service's Alembic migrations to head at start-up (or from a CLI)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from jhaas_runtime.db import Database

_SCRIPT_LOCATION = Path(__file__).parent / "migrations"
# Any fixed number: replicas starting together on PostgreSQL take turns.
_PG_MIGRATION_LOCK = 0x4A484141


def alembic_config(metadata: MetaData, versions_dir: Path) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(versions_dir))
    cfg.attributes["target_metadata"] = metadata
    return cfg


async def upgrade_to_head(db: Database, metadata: MetaData, versions_dir: Path) -> None:
    cfg = alembic_config(metadata, versions_dir)

    def run(connection: Connection) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
        cfg.attributes["connection"] = connection
        command.upgrade(cfg, "head")

    def migrate() -> None:
        with db.engine.connect() as connection:
            sqlite = connection.dialect.name == "sqlite"
            if sqlite:
                # A batch migration rebuilds a table (copy, DROP, rename); with
                # foreign keys on, the DROP would cascade into every row that
                # refers to it. (Only outside a transaction does SQLite take this.)
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    run(connection)
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()

    await asyncio.get_running_loop().run_in_executor(None, migrate)
