"""The participation rules and the course projection, without I/O."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jhaas_schemas.envelope import Envelope, envelope
from jhaas_schemas.errors import Conflict, Forbidden, NotFound
from jhaas_schemas.events import (
    CourseEnded,
    HubDeleted,
    HubDeploying,
    HubReady,
    ParticipantAccepted,
    ParticipantLeft,
    ParticipantRejected,
    ParticipantRemoved,
    RequestApproved,
    RequestCancelled,
    TutorAdded,
    TutorRemoved,
)
from jhaas_schemas.model import DeletionRecord, HubSpec, Principal, Resources, Role
from jhaas_schemas.rpc import DeploymentState
from jhaas_schemas.rpc import ParticipationStatus as PS
from participant_svc import domain, projection

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


# --- courses, codes and participations ---------------------------------------

LEADER = Principal(user_id="u-lea", username="lea", roles=(Role.LEADER,))
TUTOR = Principal(user_id="u-tom", username="tom")
ANNA = Principal(user_id="u-anna", username="anna")
STRANGER = Principal(user_id="u-eve", username="eve", roles=(Role.LEADER,))


def approved(limit: int = 2) -> RequestApproved:
    start = datetime(2027, 9, 1, 8, 0, tzinfo=UTC)
    spec = HubSpec(
        title="Data Science 101",
        slug="ds101",
        starts_at=start,
        ends_at=start + timedelta(days=30),
        image="quay.io/jupyter/scipy-notebook:2024-12-02",
        resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
        expected_participants=limit,
    )
    return RequestApproved(
        **env("governance-svc", "c-approve"),
        request_id="r-1",
        review_id="rv-1",
        leader_id=LEADER.user_id,
        decided_by="u-gov",
        revision=1,
        configuration=spec,
    )


def course(limit: int = 2, **changes: Any) -> domain.CourseState:
    state = projection.on_approved(None, approved(limit), join_code="ABCDEFGHJK", now=NOW)
    return replace(state, **{"tutors": (TUTOR.user_id,), **changes})


def new_env() -> Envelope:
    return envelope(source="participant-svc", correlation_id="c-1", now=NOW)


def applied(who: Principal, pid: str | None = None) -> domain.ParticipationState:
    participation, _ = domain.apply(
        course(),
        None,
        principal=who,
        message="hi",
        participation_id=pid or f"p-{who.user_id}",
        now=NOW,
        env=new_env(),
    )
    return participation


def test_an_approved_course_is_open_with_its_limit_and_a_new_code_keeps_the_old_one_out() -> None:
    state = projection.on_approved(None, approved(25), join_code="ABCDEFGHJK", now=NOW)
    assert (state.max_participants, state.join_open, state.hub_status) == (
        25,
        True,
        DeploymentState.SCHEDULED,
    )
    assert domain.joinable(state, "abcde-fghjk") == state  # case and dashes do not matter
    rotated = domain.rotate_join_code(state, LEADER, "ZZZZZZZZZZ", NOW)
    with pytest.raises(NotFound, match="join code"):
        domain.joinable(rotated, "ABCDEFGHJK")
    closed = domain.set_join_open(rotated, LEADER, False, NOW)
    with pytest.raises(NotFound, match="join code"):
        domain.joinable(closed, "ZZZZZZZZZZ")
    assert domain.joinable(domain.set_join_open(closed, LEADER, True, NOW), "zzzzzzzzzz")


def test_only_the_leader_changes_the_code_and_names_tutors() -> None:
    for who in (TUTOR, ANNA):
        with pytest.raises(Forbidden):
            domain.rotate_join_code(course(), who, "ZZZZZZZZZZ", NOW)
        with pytest.raises(Forbidden):
            domain.set_join_open(course(), who, False, NOW)
        with pytest.raises(Forbidden):
            domain.add_tutor(course(), "u-x", None, principal=who, now=NOW, env=new_env())
        with pytest.raises(Forbidden):
            domain.remove_tutor(course(), TUTOR.user_id, principal=who, now=NOW, env=new_env())


def test_codes_use_an_unambiguous_alphabet() -> None:
    codes = {domain.new_join_code() for _ in range(200)}
    assert len(codes) == 200
    assert all(len(c) == 10 and not set(c) & set("0O1IL") for c in codes)


def test_an_ended_or_cancelled_course_takes_no_one() -> None:
    ended = projection.on_deployer_event(
        course(), CourseEnded(**new_env(), deployment_id="d", request_id="r-1"), now=NOW
    )
    assert ended is not None and ended.hub_status is DeploymentState.ENDING
    cancelled = projection.on_cancelled(
        course(), RequestCancelled(**new_env(), request_id="r-1", cancelled_by="u-lea"), now=NOW
    )
    for state in (replace(ended, join_open=True), replace(cancelled, join_open=True)):
        with pytest.raises(Conflict, match="nobody can join"):
            domain.joinable(state, "ABCDEFGHJK")
    ready = HubReady(**new_env(), deployment_id="d", request_id="r-1", url="http://hub")
    still = projection.on_deployer_event(cancelled, ready, now=NOW)
    assert still is not None and still.hub_status is DeploymentState.CANCELLED


def test_an_older_deployer_event_changes_nothing() -> None:
    ready = HubReady(**new_env(), deployment_id="d", request_id="r-1", url="http://hub")
    running = projection.on_deployer_event(course(), ready, now=NOW)
    assert running is not None and running.hub_url == "http://hub"
    earlier = HubDeploying(
        **envelope(source="d", correlation_id="c", now=NOW - timedelta(minutes=1)),
        deployment_id="d",
        request_id="r-1",
        attempt=1,
    )
    assert projection.on_deployer_event(running, earlier, now=NOW) is None


def test_applying_twice_or_as_staff_is_refused() -> None:
    for staff in (LEADER, TUTOR):
        with pytest.raises(Conflict, match="you are this course's"):
            domain.apply(
                course(),
                None,
                principal=staff,
                message="",
                participation_id="p",
                now=NOW,
                env=new_env(),
            )
    with pytest.raises(Conflict, match="applied to this course already"):
        domain.apply(
            course(),
            applied(ANNA),
            principal=ANNA,
            message="",
            participation_id="p",
            now=NOW,
            env=new_env(),
        )


def test_accepting_past_the_approved_limit_accepts_nobody() -> None:
    three = [applied(Principal(user_id=f"u-{i}", username=f"n{i}")) for i in range(3)]
    with pytest.raises(Conflict, match="limit of 2"):
        domain.accept(course(limit=2), three, principal=LEADER, now=NOW, new_env=new_env)
    full = course(limit=2, accepted=2)
    with pytest.raises(Conflict, match="0 more can be"):
        domain.accept(full, three[:1], principal=TUTOR, now=NOW, new_env=new_env)
    changed, events = domain.accept(
        course(limit=2), three[:2], principal=TUTOR, now=NOW, new_env=new_env
    )
    assert [p.status for p in changed] == [PS.ACCEPTED, PS.ACCEPTED]
    assert [type(e) for e in events] == [ParticipantAccepted, ParticipantAccepted]
    assert len({e.event_id for e in events}) == 2
    # Accepting again changes nothing and does not count twice.
    again, none = domain.accept(
        course(limit=2, accepted=2), changed, principal=LEADER, now=NOW, new_env=new_env
    )
    assert (again, none) == ([], [])


def test_deciding_on_another_leaders_course_is_forbidden() -> None:
    pending = [applied(ANNA)]
    with pytest.raises(Forbidden):
        domain.accept(course(), pending, principal=STRANGER, now=NOW, new_env=new_env)
    with pytest.raises(Forbidden):
        domain.reject(course(), pending, principal=STRANGER, reason="", now=NOW, new_env=new_env)
    with pytest.raises(Forbidden):
        domain.require_staff(course(), ANNA)


def test_a_course_is_hidden_only_from_those_with_no_tie_to_it() -> None:
    """Another leader is told nothing (404, as for the request); an applicant, a
    tutor, the leader, governance and admins know the course exists."""
    with pytest.raises(NotFound, match="no course 'r-1'"):
        domain.hide_from_stranger(course(), STRANGER, None)
    domain.hide_from_stranger(course(), ANNA, applied(ANNA))
    for who in (LEADER, TUTOR):
        domain.hide_from_stranger(course(), who, None)
    for role in (Role.GOVERNANCE, Role.ADMIN):
        domain.hide_from_stranger(
            course(), Principal(user_id="u-g", username="g", roles=(role,)), None
        )


def test_naming_applications_that_are_not_there_is_404() -> None:
    with pytest.raises(NotFound, match="p-missing"):
        domain.chosen([applied(ANNA)], ["p-u-anna", "p-missing"])


def test_the_life_of_an_application() -> None:
    pending = applied(ANNA)
    [rejected], [event] = domain.reject(
        course(), [pending], principal=TUTOR, reason="full", now=NOW, new_env=new_env
    )
    assert (rejected.status, rejected.reason, type(event)) == (
        PS.REJECTED,
        "full",
        ParticipantRejected,
    )
    with pytest.raises(Conflict, match="cannot accept"):
        domain.accept(course(), [rejected], principal=LEADER, now=NOW, new_env=new_env)
    reopened = domain.reopen(course(), rejected, principal=LEADER, now=NOW)
    assert (reopened.status, reopened.reason, reopened.decided_by) == (PS.PENDING, "", None)
    [accepted], _ = domain.accept(course(), [reopened], principal=LEADER, now=NOW, new_env=new_env)
    with pytest.raises(Conflict, match="cannot reject"):
        domain.reject(course(), [accepted], principal=LEADER, reason="", now=NOW, new_env=new_env)
    removed, removed_event = domain.remove(
        course(), accepted, principal=TUTOR, reason="cheated", now=NOW, env=new_env()
    )
    assert removed.status is PS.REMOVED and isinstance(removed_event, ParticipantRemoved)
    with pytest.raises(NotFound):
        domain.leave(removed, principal=ANNA, now=NOW, env=new_env())
    left, left_event = domain.leave(accepted, principal=ANNA, now=NOW, env=new_env())
    assert left.status is PS.LEFT and isinstance(left_event, ParticipantLeft)


def test_tutors_are_named_once_and_never_the_leader_or_a_participant() -> None:
    state = course(tutors=())
    named, event = domain.add_tutor(state, "u-tim", None, principal=LEADER, now=NOW, env=new_env())
    assert named.tutors == ("u-tim",) and isinstance(event, TutorAdded)
    assert (
        domain.add_tutor(named, "u-tim", None, principal=LEADER, now=NOW, env=new_env())[1] is None
    )
    with pytest.raises(Conflict, match="leader"):
        domain.add_tutor(state, LEADER.user_id, None, principal=LEADER, now=NOW, env=new_env())
    with pytest.raises(Conflict, match="remove it first"):
        domain.add_tutor(
            state, ANNA.user_id, applied(ANNA), principal=LEADER, now=NOW, env=new_env()
        )
    gone, removed = domain.remove_tutor(named, "u-tim", principal=LEADER, now=NOW, env=new_env())
    assert gone.tutors == () and isinstance(removed, TutorRemoved)
    with pytest.raises(NotFound):
        domain.remove_tutor(gone, "u-tim", principal=LEADER, now=NOW, env=new_env())
