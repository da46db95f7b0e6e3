"""The governance audit trail's table on both databases: entries are appended and
read back as they were written, and the database refuses to change or remove one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from governance_svc import audit
from governance_svc.store import VERSIONS_DIR, metadata
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_schemas.policy import RuleCheck
from jhaas_schemas.rpc import AuditAction, ListAudit, ReviewChecks

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RULE = RuleCheck(rule="course.max_participants", passed=True, value="30", limit="at most 200")
CHECKS = ReviewChecks(policy_version="v1", passed=True, rules=[RULE], totals=[], core_hours=12.5)


async def migrated(database_url: str) -> Database:
    db = Database(database_url)
    await upgrade_to_head(db, metadata, VERSIONS_DIR)
    return db


async def test_entries_are_read_back_as_written_newest_first(database_url: str) -> None:
    db = await migrated(database_url)
    try:

        def write(conn: sa.Connection) -> None:
            audit.record(
                conn,
                at=T0,
                actor="reviewer-1",
                action=AuditAction.APPROVED,
                request_id="r-1",
                revision=2,
                comment="fine",
                checks=CHECKS,
            )
            audit.record(
                conn,
                at=T0 + timedelta(minutes=1),
                actor="system",
                action=AuditAction.CHANGE_AUTO_APPROVED,
                request_id="r-1",
                change_id="c-1",
                checks=[RULE],
            )
            audit.record(
                conn,
                at=T0 + timedelta(minutes=2),
                actor="operator",
                action=AuditAction.POLICY_CHANGED,
                details={"old_version": "v1", "new_version": "v2", "changed_keys": ["a.b"]},
            )

        await db.write(write)
        page = await db.read(lambda conn: audit.list_entries(conn, ListAudit()))
        assert [e.action for e in page.items] == [
            AuditAction.POLICY_CHANGED,
            AuditAction.CHANGE_AUTO_APPROVED,
            AuditAction.APPROVED,
        ]
        policy, change, approval = page.items
        assert policy.checks is None and policy.request_id is None
        assert policy.details == {"old_version": "v1", "new_version": "v2", "changed_keys": ["a.b"]}
        assert change.checks == [RULE] and change.change_id == "c-1"
        assert approval.checks == CHECKS
        assert (approval.actor, approval.revision, approval.comment) == ("reviewer-1", 2, "fine")
        assert approval.at == T0
        assert page.next_cursor is None
    finally:
        await db.dispose()


async def test_the_database_refuses_to_change_or_remove_an_entry(database_url: str) -> None:
    db = await migrated(database_url)
    table = audit.governance_audit
    try:
        await db.write(
            lambda conn: audit.record(
                conn, at=T0, actor="reviewer-1", action=AuditAction.REJECTED, comment="no"
            )
        )
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            await db.write(lambda conn: conn.execute(table.update().values(comment="yes")))
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            await db.write(lambda conn: conn.execute(table.delete()))
        if database_url.startswith("postgresql"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                await db.write(lambda conn: conn.exec_driver_sql("TRUNCATE governance_audit"))
        comments = await db.read(lambda conn: conn.scalars(sa.select(table.c.comment)).all())
        assert comments == ["no"]
    finally:
        await db.dispose()


async def test_an_entry_is_kept_or_lost_with_its_callers_transaction(database_url: str) -> None:
    """`record` writes on the caller's connection: a decision that fails after
    writing its entry leaves no entry behind."""
    db = await migrated(database_url)

    def decide_then_fail(conn: sa.Connection) -> None:
        audit.record(conn, at=T0, actor="reviewer-1", action=AuditAction.APPROVED)
        raise RuntimeError("the decision failed after its entry was written")

    try:
        with pytest.raises(RuntimeError, match="decision failed"):
            await db.write(decide_then_fail)
        page = await db.read(lambda conn: audit.list_entries(conn, ListAudit()))
        assert page.items == []
    finally:
        await db.dispose()
