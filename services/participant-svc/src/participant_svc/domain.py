"""Courses, their join codes, tutors and participations: the rules.

Pure and synchronous: the clock, new ids, join codes and event envelopes are
passed in. A course is known here from its approval (projection.py) until its
hub is deleted; then only a tombstone without personal data is left.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from jhaas_schemas.envelope import Envelope, Event
from jhaas_schemas.errors import Conflict, Forbidden, NotFound
from jhaas_schemas.events import (
    HubDeleted,
    ParticipantAccepted,
    ParticipantApplied,
    ParticipantLeft,
    ParticipantRejected,
    ParticipantRemoved,
    TutorAdded,
    TutorRemoved,
)
from jhaas_schemas.model import Principal, Role
from jhaas_schemas.rpc import (
    Course,
    CourseRole,
    DeploymentState,
    Participation,
    ParticipationStatus,
)

PS = ParticipationStatus
NewEnvelope = Callable[[], Envelope]

# No 0/O, 1/I/L: a code is read aloud in a lecture hall and typed from a slide.
JOIN_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
JOIN_CODE_LENGTH = 10  # 31**10 ~ 8e14: guessing one among thousands of courses is hopeless
# Hubs nobody may join any more (and whose roster is frozen for acceptance).
CLOSED_HUBS = frozenset(
    {DeploymentState.ENDING, DeploymentState.DELETED, DeploymentState.CANCELLED}
)
UNKNOWN_CODE = "no open course has this join code; ask the course leader for the current join code"


def new_join_code() -> str:
    return "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))


def normalized_code(typed: str) -> str:
    """Codes are compared upper-case and without the dashes people add for reading."""
    return typed.replace("-", "").upper()


@dataclass(frozen=True, kw_only=True)
class CourseState:
    request_id: str
    leader_id: str
    title: str
    slug: str
    starts_at: datetime
    ends_at: datetime
    max_participants: int
    join_code: str
    join_open: bool
    hub_status: DeploymentState
    created_at: datetime
    updated_at: datetime
    hub_url: str | None = None
    # When the deployer event the hub status follows happened: an older one changes nothing.
    hub_status_at: datetime | None = None
    # What the hub cannot do on its host, from its last HubReady (kept while it is
    # rebuilt or fails: the host stays the same).
    hub_warnings: tuple[str, ...] = ()
    cancelled: bool = False
    # The request's revision the approved number and end are of (the approval's, then
    # each approved change's): an older approval or change arriving late is stale.
    revision: int = 0
    tutors: tuple[str, ...] = ()
    accepted: int = 0  # accepted participants, counted when loaded

    @property
    def closed(self) -> bool:
        return self.cancelled or self.hub_status in CLOSED_HUBS

    def staff_role(self, user_id: str) -> CourseRole | None:
        if user_id == self.leader_id:
            return CourseRole.LEADER
        if user_id in self.tutors:
            return CourseRole.TUTOR
        return None

    def view(self) -> Course:
        return Course(
            request_id=self.request_id,
            leader_id=self.leader_id,
            title=self.title,
            slug=self.slug,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            max_participants=self.max_participants,
            accepted=self.accepted,
            join_code=self.join_code,
            join_open=self.join_open,
            tutors=sorted(self.tutors),
            hub_status=self.hub_status,
            hub_url=self.hub_url,
            hub_warnings=list(self.hub_warnings),
        )


@dataclass(frozen=True, kw_only=True)
class ParticipationState:
    participation_id: str
    request_id: str
    user_id: str
    status: ParticipationStatus
    message: str
    applied_at: datetime
    updated_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""

    def view(self) -> Participation:
        return Participation(
            participation_id=self.participation_id,
            request_id=self.request_id,
            user_id=self.user_id,
            status=self.status,
            message=self.message,
            applied_at=self.applied_at,
            updated_at=self.updated_at,
            decided_by=self.decided_by,
            decided_at=self.decided_at,
            reason=self.reason,
        )


@dataclass(frozen=True, kw_only=True)
class PurgedCourse:
    """The tombstone of a course whose hub is deleted: ids and times only."""

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


# --- who may do what ---------------------------------------------------------


def require_course(course: CourseState | None, request_id: str) -> CourseState:
    if course is None:
        raise NotFound(f"no course {request_id!r}")
    return course


def require_participation(
    p: ParticipationState | None, participation_id: str
) -> ParticipationState:
    if p is None:
        raise NotFound(
            f"no application {participation_id} in this course",
            {"participation_id": "not in this course"},
        )
    return p


def hide_from_stranger(
    course: CourseState, principal: Principal, participation: ParticipationState | None
) -> None:
    """To someone with no tie to the course (not its leader or a tutor, never applied
    to it, not governance or an admin, who see every request) the course does not
    exist: the same 404 as for an unknown id, as request-svc answers for its request.
    Who knows of it is told what they may not do (403)."""
    if (
        course.staff_role(principal.user_id) is None
        and participation is None
        and not principal.has(Role.GOVERNANCE, Role.ADMIN)
    ):
        raise NotFound(f"no course {course.request_id!r}")


def require_staff(course: CourseState, principal: Principal) -> CourseRole:
    """The leader or a tutor: they see and decide on the course's participants."""
    role = course.staff_role(principal.user_id)
    if role is None:
        raise Forbidden("only the course's leader and tutors can do this")
    return role


