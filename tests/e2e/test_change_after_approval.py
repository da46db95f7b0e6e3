"""A leader changes an approved course through the gateway and the whole product
decides: what cannot change, breaks a rule or comes too late is refused naming
why; a change inside the approved envelope (it raises nothing, or it lies inside
the policy's auto-approval envelope) is applied by the system at once; one
outside waits for a reviewer while the course runs as approved, and applies
once approved or stays as approved once rejected. The request, the deployer's
schedule and the course's participant limit follow every applied change, and
the governance audit trail records every decision. HTTP through the gateway to
every service; nothing is published on the bus by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from jhaas_launcher.stack import Stack
from jhaas_launcher.testing import eventually

pytestmark = pytest.mark.e2e

# The first admin's password, as conftest.py's stack has it (make_user signs in with it).
ADMIN_PASSWORD = "e2e-admin-password-0123"

MakeUser = Callable[..., Awaitable[dict[str, str]]]

# Auto-approval on, for courses (and changes) of at most 50 participants, any image.
POLICY = """\
course:
  max_participants: 1000
auto_approval:
  enabled: true
  max_participants: 50
  max_per_user: {cpu: 2, memory: 4Gi, storage: 10Gi, gpus: 0}
  max_duration_days: 120
  presets_only: false
"""


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The product as `./jhaas up` runs it, with the policy above."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    stack = Stack(
        data_dir=tmp_path / "data",
        extra_env={
            "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "JHAAS_LOG_FORMAT": "console",
            "JHAAS_POLICY_FILE": str(policy),
        },
    )
    try:
        await stack.start()
        yield stack
    finally:
        stack.stop()


def hub_request(slug: str) -> dict[str, Any]:
    start = (datetime.now(UTC) + timedelta(days=14)).replace(microsecond=0)
    return {
        "title": "Machine Learning 2027",
        "slug": slug,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(days=30)).isoformat(),
        "image": "quay.io/jupyter/scipy-notebook:2024-12-02",
        "resources": {"cpu": "1", "memory": "2Gi", "storage": "5Gi"},
        # More than the auto-approval envelope: a reviewer approves the course.
        "expected_participants": 60,
    }


async def test_changes_apply_by_the_system_or_wait_for_a_reviewer_and_everything_follows(
    stack: Stack, client: httpx.AsyncClient, make_user: MakeUser
) -> None:
    leader = await make_user("lea", "leader")
    reviewer = await make_user("gus", "governance")
    me = await client.get("/api/v1/me", headers=reviewer)
    assert me.status_code == 200, me.text
    reviewer_id = me.json()["user_id"]

    async def view(request_id: str) -> dict[str, Any]:
        r = await client.get(f"/api/v1/requests/{request_id}", headers=leader)
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def review(request_id: str) -> dict[str, Any]:
        r = await client.get(f"/api/v1/reviews/{request_id}", headers=reviewer)
        if r.status_code == 404:  # governance has not seen the submission yet
            return {"state": None, "changes": []}
        assert r.status_code == 200, r.text
        return dict(r.json())

    async def deployment(request_id: str) -> dict[str, Any]:
        r = await client.get(
            "/api/v1/deployments", headers=leader, params={"request_id": request_id}
        )
        assert r.status_code == 200, r.text
        [item] = r.json()["items"]
        return dict(item)

    async def participant_limit(request_id: str) -> int:
        r = await client.get(f"/api/v1/courses/{request_id}", headers=leader)
        assert r.status_code == 200, r.text
        return int(r.json()["max_participants"])

    async def propose(request_id: str, body: dict[str, Any]) -> httpx.Response:
        return await client.post(
            f"/api/v1/requests/{request_id}/changes", headers=leader, json=body
        )

    async def decided(request_id: str, change_id: str) -> dict[str, Any]:
        """The request once governance answered `change_id`."""
        return await eventually(
            lambda: view(request_id),
            lambda v: v["change"]["change_id"] == change_id and v["change"]["status"] != "pending",
        )

    async def waiting(request_id: str, change_id: str) -> dict[str, Any]:
        """The change as the reviewer sees it once governance has it."""
        seen = await eventually(
            lambda: review(request_id),
            lambda r: any(c["change_id"] == change_id for c in r["changes"]),
        )
        [change] = [c for c in seen["changes"] if c["change_id"] == change_id]
        return dict(change)

    async def follows(request_id: str, spec: dict[str, Any]) -> None:
        """The deployer's schedule and the participant limit follow `spec`."""
        end = datetime.fromisoformat(spec["ends_at"])
        moved = await eventually(
            lambda: deployment(request_id),
            lambda d: (
                datetime.fromisoformat(d["ends_at"]) == end
                and d["configuration"]["expected_participants"] == spec["expected_participants"]
            ),
        )
        assert datetime.fromisoformat(moved["teardown_at"]) == end  # no grace configured
        assert moved["configuration"]["resources"] == spec["resources"]
        await eventually(
            lambda: participant_limit(request_id),
            lambda limit: limit == spec["expected_participants"],
        )

    # A course outside the auto-approval envelope: a reviewer approves it.
    r = await client.post("/api/v1/requests", headers=leader, json=hub_request("ml-change"))
    assert r.status_code == 201, r.text
    rid = r.json()["request_id"]
    first_review = await eventually(lambda: review(rid), lambda r: r["state"] == "pending")
    assert first_review["decisions"] == []  # the system left it for a reviewer
    approved = await client.post(
        f"/api/v1/reviews/{rid}/approve", headers=reviewer, json={"comment": "fine"}
    )
    assert approved.status_code == 200, approved.text
    course = await eventually(lambda: view(rid), lambda v: v["status"] == "approved")
    start = datetime.fromisoformat(course["spec"]["starts_at"])
    end = datetime.fromisoformat(course["spec"]["ends_at"])
    await follows(rid, course["spec"])

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

    # 1. Fewer participants and an earlier end raise nothing: the system applies it.
    earlier = end - timedelta(days=5)
    lower = await propose(
        rid,
        {
            "changes": {"ends_at": earlier.isoformat(), "expected_participants": 40},
            "comment": "fewer signed up",
            "expected_revision": course["revision"],
        },
    )
    assert lower.status_code == 201, lower.text
    assert lower.json()["change"]["status"] == "pending"
    lowered = await decided(rid, lower.json()["change"]["change_id"])
    assert lowered["change"]["status"] == "approved"
    assert lowered["change"]["decided_by"] == "system"
    assert datetime.fromisoformat(lowered["spec"]["ends_at"]) == earlier
    assert lowered["spec"]["expected_participants"] == 40
    await follows(rid, lowered["spec"])

    # A raise that stays inside the auto-approval envelope: the system applies it too.
    later = end + timedelta(days=10)
    raise_inside = await propose(
        rid,
        {
            "changes": {"ends_at": later.isoformat(), "expected_participants": 50},
            "comment": "a few more, two more weeks",
        },
    )
    assert raise_inside.status_code == 201, raise_inside.text
    raised = await decided(rid, raise_inside.json()["change"]["change_id"])
    assert raised["change"]["status"] == "approved"
    assert raised["change"]["decided_by"] == "system"
    assert datetime.fromisoformat(raised["spec"]["ends_at"]) == later
    assert raised["spec"]["expected_participants"] == 50
    await follows(rid, raised["spec"])

    # 2. More participants than the envelope: it waits for a reviewer while the
    # course runs as approved.
    outside = await propose(
        rid,
        {
            "changes": {"expected_participants": 80, "resources": {"cpu": "2"}},
            "comment": "the other group joins",
        },
    )
    assert outside.status_code == 201, outside.text
    big_id = outside.json()["change"]["change_id"]
    big = await waiting(rid, big_id)
    assert big["state"] == "pending"
    assert big["approved"] == raised["spec"]
    assert big["proposed"]["expected_participants"] == 80
    assert big["checks"]["passed"] is True
    assert {rule["rule"] for rule in big["checks"]["rules"]} >= {"course.max_participants"}
    still = await view(rid)
    assert still["change"]["status"] == "pending"
    assert still["spec"] == raised["spec"]
    assert (await deployment(rid))["configuration"]["expected_participants"] == 50
    assert await participant_limit(rid) == 50
    second = await propose(rid, {"changes": {"expected_participants": 70}})
    assert second.status_code == 409, second.text
    assert "still waiting" in second.json()["message"]

    # The reviewer approves it: everything follows.
    yes = await client.post(
        f"/api/v1/reviews/{rid}/changes/{big_id}/approve",
        headers=reviewer,
        json={"comment": "room enough that week"},
    )
    assert yes.status_code == 200, yes.text
    assert yes.json()["state"] == "approved"
    grown = await decided(rid, big_id)
    assert grown["change"]["status"] == "approved"
    assert grown["change"]["decided_by"] == reviewer_id
    assert grown["spec"]["expected_participants"] == 80
    assert grown["spec"]["resources"]["cpu"] == "2"
    await follows(rid, grown["spec"])

    # Another change outside the envelope, rejected: everything stays as approved.
    huge = await propose(rid, {"changes": {"expected_participants": 200}})
    assert huge.status_code == 201, huge.text
    huge_id = huge.json()["change"]["change_id"]
    assert (await waiting(rid, huge_id))["state"] == "pending"
    no = await client.post(
        f"/api/v1/reviews/{rid}/changes/{huge_id}/reject",
        headers=reviewer,
        json={"reason": "split it into two courses"},
    )
    assert no.status_code == 200, no.text
    assert no.json()["state"] == "rejected"
    refused = await decided(rid, huge_id)
    assert refused["change"]["status"] == "rejected"
    assert refused["change"]["decided_by"] == reviewer_id
    assert refused["change"]["answer"] == "split it into two courses"
    assert refused["spec"] == grown["spec"]
    await follows(rid, grown["spec"])

    # 3. The audit trail records every decision: who, the checks, the comment.
    trail = await client.get(
        "/api/v1/governance/audit", headers=reviewer, params={"request_id": rid}
    )
    assert trail.status_code == 200, trail.text
    entries = list(reversed(trail.json()["items"]))  # oldest first
    assert [(e["action"], e["actor"], e["change_id"]) for e in entries] == [
        ("approved", reviewer_id, None),
        ("change_auto_approved", "system", lower.json()["change"]["change_id"]),
        ("change_auto_approved", "system", raise_inside.json()["change"]["change_id"]),
        ("change_approved", reviewer_id, big_id),
        ("change_rejected", reviewer_id, huge_id),
    ]
    assert entries[0]["comment"] == "fine"
    assert entries[1]["comment"].startswith("applied by the system")
    assert entries[3]["comment"] == "room enough that week"
    assert entries[4]["comment"] == "split it into two courses"
    for entry in entries:
        assert entry["checks"]["passed"] is True, entry
        assert entry["checks"]["rules"], entry
    assert entries[3]["checks"]["totals"]  # what the grown course reserves

    # A course that is over cannot change any more.
    cancelled = await client.post(f"/api/v1/requests/{rid}/cancel", headers=leader, json={})
    assert cancelled.status_code == 200, cancelled.text
    late = await propose(rid, {"changes": {"expected_participants": 20}})
    assert late.status_code == 409, late.text
    assert "the course is over" in late.json()["message"]

    # Every process did all of the above within its own NATS permissions.
    assert "Violation" not in (stack.log_dir / "nats.log").read_text()
