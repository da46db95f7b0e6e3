"""The hub request repository and its tables."""

from __future__ import annotations

from pathlib import Path

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from jhaas_runtime.tables import add_messaging_tables
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.errors import Conflict
from jhaas_schemas.model import HubSpec, RequestStatus
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
)

_spec_decoder = msgspec.json.Decoder(HubSpec)


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
    )


class HubRequestRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, request_id: str, *, for_update: bool = False) -> HubRequestState | None:
        query = sa.select(hub_requests).where(hub_requests.c.request_id == request_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _state(row) if row else None

    async def list(
        self, *, leader_id: str | None = None, status: RequestStatus | None = None
    ) -> list[HubRequestState]:
        query = sa.select(hub_requests).order_by(hub_requests.c.created_at.desc())
        if leader_id is not None:
            query = query.where(hub_requests.c.leader_id == leader_id)
        if status is not None:
            query = query.where(hub_requests.c.status == status.value)
        return [_state(r) for r in (await self.session.execute(query)).all()]

    async def ensure_slug_free(self, slug: str, request_id: str) -> None:
        holder = await self.session.scalar(
            sa.select(hub_requests.c.request_id).where(hub_requests.c.active_slug == slug)
        )
        if holder is not None and holder != request_id:
            raise Conflict(f"the slug {slug!r} is taken", {"spec.slug": "is taken"})

    async def add(self, state: HubRequestState) -> None:
        await self.ensure_slug_free(state.spec.slug, state.request_id)
        await self._write(hub_requests.insert().values(**_row(state)), state.spec.slug)

    async def save(self, state: HubRequestState) -> None:
        if state.active_slug:
            await self.ensure_slug_free(state.active_slug, state.request_id)
        await self._write(
            hub_requests.update()
            .where(hub_requests.c.request_id == state.request_id)
            .values(**_row(state)),
            state.spec.slug,
        )

    async def _write(self, statement: sa.Executable, slug: str) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(statement)
        except IntegrityError:
            # Two leaders claimed the same slug at the same moment.
            raise Conflict(f"the slug {slug!r} is taken", {"spec.slug": "is taken"}) from None
