"""What participant-svc's bus tests share: the people and a course's approval."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jhaas_schemas.envelope import envelope
from jhaas_schemas.events import RequestApproved
from jhaas_schemas.model import HubSpec, Principal, Resources, Role

LEADER = Principal(user_id="u-lea", username="lea", roles=(Role.LEADER,))


def person(n: int) -> Principal:
    return Principal(user_id=f"u-{n}", username=f"p{n}", roles=(Role.PARTICIPANT,))


def approval(request_id: str, limit: int) -> RequestApproved:
    """governance-svc's approval of a course for `limit` participants, starting in 10 days."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=10)
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
        **envelope(source="governance-svc", correlation_id="c-approve"),
        request_id=request_id,
        review_id="rv-1",
        leader_id=LEADER.user_id,
        decided_by="u-gov",
        revision=1,
        configuration=spec,
    )
