"""Personal API tokens on SQLite and PostgreSQL: shown once, scoped to the owner's roles
as they are now, expiring, revocable, and unable to manage tokens, sessions or MFA."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.settings import GatewaySettings

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    Client,
    SteppedClock,
    assert_error,
    bearer,
    create_user,
    make_client,
    token_for,
)
from self_helpers import API, audit_kinds

pytestmark = pytest.mark.integration

ADA = ("ada", "ada password 123")


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def clocked(gateway_settings: GatewaySettings, clock: SteppedClock) -> AsyncIterator[Client]:
    async with make_client(gateway_settings, clock=clock) as client:
        yield client


async def make_token(client: Client, session: str, **body: Any) -> httpx.Response:
    return await client.post(f"{API}/tokens", json={"name": "ci", **body}, headers=bearer(session))


async def ada(client: Client) -> tuple[dict[str, Any], str]:
    """A second admin (so roles can be taken from her) and her session token."""
    admin = await token_for(client, *ADMIN)
    user = await create_user(client, admin, *ADA, "admin", "leader")
    return user, await token_for(client, *ADA)


async def test_a_token_is_shown_once_and_acts_with_its_roles(clocked: Client) -> None:
    user, session = await ada(clocked)
    made = await make_token(clocked, session, roles=["admin"], expires_in_days=7)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["token"].startswith("jhaas_pat_")
    assert body["roles"] == ["admin"]
    listed = await clocked.get(f"{API}/tokens", headers=bearer(session))
    [info] = listed.json()["items"]
    assert "token" not in info and info["token_id"] == body["token_id"]

    pat = body["token"]
    me = await clocked.get(f"{API}/auth/me", headers=bearer(pat))
    assert me.json()["username"] == "ada"
    assert (await clocked.get(f"{API}/users", headers=bearer(pat))).status_code == 200
    used = (await clocked.get(f"{API}/tokens", headers=bearer(session))).json()["items"][0]
    assert used["last_used_at"] is not None
    assert await audit_kinds(clocked, user["user_id"]) == [
        "user.created",
        "sign_in.succeeded",
        "mfa.enrolled",  # an admin sets up her second factor before she may act
        "token.issued",
    ]


async def test_a_token_carries_only_the_roles_it_was_given(clocked: Client) -> None:
    _, session = await ada(clocked)
    pat = (await make_token(clocked, session, roles=["leader"])).json()["token"]
    refused = await clocked.get(f"{API}/users", headers=bearer(pat))
    assert "admin" in assert_error(refused, 403, "forbidden")["message"]


async def test_a_role_the_owner_lost_is_gone_from_the_token(clocked: Client) -> None:
    user, session = await ada(clocked)
    pat = (await make_token(clocked, session, roles=["admin", "leader"])).json()["token"]
    assert (await clocked.get(f"{API}/users", headers=bearer(pat))).status_code == 200
    root = await token_for(clocked, *ADMIN)
    taken = await clocked.patch(
        f"{API}/users/{user['user_id']}", json={"roles": ["leader"]}, headers=bearer(root)
    )
    assert taken.status_code == 200, taken.text
    assert_error(await clocked.get(f"{API}/users", headers=bearer(pat)), 403, "forbidden")
    # Given back, it counts again: the token never held more than its own roles.
    await clocked.patch(
        f"{API}/users/{user['user_id']}", json={"roles": ["admin"]}, headers=bearer(root)
    )
    assert (await clocked.get(f"{API}/users", headers=bearer(pat))).status_code == 200


async def test_roles_beyond_the_owners_and_too_long_a_life_are_refused(clocked: Client) -> None:
    admin = await token_for(clocked, *ADMIN)
    await create_user(clocked, admin, "lea", "leader password 1", "leader")
    session = await token_for(clocked, "lea", "leader password 1")
    beyond = await make_token(clocked, session, roles=["leader", "admin"])
    assert "admin" in assert_error(beyond, 422, "invalid")["fields"]["roles"]
    too_long = await make_token(clocked, session, expires_in_days=91)
    assert "at most 90" in assert_error(too_long, 422, "invalid")["fields"]["expires_in_days"]
    default = await make_token(clocked, session)
    assert default.status_code == 201
    assert default.json()["roles"] == []


async def test_a_revoked_token_is_refused_saying_so(clocked: Client) -> None:
    user, session = await ada(clocked)
    made = (await make_token(clocked, session)).json()
    revoked = await clocked.delete(f"{API}/tokens/{made['token_id']}", headers=bearer(session))
    assert revoked.status_code == 204
    refused = await clocked.get(f"{API}/auth/me", headers=bearer(made["token"]))
    assert "revoked" in assert_error(refused, 401, "unauthorized")["message"]
    again = await clocked.delete(f"{API}/tokens/{made['token_id']}", headers=bearer(session))
    assert again.status_code == 204
    assert (await audit_kinds(clocked, user["user_id"])).count("token.revoked") == 1


async def test_an_expired_token_is_refused_saying_so(clocked: Client, clock: SteppedClock) -> None:
    _, session = await ada(clocked)
    pat = (await make_token(clocked, session, expires_in_days=1)).json()["token"]
    assert (await clocked.get(f"{API}/auth/me", headers=bearer(pat))).status_code == 200
    clock.advance(24 * 3600 + 1)
    refused = await clocked.get(f"{API}/auth/me", headers=bearer(pat))
    assert "expired" in assert_error(refused, 401, "unauthorized")["message"]


async def test_an_unknown_or_a_disabled_owners_token_is_refused(clocked: Client) -> None:
    user, session = await ada(clocked)
    pat = (await make_token(clocked, session)).json()["token"]
    forged = pat[:-4] + ("AAAA" if not pat.endswith("AAAA") else "BBBB")
    assert_error(await clocked.get(f"{API}/auth/me", headers=bearer(forged)), 401, "unauthorized")
    root = await token_for(clocked, *ADMIN)
    await clocked.patch(
        f"{API}/users/{user['user_id']}", json={"disabled": True}, headers=bearer(root)
    )
    refused = await clocked.get(f"{API}/auth/me", headers=bearer(pat))
    assert "disabled" in assert_error(refused, 401, "unauthorized")["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/tokens"),
        ("GET", "/tokens"),
        ("DELETE", "/tokens/00000000-0000-0000-0000-000000000000"),
        ("GET", "/auth/sessions"),
        ("POST", "/auth/logout-everywhere"),
        ("POST", "/auth/password"),
        ("PATCH", "/me"),
        ("GET", "/me/export"),
        ("DELETE", "/me"),
    ],
)
async def test_a_token_cannot_manage_tokens_sessions_or_the_account(
    clocked: Client, method: str, path: str
) -> None:
    _, session = await ada(clocked)
    pat = (await make_token(clocked, session, roles=["admin"])).json()["token"]
    body = {"name": "x"} if path == "/tokens" else {}
    refused = await clocked.request(method, f"{API}{path}", json=body, headers=bearer(pat))
    assert "personal API token" in assert_error(refused, 403, "forbidden")["message"]


async def test_someone_elses_token_cannot_be_revoked(clocked: Client) -> None:
    _, session = await ada(clocked)
    made = (await make_token(clocked, session)).json()
    root = await token_for(clocked, *ADMIN)
    refused = await clocked.delete(f"{API}/tokens/{made['token_id']}", headers=bearer(root))
    assert_error(refused, 404, "not_found")
    assert (await clocked.get(f"{API}/auth/me", headers=bearer(made["token"]))).status_code == 200