def require_leader(course: CourseState, principal: Principal) -> None:
    if principal.user_id != course.leader_id:
        raise Forbidden("only the course's leader can do this")


# --- join code ---------------------------------------------------------------


def rotate_join_code(
    course: CourseState, principal: Principal, code: str, now: datetime
) -> CourseState:
    """A new code; the old one stops working at once."""
    require_leader(course, principal)
    return replace(course, join_code=code, updated_at=now)


def set_join_open(
    course: CourseState, principal: Principal, is_open: bool, now: datetime
) -> CourseState:
    require_leader(course, principal)
    if is_open and course.closed:
        raise Conflict(f"the course is {course.hub_status}; it cannot be opened for joining")
    return replace(course, join_open=is_open, updated_at=now)


def joinable(course: CourseState | None, typed_code: str) -> CourseState:
    """The course a code opens; 404 for an unknown, rotated or closed code alike, so
    that a closed course does not tell a stranger it exists."""
    if course is None or not course.join_open or course.join_code != normalized_code(typed_code):
        raise NotFound(UNKNOWN_CODE, {"code": "unknown, closed or replaced join code"})
    if course.closed:
        raise Conflict(f"the course is {course.hub_status}; nobody can join it any more")
    return course


# --- participations ----------------------------------------------------------


def apply(
    course: CourseState,
    existing: ParticipationState | None,
    *,
    principal: Principal,
    message: str,
    participation_id: str,
    now: datetime,
    env: Envelope,
) -> tuple[ParticipationState, ParticipantApplied]:
    role = course.staff_role(principal.user_id)
    if role is not None:
        raise Conflict(f"you are this course's {role}; you cannot apply to it")
    if existing is not None:
        raise Conflict(
            f"you applied to this course already (your application is {existing.status})"
        )
    participation = ParticipationState(
        participation_id=participation_id,
        request_id=course.request_id,
        user_id=principal.user_id,
        status=PS.PENDING,
        message=message,
        applied_at=now,
        updated_at=now,
    )
    event = ParticipantApplied(
        **env,
        participation_id=participation_id,
        request_id=course.request_id,
        user_id=principal.user_id,
    )
    return participation, event


def chosen(found: Iterable[ParticipationState], wanted: Sequence[str]) -> list[ParticipationState]:
    """The participations named, in the order named; 404 naming those not in the course."""
    by_id = {p.participation_id: p for p in found}
    missing = [pid for pid in dict.fromkeys(wanted) if pid not in by_id]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise NotFound(
            f"no application {shown} in this course", {"participation_ids": "not in this course"}
        )
    return [by_id[pid] for pid in dict.fromkeys(wanted)]


def _decided(
    p: ParticipationState, status: ParticipationStatus, by: str, now: datetime, reason: str = ""
) -> ParticipationState:
    return replace(p, status=status, decided_by=by, decided_at=now, updated_at=now, reason=reason)


def _refuse_other_states(
    picked: Sequence[ParticipationState], allowed: frozenset[ParticipationStatus], doing: str
) -> None:
    wrong = [p for p in picked if p.status not in allowed]
    if wrong:
        p = wrong[0]
        raise Conflict(
            f"cannot {doing} {p.participation_id}: it is {p.status}"
            + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""),
            {"participation_ids": f"{len(wrong)} not in a state to {doing}"},
        )


def accept(
    course: CourseState,
    picked: Sequence[ParticipationState],
    *,
    principal: Principal,
    now: datetime,
    new_env: NewEnvelope,
) -> tuple[list[ParticipationState], list[Event]]:
    """Accept all or none: past the approved number nobody is accepted. Those
    accepted already stay as they are."""
    require_staff(course, principal)
    if course.closed:
        raise Conflict(f"the course is {course.hub_status}; nobody can be accepted any more")
    _refuse_other_states(picked, frozenset({PS.PENDING, PS.ACCEPTED}), "accept")
    pending = [p for p in picked if p.status is PS.PENDING]
    if course.accepted + len(pending) > course.max_participants:
        free = max(course.max_participants - course.accepted, 0)
        raise Conflict(
            f"the approved limit of {course.max_participants} participants would be exceeded: "
            f"{course.accepted} are accepted, {free} more can be, {len(pending)} asked",
            {"participation_ids": f"at most {free} more"},
        )
    changed = [_decided(p, PS.ACCEPTED, principal.user_id, now) for p in pending]
    events: list[Event] = [
        ParticipantAccepted(
            **new_env(),
            participation_id=p.participation_id,
            request_id=p.request_id,
            user_id=p.user_id,
            decided_by=principal.user_id,
        )
        for p in changed
    ]
    return changed, events


