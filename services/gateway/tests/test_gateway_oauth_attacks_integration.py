"""What an attacker may send the OAuth provider and its sign-in form: odd client
authentication and odd redirects get a clear 4xx, never a 500, and change nothing."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from oauth_helpers import exchange, get_code, pkce, sign_in_form
from test_gateway_oauth_integration import HUB, PARTICIPANT, World
from test_gateway_oauth_integration import world as world  # the fixture, shared

pytestmark = pytest.mark.integration


def basic(raw: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.mark.parametrize("raw", [b"\xff\xfe:secret", b"jhaas-hub-x:\xc3"])
async def test_basic_credentials_that_are_not_utf8_are_refused_as_a_client_error(
    world: World, raw: bytes
) -> None:
    verifier, challenge = pkce()
    code = await get_code(world.client, world.client_id, HUB, challenge)
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": HUB}
    response = await world.client.post(
        "/oauth/token", data=form | {"code_verifier": verifier}, headers=basic(raw)
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"
    good = await exchange(
        world.client,
        code,
        verifier,
        client_id=world.client_id,
        secret=world.secret,
        redirect_uri=HUB,
    )
    assert good.status_code == 200, good.text


async def test_a_client_authenticating_two_ways_at_once_is_refused(world: World) -> None:
    """RFC 6749, 2.3: one method per request; a wrong secret in the body must not
    pass because the header holds the right one (nor the other way round)."""
    verifier, challenge = pkce()
    code = await get_code(world.client, world.client_id, HUB, challenge)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": HUB,
        "code_verifier": verifier,
        "client_id": world.client_id,
        "client_secret": "not the secret",
    }
    response = await world.client.post(
        "/oauth/token", data=form, auth=(world.client_id, world.secret)
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    good = await exchange(
        world.client,
        code,
        verifier,
        client_id=world.client_id,
        secret=world.secret,
        redirect_uri=HUB,
    )
    assert good.status_code == 200, good.text


@pytest.mark.parametrize(
    ("next_url", "location"),
    [
        ("/courses/\u0101", "/courses/%C4%81"),
        ("/x\u2028y", "/x%E2%80%A8y"),
        ("/caf\u00e9", "/caf%C3%A9"),
    ],
)
async def test_sign_in_sends_a_non_ascii_next_on_percent_encoded(
    world: World, next_url: str, location: str
) -> None:
    world.client.cookies.clear()
    response = await sign_in_form(world.client, *PARTICIPANT, next_url=next_url)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == location
