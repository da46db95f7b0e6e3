"""Two gateway replicas on one database (SQLite and PostgreSQL): what is done
on one — a sign-out, a role taken away, a user disabled, a password changed —
holds on the very next request to the other. Nothing a replica remembers
between requests (the verified tokens, say) may let a caller through."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.settings import GatewaySettings
from jhaas_launcher import second_factor

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    LEADER,
    Client,
    assert_error,
    bearer,
    create_user,
    login,
    make_client,
    token_for,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def replicas(gateway_settings: GatewaySettings) -> AsyncIterator[tuple[Client, Client]]:
    async with make_client(gateway_settings) as first, make_client(gateway_settings) as second:
        yield first, second


async def signed_in(client: Client) -> tuple[dict[str, str], dict[str, str]]:
    """A fresh session of the leader: its bearer headers, and its cookie headers."""
    response = await login(client, *LEADER)
    assert response.status_code == 200, response.text
    session, csrf = response.cookies["__Host-jhaas_session"], response.cookies["__Host-jhaas_csrf"]
    cookie = {
        "Cookie": f"__Host-jhaas_session={session}; __Host-jhaas_csrf={csrf}",
        "X-CSRF-Token": csrf,
    }
    return bearer(response.json()["access_token"]), cookie


async def me(client: Client, headers: dict[str, str]) -> dict[str, Any]:
    response = await client.get("/api/v1/auth/me", headers=headers)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def refused(client: Client, headers: dict[str, str]) -> None:
    assert_error(await client.get("/api/v1/auth/me", headers=headers), 401, "unauthorized")


async def test_a_sign_out_on_one_replica_holds_on_the_other(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    admin = await token_for(first, *ADMIN)
    await create_user(first, admin, *LEADER, "leader")
    token, cookie = await signed_in(first)
    assert (await me(second, token))["username"] == LEADER[0]
    assert (await me(second, cookie))["username"] == LEADER[0]

    out = await first.post("/api/v1/auth/logout", headers=token)
    assert out.status_code == 204
    await refused(second, token)
    await refused(second, cookie)


async def test_roles_and_disabling_on_one_replica_hold_on_the_other(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    admin_token = await token_for(first, *ADMIN)
    admin = bearer(admin_token)
    leader = await create_user(first, admin_token, *LEADER, "leader")
    url = f"/api/v1/users/{leader['user_id']}"
    token, cookie = await signed_in(first)
    assert (await me(second, token))["roles"] == ["leader"]

    assert (await first.patch(url, json={"roles": []}, headers=admin)).status_code == 200
    assert (await me(second, token))["roles"] == []
    assert (await me(second, cookie))["roles"] == []
    promoted = await first.patch(url, json={"roles": ["admin", "leader"]}, headers=admin)
    assert promoted.status_code == 200
    # The new admin, on the other replica: a second factor first, then admin's rights.
    assert (await second.get("/api/v1/users", headers=token)).status_code == 403
    await second_factor.set_up_app(second, token, LEADER[0])
    assert (await second.get("/api/v1/users", headers=token)).status_code == 200

    assert (await first.patch(url, json={"disabled": True}, headers=admin)).status_code == 200
    await refused(second, token)
    await refused(second, cookie)


async def test_a_password_change_on_one_replica_ends_the_other_sessions_there(
    replicas: tuple[Client, Client],
) -> None:
    first, second = replicas
    admin = await token_for(first, *ADMIN)
    await create_user(first, admin, *LEADER, "leader")
    changing, _ = await signed_in(first)
    other_token, other_cookie = await signed_in(second)
    assert (await me(second, other_token))["username"] == LEADER[0]

    body = {"current_password": LEADER[1], "new_password": "a brand new passphrase"}
    changed = await first.post("/api/v1/auth/password", json=body, headers=changing)
    assert changed.status_code == 204, changed.text
    await refused(second, other_token)
    await refused(second, other_cookie)
    assert (await me(second, changing))["username"] == LEADER[0]
