"""The governance audit trail: every decision and every policy change, with who,
when, what was checked and the comment.

Append-only: this module only inserts and reads, and the database itself refuses
an UPDATE or DELETE of a row (triggers, migration 0003). A decision's entry is
written with `record(conn, ...)` on the connection of the decision's own
transaction, so the entry and the decision are kept or lost together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from governance_svc.store import metadata
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.errors import InvalidInput
from jhaas_schemas.policy import RuleCheck
from jhaas_schemas.rpc import (
    AuditAction,
    GovernanceAuditEntry,
    GovernanceAuditPage,
    ListAudit,
    ReviewChecks,
)

__all__ = ["AuditAction", "ListAudit", "governance_audit", "list_entries", "record"]

SYSTEM = "system"  # the actor of what the system decided by itself
OPERATOR = "operator"  # the actor of a policy change (the operator's file or environment)

governance_audit = sa.Table(
    "governance_audit",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime(), nullable=False, index=True),
    sa.Column("actor", sa.String(64), nullable=False, index=True),
    sa.Column("action", sa.String(32), nullable=False, index=True),
    sa.Column("request_id", sa.String(64), nullable=True, index=True),
    sa.Column("change_id", sa.String(64), nullable=True),
    sa.Column("revision", sa.Integer, nullable=True),
    sa.Column("comment", sa.Text, nullable=False),
    # msgspec JSON: the ReviewChecks (or the RuleCheck list) the decider saw; NULL: none.
    sa.Column("checks", sa.Text, nullable=True),
    # msgspec JSON object: what else the entry needs (a policy change's versions and keys).
    sa.Column("details", sa.Text, nullable=False),
)

Checks = ReviewChecks | Sequence[RuleCheck]
_checks_decoder = msgspec.json.Decoder(ReviewChecks | list[RuleCheck] | None)
_details_decoder = msgspec.json.Decoder(dict[str, Any])


def record(
    conn: Connection,
    *,
    at: datetime,
    actor: str,
    action: AuditAction,
    request_id: str | None = None,
    change_id: str | None = None,
    revision: int | None = None,
    comment: str = "",
    checks: Checks | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Append one entry, in the caller's transaction."""
    conn.execute(
        governance_audit.insert().values(
            at=at,
            actor=actor,
            action=AuditAction(action).value,
            request_id=request_id,
            change_id=change_id,
            revision=revision,
            comment=comment,
            checks=None if checks is None else msgspec.json.encode(_plain(checks)).decode(),
            details=msgspec.json.encode(dict(details or {})).decode(),
        )
    )


def _plain(checks: Checks) -> ReviewChecks | list[RuleCheck]:
    return checks if isinstance(checks, ReviewChecks) else list(checks)


# --- reading ---------------------------------------------------------------------


def cursor_id(cursor: str | None) -> int | None:
    """The entry id a page cursor stands for (entries older than it follow)."""
    if cursor is None:
        return None
    if not cursor.isdigit() or int(cursor) < 1:
        raise InvalidInput(
            "the cursor is not one this list handed out", {"cursor": "not a valid cursor"}
        )
    return int(cursor)


def check_filters(filters: ListAudit) -> None:
    """Refuse filters that cannot select anything sensible, naming the parameter."""
    cursor_id(filters.cursor)
    for name in ("since", "until"):
        value = getattr(filters, name)
        if value is not None and value.tzinfo is None:
            raise InvalidInput(
                f"{name} needs a time zone (for example 2026-01-31T00:00:00Z)",
                {name: "must include a time zone"},
            )
    if filters.since is not None and filters.until is not None and filters.until <= filters.since:
        raise InvalidInput("until must be later than since", {"until": "must be after since"})


def list_entries(conn: Connection, filters: ListAudit) -> GovernanceAuditPage:
    """One page of entries, newest first; next_cursor when there may be more."""
    check_filters(filters)
    table = governance_audit
    query = sa.select(table).order_by(table.c.id.desc()).limit(filters.limit + 1)
    if filters.request_id is not None:
        query = query.where(table.c.request_id == filters.request_id)
    if filters.actor is not None:
        query = query.where(table.c.actor == filters.actor)
    if filters.action is not None:
        query = query.where(table.c.action == filters.action.value)
    if filters.since is not None:
        query = query.where(table.c.at >= filters.since)
    if filters.until is not None:
        query = query.where(table.c.at < filters.until)
    before = cursor_id(filters.cursor)
    if before is not None:
        query = query.where(table.c.id < before)
    rows = conn.execute(query).all()
    entries = [_entry(row) for row in rows[: filters.limit]]
    more = len(rows) > filters.limit
    return GovernanceAuditPage(items=entries, next_cursor=str(entries[-1].id) if more else None)


def last_entry(conn: Connection, action: AuditAction) -> GovernanceAuditEntry | None:
    row = conn.execute(
        sa.select(governance_audit)
        .where(governance_audit.c.action == action.value)
        .order_by(governance_audit.c.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _entry(row)


def _entry(row: sa.Row[tuple[object, ...]]) -> GovernanceAuditEntry:
    m = row._mapping
    return GovernanceAuditEntry(
        id=m["id"],
        at=m["at"],
        actor=m["actor"],
        action=AuditAction(m["action"]),
        request_id=m["request_id"],
        change_id=m["change_id"],
        revision=m["revision"],
        comment=m["comment"],
        checks=None if m["checks"] is None else _checks_decoder.decode(m["checks"]),
        details=_details_decoder.decode(m["details"]),
    )
