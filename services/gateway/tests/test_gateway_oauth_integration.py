"""The gateway as OAuth2 / OIDC provider of the hubs, over HTTP, against a real NATS.

deployer-svc and participant-svc are played by small responders on the real
bus (oauth_helpers.StandIns) that answer the two calls the provider makes;
the real services are covered by their own tests and by the e2e test.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from gateway.oauth import revoke_hub_grants
from gateway.settings import GatewaySettings
from gateway.store import users
from jhaas_launcher.processes import NatsServer
from jhaas_runtime.db import Database
from jhaas_schemas.hubnames import hub_username
from jhaas_schemas.rpc import CourseRole

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import (
    ADMIN,
    BASE_URL,
    Client,
    SteppedClock,
    create_user,
    make_client,
    token_for,
)
from oauth_helpers import (
    COURSE_TITLE,
    StandIns,
    authorize_url,
    exchange,
    get_code,
    pkce,
    query_of,
    sign_in_form,
    stand_ins,
)

pytestmark = pytest.mark.integration

HUB = "https://hub-1.example.org/hub/oauth_callback"
PARTICIPANT = ("pia", "participant password 1")


class World:
    def __init__(self, client: Client, hubs: StandIns, clock: SteppedClock, user_id: str) -> None:
        self.client, self.hubs, self.clock, self.user_id = client, hubs, clock, user_id
        self.client_id, self.secret = hubs.register(HUB)

    async def token(self, nonce: str = "", **options: Any) -> dict[str, Any]:
        verifier, challenge = pkce()
        code = await get_code(self.client, self.client_id, HUB, challenge, nonce)
        response = await exchange(
            self.client,
            code,
            verifier,
            client_id=self.client_id,
            secret=self.secret,
            redirect_uri=HUB,
            **options,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def userinfo(self, access_token: str) -> Any:
        return await self.client.get(
            "/oauth/userinfo",
            headers={"Authorization": f"Bearer {access_token}"},
            follow_redirects=False,
        )


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
        signed_in = await sign_in_form(client, *PARTICIPANT)
        assert signed_in.status_code == 303, signed_in.text
        yield World(client, hubs, clock, user["user_id"])


async def test_a_course_member_signs_in_and_the_hub_learns_who_they_are(world: World) -> None:
    discovery = (
        await world.client.get("/.well-known/openid-configuration", follow_redirects=False)
    ).json()
    assert discovery["issuer"] == BASE_URL
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    tokens = await world.token(nonce="n-1")
    assert tokens["token_type"] == "Bearer" and "refresh_token" not in tokens
    jwks = KeySet.import_key_set(
        (await world.client.get("/oauth/jwks", follow_redirects=False)).json()
    )
    claims = jwt.decode(tokens["id_token"], jwks, algorithms=["RS256"]).claims
    assert claims["iss"] == BASE_URL and claims["aud"] == world.client_id
    assert claims["sub"] == world.user_id and claims["nonce"] == "n-1"
    assert claims["preferred_username"] == hub_username(world.user_id)
    info = await world.userinfo(tokens["access_token"])
    assert info.status_code == 200
    assert info.json() == {
        "sub": world.user_id,
        "preferred_username": hub_username(world.user_id),
        "name": PARTICIPANT[0],
        "groups": ["participant"],
    }
    # client_secret_basic works as well as the POST body oauthenticator uses.
    assert "access_token" in await world.token(basic=True)


@pytest.mark.parametrize(
    "redirect_uri",
    [HUB + "/", HUB.upper(), HUB + "?x=1", HUB.replace("https", "http"), HUB + "#f", HUB[:-1]],
)
async def test_a_redirect_uri_that_differs_in_any_character_gets_a_page_not_a_redirect(
    world: World, redirect_uri: str
) -> None:
    _, challenge = pkce()
    response = await world.client.get(
        authorize_url(world.client_id, redirect_uri, challenge), follow_redirects=False
    )
    assert response.status_code == 400
    assert "location" not in response.headers
    assert "redirect_uri is not the one registered" in response.text


async def test_an_unknown_client_gets_a_page_not_a_redirect(world: World) -> None:
    _, challenge = pkce()
    response = await world.client.get(
        authorize_url("jhaas-hub-nobody", HUB, challenge), follow_redirects=False
    )
    assert response.status_code == 400 and "location" not in response.headers
    assert "not registered" in response.text


@pytest.mark.parametrize("pkce_params", [{}, {"code_challenge_method": "plain"}])
async def test_pkce_s256_is_required_of_the_confidential_hub(
    world: World, pkce_params: dict[str, str]
) -> None:
    verifier, _ = pkce()
    params = {"code_challenge": verifier, **pkce_params} if pkce_params else {}
    response = await world.client.get(
        authorize_url(world.client_id, HUB, None, **params), follow_redirects=False
    )
    assert response.status_code == 302
    found = query_of(response.headers["location"])
    assert response.headers["location"].startswith(HUB + "?")
    assert found["error"] == "invalid_request" and found["state"] == "st-123"
    assert "code" not in found


async def test_a_stranger_is_sent_to_sign_in_and_comes_back(world: World) -> None:
    world.client.cookies.clear()
    _, challenge = pkce()
    url = authorize_url(world.client_id, HUB, challenge)
    response = await world.client.get(url, follow_redirects=False)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith("/signin?")
    back = query_of(location)["next"]
    signed_in = await sign_in_form(world.client, *PARTICIPANT, next_url=back)
    assert signed_in.status_code == 303 and signed_in.headers["location"] == back
    again = await world.client.get(back, follow_redirects=False)
    assert again.status_code == 302 and "code=" in again.headers["location"]


async def test_prompt_none_gives_a_member_the_code_without_a_page(world: World) -> None:
    verifier, challenge = pkce()
    url = authorize_url(world.client_id, HUB, challenge, prompt="none")
    response = await world.client.get(url, follow_redirects=False)
    assert response.status_code == 302, response.text
    found = query_of(response.headers["location"])
    assert response.headers["location"].startswith(HUB + "?")
    assert "error" not in found and found["state"] == "st-123"
    exchanged = await exchange(
        world.client,
        found["code"],
        verifier,
        client_id=world.client_id,
        secret=world.secret,
        redirect_uri=HUB,
    )
    assert exchanged.status_code == 200, exchanged.text


async def test_prompt_none_tells_the_hub_login_required_when_nobody_is_signed_in(
    world: World,
) -> None:
    world.client.cookies.clear()
    _, challenge = pkce()
    url = authorize_url(world.client_id, HUB, challenge, prompt="none")
    response = await world.client.get(url, follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"].startswith(HUB + "?")
    found = query_of(response.headers["location"])
    assert found["error"] == "login_required" and found["state"] == "st-123"
    assert "code" not in found


async def test_prompt_none_tells_the_hub_access_denied_for_a_stranger_to_the_course(
    world: World,
) -> None:
    world.hubs.roles.clear()
    _, challenge = pkce()
    url = authorize_url(world.client_id, HUB, challenge, prompt="none")
    response = await world.client.get(url, follow_redirects=False)
    assert response.status_code == 302
    found = query_of(response.headers["location"])
    assert response.headers["location"].startswith(HUB + "?")
    assert found["error"] == "access_denied" and found["state"] == "st-123"
    assert "code" not in found


@pytest.mark.parametrize(
    "next_url", ["//evil.example/x", "https://evil.example/", "/\\evil.example"]
)
async def test_sign_in_goes_only_to_a_path_on_this_site(world: World, next_url: str) -> None:
    world.client.cookies.clear()
    response = await sign_in_form(world.client, *PARTICIPANT, next_url=next_url)
    assert response.status_code == 303 and response.headers["location"] == "/"


async def test_the_sign_in_form_refuses_a_post_without_its_own_token(world: World) -> None:
    world.client.cookies.clear()
    response = await world.client.post(
        "/signin",
        data={"csrf": "x", "next": "/", "username": PARTICIPANT[0], "password": PARTICIPANT[1]},
        follow_redirects=False,
    )
    assert response.status_code == 403 and "__Host-jhaas_session" not in response.cookies


async def test_a_person_not_in_the_course_gets_the_refusal_page_with_the_join_link(
    world: World,
) -> None:
    del world.hubs.roles[world.user_id]
    _, challenge = pkce()
    response = await world.client.get(
        authorize_url(world.client_id, HUB, challenge), follow_redirects=False
    )
    assert response.status_code == 403 and "location" not in response.headers
    assert "You are not in this course" in response.text
    assert COURSE_TITLE in response.text
    assert f'href="{BASE_URL}/join"' in response.text
    assert "ask the course leader" in response.text
    link = await world.client.get("/join", follow_redirects=False)
    assert link.status_code == 200 and 'name="code"' in link.text


async def test_a_reused_code_is_refused_and_revokes_the_token_issued_with_it(world: World) -> None:
    verifier, challenge = pkce()
    code = await get_code(world.client, world.client_id, HUB, challenge)
    options = {"client_id": world.client_id, "secret": world.secret, "redirect_uri": HUB}
    first = await exchange(world.client, code, verifier, **options)
    assert first.status_code == 200
    assert (await world.userinfo(first.json()["access_token"])).status_code == 200
    second = await exchange(world.client, code, verifier, **options)
    assert second.status_code == 400 and second.json()["error"] == "invalid_grant"
    revoked = await world.userinfo(first.json()["access_token"])
    assert revoked.status_code == 401 and revoked.json()["error"] == "invalid_token"


async def test_an_expired_code_is_refused(world: World) -> None:
    verifier, challenge = pkce()
    code = await get_code(world.client, world.client_id, HUB, challenge)
    world.clock.advance(61)
    response = await exchange(
        world.client,
        code,
        verifier,
        client_id=world.client_id,
        secret=world.secret,
        redirect_uri=HUB,
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_a_wrong_verifier_is_refused(world: World) -> None:
    _, challenge = pkce()
    code = await get_code(world.client, world.client_id, HUB, challenge)
    other, _ = pkce()
    response = await exchange(
        world.client, code, other, client_id=world.client_id, secret=world.secret, redirect_uri=HUB
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_a_different_redirect_uri_at_the_token_step_is_refused(world: World) -> None:
    verifier, challenge = pkce()
    code = await get_code(world.client, world.client_id, HUB, challenge)
    response = await exchange(
        world.client,
        code,
        verifier,
        client_id=world.client_id,
        secret=world.secret,
        redirect_uri=HUB + "/",
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("basic", [False, True])
async def test_a_wrong_client_secret_is_refused_and_the_code_stays_good(
    world: World, basic: bool
) -> None:
    verifier, challenge = pkce()
    code = await get_code(world.client, world.client_id, HUB, challenge)
    options = {"client_id": world.client_id, "redirect_uri": HUB, "basic": basic}
    wrong = await exchange(world.client, code, verifier, secret=world.secret + "x", **options)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    right = await exchange(world.client, code, verifier, secret=world.secret, **options)
    assert right.status_code == 200


async def test_only_the_authorization_code_grant_is_offered(world: World) -> None:
    response = await world.client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": world.client_id,
            "client_secret": world.secret,
        },
        follow_redirects=False,
    )
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


async def test_userinfo_refuses_a_revoked_token_and_a_person_who_left(world: World) -> None:
    first, second = await world.token(), await world.token()
    gateway = world.client.app.state["gateway"]  # type: ignore[attr-defined]
    assert await revoke_hub_grants(gateway.db, world.user_id, "course-1") >= 1
    assert (await world.userinfo(first["access_token"])).status_code == 401
    assert (await world.userinfo(second["access_token"])).status_code == 401
    third = await world.token()
    del world.hubs.roles[world.user_id]  # removed from the course: asked live
    response = await world.userinfo(third["access_token"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


async def test_a_code_for_someone_removed_meanwhile_gets_no_token(world: World) -> None:
    verifier, challenge = pkce()
    code = await get_code(world.client, world.client_id, HUB, challenge)
    del world.hubs.roles[world.user_id]
    response = await exchange(
        world.client,
        code,
        verifier,
        client_id=world.client_id,
        secret=world.secret,
        redirect_uri=HUB,
    )
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


async def test_signing_keys_rotate_and_old_tokens_still_verify(world: World) -> None:
    old = await world.token()
    old_kid = jwt.decode(
        old["id_token"],
        KeySet.import_key_set(
            (await world.client.get("/oauth/jwks", follow_redirects=False)).json()
        ),
    ).header["kid"]
    world.clock.advance(31 * 86400)
    assert (await sign_in_form(world.client, *PARTICIPANT)).status_code == 303
    new = await world.token()
    jwks = KeySet.import_key_set(
        (await world.client.get("/oauth/jwks", follow_redirects=False)).json()
    )
    new_kid = jwt.decode(new["id_token"], jwks).header["kid"]
    assert new_kid != old_kid
    # The old key is still published: the token it signed verifies.
    assert jwt.decode(old["id_token"], jwks).header["kid"] == old_kid
    world.clock.advance(2 * 3600)
    await world.token()  # a rotation-free issue; the old key has outlived its tokens
    published = {
        key["kid"]
        for key in (await world.client.get("/oauth/jwks", follow_redirects=False)).json()["keys"]
    }
    assert published == {new_kid}


async def test_a_sign_in_still_waiting_for_its_second_factor_gets_no_code(
    world: World, gateway_settings: GatewaySettings
) -> None:
    db = Database(gateway_settings.runtime.database_url)
    try:
        await db.write(
            lambda conn: conn.execute(
                users.update().where(users.c.user_id == world.user_id).values(mfa_enrolled=True)
            )
        )
    finally:
        await db.dispose()
    world.client.cookies.clear()
    _, challenge = pkce()
    url = authorize_url(world.client_id, HUB, challenge)
    first_factor = await sign_in_form(world.client, *PARTICIPANT, next_url=url)
    assert first_factor.status_code == 303
    assert first_factor.headers["location"] == "/signin/mfa?" + urlencode({"next": url})

    # Skipping the second step: the authorize step sends the browser back to it.
    skipped = await world.client.get(url, follow_redirects=False)
    assert skipped.status_code == 303
    assert skipped.headers["location"].startswith("/signin/mfa?next=")
    assert "code=" not in skipped.headers["location"]
    silent = await world.client.get(
        authorize_url(world.client_id, HUB, challenge, prompt="none"), follow_redirects=False
    )
    assert silent.status_code == 302
    assert query_of(silent.headers["location"])["error"] == "interaction_required"
    # Nor does the join page let it apply.
    join = await world.client.get("/join/ABCDEFGHJK", follow_redirects=False)
    assert join.status_code == 303
    assert join.headers["location"] == "/signin/mfa?next=%2Fjoin%2FABCDEFGHJK"
