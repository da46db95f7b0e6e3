"""What would hand an account to whoever holds a stolen session needs proof that it is
the person, from the last few minutes: a new e-mail address (the way to a password
reset), a personal API token, a new second factor. For an account with a second
factor the proof is a check of it; for one without, a fresh sign-in. On SQLite and
PostgreSQL."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from jhaas_launcher import second_factor

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    Client,
    SteppedClock,
    assert_error,
    bearer,
    create_user,
    gateway_time,
    login,
    make_client,
    token_for,
)

pytestmark = pytest.mark.integration

API = "/api/v1"
PIA = ("pia", "pia password 1234")
GIL = ("gil", "gil password 1234")
STEP_UP_SECONDS = 300  # the default window
CSRF_COOKIE = "__Host-jhaas_csrf"  # over https (the test clients' public URL)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock()


@pytest.fixture
async def client(gateway_settings: GatewaySettings, clock: SteppedClock) -> AsyncIterator[Client]:
    async with make_client(gateway_settings, clock=clock) as client:
        yield client


async def sign_in(client: Client, username: str, password: str) -> dict[str, str]:
    response = await login(client, username, password)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


async def takeovers(client: Client, headers: dict[str, str]) -> list[int]:
    """The statuses of the four calls that would take an account over."""
    calls = [
        client.post(f"{API}/tokens", json={"name": "ci", "roles": []}, headers=headers),
        client.patch(f"{API}/me", json={"email": "new@example.org"}, headers=headers),
        client.post(f"{API}/auth/mfa/totp", headers=headers),
        client.post(f"{API}/auth/mfa/webauthn/register/options", headers=headers),
    ]
    return [(await call).status_code for call in calls]


async def test_a_session_without_a_second_factor_signs_in_again_first(
    client: Client, clock: SteppedClock
) -> None:
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *PIA, "participant")
    headers = await sign_in(client, *PIA)
    made = await client.post(f"{API}/tokens", json={"name": "fresh", "roles": []}, headers=headers)
    assert made.status_code == 201, made.text  # just signed in: it is her

    clock.advance(STEP_UP_SECONDS + 1)

    refused = await client.post(f"{API}/tokens", json={"name": "ci", "roles": []}, headers=headers)
    assert "sign in again" in assert_error(refused, 403, "forbidden")["message"]
    assert await takeovers(client, headers) == [403, 403, 403, 403]
    profile = (await client.get(f"{API}/me", headers=headers)).json()
    assert profile.get("pending_email") in (None, "")  # nothing changed
    listed = (await client.get(f"{API}/tokens", headers=headers)).json()["items"]
    assert [t["name"] for t in listed] == ["fresh"]
    # The display name is no way into the account: it stays changeable.
    renamed = await client.patch(f"{API}/me", json={"display_name": "Pia P."}, headers=headers)
    assert renamed.status_code == 200, renamed.text

    # Signed in again (by the cookie: a bearer token made at the stepped clock's time
    # would not verify at the machine's).
    again = await client.post(f"{API}/auth/login", json={"username": PIA[0], "password": PIA[1]})
    assert again.status_code == 200, again.text
    csrf = {"X-CSRF-Token": client.cookies[CSRF_COOKIE]}
    made = await client.post(f"{API}/tokens", json={"name": "ci", "roles": []}, headers=csrf)
    assert made.status_code == 201, made.text


async def test_a_session_with_a_second_factor_confirms_it_again_first(
    client: Client, clock: SteppedClock
) -> None:
    """A fresh sign-in is no proof for an account with a second factor: only the factor."""
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, *GIL, "governance")
    # Sets up an app (at the gateway's time), confirming it.
    headers = await second_factor.sign_in(client, *GIL, now=gateway_time(client))

    clock.advance(STEP_UP_SECONDS + 1)
    refused = await client.post(f"{API}/tokens", json={"name": "ci", "roles": []}, headers=headers)
    assert "second factor" in assert_error(refused, 403, "forbidden")["message"]

    # The app's code at the stepped clock's time, as the gateway reads it.
    code = second_factor.APPS[GIL[0]].next_code(clock.now.timestamp())
    checked = await client.post(f"{API}/auth/mfa/verify", json={"code": code}, headers=headers)
    assert checked.status_code == 200, checked.text
    made = await client.post(f"{API}/tokens", json={"name": "ci", "roles": []}, headers=headers)
    assert made.status_code == 201, made.text


async def test_signing_in_follows_the_gateway_clock_not_the_wall_clock(
    client: Client, clock: SteppedClock
) -> None:
    """The tests' sign-in helper shows the codes of the gateway's own time: a gateway
    whose clock stands a minute behind the wall (as a held clock does once a test runs
    past a 30 s step) still accepts the set-up and every later sign-in."""
    clock.advance(-60)
    first = await token_for(client, *ADMIN)  # sets up the app
    again = await token_for(client, *ADMIN)  # confirms with the next unused code
    assert first != again
    me = await client.get(f"{API}/me", headers=bearer(again))
    assert me.status_code == 200, me.text
