"""The hub request repository and its tables."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from jhaas_runtime.tables import add_messaging_tables
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.errors import Conflict
from jhaas_schemas.model import HubSpec, RequestStatus
from jhaas_schemas.rpc import RequestChange
from request_svc.domain import HubRequestState

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

metadata = sa.MetaData()
messaging = add_messaging_tables(metadata)

hub_requests = sa.Table(
    "hub_requests",
    metadata,
    sa.Column("request_id", sa.String(36), primary_key=True),
    sa.Column("leader_id", sa.String(64), nullable=False, index=True),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("slug", sa.String(64), nullable=False),
    # Set while the request can still become a hub; NULL frees the slug for reuse.
    sa.Column("active_slug", sa.String(64), nullable=True, unique=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("review_comment", sa.Text, nullable=False, default=""),
    sa.Column("approved_revision", sa.Integer, nullable=True),
    sa.Column("hub_url", sa.String(500), nullable=True),
    sa.Column("hub_status_at", UtcDateTime(), nullable=True),
    # HubReady.warnings, a JSON list of strings.
    sa.Column("hub_warnings", sa.Text, nullable=False, default="[]", server_default="[]"),
    # The latest change after approval with its answer (a RequestChange as JSON), or NULL.
    sa.Column("change", sa.Text, nullable=True),
)

_spec_decoder = msgspec.json.Decoder(HubSpec)
_warnings_decoder = msgspec.json.Decoder(tuple[str, ...])
_change_decoder = msgspec.json.Decoder(RequestChange)


def _row(state: HubRequestState) -> dict[str, object]:
    return {
        "request_id": state.request_id,
        "leader_id": state.leader_id,
        "status": state.status.value,
        "revision": state.revision,
        "slug": state.spec.slug,
        "active_slug": state.active_slug,
        "spec": msgspec.json.encode(state.spec).decode(),
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "review_comment": state.review_comment,
        "approved_revision": state.approved_revision,
        "hub_url": state.hub_url,
        "hub_status_at": state.hub_status_at,
        "hub_warnings": msgspec.json.encode(state.hub_warnings).decode(),
        "change": msgspec.json.encode(state.change).decode() if state.change else None,
    }


def _state(row: sa.Row[tuple[object, ...]]) -> HubRequestState:
    m = row._mapping
    return HubRequestState(
        request_id=m["request_id"],
        leader_id=m["leader_id"],
        status=RequestStatus(m["status"]),
        revision=m["revision"],
        spec=_spec_decoder.decode(m["spec"]),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        review_comment=m["review_comment"],
        approved_revision=m["approved_revision"],
        hub_url=m["hub_url"],
        hub_status_at=m["hub_status_at"],
        hub_warnings=_warnings_decoder.decode(m["hub_warnings"]),
        change=_change_decoder.decode(m["change"]) if m["change"] else None,
    )


_GET = sa.select(hub_requests).where(hub_requests.c.request_id == sa.bindparam("request_id"))
_GET_FOR_UPDATE = _GET.with_for_update()
_SLUG_HOLDER = sa.select(hub_requests.c.request_id).where(
    hub_requests.c.active_slug == sa.bindparam("slug")
)
_INSERT = hub_requests.insert()
_UPDATE = hub_requests.update().where(hub_requests.c.request_id == sa.bindparam("key"))


class HubRequestRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def get(self, request_id: str, *, for_update: bool = False) -> HubRequestState | None:
        query = _GET_FOR_UPDATE if for_update else _GET
        row = self.conn.execute(query, {"request_id": request_id}).first()
        return _state(row) if row else None

    def list(
        self,
        *,
        leader_id: str | None = None,
        status: RequestStatus | None = None,
        statuses: Collection[RequestStatus] | None = None,
    ) -> list[HubRequestState]:
        query = sa.select(hub_requests).order_by(hub_requests.c.created_at.desc())
        if leader_id is not None:
            query = query.where(hub_requests.c.leader_id == leader_id)
        if status is not None:
            query = query.where(hub_requests.c.status == status.value)
        if statuses is not None:
            query = query.where(hub_requests.c.status.in_(sorted(s.value for s in statuses)))
        return [_state(r) for r in self.conn.execute(query).all()]

    def ensure_slug_free(self, slug: str, request_id: str) -> None:
        holder = self.conn.scalar(_SLUG_HOLDER, {"slug": slug})
        if holder is not None and holder != request_id:
            raise Conflict(f"the slug {slug!r} is taken", {"spec.slug": "is taken"})

    def add(self, state: HubRequestState) -> None:
        self.ensure_slug_free(state.spec.slug, state.request_id)
        self._write(_INSERT, _row(state), state.spec.slug)

    def save(self, state: HubRequestState) -> None:
        if state.active_slug:
            self.ensure_slug_free(state.active_slug, state.request_id)
        self._write(_UPDATE, {**_row(state), "key": state.request_id}, state.spec.slug)

    def _write(self, statement: sa.Executable, values: dict[str, object], slug: str) -> None:
        try:
            self.conn.execute(statement, values)
        except IntegrityError:
            # Two leaders claimed the same slug at the same moment (PostgreSQL;
            # on SQLite writers take turns). The unit of work ends here and is
            # rolled back whole, so no savepoint is needed.
            raise Conflict(f"the slug {slug!r} is taken", {"spec.slug": "is taken"}) from None
