"""The outbox and inbox tables every service keeps beside its own.

`add_messaging_tables(metadata)` puts them into a service's MetaData;
`create_messaging_tables()` / `drop_messaging_tables()` are called from the
service's first Alembic migration so no service writes them again. What was
added later has its own helper, called from a later revision of every service
(a first migration must create the same tables forever):

- `create_inbox_purge_index()`: the index the inbox purge deletes by.
"""

from __future__ import annotations

from typing import NamedTuple

import sqlalchemy as sa
from alembic import op

from jhaas_runtime.types import UtcDateTime

INBOX_HANDLED_AT_INDEX = "ix_inbox_handled_at"


class MessagingTables(NamedTuple):
    outbox: sa.Table
    inbox: sa.Table


def _outbox_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(36), nullable=False, unique=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("published_at", UtcDateTime(), nullable=True, index=True),
    ]


def _inbox_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("consumer", sa.String(100), primary_key=True),
        sa.Column("event_id", sa.String(36), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("handled_at", UtcDateTime(), nullable=False),
    ]


def add_messaging_tables(metadata: sa.MetaData) -> MessagingTables:
    return MessagingTables(
        outbox=sa.Table("outbox", metadata, *_outbox_columns()),
        inbox=sa.Table(
            "inbox",
            metadata,
            *_inbox_columns(),
            sa.Index(INBOX_HANDLED_AT_INDEX, "handled_at"),
        ),
    )


def create_messaging_tables() -> None:
    op.create_table("outbox", *_outbox_columns())
    op.create_table("inbox", *_inbox_columns())


def create_inbox_purge_index() -> None:
    op.create_index(INBOX_HANDLED_AT_INDEX, "inbox", ["handled_at"])


def drop_inbox_purge_index() -> None:
    op.drop_index(INBOX_HANDLED_AT_INDEX, table_name="inbox")


def drop_messaging_tables() -> None:
    op.drop_table("inbox")
    op.drop_table("outbox")
