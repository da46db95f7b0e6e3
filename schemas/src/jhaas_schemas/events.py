"""Every v1 event of the catalog (ARCHITECTURE.md, Event catalog).

Events carry ids, never secrets and never e-mail addresses. Each event's tag
is its type name and its NATS subject. A breaking change is a new ``.v2``
type with an upcaster; optional new fields are compatible.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from jhaas_schemas.envelope import Event, event_tag
from jhaas_schemas.model import DeletionRecord, HubSpec

# --- request context ---------------------------------------------------------


class RequestSubmitted(Event, frozen=True, tag=event_tag("request", "submitted")):
    """A course leader asked for a hub."""

    request_id: str
    leader_id: str
    revision: int
    spec: HubSpec


class RequestUpdated(Event, frozen=True, tag=event_tag("request", "updated")):
    """The leader edited a request that was not decided yet (new revision)."""

    request_id: str
    leader_id: str
    revision: int
    spec: HubSpec


class RequestWithdrawn(Event, frozen=True, tag=event_tag("request", "withdrawn")):
    """The leader withdrew an undecided request."""

    request_id: str
    leader_id: str


class RequestCancelled(Event, frozen=True, tag=event_tag("request", "cancelled")):
    """An approved or running course was cancelled; its hub must go."""

    request_id: str
    cancelled_by: str
    reason: str = ""


class ChangeProposed(Event, frozen=True, tag=event_tag("request", "change_proposed")):
    """The leader of an approved course asks to change it (a later end, more
    participants or resources, another image). `configuration` is the whole
    configuration as it would be; until governance answers, the course keeps
    running as approved. `revision` is the request's revision the change makes."""

    request_id: str
    change_id: str
    leader_id: str
    revision: int
    configuration: HubSpec
    comment: str = ""


# --- governance context ------------------------------------------------------


class RequestApproved(Event, frozen=True, tag=event_tag("governance", "approved")):
    """Governance approved a request; carries the approved configuration."""

    request_id: str
    review_id: str
    leader_id: str
    decided_by: str
    revision: int
    configuration: HubSpec
    comment: str = ""


class RequestRejected(Event, frozen=True, tag=event_tag("governance", "rejected")):
    """Governance rejected a request, with the reason."""

    request_id: str
    review_id: str
    decided_by: str
    revision: int
    reason: str


class ChangesRequested(Event, frozen=True, tag=event_tag("governance", "changes_requested")):
    """Governance asked the leader to change the request."""

    request_id: str
    review_id: str
    decided_by: str
    revision: int
    comment: str


class ChangeApproved(Event, frozen=True, tag=event_tag("governance", "change_approved")):
    """A change of an approved course applies: the course now runs with
    `configuration` (the deployer follows it, participant-svc takes the new
    participant limit). `decided_by` is "system" when it was inside the
    approved envelope and fitted the calendar, so nobody had to review it."""

    request_id: str
    change_id: str
    decided_by: str
    revision: int
    configuration: HubSpec
    comment: str = ""


class ChangeRejected(Event, frozen=True, tag=event_tag("governance", "change_rejected")):
    """A change was refused; the course keeps its approved configuration."""

    request_id: str
    change_id: str
    decided_by: str
    revision: int
    reason: str


# --- participant context -----------------------------------------------------


class ParticipantApplied(Event, frozen=True, tag=event_tag("participant", "applied")):
    """A person applied to take part in a course."""

    participation_id: str
    request_id: str
    user_id: str


class ParticipantAccepted(Event, frozen=True, tag=event_tag("participant", "accepted")):
    """The leader accepted an application."""

    participation_id: str
    request_id: str
    user_id: str
    decided_by: str


class ParticipantRejected(Event, frozen=True, tag=event_tag("participant", "rejected")):
    """The leader rejected an application."""

    participation_id: str
    request_id: str
    user_id: str
    decided_by: str


class ParticipantRemoved(Event, frozen=True, tag=event_tag("participant", "removed")):
    """The leader removed an accepted participant."""

    participation_id: str
    request_id: str
    user_id: str
    removed_by: str


class ParticipantLeft(Event, frozen=True, tag=event_tag("participant", "left")):
    """A participant left the course."""

    participation_id: str
    request_id: str
    user_id: str


