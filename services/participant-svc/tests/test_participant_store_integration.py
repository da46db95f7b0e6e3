"""The participant store on both databases: what its callers rely on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jhaas_runtime.db import Database
from jhaas_runtime.migrate import upgrade_to_head
from participant_svc.domain import PurgedCourse
from participant_svc.store import VERSIONS_DIR, PurgedCourseRepository, metadata

pytestmark = pytest.mark.integration


async def test_a_course_is_recorded_for_purging_once_and_says_so(database_url: str) -> None:
    db = Database(database_url)
    await upgrade_to_head(db, metadata, VERSIONS_DIR)
    try:
        now = datetime.now(UTC)
        course = PurgedCourse(
            request_id="r-1", deployment_id="d-1", hub_deleted_at=now, recorded_at=now
        )
        assert await db.write(lambda conn: PurgedCourseRepository(conn).add(course))
        assert not await db.write(lambda conn: PurgedCourseRepository(conn).add(course))
        assert await db.read(lambda conn: PurgedCourseRepository(conn).get("r-1")) == course
    finally:
        await db.dispose()
