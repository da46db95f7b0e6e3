"""Participation in courses. For now: which courses' hubs are gone, so their
rosters must be purged.

Pure and synchronous; the clock is passed in. Join codes, applications and
rosters come later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jhaas_schemas.events import HubDeleted


@dataclass(frozen=True, kw_only=True)
class PurgedCourse:
    request_id: str
    deployment_id: str
    hub_deleted_at: datetime
    recorded_at: datetime


def on_hub_deleted(
    existing: PurgedCourse | None, event: HubDeleted, *, now: datetime
) -> PurgedCourse | None:
    """A deleted hub marks its course for purging once; None when it is marked already."""
    if existing is not None:
        return None
    return PurgedCourse(
        request_id=event.request_id,
        deployment_id=event.deployment_id,
        hub_deleted_at=event.record.deleted_at,
        recorded_at=now,
    )