class TutorAdded(Event, frozen=True, tag=event_tag("participant", "tutor_added")):
    """The leader named a tutor: they manage participants and may enter their servers."""

    request_id: str
    user_id: str
    added_by: str


class TutorRemoved(Event, frozen=True, tag=event_tag("participant", "tutor_removed")):
    """The leader took a tutor's role away."""

    request_id: str
    user_id: str
    removed_by: str


class RosterPurged(Event, frozen=True, tag=event_tag("participant", "roster_purged")):
    """Every participation of a deleted course was deleted."""

    request_id: str
    purged_participations: int


# --- deployer context --------------------------------------------------------


class DeploymentScheduled(Event, frozen=True, tag=event_tag("deployer", "deployment_scheduled")):
    """A hub is scheduled: deployed at deploy_at, started and ended on the course dates."""

    deployment_id: str
    request_id: str
    deploy_at: datetime
    starts_at: datetime
    ends_at: datetime


class HubDeploying(Event, frozen=True, tag=event_tag("deployer", "hub_deploying")):
    """The deployer began (or retried) building the course's hub."""

    deployment_id: str
    request_id: str
    attempt: int


class HubReady(Event, frozen=True, tag=event_tag("deployer", "hub_ready")):
    """The hub answers at its URL."""

    deployment_id: str
    request_id: str
    url: str
    # What the hub cannot do here, in words for the leader (e.g. the local backend
    # without root cannot isolate participants, or the host refused a memory limit).
    warnings: tuple[str, ...] = ()


class HubFailed(Event, frozen=True, tag=event_tag("deployer", "hub_failed")):
    """Building the hub failed after bounded retries."""

    deployment_id: str
    request_id: str
    reason: str
    attempts: int


class CourseStarted(Event, frozen=True, tag=event_tag("deployer", "course_started")):
    """The course start time was reached with a ready hub."""

    deployment_id: str
    request_id: str


class CourseEnded(Event, frozen=True, tag=event_tag("deployer", "course_ended")):
    """The course end time was reached; teardown follows."""

    deployment_id: str
    request_id: str


class HubDeleted(Event, frozen=True, tag=event_tag("deployer", "hub_deleted")):
    """The hub and all its data are gone; carries the deletion record."""

    deployment_id: str
    request_id: str
    record: DeletionRecord


REQUEST_EVENTS = (
    RequestSubmitted,
    RequestUpdated,
    RequestWithdrawn,
    RequestCancelled,
    ChangeProposed,
)
GOVERNANCE_EVENTS = (
    RequestApproved,
    RequestRejected,
    ChangesRequested,
    ChangeApproved,
    ChangeRejected,
)
PARTICIPANT_EVENTS = (
    ParticipantApplied,
    ParticipantAccepted,
    ParticipantRejected,
    ParticipantRemoved,
    ParticipantLeft,
    TutorAdded,
    TutorRemoved,
    RosterPurged,
)
DEPLOYER_EVENTS = (
    DeploymentScheduled,
    HubDeploying,
    HubReady,
    HubFailed,
    CourseStarted,
    CourseEnded,
    HubDeleted,
)
ALL_EVENTS: tuple[type[Event], ...] = (
    *REQUEST_EVENTS,
    *GOVERNANCE_EVENTS,
    *PARTICIPANT_EVENTS,
    *DEPLOYER_EVENTS,
)

AnyEvent = (
    RequestSubmitted
    | RequestUpdated
    | RequestWithdrawn
    | RequestCancelled
    | ChangeProposed
    | RequestApproved
    | RequestRejected
    | ChangesRequested
    | ChangeApproved
    | ChangeRejected
    | ParticipantApplied
    | ParticipantAccepted
    | ParticipantRejected
    | ParticipantRemoved
    | ParticipantLeft
    | TutorAdded
    | TutorRemoved
    | RosterPurged
    | DeploymentScheduled
    | HubDeploying
    | HubReady
    | HubFailed
    | CourseStarted
    | CourseEnded
    | HubDeleted
)

_decoder = msgspec.json.Decoder(AnyEvent)
_encoder = msgspec.json.Encoder()


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def decode_event(data: bytes) -> Event:
    """Decode any known event by its ``type`` tag; raises msgspec errors otherwise."""
    event: Event = _decoder.decode(data)
    return event
