"""The scheduler reads and locks only what is due: the SQL `due()` query picks
exactly the deployments for which the pure `schedule.due_action` has an action,
and `next_due()` the time `schedule.next_due` gives, over every state and every
arrangement of times, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Connection

from deployer_svc import schedule
from deployer_svc.domain import DeploymentRecord
from deployer_svc.store import VERSIONS_DIR, DeploymentRepository, deployments, metadata
from jhaas_launcher.testing import sample_spec
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_schemas.rpc import DeploymentState

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PAST, FUTURE = NOW - timedelta(minutes=5), NOW + timedelta(minutes=5)


def every_arrangement() -> list[DeploymentRecord]:
    records = []
    for n, (state, deploy, starts, ends, teardown, attempt, lease, started) in enumerate(
        itertools.product(
            DeploymentState,
            (PAST, FUTURE),  # deploy_at
            (PAST, FUTURE),  # starts_at
            (PAST, FUTURE, NOW),  # ends_at (NOW: due at the very instant)
            (PAST, FUTURE),  # teardown_at
            (None, PAST, FUTURE),  # next_attempt_at
            (None, PAST, FUTURE, NOW),  # lease_until (NOW: just expired)
            (False, True),  # course_started
        )
    ):
        records.append(
            DeploymentRecord(
                deployment_id=f"d-{n}",
                request_id=f"r-{n}",
                leader_id="u-leader",
                state=state,
                configuration=sample_spec(slug=f"c-{n}"),
                deploy_at=deploy,
                starts_at=starts,
                ends_at=ends,
                teardown_at=teardown,
                created_at=PAST,
                updated_at=PAST,
                next_attempt_at=attempt,
                lease_owner=None if lease is None else "worker",
                lease_until=lease,
                course_started=started,
            )
        )
    return records


def add_all(conn: Connection, records: list[DeploymentRecord]) -> None:
    repo = DeploymentRepository(conn)
    for record in records:
        assert repo.add(record)


def replace_all(conn: Connection, records: list[DeploymentRecord]) -> None:
    conn.execute(deployments.delete())
    add_all(conn, records)


async def test_due_picks_exactly_what_due_action_would(database_url: str) -> None:
    db = Database(database_url)
    await upgrade_to_head(db, metadata, VERSIONS_DIR)
    records = every_arrangement()
    try:
        await db.write(add_all, records)
        for now in (NOW, PAST - timedelta(days=1), FUTURE + timedelta(days=1)):
            expected = {r.deployment_id for r in records if schedule.due_action(r, now)}
            due = await db.write(
                lambda conn: DeploymentRepository(conn).due(now, lock=not db.is_sqlite)  # noqa: B023
            )
            assert {r.deployment_id for r in due} == expected, now
            if now == NOW:  # the arrangement covers both sides
                assert 0 < len(expected) < len(records) / 2
        # And when something is next due: one aggregate row, the same answer as
        # the pure rule over every record, as the set of records changes.
        for keep in (records, records[::7], [r for r in records if r.state == "ending"], []):
            await db.write(replace_all, keep)
            times = [t for r in keep if (t := schedule.next_due(r)) is not None]
            assert await db.read(lambda conn: DeploymentRepository(conn).next_due()) == (
                min(times) if times else None
            )
    finally:
        await db.dispose()
