"""The governance audit trail through the gateway, with the real request-svc and
governance-svc on SQLite and PostgreSQL: each decision appears with who, when,
the checks the reviewer saw and the comment; the filters and pages work; only
governance and admins read it; the database keeps it append-only."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from governance_svc.app import build_app as build_governance_svc
from governance_svc.audit import governance_audit
from jhaas_launcher.processes import PostgresServer
from jhaas_launcher.testing import eventually
from jhaas_runtime.db import Database
from jhaas_runtime.service import ServiceRuntime
from jhaas_runtime.settings import RuntimeSettings

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    LEADER,
    Client,
    LoopThread,
    assert_error,
    bearer,
    create_user,
    hub_spec,
    token_for,
)

pytestmark = pytest.mark.integration

REVIEWER = ("gus", "governance password 1")
PERSON = ("pat", "participant password 1")
AUDIT = "/api/v1/governance/audit"


@pytest.fixture
async def governance_svc(
    request: pytest.FixtureRequest,
    settings_for: Callable[..., RuntimeSettings],
    database_url: str,
    tmp_path: Path,
) -> AsyncIterator[ServiceRuntime]:
    # A database of its own, on the same engine as the gateway's.
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'governance-svc.sqlite'}"
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database(f"g_{uuid.uuid4().hex[:12]}")
    runtime = build_governance_svc(
        settings_for("governance-svc", database_url=url, data_dir=tmp_path / "governance-svc")
    )
    with LoopThread() as thread:
        await thread.run(runtime.start())
        await thread.run(runtime.nc.flush())
        try:
            yield runtime
        finally:
            await thread.run(runtime.stop())


class People:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    async def add(self, who: str, credentials: tuple[str, str], *roles: str) -> None:
        admin = self.tokens["admin"]
        created = await create_user(self.client, admin, *credentials, *roles)
        self.ids[who] = created["user_id"]
        self.tokens[who] = await token_for(self.client, *credentials)

    async def get(self, who: str, path: str, **params: Any) -> Any:
        return await self.client.get(path, params=params, headers=bearer(self.tokens[who]))

    async def post(self, who: str, path: str, body: Any) -> Any:
        return await self.client.post(path, json=body, headers=bearer(self.tokens[who]))

    async def audit(self, who: str = "gus", **params: Any) -> dict[str, Any]:
        response = await self.get(who, AUDIT, **params)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        return page


@pytest.fixture
async def people(
    client: Client, request_svc: ServiceRuntime, governance_svc: ServiceRuntime
) -> People:
    found = People(client)
    found.tokens["admin"] = await token_for(client, *ADMIN)
    found.ids["admin"] = (await found.get("admin", "/api/v1/auth/me")).json()["user_id"]
    await found.add("lea", LEADER, "leader")
    await found.add("gus", REVIEWER, "governance")
    await found.add("pat", PERSON, "participant")
    return found


async def submitted_and_pending(people: People, *slugs: str) -> list[str]:
    ids = []
    for slug in slugs:
        response = await people.post("lea", "/api/v1/requests", hub_spec(slug=slug))
        assert response.status_code == 201, response.text
        ids.append(response.json()["request_id"])

    async def pending() -> set[str]:
        response = await people.get("gus", "/api/v1/reviews", state="pending")
        assert response.status_code == 200, response.text
        return {item["request_id"] for item in response.json()["items"]}

    await eventually(pending, lambda found: set(ids) <= found)
    return ids


def actions(page: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(entry["action"], entry["request_id"]) for entry in page["items"]]


async def test_each_decision_is_recorded_with_its_checks_and_comment(people: People) -> None:
    first, second, third = await submitted_and_pending(people, "ds101", "ds102", "ds103")
    gus = people.ids["gus"]
    review = (await people.get("gus", f"/api/v1/reviews/{first}")).json()

    decisions = (
        (first, "approve", {"comment": "fits the week", "revision": 1}),
        (second, "reject", {"reason": "the cluster is booked", "revision": 1}),
        (third, "request-changes", {"comment": "fewer participants, please", "revision": 1}),
    )
    for request_id, action, body in decisions:
        response = await people.post("gus", f"/api/v1/reviews/{request_id}/{action}", body)
        assert response.status_code == 200, response.text

    # A refused decision leaves no entry: it is written with the decision or not at all.
    again = await people.post("gus", f"/api/v1/reviews/{first}/approve", {"revision": 1})
    assert again.status_code == 409, again.text

    page = await people.audit()
    assert actions(page) == [
        ("changes_requested", third),
        ("rejected", second),
        ("approved", first),
        ("policy_changed", None),
    ]
    assert page["next_cursor"] is None
    changes, rejected, approved, policy = page["items"]
    for entry, comment in (
        (approved, "fits the week"),
        (rejected, "the cluster is booked"),
        (changes, "fewer participants, please"),
    ):
        assert (entry["actor"], entry["revision"], entry["comment"]) == (gus, 1, comment)
        checks = entry["checks"]
        assert checks["policy_version"] == policy["details"]["new_version"]
        assert checks["passed"] is True
        # The rules and numbers the reviewer had in front of them.
        assert checks["rules"] == review["checks"]["rules"]
        assert checks["totals"] == review["checks"]["totals"]
        assert checks["core_hours"] == review["checks"]["core_hours"]
        assert datetime.fromisoformat(entry["at"]).tzinfo is not None
    assert {rule["rule"] for rule in approved["checks"]["rules"]} >= {
        "course.max_participants",
        "limits.cpu.max",
    }
    assert policy["actor"] == "operator" and policy["checks"] is None
    assert (approved["request_id"], approved["change_id"]) == (first, None)

    # Governance and admins read it; to everyone else it is forbidden.
    assert actions(await people.audit("admin")) == actions(page)
    for who in ("lea", "pat"):
        refused = await people.get(who, AUDIT)
        assert_error(refused, 403, "forbidden")
    anonymous = await people.client.get(AUDIT)
    assert anonymous.status_code == 401, anonymous.text


async def test_the_filters_and_pages_select_what_they_say(people: People) -> None:
    first, second = await submitted_and_pending(people, "ds201", "ds202")
    await people.post("gus", f"/api/v1/reviews/{first}/approve", {"comment": "ok"})
    await people.post("admin", f"/api/v1/reviews/{second}/reject", {"reason": "no"})
    everything = (await people.audit())["items"]
    rejected, approved, _policy = everything

    async def selected(**params: Any) -> list[tuple[str, str | None]]:
        return actions(await people.audit(**params))

    assert await selected(action="approved") == [("approved", first)]
    assert await selected(request_id=second) == [("rejected", second)]
    assert await selected(actor=people.ids["gus"]) == [("approved", first)]
    assert await selected(actor=people.ids["admin"]) == [("rejected", second)]
    assert await selected(actor="operator") == [("policy_changed", None)]
    assert await selected(actor="operator", action="approved") == []
    assert await selected(request_id="no-such-request") == []

    # since: at or after; until: before.
    at_approval = approved["at"]
    assert await selected(since=at_approval) == actions({"items": [rejected, approved]})
    assert await selected(until=at_approval) == [("policy_changed", None)]
    later = (datetime.fromisoformat(rejected["at"]) + timedelta(seconds=1)).isoformat()
    assert await selected(since=later) == []

    # Pages, newest first, each handing out the cursor of the next.
    one = await people.audit(limit=1)
    assert actions(one) == [("rejected", second)] and one["next_cursor"]
    two = await people.audit(limit=1, cursor=one["next_cursor"])
    assert actions(two) == [("approved", first)] and two["next_cursor"]
    rest = await people.audit(limit=5, cursor=two["next_cursor"])
    assert actions(rest) == [("policy_changed", None)] and rest["next_cursor"] is None
    assert actions(await people.audit(action="approved", limit=1)) == [("approved", first)]
    assert (await people.audit(action="approved", limit=1))["next_cursor"] is None
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)


BAD_FILTERS: list[tuple[dict[str, str], str]] = [
    ({"action": "deleted"}, "action"),
    ({"limit": "0"}, "limit"),
    ({"limit": "1001"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"cursor": "abc"}, "cursor"),
    ({"cursor": "0"}, "cursor"),
    ({"since": "yesterday"}, "since"),
    ({"until": "2026-13-01T00:00:00Z"}, "until"),
    ({"since": "2026-03-01T00:00:00"}, "since"),  # no time zone
    ({"since": "2026-03-02T00:00:00Z", "until": "2026-03-01T00:00:00Z"}, "until"),
    ({"actor": "x" * 65}, "actor"),
    ({"request_id": "r" * 65}, "request_id"),
]


async def test_a_bad_filter_is_refused_naming_it(people: People) -> None:
    for params, field in BAD_FILTERS:
        response = await people.get("gus", AUDIT, **params)
        body = assert_error(response, 422, "invalid")
        assert field in body["fields"], (params, body)


async def test_the_database_refuses_to_change_or_remove_an_entry(
    people: People, governance_svc: ServiceRuntime
) -> None:
    [request_id] = await submitted_and_pending(people, "ds301")
    await people.post("gus", f"/api/v1/reviews/{request_id}/approve", {"comment": "fine"})
    db = Database(governance_svc.settings.database_url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            await db.write(
                lambda conn: conn.execute(governance_audit.update().values(comment="forged"))
            )
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            await db.write(lambda conn: conn.execute(governance_audit.delete()))
    finally:
        await db.dispose()
    page = await people.audit()
    assert actions(page) == [("approved", request_id), ("policy_changed", None)]
    assert page["items"][0]["comment"] == "fine"
