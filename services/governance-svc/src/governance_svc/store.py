"""The review repository and its tables: reviews, and the audit of their decisions."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from governance_svc.domain import ReviewRecord
from jhaas_runtime.db import insert_for
from jhaas_runtime.tables import add_messaging_tables
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.model import HubSpec
from jhaas_schemas.rpc import Decision, ReviewState

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

metadata = sa.MetaData()
messaging = add_messaging_tables(metadata)

reviews = sa.Table(
    "reviews",
    metadata,
    sa.Column("review_id", sa.String(36), primary_key=True),
    # One review per request: a second submission of the same request finds it.
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("leader_id", sa.String(64), nullable=False, index=True),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("submitted_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
)

# The audit: one row per decision, never updated or deleted.
decisions = sa.Table(
    "decisions",
    metadata,
    sa.Column("decision_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "review_id", sa.String(36), sa.ForeignKey("reviews.review_id"), nullable=False, index=True
    ),
    sa.Column("state", sa.String(32), nullable=False),
    sa.Column("decided_by", sa.String(64), nullable=False),
    sa.Column("decided_at", UtcDateTime(), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("comment", sa.Text, nullable=False),
)

_spec_decoder = msgspec.json.Decoder(HubSpec)


def _row(review: ReviewRecord) -> dict[str, object]:
    return {
        "review_id": review.review_id,
        "request_id": review.request_id,
        "leader_id": review.leader_id,
        "state": review.state.value,
        "revision": review.revision,
        "spec": msgspec.json.encode(review.spec).decode(),
        "submitted_at": review.submitted_at,
        "updated_at": review.updated_at,
    }


def _review(row: sa.Row[tuple[object, ...]], history: tuple[Decision, ...]) -> ReviewRecord:
    m = row._mapping
    return ReviewRecord(
        review_id=m["review_id"],
        request_id=m["request_id"],
        leader_id=m["leader_id"],
        state=ReviewState(m["state"]),
        revision=m["revision"],
        spec=_spec_decoder.decode(m["spec"]),
        submitted_at=m["submitted_at"],
        updated_at=m["updated_at"],
        decisions=history,
    )


def _decision(row: sa.Row[tuple[object, ...]]) -> Decision:
    m = row._mapping
    return Decision(
        state=ReviewState(m["state"]),
        decided_by=m["decided_by"],
        decided_at=m["decided_at"],
        revision=m["revision"],
        comment=m["comment"],
    )


class ReviewRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, request_id: str, *, for_update: bool = False) -> ReviewRecord | None:
        query = sa.select(reviews).where(reviews.c.request_id == request_id)
        if for_update:
            query = query.with_for_update()
        row = self.conn.execute(query).first()
        if row is None:
            return None
        history = self._decisions([row._mapping["review_id"]])
        return _review(row, tuple(history[row._mapping["review_id"]]))

    def list_reviews(self, *, state: ReviewState | None = None) -> list[ReviewRecord]:
        # Oldest first: a queue is worked through in the order it was filled.
        query = sa.select(reviews).order_by(reviews.c.submitted_at, reviews.c.review_id)
        if state is not None:
            query = query.where(reviews.c.state == state.value)
        rows = self.conn.execute(query).all()
        history = self._decisions([r._mapping["review_id"] for r in rows])
        return [_review(r, tuple(history[r._mapping["review_id"]])) for r in rows]

    def _decisions(self, review_ids: list[str]) -> dict[str, list[Decision]]:
        history: dict[str, list[Decision]] = defaultdict(list)
        if review_ids:
            query = (
                sa.select(decisions)
                .where(decisions.c.review_id.in_(review_ids))
                .order_by(decisions.c.decision_id)
            )
            for row in self.conn.execute(query).all():
                history[row._mapping["review_id"]].append(_decision(row))
        return history

    def add(self, review: ReviewRecord) -> bool:
        """Store a new review; False when its request has one already (a race lost)."""
        added = self.conn.execute(
            insert_for(self.conn, reviews)
            .values(**_row(review))
            .on_conflict_do_nothing(index_elements=[reviews.c.request_id])
            # RETURNING: SQLAlchemy keeps no row count for an INSERT on psycopg.
            .returning(reviews.c.review_id)
        )
        return added.first() is not None

    def save(self, review: ReviewRecord) -> None:
        self.conn.execute(
            reviews.update().where(reviews.c.review_id == review.review_id).values(**_row(review))
        )

    def record_decision(self, review_id: str, decision: Decision) -> None:
        self.conn.execute(
            decisions.insert().values(
                review_id=review_id,
                state=decision.state.value,
                decided_by=decision.decided_by,
                decided_at=decision.decided_at,
                revision=decision.revision,
                comment=decision.comment,
            )
        )
