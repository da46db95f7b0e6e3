"""The deployment repository and its table."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from deployer_svc.credentials import SEALED_PREFIX, CredentialBox
from deployer_svc.domain import DeploymentRecord
from deployer_svc.schedule import ACTIVE
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
    sa.Column("teardown_at", UtcDateTime(), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=True),
    sa.Column("lease_owner", sa.String(100), nullable=True),
    sa.Column("lease_until", UtcDateTime(), nullable=True),
    sa.Column("course_started", sa.Boolean, nullable=False, default=False),
    # A deploy of this course was begun at least once: something may exist.
    sa.Column(
        "deploy_started", sa.Boolean, nullable=False, default=False, server_default=sa.false()
    ),
    sa.Column("failure_reason", sa.Text, nullable=False, default=""),
)

# The deployer's own credential for each hub's REST API. Kept apart from the
# deployment rows (which are listed to users), encrypted (credentials.py) and
# deleted with the hub.
hub_credentials = sa.Table(
    "hub_credentials",
    metadata,
    sa.Column("deployment_id", sa.String(36), primary_key=True),
    sa.Column("api_token", sa.String(200), nullable=False),
)

# Cancellations that arrived before their approval (another stream, no order).
early_cancellations = sa.Table(
    "early_cancellations",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("cancelled_at", UtcDateTime(), nullable=False),
)

_SCHEDULE_FIELDS = (
    "teardown_at",
    "attempts",
    "next_attempt_at",
    "lease_owner",
    "lease_until",
    "course_started",
    "failure_reason",
    "deploy_started",
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
        **{name: getattr(record, name) for name in _SCHEDULE_FIELDS},
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
        **{name: m[name] for name in _SCHEDULE_FIELDS},
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

    async def get(self, deployment_id: str, *, for_update: bool = False) -> DeploymentRecord | None:
        query = sa.select(deployments).where(deployments.c.deployment_id == deployment_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _record(row) if row else None

    async def due(self, now: datetime, *, lock: bool) -> list[DeploymentRecord]:
        """Deployments with an action due at `now` (the SQL form of
        `schedule.due_action`, which still decides on each row). Only these are
        read and locked: a tick costs what is due, not what is scheduled."""
        c = deployments.c
        state = c.state
        pre_hub = [DeploymentState.SCHEDULED.value, DeploymentState.DEPLOYING.value]
        query = (
            sa.select(deployments)
            .where(sa.or_(c.lease_until.is_(None), c.lease_until <= now))
            .where(
                sa.or_(
                    sa.and_(state.in_([*pre_hub, DeploymentState.FAILED.value]), c.ends_at <= now),
                    sa.and_(
                        state.in_(pre_hub),
                        c.deploy_at <= now,
                        sa.or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now),
                    ),
                    sa.and_(
                        state == DeploymentState.RUNNING.value,
                        sa.or_(
                            c.ends_at <= now,
                            sa.and_(c.course_started.is_(False), c.starts_at <= now),
                        ),
                    ),
                    sa.and_(state == DeploymentState.ENDING.value, c.teardown_at <= now),
                )
            )
            .order_by(c.deploy_at)
        )
        if lock:
            query = query.with_for_update(skip_locked=True)
        return [_record(r) for r in (await self.session.execute(query)).all()]

    async def next_due(self) -> datetime | None:
        """When something is next due (the SQL form of `min(schedule.next_due(r))`
        over the active deployments), computed by the database in one row."""
        c = deployments.c
        state = c.state
        pre_hub = state.in_([DeploymentState.SCHEDULED.value, DeploymentState.DEPLOYING.value])
        later_of = sa.case(
            (
                sa.and_(c.next_attempt_at.is_not(None), c.next_attempt_at > c.deploy_at),
                c.next_attempt_at,
            ),
            else_=c.deploy_at,
        )
        candidates = (
            c.ends_at,
            c.lease_until,
            sa.case((pre_hub, later_of), else_=None),
            sa.case(
                (
                    sa.and_(state == DeploymentState.RUNNING.value, c.course_started.is_(False)),
                    c.starts_at,
                ),
                else_=None,
            ),
            sa.case((state == DeploymentState.ENDING.value, c.teardown_at), else_=None),
        )
        query = sa.select(*(sa.func.min(t, type_=UtcDateTime()) for t in candidates)).where(
            state.in_([s.value for s in ACTIVE])
        )
        row = (await self.session.execute(query)).one()
        times = [t for t in row if t is not None]
        return min(times) if times else None

    async def renew_lease(
        self, deployment_id: str, owner: str, until: datetime
    ) -> DeploymentState | None:
        """Extend `owner`'s lease; the deployment's state, or None when the lease is
        not `owner`'s any more (it expired and another worker claimed the row)."""
        c = deployments.c
        state = await self.session.scalar(
            deployments.update()
            .where(c.deployment_id == deployment_id, c.lease_owner == owner)
            .values(lease_until=until)
            .returning(c.state)
        )
        return DeploymentState(state) if state is not None else None

    async def release_leases(self, owner: str, deployment_ids: list[str]) -> None:
        """Give up `owner`'s leases on these rows at once (a stopping worker), so that
        another worker or the next start takes the actions over without waiting."""
        if deployment_ids:
            c = deployments.c
            await self.session.execute(
                deployments.update()
                .where(c.deployment_id.in_(deployment_ids), c.lease_owner == owner)
                .values(lease_owner=None, lease_until=None)
            )

    async def states_of(self, deployment_ids: list[str]) -> dict[str, DeploymentState]:
        """The state of each of these deployments that the database knows."""
        c = deployments.c
        found: dict[str, DeploymentState] = {}
        for start in range(0, len(deployment_ids), 500):  # bounded IN lists
            chunk = deployment_ids[start : start + 500]
            rows = await self.session.execute(
                sa.select(c.deployment_id, c.state).where(c.deployment_id.in_(chunk))
            )
            found.update({row.deployment_id: DeploymentState(row.state) for row in rows})
        return found

    async def running(self) -> list[DeploymentRecord]:
        """Deployments whose hub should be up now (reconciliation checks each)."""
        query = sa.select(deployments).where(deployments.c.state == DeploymentState.RUNNING.value)
        return [_record(r) for r in (await self.session.execute(query)).all()]

    async def any_deployment(self) -> bool:
        """Whether this database has ever scheduled a hub (an empty one next to
        existing hubs looks reset or restored)."""
        found = await self.session.scalar(sa.select(deployments.c.deployment_id).limit(1))
        return found is not None

    async def save(self, record: DeploymentRecord) -> None:
        await self.session.execute(
            deployments.update()
            .where(deployments.c.deployment_id == record.deployment_id)
            .values(**_row(record))
        )

    async def api_token(self, deployment_id: str, new_token: str, box: CredentialBox) -> str:
        """The hub's API token, made (from `new_token`) the first time it is asked
        for; stored encrypted with `box`."""
        where = hub_credentials.c.deployment_id == deployment_id
        found = await self.session.scalar(sa.select(hub_credentials.c.api_token).where(where))
        if found is None:
            await self.session.execute(
                hub_credentials.insert().values(
                    deployment_id=deployment_id, api_token=box.seal(new_token)
                )
            )
            return new_token
        if not str(found).startswith(SEALED_PREFIX):
            # Stored in the clear by a version before encryption: seal it now.
            await self.session.execute(
                hub_credentials.update().where(where).values(api_token=box.seal(str(found)))
            )
            return str(found)
        return box.open(str(found))

    async def forget_credentials(self, deployment_id: str) -> None:
        await self.session.execute(
            hub_credentials.delete().where(hub_credentials.c.deployment_id == deployment_id)
        )

    async def remember_cancellation(self, request_id: str, now: datetime) -> None:
        exists = await self.cancelled_before_approval(request_id)
        if not exists:
            await self.session.execute(
                early_cancellations.insert().values(request_id=request_id, cancelled_at=now)
            )

    async def cancelled_before_approval(self, request_id: str) -> bool:
        found = await self.session.scalar(
            sa.select(early_cancellations.c.request_id).where(
                early_cancellations.c.request_id == request_id
            )
        )
        return found is not None

    async def add(self, record: DeploymentRecord) -> bool:
        """Store a new deployment; False when its request has one already (a race lost)."""
        try:
            async with self.session.begin_nested():
                await self.session.execute(deployments.insert().values(**_row(record)))
        except IntegrityError:
            return False
        return True
