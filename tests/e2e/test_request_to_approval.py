"""A leader asks for a hub, governance approves it, the leader sees it approved,
and the deployer holds exactly one scheduled deployment — also when the same
`RequestApproved` reaches it twice. HTTP through the gateway to every service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from jhaas_launcher.natsauth import NATS_ADMIN
from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually
from jhaas_schemas.streams import GOVERNANCE_STREAM

pytestmark = pytest.mark.e2e

MakeUser = Callable[..., Awaitable[dict[str, str]]]


def hub_request(slug: str = "ml-2027") -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=14)).replace(microsecond=0)
    return {
        "title": "Machine Learning 2027",
        "slug": slug,
        "description": "Lab sessions",
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=100)).isoformat(),
        "image": "registry.example.org:5000/ml/notebook:2027.1",
        "default_interface": "lab",
        "resources": {"cpu": "2", "memory": "4Gi", "storage": "10Gi"},
        "expected_participants": 40,
    }


async def test_leader_request_is_approved_and_scheduled_once(
    stack: Stack, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    leader = await make_user("lea", "leader")
    reviewer = await make_user("gus", "governance")
    admin_like = await make_user("ada", "admin")

    submitted = await client.post("/api/v1/requests", headers=leader, json=hub_request())
    assert submitted.status_code == 201, submitted.text
    request = submitted.json()
    request_id = request["request_id"]
    assert request["status"] == "submitted"
    assert request["spec"]["image"] == "registry.example.org:5000/ml/notebook:2027.1"

    async def pending_reviews() -> list[str]:
        r = await client.get("/api/v1/reviews", headers=reviewer, params={"state": "pending"})
        assert r.status_code == 200, r.text
        return [item["request_id"] for item in r.json()["items"]]

    await eventually(pending_reviews, lambda ids: request_id in ids)

    # The leader cannot review, and a reviewer cannot approve their own request.
    forbidden = await client.post(f"/api/v1/reviews/{request_id}/approve", headers=leader, json={})
    assert forbidden.status_code == 403, forbidden.text

    approved = await client.post(
        f"/api/v1/reviews/{request_id}/approve",
        headers=reviewer,
        json={"comment": "Enjoy the course", "revision": 1},
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"

    again = await client.post(f"/api/v1/reviews/{request_id}/approve", headers=reviewer, json={})
    assert again.status_code == 409, again.text

    async def leader_view() -> dict[str, Any]:
        r = await client.get(f"/api/v1/requests/{request_id}", headers=leader)
        assert r.status_code == 200, r.text
        return dict(r.json())

    seen = await eventually(leader_view, lambda v: v["status"] == "approved")
    assert seen["review_comment"] == "Enjoy the course"

    async def deployments() -> list[dict[str, Any]]:
        r = await client.get(
            "/api/v1/deployments", headers=admin_like, params={"request_id": request_id}
        )
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    items = await eventually(deployments, lambda items: len(items) == 1)
    assert items[0]["state"] == "scheduled"
    starts_at = datetime.fromisoformat(request["spec"]["starts_at"])
    assert datetime.fromisoformat(items[0]["deploy_at"]) == starts_at - timedelta(minutes=30)

    # The same RequestApproved delivered a second time (a copy JetStream cannot
    # drop, as after a publisher crash outside the duplicate window).
    # The operator's credential reads the stream; governance-svc's republishes.
    nc = await stack.nats_connect(NATS_ADMIN)
    js = nc.jetstream()
    original = await js.get_last_msg(GOVERNANCE_STREAM.name, "jhaas.evt.governance.approved.v1")
    headers = dict(original.headers or {})
    headers["Nats-Msg-Id"] = headers["Nats-Msg-Id"] + "-again"
    publisher = await stack.nats_connect("governance-svc")
    await publisher.jetstream().publish(
        original.subject or "", original.data or b"", headers=headers
    )
    await publisher.close()

    async def consumer_caught_up() -> bool:
        info = await js.consumer_info(GOVERNANCE_STREAM.name, "deployer-svc-governance")
        return bool(
            info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq >= 2
        )

    await eventually(consumer_caught_up)
    await nc.close()
    assert len(await deployments()) == 1

    # Someone who is both leader and reviewer still cannot decide on their own request.
    dual = await make_user("dee", "leader", "governance")
    own_id = (
        await client.post("/api/v1/requests", headers=dual, json=hub_request("own-1"))
    ).json()["request_id"]
    await eventually(pending_reviews, lambda ids: own_id in ids)
    own = await client.post(f"/api/v1/reviews/{own_id}/approve", headers=dual, json={})
    assert own.status_code == 403, own.text
    assert "own" in own.json()["message"]

    # The leader sees only their own deployments; a stranger none of them.
    mine = await client.get("/api/v1/deployments", headers=leader)
    assert [d["request_id"] for d in mine.json()["items"]] == [request_id]
    stranger = await make_user("sam", "leader")
    theirs = await client.get("/api/v1/deployments", headers=stranger)
    assert theirs.status_code == 200 and theirs.json()["items"] == []

    # Every process did all of the above within its own NATS permissions.
    assert "Violation" not in (stack.log_dir / "nats.log").read_text()


async def test_changes_requested_then_resubmitted_then_rejected(
    client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    leader = await make_user("lea", "leader")
    reviewer = await make_user("gus", "governance")
    request_id = (
        await client.post("/api/v1/requests", headers=leader, json=hub_request("stats-1"))
    ).json()["request_id"]

    async def review_state() -> str:
        r = await client.get(f"/api/v1/reviews/{request_id}", headers=reviewer)
        return str(r.json()["state"]) if r.status_code == 200 else f"http {r.status_code}"

    await eventually(review_state, lambda s: s == "pending")
    asked = await client.post(
        f"/api/v1/reviews/{request_id}/request-changes",
        headers=reviewer,
        json={"comment": "Fewer CPUs please"},
    )
    assert asked.status_code == 200, asked.text

    async def status() -> str:
        r = await client.get(f"/api/v1/requests/{request_id}", headers=leader)
        return str(r.json()["status"])

    await eventually(status, lambda s: s == "changes_requested")
    edited = await client.patch(
        f"/api/v1/requests/{request_id}",
        headers=leader,
        json={"changes": {"resources": {"cpu": "1"}}, "expected_revision": 1},
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["revision"] == 2 and edited.json()["status"] == "submitted"

    async def reviewed_revision() -> int:
        r = await client.get(f"/api/v1/reviews/{request_id}", headers=reviewer)
        body = r.json()
        return int(body["revision"]) if body["state"] == "pending" else 0

    await eventually(reviewed_revision, lambda rev: rev == 2)
    stale = await client.post(
        f"/api/v1/reviews/{request_id}/reject",
        headers=reviewer,
        json={"reason": "no", "revision": 1},
    )
    assert stale.status_code == 409, stale.text
    rejected = await client.post(
        f"/api/v1/reviews/{request_id}/reject",
        headers=reviewer,
        json={"reason": "Not a course", "revision": 2},
    )
    assert rejected.status_code == 200, rejected.text
    await eventually(status, lambda s: s == "rejected")

    # The slug of a rejected request is free again.
    again = await client.post("/api/v1/requests", headers=leader, json=hub_request("stats-1"))
    assert again.status_code == 201, again.text
