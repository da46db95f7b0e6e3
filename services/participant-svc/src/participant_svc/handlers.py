"""Thin handlers: decode, load, call the domain, save with the outbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from jhaas_runtime.logs import get_logger
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import Event
from jhaas_schemas.events import HubDeleted
from participant_svc import domain
from participant_svc.store import PurgedCourseRepository

Clock = Callable[[], datetime]

log = get_logger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class ParticipantHandlers:
    def __init__(self, runtime: ServiceRuntime, clock: Clock = utcnow) -> None:
        self.runtime = runtime
        self.clock = clock

    async def on_hub_deleted(self, session: AsyncSession, event: Event) -> Sequence[Event]:
        assert isinstance(event, HubDeleted)
        repo = PurgedCourseRepository(session)
        course = domain.on_hub_deleted(await repo.get(event.request_id), event, now=self.clock())
        if course is None:
            log.info("course already marked for purging", request_id=event.request_id)
        else:
            await repo.add(course)
        return ()
