"""Reviews of hub requests: the queue governance works through and its decisions.

Pure and synchronous: state + command or event -> new state + events. The
clock, the new ids and the envelope of emitted events are passed in.

The queue follows request-svc's events. JetStream delivers them in order,
but a redelivered event can arrive after a newer one, so every event handler
here answers None ("nothing to do") when the event no longer applies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from jhaas_schemas.envelope import Envelope
from jhaas_schemas.errors import Conflict, Forbidden, InvalidInput, NotFound
from jhaas_schemas.events import (
    ChangesRequested,
    RequestApproved,
    RequestCancelled,
    RequestRejected,
    RequestSubmitted,
    RequestUpdated,
    RequestWithdrawn,
)
from jhaas_schemas.model import HubSpec, Principal, Role
from jhaas_schemas.rpc import Decision, Review, ReviewState

R = ReviewState
# The leader may still edit (and so withdraw) the request behind these reviews.
OPEN = frozenset({R.PENDING, R.CHANGES_REQUESTED})
# Nothing happens to these reviews any more.
CLOSED = frozenset({R.REJECTED, R.WITHDRAWN, R.CANCELLED})
DECIDERS = (Role.GOVERNANCE, Role.ADMIN)


@dataclass(frozen=True, kw_only=True)
class ReviewRecord:
    review_id: str
    request_id: str
    leader_id: str
    state: ReviewState
    revision: int
    spec: HubSpec
    submitted_at: datetime
    updated_at: datetime
    decisions: tuple[Decision, ...] = ()

    def view(self) -> Review:
        return Review(
            review_id=self.review_id,
            request_id=self.request_id,
            leader_id=self.leader_id,
            state=self.state,
            revision=self.revision,
            spec=self.spec,
            submitted_at=self.submitted_at,
            decisions=list(self.decisions),
        )


# --- the queue, from request events ------------------------------------------


def on_request_submitted(
    review: ReviewRecord | None, event: RequestSubmitted, *, review_id: str, now: datetime
) -> ReviewRecord | None:
    """A new request opens a pending review; a request already in the queue is left alone."""
    if review is not None:
        return None
    return _open_review(event, review_id=review_id, now=now)


def on_request_updated(
    review: ReviewRecord | None, event: RequestUpdated, *, review_id: str, now: datetime
) -> ReviewRecord | None:
    """An edit replaces what is reviewed and puts the review back in the queue.

    An update can overtake its submission when the submission is redelivered;
    it carries the whole request, so it opens the review itself and the late
    submission is then ignored.
    """
    if review is None:
        return _open_review(event, review_id=review_id, now=now)
    if event.revision <= review.revision or review.state not in OPEN:
        return None  # an older edit seen late, or the review was decided meanwhile
    return replace(
        review, spec=event.spec, revision=event.revision, state=R.PENDING, updated_at=now
    )


def _open_review(
    event: RequestSubmitted | RequestUpdated, *, review_id: str, now: datetime
) -> ReviewRecord:
    return ReviewRecord(
        review_id=review_id,
        request_id=event.request_id,
        leader_id=event.leader_id,
        state=R.PENDING,
        revision=event.revision,
        spec=event.spec,
        submitted_at=event.occurred_at,
        updated_at=now,
    )


def on_request_withdrawn(
    review: ReviewRecord | None, _event: RequestWithdrawn, *, now: datetime
) -> ReviewRecord | None:
    if review is None or review.state not in OPEN:
        return None
    return replace(review, state=R.WITHDRAWN, updated_at=now)


def on_request_cancelled(
    review: ReviewRecord | None, _event: RequestCancelled, *, now: datetime
) -> ReviewRecord | None:
    if review is None or review.state in CLOSED:
        return None
    return replace(review, state=R.CANCELLED, updated_at=now)


# --- what governance sees -----------------------------------------------------


def ensure_can_list(principal: Principal) -> None:
    if not principal.has(*DECIDERS):
        raise Forbidden("only governance and admins can see the review queue")


def ensure_can_read_audit(principal: Principal) -> None:
    if not principal.has(*DECIDERS):
        raise Forbidden("only governance and admins can read the governance audit trail")


def ensure_visible(
    review: ReviewRecord | None, principal: Principal, request_id: str
) -> ReviewRecord:
    """Governance, admins and the request's leader see a review; to others it does not exist."""
    if review is None or not (review.leader_id == principal.user_id or principal.has(*DECIDERS)):
        raise NotFound(f"no review for hub request {request_id}")
    return review


# --- decisions ----------------------------------------------------------------


def approve(
    review: ReviewRecord,
    *,
    principal: Principal,
    comment: str,
    revision: int | None,
    now: datetime,
    env: Envelope,
) -> tuple[ReviewRecord, Decision, RequestApproved]:
    new, decision = _decide(review, principal, R.APPROVED, comment, revision, now)
    event = RequestApproved(
        **env,
        request_id=new.request_id,
        review_id=new.review_id,
        leader_id=new.leader_id,
        decided_by=principal.user_id,
        revision=new.revision,
        configuration=new.spec,
        comment=comment,
    )
    return new, decision, event


def reject(
    review: ReviewRecord,
    *,
    principal: Principal,
    reason: str,
    revision: int | None,
    now: datetime,
    env: Envelope,
) -> tuple[ReviewRecord, Decision, RequestRejected]:
    _require_text(reason, "reason", "a rejection needs a reason the leader can act on")
    new, decision = _decide(review, principal, R.REJECTED, reason, revision, now)
    event = RequestRejected(
        **env,
        request_id=new.request_id,
        review_id=new.review_id,
        decided_by=principal.user_id,
        revision=new.revision,
        reason=reason,
    )
    return new, decision, event


def request_changes(
    review: ReviewRecord,
    *,
    principal: Principal,
    comment: str,
    revision: int | None,
    now: datetime,
    env: Envelope,
) -> tuple[ReviewRecord, Decision, ChangesRequested]:
    _require_text(comment, "comment", "say which changes the leader should make")
    new, decision = _decide(review, principal, R.CHANGES_REQUESTED, comment, revision, now)
    event = ChangesRequested(
        **env,
        request_id=new.request_id,
        review_id=new.review_id,
        decided_by=principal.user_id,
        revision=new.revision,
        comment=comment,
    )
    return new, decision, event


def _require_text(text: str, field: str, message: str) -> None:
    if not text.strip():
        raise InvalidInput(message, {field: "must not be empty"})


def _decide(
    review: ReviewRecord,
    principal: Principal,
    outcome: ReviewState,
    comment: str,
    revision: int | None,
    now: datetime,
) -> tuple[ReviewRecord, Decision]:
    if not principal.has(*DECIDERS):
        raise Forbidden("only governance and admins decide on hub requests")
    if principal.user_id == review.leader_id:
        raise Forbidden("you cannot decide on your own hub request; another reviewer must")
    if review.state != R.PENDING:
        raise Conflict(f"the review is {review.state.value}; only a pending review can be decided")
    if revision is not None and revision != review.revision:
        raise Conflict(
            "the request changed since you looked at it; "
            f"it is at revision {review.revision}, reload it"
        )
    decision = Decision(
        state=outcome,
        decided_by=principal.user_id,
        decided_at=now,
        revision=review.revision,
        comment=comment,
    )
    new = replace(review, state=outcome, updated_at=now, decisions=(*review.decisions, decision))
    return new, decision
