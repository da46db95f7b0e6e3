"""A course's roster as the deployer keeps it: who is staff or participant of
which course, from participant-svc's events (which carry ids only).

Pure: an event becomes a `RosterChange`; rows become the hub's `Roster` of hub
usernames (`jhaas_schemas.hubnames`, the name the gateway hands the hub as
`preferred_username`). Each change carries when it happened, so a change
that arrives late (redelivered after a later one) does not undo the later.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from deployer_svc.backends.base import Roster
from jhaas_schemas.envelope import Event
from jhaas_schemas.events import (
    ParticipantAccepted,
    ParticipantLeft,
    ParticipantRemoved,
    TutorAdded,
    TutorRemoved,
)
from jhaas_schemas.hubnames import hub_username


class RosterRole(enum.StrEnum):
    TUTOR = "tutor"
    PARTICIPANT = "participant"


@dataclass(frozen=True, kw_only=True)
class RosterChange:
    request_id: str
    user_id: str
    role: RosterRole
    present: bool  # on the roster after this change
    at: datetime


# What each roster event does; the others of the participant stream
# (applied, rejected, purged) change nobody's access to a hub.
_EFFECT: dict[type[Event], tuple[RosterRole, bool]] = {
    ParticipantAccepted: (RosterRole.PARTICIPANT, True),
    ParticipantRemoved: (RosterRole.PARTICIPANT, False),
    ParticipantLeft: (RosterRole.PARTICIPANT, False),
    TutorAdded: (RosterRole.TUTOR, True),
    TutorRemoved: (RosterRole.TUTOR, False),
}
ROSTER_EVENTS = tuple(_EFFECT)


def change_for(event: Event) -> RosterChange | None:
    effect = _EFFECT.get(type(event))
    if effect is None:
        return None
    role, present = effect
    return RosterChange(
        request_id=getattr(event, "request_id"),  # noqa: B009 (every roster event has it)
        user_id=getattr(event, "user_id"),  # noqa: B009
        role=role,
        present=present,
        at=event.occurred_at,
    )


def latest(changes: Iterable[RosterChange]) -> list[RosterChange]:
    """One change per (course, person, role): the latest (the last of equals),
    so that a batch writes each row once."""
    kept: dict[tuple[str, str, RosterRole], RosterChange] = {}
    for change in changes:
        key = (change.request_id, change.user_id, change.role)
        if key not in kept or change.at >= kept[key].at:
            kept[key] = change
    return list(kept.values())


def hub_roster(leader_id: str, members: Iterable[tuple[str, RosterRole]]) -> Roster:
    """The hub's roster from the leader and the present (user id, role) rows."""
    members = list(members)
    leader = hub_username(leader_id)
    tutors = {hub_username(u) for u, role in members if role == RosterRole.TUTOR}
    participants = {hub_username(u) for u, role in members if role == RosterRole.PARTICIPANT}
    return Roster(
        leader=leader,
        tutors=frozenset(tutors - {leader}),
        participants=frozenset(participants - tutors - {leader}),
    )
