"""Thin handlers: decode, load, call the domain, save with the outbox."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from sqlalchemy.engine import Connection

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

    def on_hub_deleted(self, conn: Connection, event: Event) -> Sequence[Event]:
        assert isinstance(event, HubDeleted)
        repo = PurgedCourseRepository(conn)
        course = domain.on_hub_deleted(repo.get(event.request_id), event, now=self.clock())
        if course is None:
            log.info("course already marked for purging", request_id=event.request_id)
        else:
            repo.add(course)
        return ()
