"""Changes of approved courses (ChangeProposed): the ones the system applied at
once, and the ones waiting for a reviewer, with their table.

The course keeps its approved configuration until a change is approved. A
change decided by a reviewer is refused as stale (409) when the course's
approved configuration changed since it was proposed (another change applied)
or the course is no longer approved (cancelled).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from governance_svc.domain import DECIDERS, ReviewRecord
from governance_svc.store import metadata
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.errors import Conflict, Forbidden, InvalidInput, NotFound
from jhaas_schemas.model import HubSpec, Principal
from jhaas_schemas.rpc import ChangeReview, ChangeState, ReviewChecks, ReviewState

change_reviews = sa.Table(
    "change_reviews",
    metadata,
    sa.Column("change_id", sa.String(64), primary_key=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("leader_id", sa.String(64), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("approved", sa.Text, nullable=False),
    sa.Column("proposed", sa.Text, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
    sa.Column("proposed_at", UtcDateTime(), nullable=False),
    sa.Column("decided_by", sa.String(64), nullable=True),
    sa.Column("decided_at", UtcDateTime(), nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
)
_c = change_reviews.c
_spec = msgspec.json.Decoder(HubSpec)


@dataclass(frozen=True, kw_only=True)
class ChangeRecord:
    change_id: str
    request_id: str
    leader_id: str
    state: ChangeState
    revision: int
    approved: HubSpec  # the course's configuration when the change was proposed
    proposed: HubSpec
    comment: str
    proposed_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""

    def view(self, checks: ReviewChecks | None = None) -> ChangeReview:
        return ChangeReview(
            change_id=self.change_id,
            request_id=self.request_id,
            leader_id=self.leader_id,
            state=self.state,
            revision=self.revision,
            approved=self.approved,
            proposed=self.proposed,
            comment=self.comment,
            proposed_at=self.proposed_at,
            decided_by=self.decided_by,
            decided_at=self.decided_at,
            reason=self.reason,
            checks=checks,
        )

    def decided(self, state: ChangeState, by: str, at: datetime, reason: str) -> ChangeRecord:
        return replace(self, state=state, decided_by=by, decided_at=at, reason=reason)


def _row(change: ChangeRecord) -> dict[str, object]:
    return {
        "change_id": change.change_id,
        "request_id": change.request_id,
        "leader_id": change.leader_id,
        "state": change.state.value,
        "revision": change.revision,
        "approved": msgspec.json.encode(change.approved).decode(),
        "proposed": msgspec.json.encode(change.proposed).decode(),
        "comment": change.comment,
        "proposed_at": change.proposed_at,
        "decided_by": change.decided_by,
        "decided_at": change.decided_at,
        "reason": change.reason,
    }


def _record(row: sa.Row[tuple[object, ...]]) -> ChangeRecord:
    m = row._mapping
    return ChangeRecord(
        change_id=m["change_id"],
        request_id=m["request_id"],
        leader_id=m["leader_id"],
        state=ChangeState(m["state"]),
        revision=m["revision"],
        approved=_spec.decode(m["approved"]),
        proposed=_spec.decode(m["proposed"]),
        comment=m["comment"],
        proposed_at=m["proposed_at"],
        decided_by=m["decided_by"],
        decided_at=m["decided_at"],
        reason=m["reason"],
    )


class ChangeRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, change_id: str, *, for_update: bool = False) -> ChangeRecord | None:
        query = sa.select(change_reviews).where(_c.change_id == change_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        return None if row is None else _record(row)

    def list(
        self, *, state: ChangeState | None = None, request_id: str | None = None
    ) -> list[ChangeRecord]:
        query = sa.select(change_reviews).order_by(_c.proposed_at, _c.change_id)
        if state is not None:
            query = query.where(_c.state == state.value)
        if request_id is not None:
            query = query.where(_c.request_id == request_id)
        return [_record(row) for row in self.conn.execute(query).all()]

    def add(self, change: ChangeRecord) -> None:
        self.conn.execute(change_reviews.insert().values(**_row(change)))

    def save(self, change: ChangeRecord) -> None:
        self.conn.execute(
            change_reviews.update().where(_c.change_id == change.change_id).values(**_row(change))
        )


# --- a reviewer's decision ---------------------------------------------------------


def ensure_decidable(
    review: ReviewRecord, change: ChangeRecord | None, principal: Principal, change_id: str
) -> ChangeRecord:
    """Who may decide, on which change, and whether it still applies."""
    if change is None or change.request_id != review.request_id:
        raise NotFound(f"no change {change_id} of hub request {review.request_id}")
    if not principal.has(*DECIDERS):
        raise Forbidden("only governance and admins decide on changes of courses")
    if principal.user_id == review.leader_id:
        raise Forbidden("you cannot decide on a change of your own course; another reviewer must")
    if change.state != ChangeState.PENDING:
        raise Conflict(f"the change is {change.state.value}; only a pending change can be decided")
    if review.state != ReviewState.APPROVED:
        raise Conflict(f"the course is {review.state.value}; its changes no longer apply")
    if review.spec != change.approved or change.revision <= review.revision:
        raise Conflict(
            "the course's approved configuration changed since this change was proposed "
            f"(it is at revision {review.revision}); the leader must propose it again"
        )
    return change


def require_reason(reason: str) -> None:
    if not reason.strip():
        raise InvalidInput(
            "a rejected change needs a reason the leader can act on",
            {"comment": "must not be empty"},
        )
