"""The audit log: every security-relevant event, append-only, readable by admins.

An entry is written in the same unit of work as the change it records
(`record`), so a change without its entry (or an entry for a change that was
rolled back) cannot be stored. A refusal that changes nothing is written on
its own (`Audit.log`). Entries hold ids and reasons, never secrets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from gateway.tables import audit_log
from jhaas_runtime.db import Database

Outcome = Literal["ok", "refused"]
Details = Mapping[str, str | int | bool | list[str] | None]
MAX_PAGE = 500

_INSERT = audit_log.insert()


def record(
    conn: Connection,
    kind: str,
    *,
    now: datetime,
    outcome: Outcome = "ok",
    actor_id: str | None = None,
    subject_id: str | None = None,
    address: str | None = None,
    details: Details | None = None,
) -> None:
    """Append one entry inside the caller's transaction."""
    conn.execute(
        _INSERT,
        {
            "at": now,
            "kind": kind,
            "outcome": outcome,
            "actor_id": actor_id,
            "subject_id": subject_id,
            "address": address,
            "details": json.dumps(dict(details or {}), sort_keys=True, default=str),
        },
    )


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    entry_id: int
    at: datetime
    kind: str
    outcome: str
    actor_id: str | None
    subject_id: str | None
    address: str | None
    details: dict[str, object]


@dataclass(frozen=True, kw_only=True)
class AuditQuery:
    """Filters, all optional; `kind` matches exactly or, ending in ".", as a prefix."""

    kind: str | None = None
    actor_id: str | None = None
    subject_id: str | None = None
    user_id: str | None = None  # actor or subject
    outcome: Outcome | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None  # entry_id: the page after the one that ended there
    limit: int = 100


def find_entries(conn: Connection, query: AuditQuery) -> list[AuditEntry]:
    """Newest first."""
    conditions: list[sa.ColumnElement[bool]] = []
    if query.kind:
        if query.kind.endswith("."):
            conditions.append(audit_log.c.kind.startswith(query.kind, autoescape=True))
        else:
            conditions.append(audit_log.c.kind == query.kind)
    if query.actor_id:
        conditions.append(audit_log.c.actor_id == query.actor_id)
    if query.subject_id:
        conditions.append(audit_log.c.subject_id == query.subject_id)
    if query.user_id:
        conditions.append(
            sa.or_(audit_log.c.actor_id == query.user_id, audit_log.c.subject_id == query.user_id)
        )
    if query.outcome:
        conditions.append(audit_log.c.outcome == query.outcome)
    if query.since:
        conditions.append(audit_log.c.at >= query.since)
    if query.until:
        conditions.append(audit_log.c.at < query.until)
    if query.before is not None:
        conditions.append(audit_log.c.entry_id < query.before)
    statement = (
        sa.select(audit_log)
        .where(*conditions)
        .order_by(audit_log.c.entry_id.desc())
        .limit(min(max(query.limit, 1), MAX_PAGE))
    )
    return [
        AuditEntry(
            entry_id=row.entry_id,
            at=row.at,
            kind=row.kind,
            outcome=row.outcome,
            actor_id=row.actor_id,
            subject_id=row.subject_id,
            address=row.address,
            details=json.loads(row.details),
        )
        for row in conn.execute(statement)
    ]


class Audit:
    """Entries that are not part of another change, and the admins' reading."""

    def __init__(self, db: Database, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock

    async def log(
        self,
        kind: str,
        *,
        outcome: Outcome = "ok",
        actor_id: str | None = None,
        subject_id: str | None = None,
        address: str | None = None,
        details: Details | None = None,
    ) -> None:
        now = self.clock()
        await self.db.write(
            lambda conn: record(
                conn,
                kind,
                now=now,
                outcome=outcome,
                actor_id=actor_id,
                subject_id=subject_id,
                address=address,
                details=details,
            )
        )

    async def find(self, query: AuditQuery) -> list[AuditEntry]:
        return await self.db.read(find_entries, query)
