"""The roster tables on SQLite and PostgreSQL: a late (out of order) change
never undoes a newer one, every batch moves its course's version once, and a
hub is behind until synced to that version (again after it is rebuilt)."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Connection

from deployer_svc.roster import RosterChange, RosterRole
from deployer_svc.roster_store import RosterRepository
from deployer_svc.store import VERSIONS_DIR, DeploymentRepository, metadata
from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head
from jhaas_schemas.rpc import DeploymentState

sys.path.insert(0, str(Path(__file__).parent))
from test_store_integration import NOW, scheduled

pytestmark = pytest.mark.integration


def change(user: str, present: bool, minutes: int, role: str = "participant") -> RosterChange:
    return RosterChange(
        request_id="r-1",
        user_id=user,
        role=RosterRole(role),
        present=present,
        at=NOW + timedelta(minutes=minutes),
    )


async def test_roster_rows_versions_and_sync_state(database_url: str) -> None:
    db = Database(database_url)
    await upgrade_to_head(db, metadata, VERSIONS_DIR)
    record = scheduled("r-1")

    def setup(conn: Connection) -> dict[str, int]:
        repo = RosterRepository(conn)
        DeploymentRepository(conn).add(record)
        repo.apply([change("a", True, 0), change("b", True, 0), change("t", True, 0, "tutor")])
        # The removal of a, then its acceptance redelivered late: a stays removed.
        repo.apply([change("a", False, 5)])
        repo.apply([change("a", True, 0)])
        return repo.pending()

    # No hub yet: nothing to sync.
    assert await db.write(setup) == {}

    def hub_up(conn: Connection) -> dict[str, int]:
        DeploymentRepository(conn).save(
            replace(record, state=DeploymentState.RUNNING, hub_url="http://h/")
        )
        return RosterRepository(conn).pending()

    assert await db.write(hub_up) == {record.deployment_id: 3}
    snapshot = await db.read(lambda conn: RosterRepository(conn).snapshot(record.deployment_id))
    assert snapshot is not None and snapshot.version == 3
    assert sorted(snapshot.members) == [("b", RosterRole.PARTICIPANT), ("t", RosterRole.TUTOR)]

    def synced_then_changed(conn: Connection) -> list[dict[str, int]]:
        repo = RosterRepository(conn)
        repo.synced("r-1", 3)
        seen = [repo.pending()]
        repo.synced("r-1", 2)  # an older sync finishing late does not move it back
        seen.append(repo.pending())
        repo.apply([change("b", False, 9)])
        seen.append(repo.pending())
        repo.synced("r-1", 4)
        repo.hub_rebuilt("r-1")  # a new hub holds nobody: behind again
        seen.append(repo.pending())
        repo.forget("r-1")
        seen.append(repo.pending())
        return seen

    after = await db.write(synced_then_changed)
    dep = record.deployment_id
    assert after == [{}, {}, {dep: 4}, {dep: 4}, {dep: 0}]
    await db.dispose()
