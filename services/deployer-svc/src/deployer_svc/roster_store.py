"""The roster tables: who is on each course's roster, and how far each hub is in step.

`roster_members` keeps a row per (course, person, role) with whether it is
present and when that last changed: a change older than the row's is
ignored, so events redelivered out of order cannot put a removed person
back. `roster_versions` counts changes per course (`version`) and holds the
version its hub was last brought in step with (`synced`, -1: never, or a
hub built anew since): a hub is behind while version > synced.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from deployer_svc.roster import RosterChange, RosterRole
from deployer_svc.store import deployments, metadata
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.rpc import DeploymentState

NEVER = -1

roster_members = sa.Table(
    "roster_members",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), primary_key=True),
    sa.Column("present", sa.Boolean, nullable=False),
    sa.Column("changed_at", UtcDateTime(), nullable=False),
)

roster_versions = sa.Table(
    "roster_versions",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("synced", sa.Integer, nullable=False),
)

_m = roster_members.c
_v = roster_versions.c
_d = deployments.c
# A hub that exists and is meant to: roster sync keeps it in step.
SYNCED_STATES = (DeploymentState.RUNNING.value, DeploymentState.ENDING.value)


def _apply_changes(dialect: str) -> sa.Executable:
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(roster_members)
    return insert.on_conflict_do_update(
        index_elements=[_m.request_id, _m.user_id, _m.role],
        set_={"present": insert.excluded.present, "changed_at": insert.excluded.changed_at},
        where=_m.changed_at <= insert.excluded.changed_at,
    )


def _bump(dialect: str) -> sa.Executable:
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(roster_versions)
    return insert.on_conflict_do_update(
        index_elements=[_v.request_id], set_={"version": _v.version + 1}
    )


def _ensure(dialect: str) -> sa.Executable:
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(roster_versions)
    return insert.on_conflict_do_nothing(index_elements=[_v.request_id])


_APPLY = {d: _apply_changes(d) for d in ("postgresql", "sqlite")}
_BUMP = {d: _bump(d) for d in ("postgresql", "sqlite")}
_ENSURE = {d: _ensure(d) for d in ("postgresql", "sqlite")}
_VERSION = sa.func.coalesce(_v.version, 0)
_PENDING = (
    sa.select(_d.deployment_id, _VERSION.label("version"))
    .select_from(deployments.outerjoin(roster_versions, _v.request_id == _d.request_id))
    .where(_d.state.in_(SYNCED_STATES), _d.hub_url.is_not(None))
    .where(sa.func.coalesce(_v.synced, NEVER) < _VERSION)
)
_PRESENT = sa.select(_m.user_id, _m.role).where(
    _m.request_id == sa.bindparam("request_id"), _m.present.is_(True)
)


@dataclass(frozen=True, kw_only=True)
class RosterSnapshot:
    deployment_id: str
    request_id: str
    leader_id: str
    version: int
    members: list[tuple[str, RosterRole]]


class RosterRepository:
    """The roster tables, inside the caller's transaction on `conn`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name

    def apply(self, changes: Sequence[RosterChange]) -> None:
        """Store these changes (one statement for all) and count one change per course."""
        if not changes:
            return
        rows = [
            {
                "request_id": c.request_id,
                "user_id": c.user_id,
                "role": c.role.value,
                "present": c.present,
                "changed_at": c.at,
            }
            for c in changes
        ]
        self.conn.execute(_APPLY[self.dialect], rows)
        courses = sorted({c.request_id for c in changes})
        self.conn.execute(
            _BUMP[self.dialect],
            [{"request_id": r, "version": 1, "synced": NEVER} for r in courses],
        )

    def pending(self) -> dict[str, int]:
        """Deployments whose hub is behind its roster, with the version to reach."""
        return {row.deployment_id: row.version for row in self.conn.execute(_PENDING)}

    def running(self) -> list[str]:
        """Deployments whose hub roster sync keeps in step."""
        query = sa.select(_d.deployment_id).where(
            _d.state.in_(SYNCED_STATES), _d.hub_url.is_not(None)
        )
        return list(self.conn.scalars(query))

    def snapshot(self, deployment_id: str) -> RosterSnapshot | None:
        """The roster of this deployment's course and its version, read together;
        None unless its hub is one roster sync keeps in step."""
        query = (
            sa.select(_d.request_id, _d.leader_id, _VERSION.label("version"))
            .select_from(deployments.outerjoin(roster_versions, _v.request_id == _d.request_id))
            .where(_d.deployment_id == deployment_id, _d.state.in_(SYNCED_STATES))
            .where(_d.hub_url.is_not(None))
        )
        row = self.conn.execute(query).first()
        if row is None:
            return None
        members = [
            (m.user_id, RosterRole(m.role))
            for m in self.conn.execute(_PRESENT, {"request_id": row.request_id})
        ]
        return RosterSnapshot(
            deployment_id=deployment_id,
            request_id=row.request_id,
            leader_id=row.leader_id,
            version=row.version,
            members=members,
        )

    def synced(self, request_id: str, version: int) -> None:
        """The course's hub holds the roster of `version` (never moves back)."""
        self.conn.execute(
            _ENSURE[self.dialect], {"request_id": request_id, "version": 0, "synced": NEVER}
        )
        self.conn.execute(
            roster_versions.update()
            .where(_v.request_id == request_id, _v.synced < version)
            .values(synced=version)
        )

    def hub_rebuilt(self, request_id: str) -> None:
        """A hub built (again) holds nobody yet: bring it in step from scratch."""
        self.conn.execute(
            roster_versions.update().where(_v.request_id == request_id).values(synced=NEVER)
        )

    def forget(self, request_id: str) -> None:
        """The course's hub is deleted: its roster goes with it."""
        for table in (roster_members, roster_versions):
            self.conn.execute(table.delete().where(table.c.request_id == request_id))
