"""The pages that act for a signed-in browser (a hub's authorize, the join pages)
ask for the second factor first: a password alone gets no hub code and no join form."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from jhaas_launcher.processes import NatsServer
from jhaas_schemas.rpc import CourseRole

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, Client, SteppedClock, create_user, make_client, token_for
from mfa_helpers import code, enroll, sign_in
from oauth_helpers import StandIns, authorize_url, pkce, query_of, sign_in_form, stand_ins

pytestmark = pytest.mark.integration

HUB = "https://hub-ds101.example.org/hub/oauth_callback"
PARTICIPANT = ("pia", "participant password 1")


@dataclass
class World:
    client: Client
    hubs: StandIns
    clock: SteppedClock
    secret: str  # the participant's authenticator app
    client_id: str


@pytest.fixture
async def world(gateway_settings: GatewaySettings, nats_server: NatsServer) -> AsyncIterator[World]:
    clock = SteppedClock()
    async with (
        stand_ins(nats_server.url) as hubs,
        make_client(gateway_settings, clock=clock) as client,
    ):
        admin = await token_for(client, *ADMIN)
        user = await create_user(client, admin, *PARTICIPANT, "participant")
        hubs.roles[user["user_id"]] = CourseRole.PARTICIPANT
        token, _ = await sign_in(client, *PARTICIPANT)
        secret, _ = await enroll(client, token, clock)  # optional for them, and chosen
        client_id, _ = hubs.register(HUB)
        yield World(client, hubs, clock, secret, client_id)


async def test_a_hub_gets_no_code_for_a_password_alone(world: World) -> None:
    client = world.client
    signed_in = await sign_in_form(client, *PARTICIPANT)
    assert signed_in.headers["location"].startswith("/signin/mfa?")
    _, challenge = pkce()
    url = authorize_url(world.client_id, HUB, challenge, nonce="n-1")

    detour = await client.get(url, follow_redirects=False)
    assert detour.status_code == 303, detour.text
    assert detour.headers["location"].startswith("/signin/mfa?")
    assert query_of(detour.headers["location"])["next"] == url
    silent = await client.get(f"{url}&prompt=none", follow_redirects=False)
    assert silent.status_code == 302
    assert query_of(silent.headers["location"])["error"] == "interaction_required"
    assert "code" not in query_of(silent.headers["location"])

    page = await client.get(detour.headers["location"], follow_redirects=False)
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    form = {"csrf": csrf, "next": url, "code": code(world.secret, world.clock, 1)}
    done = await client.post("/signin/mfa", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == url
    granted = await client.get(url, follow_redirects=False)
    assert granted.status_code == 302
    assert "code" in query_of(granted.headers["location"])


async def test_the_join_pages_ask_for_the_second_factor_first(world: World) -> None:
    client = world.client
    await sign_in_form(client, *PARTICIPANT)
    detour = await client.get("/join/ABCDEFGHJK", follow_redirects=False)
    assert detour.status_code == 303
    assert detour.headers["location"] == "/signin/mfa?next=%2Fjoin%2FABCDEFGHJK"
    refused = await client.post(
        "/join/ABCDEFGHJK", data={"csrf": "x", "message": ""}, follow_redirects=False
    )
    assert refused.status_code == 303 and refused.headers["location"].startswith("/signin/mfa?")


async def test_an_account_that_must_set_one_up_is_sent_to_do_so(
    gateway_settings: GatewaySettings, world: World
) -> None:
    client = world.client
    client.cookies.clear()
    admin = await token_for(client, *ADMIN)
    await create_user(client, admin, "gus", "governance password 1", "governance")
    await sign_in_form(client, "gus", "governance password 1")
    _, challenge = pkce()
    url = authorize_url(world.client_id, HUB, challenge)
    detour = await client.get(url, follow_redirects=False)
    assert detour.status_code == 303
    assert detour.headers["location"].startswith("/signin/mfa/setup?")
