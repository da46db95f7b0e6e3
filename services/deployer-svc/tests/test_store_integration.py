"""The statements an approval and a cancellation run, on SQLite and PostgreSQL:
one deployment per request, none after a cancellation that came first, and a
repeated cancellation is no error."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Connection
from sqlalchemy.exc import StatementError

from deployer_svc import domain
from deployer_svc.domain import DeploymentRecord
from deployer_svc.store import VERSIONS_DIR, DeploymentRepository, metadata
from jhaas_launcher.testing import sample_spec
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import RequestApproved

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def scheduled(request_id: str) -> DeploymentRecord:
    approved = RequestApproved(
        **envelope(source="governance-svc", correlation_id="c"),
        request_id=request_id,
        review_id="rv",
        leader_id="u-leader",
        decided_by="u-gov",
        revision=1,
        configuration=sample_spec(slug="store-1"),
    )
    record, _ = domain.schedule_deployment(
        approved,
        deployment_id=str(uuid.uuid4()),
        lead_time=timedelta(minutes=30),
        grace=timedelta(0),
        now=NOW,
        env=envelope(source="deployer-svc", correlation_id="c", now=NOW),
    )
    return record


async def test_one_deployment_per_request_and_none_after_an_early_cancellation(
    database_url: str,
) -> None:
    db = Database(database_url)
    await upgrade_to_head(db, metadata, VERSIONS_DIR)
    first, cancelled = scheduled("r-1"), scheduled("r-2")
    second = replace(scheduled("r-1"), leader_id="u-other")

    def approvals(conn: Connection) -> list[bool]:
        repo = DeploymentRepository(conn)
        repo.remember_cancellation("r-2", NOW)
        repo.remember_cancellation("r-2", NOW + timedelta(seconds=1))  # redelivered
        return [
            repo.add_unless_cancelled(first),
            repo.add_unless_cancelled(second),
            repo.add_unless_cancelled(cancelled),
            repo.add(second),
        ]

    try:
        assert await db.write(approvals) == [True, False, False, False]
        stored = await db.read(lambda conn: DeploymentRepository(conn).list_deployments())
        assert stored == [first]
        assert await db.read(
            lambda conn: DeploymentRepository(conn).cancelled_before_approval("r-2")
        )
    finally:
        await db.dispose()


async def test_a_batch_of_approvals_keeps_the_same_rules_in_one_statement(
    database_url: str,
) -> None:
    db = Database(database_url)
    await upgrade_to_head(db, metadata, VERSIONS_DIR)
    earlier, cancelled = scheduled("r-earlier"), scheduled("r-cancelled")
    first, fresh = scheduled("r-1"), scheduled("r-2")
    second = replace(scheduled("r-1"), leader_id="u-other")  # in the same batch
    again = replace(scheduled("r-earlier"), leader_id="u-other")  # of a batch before

    def approvals(conn: Connection) -> tuple[set[str], set[str], set[str]]:
        repo = DeploymentRepository(conn)
        repo.remember_cancellation("r-cancelled", NOW)
        before = repo.add_all_unless_cancelled([earlier])
        batch = repo.add_all_unless_cancelled([first, again, cancelled, second, fresh])
        return before, batch, repo.add_all_unless_cancelled([])

    try:
        assert await db.write(approvals) == ({"r-earlier"}, {"r-1", "r-2"}, set())
        stored = await db.read(lambda conn: DeploymentRepository(conn).list_deployments())
        by_request = {r.request_id: r for r in stored}
        assert by_request == {"r-earlier": earlier, "r-1": first, "r-2": fresh}
        naive = replace(scheduled("r-3"), deploy_at=NOW.replace(tzinfo=None))
        with pytest.raises((ValueError, StatementError), match="naive datetime"):
            await db.write(
                lambda conn: DeploymentRepository(conn).add_all_unless_cancelled([naive])
            )
    finally:
        await db.dispose()
