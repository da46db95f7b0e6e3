"""A leader changes an approved course through the gateway: what cannot change,
breaks a rule or comes too late is refused naming why; an accepted proposal waits
while the course runs as approved; once governance approves it, the leader's
request, the deployer's schedule and the course's participant limit follow it.
HTTP through the gateway to every service.

Governance's decision on a change is published on the bus with governance-svc's
own credential, as governance-svc would (the decision itself is governance-svc's
and tested there).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually
from jhaas_schemas.envelope import cloudevents_headers, envelope
from jhaas_schemas.events import ChangeApproved, encode_event
from jhaas_schemas.model import HubSpec

pytestmark = pytest.mark.e2e

MakeUser = Callable[..., Awaitable[dict[str, str]]]


def hub_request(slug: str) -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=14)).replace(microsecond=0)
    return {
        "title": "Machine Learning 2027",
        "slug": slug,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=30)).isoformat(),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": {"cpu": "1", "memory": "2Gi", "storage": "5Gi"},
        "expected_participants": 30,
    }


async def test_a_change_is_checked_waits_and_applies_everywhere_once_approved(
    stack: Stack, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    leader = await make_user("lea", "leader")
    reviewer = await make_user("gus", "governance")

    async def approved_course(slug: str) -> dict[str, Any]:
        r = await client.post("/api/v1/requests", headers=leader, json=hub_request(slug))
        assert r.status_code == 201, r.text
        request_id = r.json()["request_id"]

        async def approve() -> int:
            answer = await client.post(
                f"/api/v1/reviews/{request_id}/approve", headers=reviewer, json={}
            )
            return answer.status_code

        await eventually(approve, lambda status: status == 200)  # once the review exists
        return await eventually(lambda: view(request_id), lambda v: v["status"] == "approved")

    async def view(request_id: str) -> dict[str, Any]:
        r = await client.get(f"/api/v1/requests/{request_id}", headers=leader)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def propose(request_id: str, body: dict[str, Any]) -> httpx.Response:
        return await client.post(
            f"/api/v1/requests/{request_id}/changes", headers=leader, json=body
        )

    course = await approved_course("ml-change")
    rid = course["request_id"]
    start = datetime.fromisoformat(course["spec"]["starts_at"])

    # Refused, naming the field and the rule; nothing is stored.
    fixed = await propose(rid, {"changes": {"slug": "elsewhere"}})
    assert fixed.status_code == 422, fixed.text
    assert fixed.json()["fields"] == {"changes.slug": "cannot change after approval"}
    too_many = await propose(rid, {"changes": {"expected_participants": 5000}})
    assert too_many.status_code == 422, too_many.text
    [(field, message)] = too_many.json()["fields"].items()
    assert field == "spec.expected_participants"
    assert message.startswith("course.max_participants: ")
    backwards = await propose(
        rid, {"changes": {"ends_at": (start - timedelta(days=1)).isoformat()}}
    )
    assert backwards.status_code == 422, backwards.text
    assert list(backwards.json()["fields"]) == ["spec.ends_at"]
    assert await view(rid) == course

    # Accepted: it waits for governance, the course runs as approved meanwhile.
    later = start + timedelta(days=44)
    proposed = await propose(
        rid,
        {
            "changes": {"ends_at": later.isoformat(), "expected_participants": 60},
            "comment": "more people signed up",
            "expected_revision": course["revision"],
        },
    )
    assert proposed.status_code == 201, proposed.text
    change = proposed.json()["change"]
    assert change["status"] == "pending"
    assert proposed.json()["spec"] == course["spec"]
    second = await propose(rid, {"changes": {"expected_participants": 70}})
    assert second.status_code == 409, second.text
    assert "still waiting" in second.json()["message"]

    # Governance approves it.
    publisher = await stack.nats_connect("governance-svc")
    answer = ChangeApproved(
        **envelope(source="governance-svc", correlation_id=str(uuid.uuid4())),
        request_id=rid,
        change_id=change["change_id"],
        decided_by="system",
        revision=change["revision"],
        configuration=msgspec.convert(change["configuration"], HubSpec),
    )
    await publisher.jetstream().publish(
        answer.subject, encode_event(answer), headers=cloudevents_headers(answer)
    )
    await publisher.close()

    seen = await eventually(lambda: view(rid), lambda v: v["change"]["status"] == "approved")
    assert datetime.fromisoformat(seen["spec"]["ends_at"]) == later
    assert seen["spec"]["expected_participants"] == 60

    async def deployment() -> dict[str, Any]:
        r = await client.get("/api/v1/deployments", headers=leader, params={"request_id": rid})
        assert r.status_code == 200, r.text
        [item] = r.json()["items"]
        return dict(item)

    moved = await eventually(deployment, lambda d: datetime.fromisoformat(d["ends_at"]) == later)
    assert datetime.fromisoformat(moved["teardown_at"]) == later  # no grace configured
    assert moved["configuration"]["expected_participants"] == 60

    async def participant_limit() -> int:
        r = await client.get(f"/api/v1/courses/{rid}", headers=leader)
        assert r.status_code == 200, r.text
        return int(r.json()["max_participants"])

    await eventually(participant_limit, lambda limit: limit == 60)

    # A course that is over cannot change any more.
    cancelled = await client.post(f"/api/v1/requests/{rid}/cancel", headers=leader, json={})
    assert cancelled.status_code == 200, cancelled.text
    late = await propose(rid, {"changes": {"expected_participants": 20}})
    assert late.status_code == 409, late.text
    assert "the course is over" in late.json()["message"]

    # Every process did all of the above within its own NATS permissions.
    assert "Violation" not in (stack.log_dir / "nats.log").read_text()
