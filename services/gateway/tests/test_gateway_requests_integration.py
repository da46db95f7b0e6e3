"""Hub requests through the gateway to a real request-svc, on SQLite and PostgreSQL.

Every bad input gets its 4xx naming the field, and nothing is stored.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest

from jhaas_launcher.processes import NatsServer
from jhaas_launcher.testing import eventually
from jhaas_runtime.service import ServiceRuntime
from jhaas_schemas.streams import REQUEST_STREAM

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    Client,
    assert_error,
    bearer,
    hub_spec,
    leader_token,
    login,
    token_for,
)

pytestmark = pytest.mark.integration


async def listed_ids(client: Client, token: str) -> list[str]:
    response = await client.get("/api/v1/requests", headers=bearer(token))
    assert response.status_code == 200, response.text
    return [item["request_id"] for item in response.json()["items"]]


async def test_leader_submits_a_request_and_reads_it_back(
    client: Client, request_svc: ServiceRuntime, nats_server: NatsServer
) -> None:
    token = await leader_token(client)
    me = (await client.get("/api/v1/auth/me", headers=bearer(token))).json()

    response = await client.post(
        "/api/v1/requests",
        json=hub_spec(),
        headers=bearer(token, **{"X-Correlation-ID": "corr-submit-1"}),
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-correlation-id"] == "corr-submit-1"
    created = response.json()
    assert created["status"] == "submitted"
    assert created["leader_id"] == me["user_id"]
    assert created["spec"]["slug"] == "ds101"
    assert created["revision"] == 1

    fetched = await client.get(f"/api/v1/requests/{created['request_id']}", headers=bearer(token))
    assert fetched.status_code == 200
    assert fetched.json() == created
    assert await listed_ids(client, token) == [created["request_id"]]

    # The correlation id went with the call: the event request-svc published carries it.
    nc = await nats.connect(nats_server.url)
    try:
        sub = await nc.jetstream().pull_subscribe(
            REQUEST_STREAM.subjects[0], durable="probe", stream=REQUEST_STREAM.name
        )
        messages = await sub.fetch(1, timeout=5)
        assert msgspec.json.decode(messages[0].data)["correlation_id"] == "corr-submit-1"
    finally:
        await nc.close()


def without(spec: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in spec.items() if key != name}


async def test_every_bad_input_gets_its_4xx_and_nothing_is_stored(
    client: Client, request_svc: ServiceRuntime
) -> None:
    token = await leader_token(client)
    first = await client.post("/api/v1/requests", json=hub_spec(), headers=bearer(token))
    assert first.status_code == 201, first.text
    start = datetime.fromisoformat(hub_spec()["starts_at"])
    encode = msgspec.json.encode

    cases: list[tuple[str, bytes, int, str, str | None]] = [
        ("malformed JSON", b'{"title": "Data",', 400, "bad_request", None),
        ("empty body", b"", 400, "bad_request", None),
        (
            "wrong type",
            encode(hub_spec(slug="other-1", expected_participants="thirty")),
            422,
            "invalid",
            "expected_participants",
        ),
        (
            "number sent as text",
            encode(hub_spec(slug="other-1", expected_participants="30")),
            422,
            "invalid",
            "expected_participants",
        ),
        (
            "nested wrong type",
            encode(
                hub_spec(slug="other-1", resources={"cpu": 2, "memory": "2Gi", "storage": "5Gi"})
            ),
            422,
            "invalid",
            "resources.cpu",
        ),
        (
            "unknown field",
            encode(hub_spec(slug="other-1", colour="blue")),
            422,
            "invalid",
            "colour",
        ),
        (
            "missing field",
            encode(without(hub_spec(slug="other-1"), "title")),
            422,
            "invalid",
            "title",
        ),
        ("constraint", encode(hub_spec(slug="A")), 422, "invalid", "slug"),
        (
            "oversized body",
            encode(hub_spec(slug="other-1", description="x" * 70_000)),
            413,
            "payload_too_large",
            None,
        ),
        (
            "end before start",
            encode(
                hub_spec(
                    slug="other-1",
                    ends_at=(start - timedelta(days=1)).isoformat(),
                )
            ),
            422,
            "invalid",
            "spec.ends_at",
        ),
        (
            "invalid image reference",
            encode(hub_spec(slug="other-1", image="Ubuntu:latest:x")),
            422,
            "invalid",
            "spec.image",
        ),
        ("taken slug", encode(hub_spec()), 409, "conflict", "spec.slug"),
    ]
    for name, body, status, error, field in cases:
        response = await client.post(
            "/api/v1/requests",
            content=body,
            headers=bearer(token, **{"Content-Type": "application/json"}),
        )
        problem = assert_error(response, status, error)
        if field is None:
            assert problem["fields"] == {}, name
        else:
            assert field in problem["fields"], (name, problem)
        if name == "malformed JSON":
            assert "not valid JSON" in problem["message"]

    assert await listed_ids(client, token) == [first.json()["request_id"]]


async def test_edit_withdraw_and_cancel_reach_request_svc(
    client: Client, request_svc: ServiceRuntime
) -> None:
    token = await leader_token(client)
    created = (await client.post("/api/v1/requests", json=hub_spec(), headers=bearer(token))).json()
    url = f"/api/v1/requests/{created['request_id']}"

    edited = await client.patch(
        url,
        json={"changes": {"title": "Data Science 102"}, "expected_revision": 1},
        headers=bearer(token),
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["revision"] == 2
    assert edited.json()["spec"]["title"] == "Data Science 102"

    stale = await client.patch(
        url, json={"changes": {"title": "Too late"}, "expected_revision": 1}, headers=bearer(token)
    )
    assert_error(stale, 409, "conflict")
    bad_change = await client.patch(
        url, json={"changes": {"resources": {"gpus": 99}}}, headers=bearer(token)
    )
    assert "changes.resources.gpus" in assert_error(bad_change, 422, "invalid")["fields"]

    cancel_submitted = await client.post(
        f"{url}/cancel", json={"reason": "x"}, headers=bearer(token)
    )
    assert_error(cancel_submitted, 409, "conflict")
    withdrawn = await client.post(f"{url}/withdraw", headers=bearer(token))
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.json()["status"] == "withdrawn"


async def test_unknown_request_and_strangers_requests(
    client: Client, request_svc: ServiceRuntime
) -> None:
    token = await leader_token(client)
    missing = await client.get("/api/v1/requests/no-such-request", headers=bearer(token))
    assert_error(missing, 404, "not_found")

    created = (await client.post("/api/v1/requests", json=hub_spec(), headers=bearer(token))).json()
    admin = await token_for(client, *ADMIN)
    all_of_them = await client.get("/api/v1/requests?scope=all", headers=bearer(admin))
    assert [r["request_id"] for r in all_of_them.json()["items"]] == [created["request_id"]]
    not_for_leaders = await client.get("/api/v1/requests?scope=all", headers=bearer(token))
    assert_error(not_for_leaders, 403, "forbidden")
    bad_scope = await client.get("/api/v1/requests?scope=everything", headers=bearer(token))
    assert "scope" in assert_error(bad_scope, 422, "invalid")["fields"]
    bad_status = await client.get("/api/v1/requests?status=sleeping", headers=bearer(token))
    assert "status" in assert_error(bad_status, 422, "invalid")["fields"]


async def test_cookie_session_submits_only_with_the_csrf_header(
    client: Client, request_svc: ServiceRuntime
) -> None:
    await leader_token(client)
    signed_in = await login(client, "lea", "leader password 1")
    session, csrf = (
        signed_in.cookies["__Host-jhaas_session"],
        signed_in.cookies["__Host-jhaas_csrf"],
    )
    cookie = {"Cookie": f"__Host-jhaas_session={session}; __Host-jhaas_csrf={csrf}"}

    refused = await client.post("/api/v1/requests", json=hub_spec(), headers=cookie)
    assert "X-CSRF-Token" in assert_error(refused, 403, "forbidden")["message"]
    listed = await client.get("/api/v1/requests", headers=cookie)
    assert listed.status_code == 200
    assert listed.json()["items"] == []

    accepted = await client.post(
        "/api/v1/requests", json=hub_spec(), headers={**cookie, "X-CSRF-Token": csrf}
    )
    assert accepted.status_code == 201, accepted.text


async def test_without_credentials_or_with_a_forged_token_it_is_401(client: Client) -> None:
    anonymous = await client.post("/api/v1/requests", json=hub_spec())
    assert_error(anonymous, 401, "unauthorized")
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    basic = await client.get("/api/v1/requests", headers={"Authorization": "Basic cm9vdDpyb290"})
    assert_error(basic, 401, "unauthorized")

    token = await token_for(client, *ADMIN)
    header, payload, signature = token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    assert_error(await client.get("/api/v1/auth/me", headers=bearer(forged)), 401, "unauthorized")


async def test_503_when_request_svc_does_not_run(client: Client) -> None:
    token = await leader_token(client)
    response = await client.post("/api/v1/requests", json=hub_spec(), headers=bearer(token))
    problem = assert_error(response, 503, "unavailable")
    assert "jhaas.rpc.request.submit" in problem["message"]
    # The gateway itself is fine: NATS and its database answer.
    assert (await client.get("/readyz")).status_code == 200


async def test_readyz_is_503_once_nats_is_gone(client: Client, nats_server: NatsServer) -> None:
    assert (await client.get("/readyz")).status_code == 200
    nats_server.stop()

    async def readiness() -> int:
        return (await client.get("/readyz")).status_code

    await eventually(readiness, lambda status: status == 503)
    assert (await client.get("/healthz")).status_code == 200
