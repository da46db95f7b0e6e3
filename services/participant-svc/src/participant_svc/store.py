"""participant-svc's tables and repositories (SQLAlchemy Core on one connection)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from jhaas_runtime.db import insert_for
from jhaas_runtime.tables import add_messaging_tables
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.rpc import DeploymentState, ParticipationStatus
from participant_svc.domain import CourseState, ParticipationState, PurgedCourse

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

metadata = sa.MetaData()
messaging = add_messaging_tables(metadata)

# Tombstones of courses whose hub is deleted: ids and times, no personal data.
purged_courses = sa.Table(
    "purged_courses",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("deployment_id", sa.String(36), nullable=False),
    sa.Column("hub_deleted_at", UtcDateTime(), nullable=False),
    sa.Column("recorded_at", UtcDateTime(), nullable=False),
)

courses = sa.Table(
    "courses",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("leader_id", sa.String(64), nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("slug", sa.String(64), nullable=False),
    sa.Column("starts_at", UtcDateTime(), nullable=False),
    sa.Column("ends_at", UtcDateTime(), nullable=False),
    sa.Column("max_participants", sa.Integer, nullable=False),
    sa.Column("join_code", sa.String(32), nullable=False),
    sa.Column("join_open", sa.Boolean, nullable=False),
    sa.Column("hub_status", sa.String(16), nullable=False),
    sa.Column("hub_url", sa.String(500), nullable=True),
    sa.Column("hub_status_at", UtcDateTime(), nullable=True),
    # HubReady.warnings, a JSON list of strings.
    sa.Column("hub_warnings", sa.Text, nullable=False, default="[]", server_default="[]"),
    sa.Column("cancelled", sa.Boolean, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    # The request's revision the approved number and end are of (issue 9's changes).
    sa.Column("revision", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.UniqueConstraint("join_code", name="uq_courses_join_code"),
)

course_tutors = sa.Table(
    "course_tutors",
    metadata,
    sa.Column(
        "request_id",
        sa.String(64),
        sa.ForeignKey("courses.request_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Index("ix_course_tutors_user_id", "user_id"),
)

participations = sa.Table(
    "participations",
    metadata,
    sa.Column("participation_id", sa.String(36), primary_key=True),
    sa.Column(
        "request_id",
        sa.String(64),
        sa.ForeignKey("courses.request_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("user_id", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("applied_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("decided_by", sa.String(64), nullable=True),
    sa.Column("decided_at", UtcDateTime(), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    # One participation per person and course: applying twice is refused.
    sa.UniqueConstraint("request_id", "user_id", name="uq_participations_course_user"),
    sa.Index("ix_participations_course_status", "request_id", "status"),
)

_COURSE = sa.select(courses).where(courses.c.request_id == sa.bindparam("request_id"))
_COURSE_FOR_UPDATE = _COURSE.with_for_update()
_COURSE_BY_CODE = sa.select(courses).where(courses.c.join_code == sa.bindparam("code"))
_TUTORS = sa.select(course_tutors.c.user_id).where(
    course_tutors.c.request_id == sa.bindparam("request_id")
)
_ACCEPTED = (
    sa.select(sa.func.count())
    .select_from(participations)
    .where(
        participations.c.request_id == sa.bindparam("request_id"),
        participations.c.status == ParticipationStatus.ACCEPTED.value,
    )
)
_UPDATE_COURSE = courses.update().where(courses.c.request_id == sa.bindparam("key"))
_PARTICIPATION = sa.select(participations).where(
    participations.c.request_id == sa.bindparam("request_id"),
    participations.c.participation_id == sa.bindparam("participation_id"),
)
_PARTICIPATION_OF = sa.select(participations).where(
    participations.c.request_id == sa.bindparam("request_id"),
    participations.c.user_id == sa.bindparam("user_id"),
)
_CHOSEN = sa.select(participations).where(
    participations.c.request_id == sa.bindparam("request_id"),
    participations.c.participation_id.in_(sa.bindparam("ids", expanding=True)),
)
_PARTICIPATIONS_OF_USER = (
    sa.select(participations)
    .where(participations.c.user_id == sa.bindparam("user_id"))
    .order_by(participations.c.applied_at, participations.c.participation_id)
)
_TUTORED_BY = (
    sa.select(course_tutors.c.request_id)
    .where(course_tutors.c.user_id == sa.bindparam("user_id"))
    .order_by(course_tutors.c.request_id)
)
_UPDATE_PARTICIPATION = participations.update().where(
    participations.c.participation_id == sa.bindparam("key")
)
_PURGED = sa.select(purged_courses).where(purged_courses.c.request_id == sa.bindparam("request_id"))

_COURSE_FIELDS = [c.name for c in courses.columns]
_PARTICIPATION_FIELDS = [c.name for c in participations.columns]


def _course_row(course: CourseState) -> dict[str, Any]:
    values = {name: getattr(course, name) for name in _COURSE_FIELDS}
    values["hub_status"] = course.hub_status.value
    values["hub_warnings"] = json.dumps(list(course.hub_warnings))
    return values


def _course_values(m: dict[str, Any]) -> dict[str, Any]:
    """A `courses` row's columns as CourseState's fields."""
    m["hub_status"] = DeploymentState(m["hub_status"])
    m["hub_warnings"] = tuple(str(w) for w in json.loads(m["hub_warnings"]))
    return m


def _course(row: sa.Row[Any], tutors: Sequence[str], accepted: int) -> CourseState:
    return CourseState(
        **_course_values(dict(row._mapping)), tutors=tuple(tutors), accepted=accepted
    )


def _participation_row(p: ParticipationState) -> dict[str, Any]:
    values = {name: getattr(p, name) for name in _PARTICIPATION_FIELDS}
    values["status"] = p.status.value
    return values


def _participation(row: sa.Row[Any]) -> ParticipationState:
    m = dict(row._mapping)
    m["status"] = ParticipationStatus(m["status"])
    return ParticipationState(**m)


class CourseRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, request_id: str, *, for_update: bool = False) -> CourseState | None:
        """The course with its tutors and accepted count. `for_update` locks the course
        row on PostgreSQL, so two replicas deciding on one course take turns (on SQLite
        writers take turns anyway)."""
        query = _COURSE_FOR_UPDATE if for_update else _COURSE
        row = self.conn.execute(query, {"request_id": request_id}).first()
        return self._complete(row) if row else None

    def by_code(self, code: str) -> CourseState | None:
        row = self.conn.execute(_COURSE_BY_CODE, {"code": code}).first()
        return self._complete(row) if row else None

    def _complete(self, row: sa.Row[Any]) -> CourseState:
        request_id = row._mapping["request_id"]
        tutors = self.conn.scalars(_TUTORS, {"request_id": request_id}).all()
        accepted = self.conn.scalar(_ACCEPTED, {"request_id": request_id}) or 0
        return _course(row, tutors, accepted)

    def add(self, course: CourseState) -> None:
        self.conn.execute(courses.insert(), _course_row(course))

    def save(self, course: CourseState) -> None:
        """The course's own columns; tutors change through add_tutor/remove_tutor."""
        self.conn.execute(_UPDATE_COURSE, {**_course_row(course), "key": course.request_id})

    def add_tutor(self, request_id: str, user_id: str) -> None:
        self.conn.execute(course_tutors.insert(), {"request_id": request_id, "user_id": user_id})

    def tutored_by(self, user_id: str) -> list[str]:
        return list(self.conn.scalars(_TUTORED_BY, {"user_id": user_id}))

    def remove_tutor(self, request_id: str, user_id: str) -> None:
        self.conn.execute(
            course_tutors.delete().where(
                course_tutors.c.request_id == request_id, course_tutors.c.user_id == user_id
            )
        )

    def purge(self, request_id: str) -> int:
        """Delete the course, its tutors and participations; the participations counted."""
        count = self.conn.scalar(
            sa.select(sa.func.count())
            .select_from(participations)
            .where(participations.c.request_id == request_id)
        )
        for table in (participations, course_tutors, courses):
            self.conn.execute(table.delete().where(table.c.request_id == request_id))
        return count or 0


class ParticipationRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, request_id: str, participation_id: str) -> ParticipationState | None:
        params = {"request_id": request_id, "participation_id": participation_id}
        row = self.conn.execute(_PARTICIPATION, params).first()
        return _participation(row) if row else None

    def of_user(self, request_id: str, user_id: str) -> ParticipationState | None:
        params = {"request_id": request_id, "user_id": user_id}
        row = self.conn.execute(_PARTICIPATION_OF, params).first()
        return _participation(row) if row else None

    def of_user_everywhere(
        self, user_id: str, *, for_update: bool = False
    ) -> list[ParticipationState]:
        query = _PARTICIPATIONS_OF_USER.with_for_update() if for_update else _PARTICIPATIONS_OF_USER
        return [_participation(r) for r in self.conn.execute(query, {"user_id": user_id})]

    def chosen(self, request_id: str, ids: Sequence[str]) -> list[ParticipationState]:
        rows = self.conn.execute(_CHOSEN, {"request_id": request_id, "ids": list(set(ids))})
        return [_participation(r) for r in rows]

    def list(
        self, request_id: str, status: ParticipationStatus | None = None
    ) -> list[ParticipationState]:
        query = sa.select(participations).where(participations.c.request_id == request_id)
        if status is not None:
            query = query.where(participations.c.status == status.value)
        query = query.order_by(participations.c.applied_at, participations.c.participation_id)
        return [_participation(r) for r in self.conn.execute(query)]

    def add(self, p: ParticipationState) -> bool:
        """Store a new application; False when this person applied already (another replica
        may have stored it a moment ago)."""
        added = self.conn.execute(
            insert_for(self.conn, participations)
            .values(_participation_row(p))
            .on_conflict_do_nothing(
                index_elements=[participations.c.request_id, participations.c.user_id]
            )
            # RETURNING: SQLAlchemy keeps no row count for an INSERT on psycopg.
            .returning(participations.c.participation_id)
        )
        return added.first() is not None

    def save(self, p: ParticipationState) -> None:
        self.conn.execute(
            _UPDATE_PARTICIPATION, {**_participation_row(p), "key": p.participation_id}
        )

    def save_decided(self, changed: Sequence[ParticipationState]) -> None:
        """Decisions taken together share status, decider, time and reason: one UPDATE
        for all of them, whatever their number."""
        if not changed:
            return
        first = changed[0]
        self.conn.execute(
            participations.update()
            .where(participations.c.participation_id.in_([p.participation_id for p in changed]))
            .values(
                status=first.status.value,
                decided_by=first.decided_by,
                decided_at=first.decided_at,
                updated_at=first.updated_at,
                reason=first.reason,
            )
        )


class PurgedCourseRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, request_id: str) -> PurgedCourse | None:
        row = self.conn.execute(_PURGED, {"request_id": request_id}).first()
        return PurgedCourse(**row._mapping) if row else None

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
            .returning(purged_courses.c.request_id)
        )
        return added.first() is not None


def courses_of(conn: Connection, user_id: str) -> list[tuple[CourseState, str, str | None]]:
    """Every course `user_id` leads, tutors or applied to: (course, how, participation
    status) with how one of "leader", "tutor", "participation"."""
    found: list[tuple[CourseState, str, str | None]] = []
    led = conn.execute(sa.select(courses).where(courses.c.leader_id == user_id))
    found += [(_course(r, (), 0), "leader", None) for r in led]
    tutored = conn.execute(
        sa.select(courses)
        .join(course_tutors, course_tutors.c.request_id == courses.c.request_id)
        .where(course_tutors.c.user_id == user_id)
    )
    found += [(_course(r, (), 0), "tutor", None) for r in tutored]
    applied = conn.execute(
        sa.select(courses, participations.c.status.label("participation_status"))
        .join(participations, participations.c.request_id == courses.c.request_id)
        .where(participations.c.user_id == user_id)
    )
    for row in applied:
        m = dict(row._mapping)
        status = m.pop("participation_status")
        found.append((CourseState(**_course_values(m)), "participation", status))
    return found
