"""The review rules, without I/O."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from governance_svc import domain
from governance_svc.domain import ReviewRecord
from jhaas_schemas.envelope import envelope
from jhaas_schemas.errors import Conflict, Forbidden, InvalidInput, NotFound
from jhaas_schemas.events import (
    RequestApproved,
    RequestCancelled,
    RequestSubmitted,
    RequestUpdated,
    RequestWithdrawn,
)
from jhaas_schemas.model import HubSpec, Principal, Resources, Role
from jhaas_schemas.rpc import RejectRequest, ReviewState

pytestmark = pytest.mark.unit

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))
REVIEWER = Principal(user_id="u-gov", username="gus", roles=(Role.GOVERNANCE,))
ADMIN = Principal(user_id="u-admin", username="ada", roles=(Role.ADMIN,))
# A leader who also sits on the governance board.
LEADING_REVIEWER = Principal(
    user_id="u-leader", username="lea", roles=(Role.LEADER, Role.GOVERNANCE)
)


def spec(**overrides: object) -> HubSpec:
    start = datetime(2027, 4, 12, 9, 0, tzinfo=UTC)
    values: dict[str, object] = {
        "title": "Data Science 101",
        "slug": "ds101",
        "starts_at": start,
        "ends_at": start + timedelta(days=90),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": Resources(cpu="1", memory="2Gi", storage="5Gi"),
        "expected_participants": 30,
    }
    values.update(overrides)
    return HubSpec(**values)  # type: ignore[arg-type]


def env(correlation_id: str = "c-1") -> dict[str, Any]:
    return envelope(source="test", correlation_id=correlation_id, now=NOW)


def submitted(request_id: str = "r-1") -> RequestSubmitted:
    return RequestSubmitted(
        **env(), request_id=request_id, leader_id=LEADER.user_id, revision=1, spec=spec()
    )


def updated(revision: int, new_spec: HubSpec, request_id: str = "r-1") -> RequestUpdated:
    return RequestUpdated(
        **env(), request_id=request_id, leader_id=LEADER.user_id, revision=revision, spec=new_spec
    )


def pending_review() -> ReviewRecord:
    review = domain.on_request_submitted(None, submitted(), review_id="rv-1", now=NOW)
    assert review is not None
    return review


def test_submission_opens_a_pending_review_once() -> None:
    review = pending_review()
    assert review.state == ReviewState.PENDING
    assert (review.request_id, review.leader_id, review.revision) == ("r-1", "u-leader", 1)
    assert review.spec == spec()
    again = domain.on_request_submitted(review, submitted(), review_id="rv-2", now=NOW)
    assert again is None


def test_approval_carries_the_reviewed_configuration() -> None:
    review = pending_review()
    new, decision, event = domain.approve(
        review, principal=REVIEWER, comment="fine", revision=1, now=NOW, env=env("c-9")
    )
    assert new.state == ReviewState.APPROVED
    assert new.decisions == (decision,)
    assert decision.decided_by == REVIEWER.user_id
    assert decision.revision == 1
    assert isinstance(event, RequestApproved)
    assert event.configuration == review.spec
    assert (event.leader_id, event.review_id, event.decided_by) == ("u-leader", "rv-1", "u-gov")
    assert (event.revision, event.comment, event.correlation_id) == (1, "fine", "c-9")
    assert event.causation_id is None


def test_self_approval_is_refused() -> None:
    with pytest.raises(Forbidden, match="your own hub request"):
        domain.approve(
            pending_review(),
            principal=LEADING_REVIEWER,
            comment="",
            revision=None,
            now=NOW,
            env=env(),
        )


def test_only_governance_and_admins_decide() -> None:
    outsider = Principal(user_id="u-x", username="x", roles=(Role.LEADER, Role.PARTICIPANT))
    with pytest.raises(Forbidden, match="only governance and admins"):
        domain.approve(
            pending_review(), principal=outsider, comment="", revision=None, now=NOW, env=env()
        )
    new, _, _ = domain.approve(
        pending_review(), principal=ADMIN, comment="", revision=None, now=NOW, env=env()
    )
    assert new.state == ReviewState.APPROVED


def test_a_decision_needs_a_pending_review() -> None:
    rejected, _, _ = domain.reject(
        pending_review(), principal=REVIEWER, reason="too big", revision=None, now=NOW, env=env()
    )
    with pytest.raises(Conflict, match="the review is rejected"):
        domain.approve(rejected, principal=ADMIN, comment="", revision=None, now=NOW, env=env())
    withdrawn = domain.on_request_withdrawn(
        pending_review(),
        RequestWithdrawn(**env(), request_id="r-1", leader_id=LEADER.user_id),
        now=NOW,
    )
    assert withdrawn is not None
    with pytest.raises(Conflict, match="the review is withdrawn"):
        domain.request_changes(
            withdrawn, principal=REVIEWER, comment="x", revision=None, now=NOW, env=env()
        )


def test_a_stale_revision_is_refused() -> None:
    review = domain.on_request_updated(
        pending_review(), updated(2, spec(title="Data Science 102")), review_id="x", now=NOW
    )
    assert review is not None
    with pytest.raises(Conflict) as stale:
        domain.approve(review, principal=REVIEWER, comment="", revision=1, now=NOW, env=env())
    assert stale.value.message.startswith("the request changed since you looked at it")
    assert "it is at revision 2" in stale.value.message
    new, _, event = domain.approve(
        review, principal=REVIEWER, comment="", revision=2, now=NOW, env=env()
    )
    assert (new.state, event.revision) == (ReviewState.APPROVED, 2)
    assert event.configuration.title == "Data Science 102"


def test_rejection_needs_a_reason() -> None:
    with pytest.raises(InvalidInput) as missing:
        domain.reject(
            pending_review(), principal=REVIEWER, reason="   ", revision=None, now=NOW, env=env()
        )
    assert missing.value.fields == {"reason": "must not be empty"}
    with pytest.raises(InvalidInput):
        domain.request_changes(
            pending_review(), principal=REVIEWER, comment="", revision=None, now=NOW, env=env()
        )


def test_contract_requires_a_reason_too() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"request_id": "r-1", "reason": ""}', type=RejectRequest)


def test_changes_requested_then_update_returns_to_pending() -> None:
    asked, decision, event = domain.request_changes(
        pending_review(),
        principal=REVIEWER,
        comment="use fewer GPUs",
        revision=1,
        now=NOW,
        env=env(),
    )
    assert asked.state == ReviewState.CHANGES_REQUESTED
    assert event.comment == "use fewer GPUs"
    later = NOW + timedelta(hours=1)
    edited = domain.on_request_updated(
        asked, updated(2, spec(expected_participants=20)), review_id="x", now=later
    )
    assert edited is not None
    assert edited.state == ReviewState.PENDING
    assert edited.revision == 2
    assert edited.spec.expected_participants == 20
    assert edited.updated_at == later
    # The audit keeps the request for changes.
    assert edited.decisions == (decision,)


def test_update_while_pending_replaces_the_spec() -> None:
    edited = domain.on_request_updated(
        pending_review(), updated(2, spec(title="Renamed course")), review_id="x", now=NOW
    )
    assert edited is not None
    assert (edited.state, edited.revision, edited.spec.title) == ("pending", 2, "Renamed course")


def test_an_older_revision_is_ignored() -> None:
    review = pending_review()
    for revision in (2, 3):
        newer = domain.on_request_updated(
            review, updated(revision, spec(expected_participants=revision)), review_id="x", now=NOW
        )
        assert newer is not None
        review = newer
    late = updated(2, spec(expected_participants=2))
    assert domain.on_request_updated(review, late, review_id="x", now=NOW) is None
    same = updated(3, spec(expected_participants=3))
    assert domain.on_request_updated(review, same, review_id="x", now=NOW) is None
    assert (review.revision, review.spec.expected_participants) == (3, 3)


def test_update_of_a_decided_review_is_ignored() -> None:
    approved, _, _ = domain.approve(
        pending_review(), principal=REVIEWER, comment="", revision=None, now=NOW, env=env()
    )
    assert domain.on_request_updated(approved, updated(2, spec()), review_id="x", now=NOW) is None


def test_update_before_its_submission_opens_the_review() -> None:
    opened = domain.on_request_updated(None, updated(2, spec()), review_id="rv-9", now=NOW)
    assert opened is not None
    assert (opened.review_id, opened.state, opened.revision) == ("rv-9", "pending", 2)
    assert domain.on_request_submitted(opened, submitted(), review_id="x", now=NOW) is None


def test_withdrawal_and_cancellation() -> None:
    withdrawn = RequestWithdrawn(**env(), request_id="r-1", leader_id=LEADER.user_id)
    cancelled = RequestCancelled(**env(), request_id="r-1", cancelled_by=LEADER.user_id)
    approved, _, _ = domain.approve(
        pending_review(), principal=REVIEWER, comment="", revision=None, now=NOW, env=env()
    )
    # An approved course can be cancelled, but no longer withdrawn.
    assert domain.on_request_withdrawn(approved, withdrawn, now=NOW) is None
    gone = domain.on_request_cancelled(approved, cancelled, now=NOW)
    assert gone is not None
    assert gone.state == ReviewState.CANCELLED
    assert domain.on_request_cancelled(gone, cancelled, now=NOW) is None
    assert domain.on_request_withdrawn(None, withdrawn, now=NOW) is None


def test_who_sees_a_review() -> None:
    review = pending_review()
    assert domain.ensure_visible(review, LEADER, "r-1") is review
    assert domain.ensure_visible(review, REVIEWER, "r-1") is review
    stranger = Principal(user_id=str(uuid.uuid4()), username="s", roles=(Role.LEADER,))
    with pytest.raises(NotFound):
        domain.ensure_visible(review, stranger, "r-1")
    with pytest.raises(Forbidden):
        domain.ensure_can_list(LEADER)
    domain.ensure_can_list(ADMIN)
