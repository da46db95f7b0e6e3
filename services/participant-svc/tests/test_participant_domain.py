"""The purge marker, without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import HubDeleted
from jhaas_schemas.model import DeletionRecord
from participant_svc import domain

pytestmark = pytest.mark.unit


def env(source: str, correlation_id: str, **more: Any) -> dict[str, Any]:
    """A new event's envelope, typed for `**` into an event's constructor."""
    return envelope(source=source, correlation_id=correlation_id, **more)


NOW = datetime(2027, 7, 12, 8, 0, tzinfo=UTC)


def test_a_deleted_hub_marks_its_course_once() -> None:
    deleted_at = datetime(2027, 7, 11, 18, 0, tzinfo=UTC)
    event = HubDeleted(
        **env(source="deployer-svc", correlation_id="c-1"),
        deployment_id=str(uuid.uuid4()),
        request_id="r-1",
        record=DeletionRecord(backend="local", deleted_at=deleted_at),
    )
    course = domain.on_hub_deleted(None, event, now=NOW)
    assert course is not None
    assert (course.request_id, course.hub_deleted_at, course.recorded_at) == (
        "r-1",
        deleted_at,
        NOW,
    )
    assert domain.on_hub_deleted(course, event, now=NOW) is None
