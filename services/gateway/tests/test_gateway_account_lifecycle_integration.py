"""Export and deletion of an account through the gateway to a real request-svc and
participant-svc over NATS, on SQLite and PostgreSQL: the export holds the services'
data, deletion is refused while the person leads a course that is not over, and
otherwise withdraws their participations and leaves nothing of them behind."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.envelope import cloudevents_headers, envelope
from jhaas_schemas.events import RequestApproved, encode_event
from jhaas_schemas.model import HubSpec

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    LEADER,
    Client,
    assert_error,
    bearer,
    create_user,
    hub_spec,
    login,
    token_for,
)
from self_helpers import API, audit_kinds

pytestmark = pytest.mark.integration

PIA = ("pia", "participant password 1")


async def approve(nats_server: NatsServer, request: dict[str, Any]) -> None:
    event = RequestApproved(
        **envelope(source="governance-svc", correlation_id="c-approve"),
        request_id=request["request_id"],
        review_id="rv-1",
        leader_id=request["leader_id"],
        decided_by="u-gov",
        revision=1,
        configuration=msgspec.convert(request["spec"], HubSpec),
    )
    nc = await nats.connect(nats_server.url)
    try:
        await nc.jetstream().publish(
            event.subject, encode_event(event), headers=cloudevents_headers(event)
        )
    finally:
        await nc.close()


class People:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.tokens: dict[str, str] = {}
        self.ids: dict[str, str] = {}

    async def add(self, name: str, password: str, *roles: str) -> None:
        admin = await token_for(self.client, *ADMIN)
        self.ids[name] = (await create_user(self.client, admin, name, password, *roles))["user_id"]
        self.tokens[name] = await token_for(self.client, name, password)

    async def call(self, who: str, method: str, path: str, **kwargs: Any) -> Any:
        return await self.client.request(
            method, f"{API}{path}", headers=bearer(self.tokens[who]), **kwargs
        )


@pytest.fixture
async def course(
    client: Client,
    request_svc: ServiceRuntime,
    participant_svc: ServiceRuntime,
    nats_server: NatsServer,
) -> tuple[People, dict[str, Any]]:
    """An approved course led by lea, with pia's application accepted."""
    people = People(client)
    await people.add(*LEADER, "leader")
    await people.add(*PIA, "participant")
    submitted = await people.call("lea", "POST", "/requests", json=hub_spec())
    assert submitted.status_code == 201, submitted.text
    request = submitted.json()
    await approve(nats_server, request)

    async def shown() -> Any:
        return await people.call("lea", "GET", f"/courses/{request['request_id']}")

    found = await eventually(shown, lambda r: r.status_code == 200)
    applied = await people.call(
        "pia", "POST", f"/join/{found.json()['join_code']}", json={"message": "hello"}
    )
    assert applied.status_code == 201, applied.text
    participation = applied.json()["participation_id"]
    accepted = await people.call(
        "lea",
        "POST",
        f"/courses/{request['request_id']}/participations/accept",
        json={"participation_ids": [participation]},
    )
    assert accepted.status_code == 200, accepted.text
    return people, request


async def test_the_export_holds_the_services_data(course: tuple[People, dict[str, Any]]) -> None:
    people, request = course
    exported = await people.call("lea", "GET", "/me/export")
    assert exported.status_code == 200, exported.text
    assert "attachment" in exported.headers["content-disposition"]
    document = exported.json()
    assert document["profile"]["username"] == "lea"
    assert [r["request_id"] for r in document["services"]["requests"]] == [request["request_id"]]
    assert [c["role"] for c in document["services"]["courses"]] == ["leader"]
    assert len(document["sessions"]) == 1
    assert "token_hash" not in exported.text and "password_hash" not in exported.text

    theirs = (await people.call("pia", "GET", "/me/export")).json()
    [participation] = theirs["services"]["participations"]
    assert (participation["request_id"], participation["status"], participation["message"]) == (
        request["request_id"],
        "accepted",
        "hello",
    )
    assert theirs["services"]["requests"] == []
    assert "account.exported" in await audit_kinds(people.client, people.ids["pia"])


async def test_deletion_is_refused_while_leading_a_course_that_is_not_over(
    course: tuple[People, dict[str, Any]],
) -> None:
    people, _ = course
    refused = await people.call("lea", "DELETE", "/me", json={"password": LEADER[1]})
    body = assert_error(refused, 409, "conflict")
    assert "Data Science 101" in body["message"] and "approved" in body["message"]
    admin = await token_for(people.client, *ADMIN)
    by_admin = await people.client.delete(f"{API}/users/{people.ids['lea']}", headers=bearer(admin))
    assert "this user leads" in assert_error(by_admin, 409, "conflict")["message"]
    assert (await login(people.client, *LEADER)).status_code == 200


async def test_a_deleted_participant_leaves_the_course_and_nothing_of_them_stays(
    course: tuple[People, dict[str, Any]],
) -> None:
    people, request = course
    pat = await people.call("pia", "POST", "/tokens", json={"name": "script"})
    assert pat.status_code == 201, pat.text
    wrong = await people.call("pia", "DELETE", "/me", json={"password": "not my password 1"})
    assert "password" in assert_error(wrong, 422, "invalid")["fields"]
    missing = await people.call("pia", "DELETE", "/me", json={})
    assert "password" in assert_error(missing, 422, "invalid")["fields"]

    deleted = await people.call("pia", "DELETE", "/me", json={"password": PIA[1]})
    assert deleted.status_code == 204, deleted.text
    assert (await login(people.client, *PIA)).status_code == 401
    assert_error(
        await people.call("pia", "GET", "/auth/me"), 401, "unauthorized"
    )  # the session is gone
    token = pat.json()["token"]
    assert_error(
        await people.client.get(f"{API}/auth/me", headers=bearer(token)), 401, "unauthorized"
    )
    roster = await people.call("lea", "GET", f"/courses/{request['request_id']}/participations")
    assert [p["status"] for p in roster.json()["items"]] == ["left"]
    kinds = await audit_kinds(people.client, people.ids["pia"])
    assert kinds[-1] == "account.deleted"
    admin = await token_for(people.client, *ADMIN)
    users = await people.client.get(f"{API}/users", headers=bearer(admin))
    assert "pia" not in [u["username"] for u in users.json()["items"]]


async def test_an_admin_deletes_an_account_but_never_the_last_admin(
    client: Client, request_svc: ServiceRuntime, participant_svc: ServiceRuntime
) -> None:
    admin = await token_for(client, *ADMIN)
    bob = await create_user(client, admin, "bob", "bob password 12")
    deleted = await client.delete(f"{API}/users/{bob['user_id']}", headers=bearer(admin))
    assert deleted.status_code == 204, deleted.text
    assert_error(
        await client.delete(f"{API}/users/{bob['user_id']}", headers=bearer(admin)),
        404,
        "not_found",
    )
    root_id = (await client.get(f"{API}/auth/me", headers=bearer(admin))).json()["user_id"]
    last = await client.delete(f"{API}/users/{root_id}", headers=bearer(admin))
    assert "last active admin" in assert_error(last, 409, "conflict")["message"]
    refused = await client.request(
        "DELETE", f"{API}/me", json={"password": ADMIN[1]}, headers=bearer(admin)
    )
    assert "last active admin" in assert_error(refused, 409, "conflict")["message"]
    # A participant cannot delete anyone else.
    await create_user(client, admin, "cat", "cat password 12")
    cat = await token_for(client, "cat", "cat password 12")
    assert_error(
        await client.delete(f"{API}/users/{root_id}", headers=bearer(cat)), 403, "forbidden"
    )
