"""What participant-svc learns of a course from other services' events.

Pure: the course as it was (or None) and an event -> the course as it is now,
or None when nothing changes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from jhaas_schemas.events import (
    ChangeApproved,
    CourseEnded,
    HubDeleted,
    HubDeploying,
    HubFailed,
    HubReady,
    RequestApproved,
    RequestCancelled,
)
from jhaas_schemas.rpc import DeploymentState
from participant_svc.domain import CourseState

DeployerEvent = HubDeploying | HubReady | HubFailed | CourseEnded | HubDeleted

_STATE_OF: dict[type[DeployerEvent], DeploymentState] = {
    HubDeploying: DeploymentState.DEPLOYING,
    HubReady: DeploymentState.RUNNING,
    HubFailed: DeploymentState.FAILED,
    CourseEnded: DeploymentState.ENDING,
    HubDeleted: DeploymentState.DELETED,
}


def on_approved(
    course: CourseState | None, event: RequestApproved, *, join_code: str, now: datetime
) -> CourseState:
    """A course appears when approved, joinable with a fresh code; an approval seen
    again updates what was approved and keeps the code people already have."""
    spec = event.configuration
    if course is not None:
        if event.revision < course.revision:
            return course  # an approved change since: it stays
        return replace(
            course,
            leader_id=event.leader_id,
            title=spec.title,
            slug=spec.slug,
            starts_at=spec.starts_at,
            ends_at=spec.ends_at,
            max_participants=spec.expected_participants,
            revision=event.revision,
            updated_at=now,
        )
    return CourseState(
        request_id=event.request_id,
        leader_id=event.leader_id,
        title=spec.title,
        slug=spec.slug,
        starts_at=spec.starts_at,
        ends_at=spec.ends_at,
        max_participants=spec.expected_participants,
        join_code=join_code,
        join_open=True,
        hub_status=DeploymentState.SCHEDULED,
        revision=event.revision,
        created_at=now,
        updated_at=now,
    )


def on_change_approved(
    course: CourseState, event: ChangeApproved, *, now: datetime
) -> CourseState | None:
    """The approved number (and end) follow a change. A limit lowered below those
    accepted keeps everyone; `domain.accept` then takes nobody more. None for a
    change not newer than what the course has (a copy, an older one arriving late)."""
    if event.revision <= course.revision:
        return None
    spec = event.configuration
    return replace(
        course,
        max_participants=spec.expected_participants,
        ends_at=spec.ends_at,
        revision=event.revision,
        updated_at=now,
    )


def on_cancelled(course: CourseState, _event: RequestCancelled, *, now: datetime) -> CourseState:
    return replace(
        course,
        cancelled=True,
        join_open=False,
        hub_status=DeploymentState.CANCELLED,
        updated_at=now,
    )


def on_deployer_event(
    course: CourseState, event: DeployerEvent, *, now: datetime
) -> CourseState | None:
    if course.hub_status_at is not None and event.occurred_at < course.hub_status_at:
        return None  # older than what the status shows (a redelivery, a late batch)
    state = _STATE_OF[type(event)]
    if course.cancelled and state is not DeploymentState.DELETED:
        state = DeploymentState.CANCELLED  # a cancelled course stays cancelled until deleted
    warnings = course.hub_warnings
    if isinstance(event, HubReady):
        warnings = event.warnings  # a hub without any clears the last one's
    elif isinstance(event, HubDeleted):
        warnings = ()
    return replace(
        course,
        hub_status=state,
        hub_url=event.url if isinstance(event, HubReady) else course.hub_url,
        hub_warnings=warnings,
        hub_status_at=event.occurred_at,
        join_open=course.join_open and state not in (DeploymentState.ENDING,),
        updated_at=now,
    )
