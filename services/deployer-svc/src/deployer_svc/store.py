"""The deployment repository and its table."""

from __future__ import annotations

from pathlib import Path

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deployer_svc.domain import DeploymentRecord
from jhaas_runtime.tables import add_messaging_tables
from jhaas_runtime.types import UtcDateTime
from jhaas_schemas.model import HubSpec
from jhaas_schemas.rpc import DeploymentState

VERSIONS_DIR = Path(__file__).parent / "migrations" / "versions"

metadata = sa.MetaData()
messaging = add_messaging_tables(metadata)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("deployment_id", sa.String(36), primary_key=True),
    # One hub per request, however many approvals for it arrive.
    sa.Column("request_id", sa.String(64), nullable=False, unique=True),
    sa.Column("leader_id", sa.String(64), nullable=False, index=True),
    sa.Column("state", sa.String(32), nullable=False, index=True),
    sa.Column("configuration", sa.Text, nullable=False),
    sa.Column("deploy_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("starts_at", UtcDateTime(), nullable=False),
    sa.Column("ends_at", UtcDateTime(), nullable=False, index=True),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Column("hub_url", sa.String(500), nullable=True),
)

_spec_decoder = msgspec.json.Decoder(HubSpec)


def _row(record: DeploymentRecord) -> dict[str, object]:
    return {
        "deployment_id": record.deployment_id,
        "request_id": record.request_id,
        "leader_id": record.leader_id,
        "state": record.state.value,
        "configuration": msgspec.json.encode(record.configuration).decode(),
        "deploy_at": record.deploy_at,
        "starts_at": record.starts_at,
        "ends_at": record.ends_at,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "hub_url": record.hub_url,
    }


def _record(row: sa.Row[tuple[object, ...]]) -> DeploymentRecord:
    m = row._mapping
    return DeploymentRecord(
        deployment_id=m["deployment_id"],
        request_id=m["request_id"],
        leader_id=m["leader_id"],
        state=DeploymentState(m["state"]),
        configuration=_spec_decoder.decode(m["configuration"]),
        deploy_at=m["deploy_at"],
        starts_at=m["starts_at"],
        ends_at=m["ends_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        hub_url=m["hub_url"],
    )


class DeploymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def for_request(
        self, request_id: str, *, for_update: bool = False
    ) -> DeploymentRecord | None:
        query = sa.select(deployments).where(deployments.c.request_id == request_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _record(row) if row else None

    async def list_deployments(
        self, *, leader_id: str | None = None, request_id: str | None = None
    ) -> list[DeploymentRecord]:
        query = sa.select(deployments).order_by(
            deployments.c.deploy_at, deployments.c.deployment_id
        )
        if leader_id is not None:
            query = query.where(deployments.c.leader_id == leader_id)
        if request_id is not None:
            query = query.where(deployments.c.request_id == request_id)
        return [_record(r) for r in (await self.session.execute(query)).all()]

    async def add(self, record: DeploymentRecord) -> bool:
        """Store a new deployment; False when its request has one already (a race lost)."""
        try:
            async with self.session.begin_nested():
                await self.session.execute(deployments.insert().values(**_row(record)))
        except IntegrityError:
            return False
        return True
