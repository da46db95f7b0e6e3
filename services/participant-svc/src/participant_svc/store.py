"""participant-svc's tables and repositories."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jhaas_runtime.db import insert_for
from jhaas_runtime.tables import add_messaging_tables
from jhaas_runtime.types import UtcDateTime
from participant_svc.domain import PurgedCourse

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

metadata = sa.MetaData()
messaging = add_messaging_tables(metadata)

# Courses whose hub is deleted: their participations are purged (a later step).
purged_courses = sa.Table(
    "purged_courses",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("deployment_id", sa.String(36), nullable=False),
    sa.Column("hub_deleted_at", UtcDateTime(), nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)


class PurgedCourseRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, request_id: str) -> PurgedCourse | None:
        row = self.conn.execute(
            sa.select(purged_courses).where(purged_courses.c.request_id == request_id)
        ).first()
        if row is None:
            return None
        m = row._mapping
        return PurgedCourse(
            request_id=m["request_id"],
            deployment_id=m["deployment_id"],
            hub_deleted_at=m["hub_deleted_at"],
            recorded_at=m["recorded_at"],
        )

    def add(self, course: PurgedCourse) -> bool:
        """Record a course; False when another replica recorded it first."""
        added = self.conn.execute(
            insert_for(self.conn, purged_courses)
            .values(
                request_id=course.request_id,
                deployment_id=course.deployment_id,
                hub_deleted_at=course.hub_deleted_at,
                recorded_at=course.recorded_at,
            )
            .on_conflict_do_nothing(index_elements=[purged_courses.c.request_id])
            # RETURNING: SQLAlchemy keeps no row count for an INSERT on psycopg.
            .returning(purged_courses.c.request_id)
        )
        return added.first() is not None
