"""Security keys over the API, on both databases, with a software authenticator:
registration, sign-in, and the answers a browser would never send (a replay, another
session's challenge, another origin, a clone's stale counter), each refused."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import GatewaySettings

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    BASE_URL,
    LEADER,
    Client,
    SteppedClock,
    assert_error,
    bearer,
    create_user,
    make_client,
)
from mfa_helpers import MFA, audit_entries, enroll, sign_in
from webauthn_helpers import SoftAuthenticator

pytestmark = pytest.mark.integration

KEYS = f"{MFA}/webauthn"


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def client(gateway_settings: GatewaySettings, clock: SteppedClock) -> AsyncIterator[Client]:
    async with make_client(gateway_settings, clock=clock) as test_client:
        yield test_client


async def options(client: Client, token: str, ceremony: str) -> dict[str, Any]:
    response = await client.post(f"{KEYS}/{ceremony}/options", headers=bearer(token))
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def register(client: Client, token: str, key: SoftAuthenticator) -> list[str]:
    answer = key.register(await options(client, token, "register"))
    response = await client.post(
        f"{KEYS}/register", json={"credential": answer, "name": "Blue key"}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    codes: list[str] = response.json()["recovery_codes"]
    return codes


async def authenticate(client: Client, token: str, answer: dict[str, Any]) -> Any:
    return await client.post(
        f"{KEYS}/authenticate", json={"credential": answer}, headers=bearer(token)
    )


async def admin_with_key(client: Client) -> tuple[str, SoftAuthenticator]:
    admin, _ = await sign_in(client, *ADMIN)
    key = SoftAuthenticator(origin=BASE_URL)
    assert len(await register(client, admin, key)) == 10
    return admin, key


async def test_a_key_registers_and_finishes_later_sign_ins(client: Client) -> None:
    admin, key = await admin_with_key(client)
    assert (await client.get("/api/v1/users", headers=bearer(admin))).status_code == 200
    status = (await client.get(MFA, headers=bearer(admin))).json()
    [listed] = status["security_keys"]
    assert (status["enrolled"], status["totp"], listed["name"]) == (True, False, "Blue key")

    token, owed = await sign_in(client, *ADMIN)
    assert owed
    asked = await options(client, token, "authenticate")
    assert [c["id"] for c in asked["allowCredentials"]] == [listed["credential_id"]]
    assert asked["rpId"] == "testserver.local"
    signed = await authenticate(client, token, key.authenticate(asked))
    assert signed.status_code == 200, signed.text
    assert signed.json() == {"method": "webauthn"}
    assert (await client.get("/api/v1/users", headers=bearer(token))).status_code == 200
    [verified] = await audit_entries(client, token, "mfa.verified")
    assert verified["details"]["method"] == "webauthn"


async def test_a_replayed_answer_is_refused(client: Client) -> None:
    _, key = await admin_with_key(client)
    token, _ = await sign_in(client, *ADMIN)
    answer = key.authenticate(await options(client, token, "authenticate"))
    assert (await authenticate(client, token, answer)).status_code == 200
    other, _ = await sign_in(client, *ADMIN)
    for session in (token, other):
        refused = assert_error(await authenticate(client, session, answer), 422, "invalid")
        assert "answers no challenge of this session" in refused["fields"]["credential"]
    assert (await client.get("/api/v1/users", headers=bearer(other))).status_code == 403


async def test_another_sessions_challenge_is_refused(client: Client) -> None:
    _, key = await admin_with_key(client)
    victim, _ = await sign_in(client, *ADMIN)
    attacker, _ = await sign_in(client, *ADMIN)
    answer = key.authenticate(await options(client, victim, "authenticate"))
    refused = assert_error(await authenticate(client, attacker, answer), 422, "invalid")
    assert "answers no challenge of this session" in refused["fields"]["credential"]
    assert (await authenticate(client, victim, answer)).status_code == 200


async def test_a_challenge_expires_after_five_minutes(client: Client, clock: SteppedClock) -> None:
    _, key = await admin_with_key(client)
    token, _ = await sign_in(client, *ADMIN)
    asked = await options(client, token, "authenticate")
    clock.advance(301)
    refused = assert_error(
        await authenticate(client, token, key.authenticate(asked)), 422, "invalid"
    )
    assert "expired" in refused["fields"]["credential"]


async def test_an_answer_made_for_another_origin_is_refused(client: Client) -> None:
    _, key = await admin_with_key(client)
    token, _ = await sign_in(client, *ADMIN)
    asked = await options(client, token, "authenticate")
    phished = key.authenticate(asked, origin="https://testserver.local.evil.example")
    refused = assert_error(await authenticate(client, token, phished), 422, "invalid")
    assert "origin" in refused["fields"]["credential"]
    # The challenge is spent: the same options cannot be tried again.
    again = assert_error(await authenticate(client, token, key.authenticate(asked)), 422, "invalid")
    assert "answers no challenge" in again["fields"]["credential"]


async def test_a_cloned_key_with_a_stale_counter_is_refused_and_audited(client: Client) -> None:
    _, key = await admin_with_key(client)
    token, _ = await sign_in(client, *ADMIN)
    assert (
        await authenticate(
            client, token, key.authenticate(await options(client, token, "authenticate"))
        )
    ).status_code == 200
    used = key.sign_count
    other, _ = await sign_in(client, *ADMIN)
    clone = key.authenticate(await options(client, other, "authenticate"), count=used)
    refused = assert_error(await authenticate(client, other, clone), 422, "invalid")
    assert "sign count" in refused["fields"]["credential"]
    failed = await audit_entries(client, token, "mfa.failed")
    assert any("sign count" in e["details"]["reason"] for e in failed)


async def test_a_stranger_key_is_refused(client: Client) -> None:
    await admin_with_key(client)
    token, _ = await sign_in(client, *ADMIN)
    stranger = SoftAuthenticator(origin=BASE_URL)
    answer = stranger.authenticate(await options(client, token, "authenticate"))
    refused = assert_error(await authenticate(client, token, answer), 422, "invalid")
    assert refused["fields"]["credential"] == "is not one of your registered security keys"


async def test_a_key_is_registered_once_and_the_second_needs_a_recent_check(
    client: Client, clock: SteppedClock
) -> None:
    admin, key = await admin_with_key(client)
    twice = key.register(await options(client, admin, "register"))
    again = await client.post(f"{KEYS}/register", json={"credential": twice}, headers=bearer(admin))
    assert "registered already" in assert_error(again, 409, "conflict")["message"]
    assert (await register(client, admin, SoftAuthenticator(origin=BASE_URL))) == []
    clock.advance(301)
    late = await client.post(f"{KEYS}/register/options", headers=bearer(admin))
    assert "confirm your second factor first" in assert_error(late, 403, "forbidden")["message"]


async def test_malformed_answers_are_a_422_naming_the_credential(client: Client) -> None:
    admin, _ = await sign_in(client, *ADMIN)
    answer = SoftAuthenticator(origin=BASE_URL).register(await options(client, admin, "register"))
    for body, field in [
        ({"credential": {"no": "id"}}, "credential"),
        ({"credential": {**answer, "id": "not base64url!"}}, "credential.id"),
        ({"credential": {**answer, "response": {}}}, "credential.response"),
    ]:
        response = await client.post(f"{KEYS}/register", json=body, headers=bearer(admin))
        fields = assert_error(response, 422, "invalid")["fields"]
        assert [name.startswith(field) for name in fields] == [True], fields
    garbled = {**answer, "response": {**answer["response"], "attestationObject": "AAAA"}}
    response = await client.post(
        f"{KEYS}/register", json={"credential": garbled}, headers=bearer(admin)
    )
    assert "did not verify" in assert_error(response, 422, "invalid")["fields"]["credential"]
    missing = await client.post(f"{KEYS}/register", json={}, headers=bearer(admin))
    assert_error(missing, 422, "invalid")


async def test_removing_keys_leaves_the_last_one_of_an_admin(client: Client) -> None:
    admin, _ = await admin_with_key(client)
    await register(client, admin, SoftAuthenticator(origin=BASE_URL))
    first, second = (await client.get(MFA, headers=bearer(admin))).json()["security_keys"]
    path = f"{KEYS}/{first['credential_id']}"
    assert (await client.delete(path, headers=bearer(admin))).status_code == 204
    assert_error(await client.delete(path, headers=bearer(admin)), 404, "not_found")
    last = await client.delete(f"{KEYS}/{second['credential_id']}", headers=bearer(admin))
    assert_error(last, 409, "conflict")


async def test_someone_elses_key_cannot_be_removed(client: Client, clock: SteppedClock) -> None:
    admin, _ = await admin_with_key(client)
    [key] = (await client.get(MFA, headers=bearer(admin))).json()["security_keys"]
    await create_user(client, admin, *LEADER, "leader")
    leader, _ = await sign_in(client, *LEADER)
    await enroll(client, leader, clock)
    taken = await client.delete(f"{KEYS}/{key['credential_id']}", headers=bearer(leader))
    assert_error(taken, 404, "not_found")


async def test_keys_need_a_host_name_as_public_url(gateway_settings: GatewaySettings) -> None:
    on_ip = replace(gateway_settings, public_url="http://127.0.0.1:8000")
    async with make_client(on_ip) as client:
        admin, _ = await sign_in(client, *ADMIN)
        refused = await client.post(f"{KEYS}/register/options", headers=bearer(admin))
        assert "host name" in assert_error(refused, 409, "conflict")["message"]
        assert (await client.get(MFA, headers=bearer(admin))).json()["webauthn_available"] is False
