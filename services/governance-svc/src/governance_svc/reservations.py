"""The capacity calendar's table: one reservation per approved course.

A reservation is written in the transaction that approves its course (by a
reviewer or by the system), replaced by an approved change, and released when
the course is cancelled or its hub deleted (kept, in state "released", so the
calendar's history stays readable).

Checking a new course and holding its reservation happen under the calendar's
lock (`lock`), so two approvals at the same moment see each other: on
PostgreSQL a transaction-scoped advisory lock (READ COMMITTED would let two
transactions each miss the other's uncommitted reservation); on SQLite the
write transaction itself, which begins IMMEDIATE (jhaas_runtime.db) and so
holds the database's single write lock from its first statement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from governance_svc.store import metadata
from jhaas_runtime.db import insert_for
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.rpc import Amounts, ReservationView

HELD = "held"
RELEASED = "released"

reservations = sa.Table(
    "reservations",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("leader_id", sa.String(64), nullable=False),
    sa.Column("window_start", UtcDateTime(), nullable=False),
    sa.Column("window_end", UtcDateTime(), nullable=False),
    sa.Column("cpu_millicores", sa.BigInteger, nullable=False),
    sa.Column("memory_bytes", sa.BigInteger, nullable=False),
    sa.Column("storage_bytes", sa.BigInteger, nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # The overlap query: held reservations ending after a window starts and
    # starting before it ends.
    sa.Index("ix_reservations_window", "state", "window_end", "window_start"),
)

# "JHCL": the capacity calendar's one advisory lock (deployer-svc uses "JHDP").
_LOCK_KEY = 0x4A48434C
_LOCK = sa.text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_LOCK_KEY)
_c = reservations.c
# What a view needs (not updated_at: every datetime costs its conversion).
_VIEW_COLUMNS = [
    _c.request_id, _c.title, _c.leader_id, _c.window_start, _c.window_end,
    _c.cpu_millicores, _c.memory_bytes, _c.storage_bytes, _c.gpus,
]  # fmt: skip


def _view(row: sa.Row[Any]) -> ReservationView:
    # By position (_VIEW_COLUMNS' order): a check reads hundreds of rows, and a
    # row's mapping costs more than the rest of its conversion.
    request_id, title, leader_id, start, end, cpu, memory, storage, gpus = tuple(row)
    return ReservationView(
        request_id=request_id,
        title=title,
        leader_id=leader_id,
        window_start=start,
        window_end=end,
        amounts=Amounts(cpu=cpu, memory=memory, storage=storage, gpus=gpus),
    )


def overlap_clause(start: datetime, end: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(_c.state == HELD, _c.window_end > start, _c.window_start < end)


class ReservationRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def lock(self) -> None:
        """Serialize calendar checks with their reservations until this transaction ends."""
        if self.conn.dialect.name == "postgresql":
            self.conn.execute(_LOCK)

    def overlapping(
        self, start: datetime, end: datetime, *, besides: str | None = None
    ) -> list[ReservationView]:
        """The held reservations whose windows overlap [start, end), but `besides`'s."""
        query = sa.select(*_VIEW_COLUMNS).where(overlap_clause(start, end))
        if besides is not None:
            query = query.where(_c.request_id != besides)
        query = query.order_by(_c.window_start, _c.request_id)
        return [_view(row) for row in self.conn.execute(query).all()]

    def hold(self, reservation: ReservationView, now: datetime) -> None:
        """Hold `reservation` for its course (replacing what the course held before)."""
        a = reservation.amounts
        values = {
            "title": reservation.title,
            "leader_id": reservation.leader_id,
            "window_start": reservation.window_start,
            "window_end": reservation.window_end,
            "cpu_millicores": a.cpu,
            "memory_bytes": a.memory,
            "storage_bytes": a.storage,
            "gpus": a.gpus,
            "state": HELD,
            "updated_at": now,
        }
        self.conn.execute(
            insert_for(self.conn, reservations)
            .values(request_id=reservation.request_id, **values)
            .on_conflict_do_update(index_elements=[_c.request_id], set_=values)
        )

    def release(self, request_id: str, now: datetime) -> bool:
        """Release the course's reservation; False when it held none."""
        released = self.conn.execute(
            reservations.update()
            .where(_c.request_id == request_id, _c.state == HELD)
            .values(state=RELEASED, updated_at=now)
            .returning(_c.request_id)
        )
        return released.first() is not None

    def get(self, request_id: str) -> ReservationView | None:
        row = self.conn.execute(
            sa.select(*_VIEW_COLUMNS).where(_c.request_id == request_id, _c.state == HELD)
        ).first()
        return None if row is None else _view(row)
