"""The roster domain: which events change a hub's users, and the hub roster built
from the stored rows (hub usernames, staff never also a participant)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployer_svc.backends.hub_api import wanted_groups
from deployer_svc.roster import RosterChange, RosterRole, change_for, hub_roster, latest
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import (
    ParticipantAccepted,
    ParticipantApplied,
    ParticipantLeft,
    ParticipantRejected,
    ParticipantRemoved,
    RosterPurged,
    TutorAdded,
    TutorRemoved,
)
from jhaas_schemas.hubnames import HUB_USERNAME, hub_username

pytestmark = pytest.mark.unit
T0 = datetime(2027, 4, 12, 9, tzinfo=UTC)


def env(at: datetime = T0) -> dict[str, Any]:
    return dict(envelope(source="participant-svc", correlation_id="c", now=at))


def test_each_roster_event_adds_or_removes_one_role() -> None:
    ids = {"participation_id": "p-1", "request_id": "r-1", "user_id": "u-1"}
    cases = [
        (ParticipantAccepted(**env(), **ids, decided_by="u-l"), RosterRole.PARTICIPANT, True),
        (ParticipantRemoved(**env(), **ids, removed_by="u-l"), RosterRole.PARTICIPANT, False),
        (ParticipantLeft(**env(), **ids), RosterRole.PARTICIPANT, False),
        (TutorAdded(**env(), request_id="r-1", user_id="u-1", added_by="u-l"), "tutor", True),
        (TutorRemoved(**env(), request_id="r-1", user_id="u-1", removed_by="u-l"), "tutor", False),
    ]
    for event, role, present in cases:
        assert change_for(event) == RosterChange(
            request_id="r-1", user_id="u-1", role=RosterRole(role), present=present, at=T0
        )
    for other in (
        ParticipantApplied(**env(), **ids),
        ParticipantRejected(**env(), **ids, decided_by="u-l"),
        RosterPurged(**env(), request_id="r-1", purged_participations=3),
    ):
        assert change_for(other) is None


def test_latest_keeps_the_newest_change_of_each_row() -> None:
    def change(user: str, present: bool, minutes: int) -> RosterChange:
        at = T0 + timedelta(minutes=minutes)
        return RosterChange(
            request_id="r", user_id=user, role=RosterRole.PARTICIPANT, present=present, at=at
        )

    kept = latest([change("a", True, 0), change("a", False, 2), change("a", True, 1)])
    assert kept == [change("a", False, 2)]
    # Of equal times the one that came last wins (in-order delivery).
    assert latest([change("b", True, 0), change("b", False, 0)]) == [change("b", False, 0)]


def test_the_hub_roster_names_people_by_hub_username_and_staff_only_once() -> None:
    members = [
        ("u-tutor", RosterRole.TUTOR),
        ("u-tutor", RosterRole.PARTICIPANT),  # a tutor who also applied
        ("u-leader", RosterRole.PARTICIPANT),  # the leader is staff, whatever else
        ("u-p", RosterRole.PARTICIPANT),
    ]
    roster = hub_roster("u-leader", members)
    assert roster.leader == hub_username("u-leader")
    assert roster.tutors == {hub_username("u-tutor")}
    assert roster.participants == {hub_username("u-p")}
    groups = wanted_groups(roster)
    assert groups["course-staff"] == {hub_username("u-leader"), hub_username("u-tutor")}
    assert groups["course-participants"] == {hub_username("u-p")}


@given(ids=st.lists(st.text(min_size=1, max_size=64), min_size=1, max_size=20, unique=True))
def test_any_user_ids_become_safe_distinct_hub_usernames(ids: list[str]) -> None:
    roster = hub_roster(ids[0], [(u, RosterRole.PARTICIPANT) for u in ids[1:]])
    assert all(HUB_USERNAME.fullmatch(name) for name in roster.everyone)
    assert len(roster.everyone) == len(ids)
