"""governance-svc against a real NATS JetStream and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from nats.aio.client import Client as NATS

from governance_svc.app import REQUESTS_CONSUMER, build_app
from jhaas_launcher.testing import eventually, publish
from jhaas_runtime.rpc import RpcClient, RpcFailure
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings
from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import (
    RequestApproved,
    RequestSubmitted,
    RequestWithdrawn,
    decode_event,
)
from jhaas_schemas.model import HubSpec, Principal, Resources, Role
from jhaas_schemas.rpc import (
    ApproveRequest,
    ErrorCode,
    GetReview,
    GovernanceOps,
    ListReviews,
    Review,
    ReviewList,
    ReviewState,
)
from jhaas_schemas.streams import GOVERNANCE_STREAM

pytestmark = pytest.mark.integration


def env(source: str, correlation_id: str, **more: Any) -> dict[str, Any]:
    """A new event's envelope, typed for `**` into an event's constructor."""
    return envelope(source=source, correlation_id=correlation_id, **more)


LEADER = Principal(user_id="u-leader", username="lea", roles=(Role.LEADER,))
REVIEWER = Principal(user_id="u-gov", username="gus", roles=(Role.GOVERNANCE,))


def spec() -> HubSpec:
    start = (datetime.now(UTC) + timedelta(days=7)).replace(microsecond=0)
    return HubSpec(
        title="Data Science 101",
        slug="ds101",
        starts_at=start,
        ends_at=start + timedelta(days=90),
        image="quay.io/jupyter/scipy-notebook:2024-12-02",
        resources=Resources(cpu="1", memory="2Gi", storage="5Gi"),
        expected_participants=30,
    )


def submission(request_id: str, correlation_id: str = "c-submit") -> RequestSubmitted:
    return RequestSubmitted(
        **env(source="request-svc", correlation_id=correlation_id),
        request_id=request_id,
        leader_id=LEADER.user_id,
        revision=1,
        spec=spec(),
    )


@pytest.fixture
async def service(
    settings_for: Callable[..., RuntimeSettings],
) -> AsyncIterator[tuple[ServiceRuntime, NATS, RpcClient]]:
    runtime = build_app(settings_for("governance-svc"))
    await runtime.start()
    nc = await nats.connect(runtime.settings.nats_url)
    try:
        yield runtime, nc, RpcClient(nc)
    finally:
        await nc.close()
        await runtime.stop()


async def pending_reviews(client: RpcClient) -> ReviewList:
    return await client.call(
        GovernanceOps.LIST_REVIEWS,
        ListReviews(),
        ReviewList,
        principal=REVIEWER,
        correlation_id="c-list",
    )


async def test_submitted_request_is_reviewed_and_approved(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    _runtime, nc, client = service
    submitted = submission(str(uuid.uuid4()))
    await publish(nc.jetstream(), submitted)

    async def review_shows_up() -> ReviewList | None:
        found = await pending_reviews(client)
        return found if found.items else None

    queue = await eventually(review_shows_up)
    [review] = queue.items
    assert (review.request_id, review.leader_id, review.state) == (
        submitted.request_id,
        LEADER.user_id,
        ReviewState.PENDING,
    )
    assert review.spec == submitted.spec
    assert review.submitted_at == submitted.occurred_at

    # The leader sees their own review but may not decide on it.
    mine = await client.call(
        GovernanceOps.GET_REVIEW,
        GetReview(request_id=submitted.request_id),
        Review,
        principal=LEADER,
        correlation_id="c-get",
    )
    assert mine.review_id == review.review_id
    with pytest.raises(RpcFailure) as refused:
        await client.call(
            GovernanceOps.APPROVE,
            ApproveRequest(request_id=submitted.request_id),
            Review,
            principal=LEADER,
            correlation_id="c-self",
        )
    assert refused.value.error.code == ErrorCode.FORBIDDEN
    with pytest.raises(RpcFailure) as stale:
        await client.call(
            GovernanceOps.APPROVE,
            ApproveRequest(request_id=submitted.request_id, revision=2),
            Review,
            principal=REVIEWER,
            correlation_id="c-stale",
        )
    assert stale.value.error.code == ErrorCode.CONFLICT
    assert "it is at revision 1" in stale.value.error.message

    approved = await client.call(
        GovernanceOps.APPROVE,
        ApproveRequest(request_id=submitted.request_id, comment="enjoy", revision=1),
        Review,
        principal=REVIEWER,
        correlation_id="c-approve",
    )
    assert approved.state == ReviewState.APPROVED
    [decision] = approved.decisions
    assert (decision.state, decision.decided_by, decision.revision, decision.comment) == (
        ReviewState.APPROVED,
        REVIEWER.user_id,
        1,
        "enjoy",
    )
    assert (await pending_reviews(client)).items == []

    with pytest.raises(RpcFailure) as twice:
        await client.call(
            GovernanceOps.APPROVE,
            ApproveRequest(request_id=submitted.request_id),
            Review,
            principal=REVIEWER,
            correlation_id="c-again",
        )
    assert twice.value.error.code == ErrorCode.CONFLICT
    assert "approved" in twice.value.error.message

    sub = await nc.jetstream().pull_subscribe(
        GOVERNANCE_STREAM.subjects[0], durable="probe", stream=GOVERNANCE_STREAM.name
    )
    messages = await sub.fetch(10, timeout=5)
    assert len(messages) == 1
    event = decode_event(messages[0].data)
    assert isinstance(event, RequestApproved)
    assert event.configuration == submitted.spec
    assert (event.request_id, event.review_id, event.leader_id) == (
        submitted.request_id,
        review.review_id,
        LEADER.user_id,
    )
    assert (event.decided_by, event.revision, event.comment) == (REVIEWER.user_id, 1, "enjoy")
    assert (event.source, event.correlation_id, event.causation_id) == (
        "governance-svc",
        "c-approve",
        None,
    )
    assert messages[0].headers is not None
    assert messages[0].headers["Nats-Msg-Id"] == event.event_id
    assert messages[0].headers["ce-type"] == "jhaas.evt.governance.approved.v1"


async def test_a_submission_seen_twice_opens_one_review(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    runtime, nc, client = service
    [consumer] = [c for c in runtime.consumers if c.name == REQUESTS_CONSUMER]
    submitted = submission(str(uuid.uuid4()))
    await publish(nc.jetstream(), submitted, msg_id="first")
    await publish(nc.jetstream(), submitted, msg_id="redelivered")
    # The same request again under a new event id (request-svc republishing, say).
    again = RequestSubmitted(
        **env(source="request-svc", correlation_id="c-submit"),
        request_id=submitted.request_id,
        leader_id=submitted.leader_id,
        revision=1,
        spec=submitted.spec,
    )
    await publish(nc.jetstream(), again)

    async def all_handled() -> bool | None:
        return True if consumer.handled + consumer.duplicates >= 3 else None

    await eventually(all_handled)
    queue = await client.call(
        GovernanceOps.LIST_REVIEWS,
        ListReviews(state=None),
        ReviewList,
        principal=REVIEWER,
        correlation_id="c-list",
    )
    assert [r.request_id for r in queue.items] == [submitted.request_id]
    assert consumer.dead_lettered == 0


async def test_a_withdrawal_that_overtakes_its_submission_still_closes_the_review(
    service: tuple[ServiceRuntime, NATS, RpcClient],
) -> None:
    runtime, nc, client = service
    [consumer] = [c for c in runtime.consumers if c.name == REQUESTS_CONSUMER]
    consumer.backoff_seconds = (0.2, 0.2, 0.2)
    request_id = str(uuid.uuid4())
    withdrawn = RequestWithdrawn(
        **env(source="request-svc", correlation_id="c-w"),
        request_id=request_id,
        leader_id=LEADER.user_id,
    )
    # The withdrawal arrives first, as when the submission's handling failed once.
    await publish(nc.jetstream(), withdrawn)
    await publish(nc.jetstream(), submission(request_id))

    async def closed() -> Review | None:
        try:
            review = await client.call(
                GovernanceOps.GET_REVIEW,
                GetReview(request_id=request_id),
                Review,
                principal=REVIEWER,
                correlation_id="c-get",
            )
        except RpcFailure:
            return None  # not opened yet
        return review if review.state == ReviewState.WITHDRAWN else None

    await eventually(closed)
    assert consumer.dead_lettered == 0
