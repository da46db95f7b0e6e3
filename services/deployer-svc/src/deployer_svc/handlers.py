"""Thin handlers: decode, load, call the domain, save with the outbox."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from deployer_svc import domain, schedule
from deployer_svc.store import DeploymentRepository
from jhaas_runtime.logs import get_logger
from jhaas_runtime.rpc import CallContext
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import Envelope, Event, envelope
from jhaas_schemas.errors import NotFound
from jhaas_schemas.events import RequestApproved, RequestCancelled
from jhaas_schemas.rpc import Deployment, DeploymentList, ListDeployments, RedeployHub

SOURCE = "deployer-svc"
Clock = Callable[[], datetime]

log = get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class DeployerHandlers:
    def __init__(
        self,
        runtime: ServiceRuntime,
        *,
        lead_time: timedelta,
        grace: timedelta = timedelta(0),
        clock: Clock = utcnow,
        on_change: Callable[[datetime | None], None] = lambda _at: None,
    ) -> None:
        self.runtime = runtime
        self.lead_time = lead_time
        self.grace = grace
        # Tells the scheduler when a change falls due (None: now); it would look
        # within a second anyway, this only makes it prompt.
        self.on_change = on_change
        self.clock = clock

    async def list_deployments(self, ctx: CallContext, payload: ListDeployments) -> DeploymentList:
        leader_id = domain.visible_leader(ctx.principal)
        async with self.runtime.db.reading() as session:
            records = await DeploymentRepository(session).list_deployments(
                leader_id=leader_id, request_id=payload.request_id
            )
        return DeploymentList(items=[r.view() for r in records])

    async def on_request_approved(self, session: AsyncSession, event: Event) -> Sequence[Event]:
        assert isinstance(event, RequestApproved)
        now = self.clock()
        repo = DeploymentRepository(session)
        scheduled = domain.schedule_deployment(
            await repo.for_request(event.request_id, for_update=True),
            event,
            deployment_id=str(uuid.uuid4()),
            lead_time=self.lead_time,
            grace=self.grace,
            now=now,
            env=self._caused_by(event, now),
        )
        if scheduled is None:
            log.info("request already has a deployment", request_id=event.request_id)
            return ()
        record, scheduled_event = scheduled
        emitted: Event | None = scheduled_event
        if await repo.cancelled_before_approval(event.request_id):
            # The cancellation overtook the approval (they travel on different
            # streams): never build this hub; close the request at once.
            record, emitted = schedule.cancel(record, now, self._caused_by(event, now))
            log.info("approval of an already cancelled request", request_id=event.request_id)
        if not await repo.add(record):
            log.info("deployment scheduled by another replica", request_id=event.request_id)
            return ()
        self.on_change(schedule.next_due(record))
        return (emitted,) if emitted is not None else ()

    def _caused_by(self, event: Event, now: datetime) -> Envelope:
        return envelope(
            source=SOURCE, correlation_id=event.correlation_id, causation_id=event.event_id, now=now
        )

    async def on_request_cancelled(self, session: AsyncSession, event: Event) -> Sequence[Event]:
        """Unschedule a course that has no hub yet; tear down one that has (or may have)."""
        assert isinstance(event, RequestCancelled)
        repo = DeploymentRepository(session)
        record = await repo.for_request(event.request_id, for_update=True)
        if record is None:
            # The approval has not reached us yet (or never will): remember, so
            # that it does not schedule a hub when it comes.
            await repo.remember_cancellation(event.request_id, self.clock())
            return ()
        now = self.clock()
        new, deleted = schedule.cancel(record, now, self._caused_by(event, now))
        await repo.save(new)
        self.on_change(None)
        return (deleted,) if deleted is not None else ()

    async def redeploy(self, ctx: CallContext, payload: RedeployHub) -> Deployment:
        now = self.clock()
        async with self.runtime.unit_of_work() as uow:
            repo = DeploymentRepository(uow.session)
            record = await repo.for_request(payload.request_id, for_update=True)
            if record is None:
                raise NotFound(f"no deployment for request {payload.request_id}")
            new = schedule.redeploy(record, ctx.principal, now)
            await repo.save(new)
        self.on_change(None)
        return new.view()