def reject(
    course: CourseState,
    picked: Sequence[ParticipationState],
    *,
    principal: Principal,
    reason: str,
    now: datetime,
    new_env: NewEnvelope,
) -> tuple[list[ParticipationState], list[Event]]:
    """Reject pending applications (all or none); an accepted person is removed instead."""
    require_staff(course, principal)
    _refuse_other_states(picked, frozenset({PS.PENDING, PS.REJECTED}), "reject")
    changed = [
        _decided(p, PS.REJECTED, principal.user_id, now, reason)
        for p in picked
        if p.status is PS.PENDING
    ]
    events: list[Event] = [
        ParticipantRejected(
            **new_env(),
            participation_id=p.participation_id,
            request_id=p.request_id,
            user_id=p.user_id,
            decided_by=principal.user_id,
        )
        for p in changed
    ]
    return changed, events


def remove(
    course: CourseState,
    p: ParticipationState,
    *,
    principal: Principal,
    reason: str,
    now: datetime,
    env: Envelope,
) -> tuple[ParticipationState, ParticipantRemoved]:
    require_staff(course, principal)
    _refuse_other_states([p], frozenset({PS.ACCEPTED}), "remove")
    removed = _decided(p, PS.REMOVED, principal.user_id, now, reason)
    event = ParticipantRemoved(
        **env,
        participation_id=p.participation_id,
        request_id=p.request_id,
        user_id=p.user_id,
        removed_by=principal.user_id,
    )
    return removed, event


def reopen(
    course: CourseState, p: ParticipationState, *, principal: Principal, now: datetime
) -> ParticipationState:
    """A rejected application is pending again (no catalog event: nothing outside
    the course's staff acts on a pending application)."""
    require_staff(course, principal)
    _refuse_other_states([p], frozenset({PS.REJECTED}), "re-open")
    return replace(
        p, status=PS.PENDING, decided_by=None, decided_at=None, reason="", updated_at=now
    )


def leave(
    p: ParticipationState | None, *, principal: Principal, now: datetime, env: Envelope
) -> tuple[ParticipationState, ParticipantLeft]:
    if p is None or p.status not in (PS.PENDING, PS.ACCEPTED):
        raise NotFound("you have no pending or accepted participation in this course")
    left = replace(p, status=PS.LEFT, updated_at=now)
    event = ParticipantLeft(
        **env, participation_id=p.participation_id, request_id=p.request_id, user_id=p.user_id
    )
    return left, event


def withdraw_user(
    user_id: str,
    participations: Iterable[ParticipationState],
    tutored: Iterable[str],
    *,
    principal: Principal,
    now: datetime,
    new_env: NewEnvelope,
) -> tuple[list[ParticipationState], list[Event]]:
    """An account is deleted: each pending or accepted participation ends as if its
    person had left (so their hub user goes), and they stop tutoring the courses
    `tutored` (request ids). Only the user themselves or an admin may."""
    if principal.user_id != user_id and not principal.has(Role.ADMIN):
        raise Forbidden("only the user themselves or an admin can withdraw a user")
    left: list[ParticipationState] = []
    events: list[Event] = []
    for p in participations:
        if p.user_id != user_id or p.status not in (PS.PENDING, PS.ACCEPTED):
            continue
        left.append(replace(p, status=PS.LEFT, updated_at=now))
        events.append(
            ParticipantLeft(
                **new_env(), participation_id=p.participation_id, request_id=p.request_id,
                user_id=user_id,
            )
        )  # fmt: skip
    for request_id in tutored:
        events.append(
            TutorRemoved(
                **new_env(), request_id=request_id, user_id=user_id, removed_by=principal.user_id
            )
        )
    return left, events


# --- tutors ------------------------------------------------------------------


def add_tutor(
    course: CourseState,
    user_id: str,
    participation: ParticipationState | None,
    *,
    principal: Principal,
    now: datetime,
    env: Envelope,
) -> tuple[CourseState, TutorAdded | None]:
    """None for the event when the user is a tutor already."""
    require_leader(course, principal)
    if user_id == course.leader_id:
        raise Conflict("the leader cannot also be a tutor", {"user_id": "is the course's leader"})
    if user_id in course.tutors:
        return course, None
    if participation is not None and participation.status in (PS.PENDING, PS.ACCEPTED):
        # One role per person: the hub groups and the OAuth role claim stay unambiguous.
        raise Conflict(
            f"this person's participation is {participation.status}; remove it first",
            {"user_id": "is a participant"},
        )
    event = TutorAdded(
        **env, request_id=course.request_id, user_id=user_id, added_by=principal.user_id
    )
    return replace(course, tutors=(*course.tutors, user_id), updated_at=now), event


def remove_tutor(
    course: CourseState, user_id: str, *, principal: Principal, now: datetime, env: Envelope
) -> tuple[CourseState, TutorRemoved]:
    require_leader(course, principal)
    if user_id not in course.tutors:
        raise NotFound(f"{user_id!r} is not a tutor of this course", {"user_id": "not a tutor"})
    event = TutorRemoved(
        **env, request_id=course.request_id, user_id=user_id, removed_by=principal.user_id
    )
    tutors = tuple(t for t in course.tutors if t != user_id)
    return replace(course, tutors=tutors, updated_at=now), event
