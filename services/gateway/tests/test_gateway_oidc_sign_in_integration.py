"""Signing in to the gateway through real OpenID providers (npm oidc-provider), browser-less.

The browser is httpx: the test client carries the gateway's cookies, and
`sign_in_at_idp` posts the provider's own login and consent forms. Two
providers run: "uni" (claims from userinfo; roles from groups, entitlements
and the e-mail domain) and "social" (claims in the ID token, no role rules).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.identity.config import ProviderConfig, RoleRule
from gateway.settings import GatewaySettings
from gateway.store import users
from jhaas_launcher.processes import free_port
from jhaas_runtime.db import Database
from jhaas_schemas.model import Role

sys.path.insert(0, str(Path(__file__).parent))
from gateway_helpers import ADMIN, BASE_URL, Client, bearer, make_client, token_for
from idp_helpers import ACCOUNTS, TestIdp, sign_in_at_idp

pytestmark = pytest.mark.integration

CSRF_COOKIE, SESSION_COOKIE = "__Host-jhaas_csrf", "__Host-jhaas_session"


def callback(name: str) -> str:
    return f"{BASE_URL}/signin/oidc/{name}/callback"


@pytest.fixture(scope="module")
def uni(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestIdp]:
    idp = TestIdp(workdir=tmp_path_factory.mktemp("uni"), redirect_uris=[callback("uni")])
    yield idp.start()
    idp.stop()


@pytest.fixture(scope="module")
def social(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestIdp]:
    idp = TestIdp(
        workdir=tmp_path_factory.mktemp("social"),
        redirect_uris=[callback("social")],
        client_id="jhaas-at-social",
        claims_in_id_token=True,
    )
    yield idp.start()
    idp.stop()


@pytest.fixture
def providers(uni: TestIdp, social: TestIdp) -> Iterator[tuple[TestIdp, TestIdp]]:
    """Both providers, honest and with their original accounts again after each test."""
    yield uni, social
    for idp in (uni, social):
        idp.misbehave(None)
        for account in ACCOUNTS:
            idp.set_account(account)


def provider_config(name: str, idp: TestIdp, *rules: RoleRule, **extra: Any) -> ProviderConfig:
    return ProviderConfig(
        name=name,
        display_name=extra.pop("display_name", name.title()),
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        scopes=("openid", "email", "profile", "groups", "eduperson_entitlement"),
        roles=rules,
    )


UNI_RULES = (
    RoleRule(roles=[Role.LEADER], group="jhaas-leaders"),
    RoleRule(roles=[Role.GOVERNANCE], entitlement="urn:mace:uni.example:jhaas:governance"),
    RoleRule(roles=[Role.PARTICIPANT], email_domain="uni.example"),
)


@pytest.fixture
def settings(
    gateway_settings: GatewaySettings, providers: tuple[TestIdp, TestIdp]
) -> GatewaySettings:
    uni, social = providers
    dead = provider_config("dead", uni, display_name="Closed SSO")
    dead = replace(dead, issuer=f"http://127.0.0.1:{free_port()}")
    configs = (
        provider_config("uni", uni, *UNI_RULES, display_name="University SSO"),
        provider_config("social", social, display_name="Social Login"),
        dead,
    )
    return replace(gateway_settings, oidc_providers=configs, oidc_timeout_seconds=3)


@pytest.fixture
async def gateway(settings: GatewaySettings) -> AsyncIterator[Client]:
    async with make_client(settings) as client:
        yield client


async def start(client: Client, provider: str, next_url: str = "/courses") -> httpx.Response:
    response = await client.get(
        f"/signin/oidc/{provider}", params={"next": next_url}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return response


async def sign_in(
    client: Client, provider: str, login: str, next_url: str = "/courses"
) -> httpx.Response:
    """The whole way: the gateway's start, the provider's forms, the gateway's callback."""
    authorize = (await start(client, provider, next_url)).headers["location"]
    return await back_from_idp(client, await sign_in_at_idp(authorize, login))


async def back_from_idp(client: Client, url: str) -> httpx.Response:
    """The provider's redirect back to the gateway, as the browser follows it."""
    return await client.get(url, follow_redirects=False)


async def me(client: Client) -> dict[str, Any]:
    response = await client.get("/api/v1/auth/me")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def csrf(client: Client) -> dict[str, str]:
    return {"X-CSRF-Token": client.cookies[CSRF_COOKIE]}


async def audit(client: Client, kind: str) -> list[dict[str, Any]]:
    admin = await token_for(client, *ADMIN)
    response = await client.get("/api/v1/audit", params={"kind": kind}, headers=bearer(admin))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def linked_providers(client: Client) -> list[str]:
    response = await client.get("/api/v1/auth/identities")
    assert response.status_code == 200, response.text
    return [identity["provider"] for identity in response.json()["items"]]


async def usernames(client: Client) -> list[str]:
    admin = await token_for(client, *ADMIN)
    response = await client.get("/api/v1/users", headers=bearer(admin))
    return sorted(user["username"] for user in response.json()["items"])


# --- signing in --------------------------------------------------------------------


async def test_a_first_sign_in_makes_the_account_and_signs_in(gateway: Client) -> None:
    response = await sign_in(gateway, "uni", "alice")

    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/courses"
    user = await me(gateway)
    assert user["username"] == "alice"
    assert user["display_name"] == "Alice Lovelace"
    assert set(user["roles"]) == {"leader", "participant"}
    identities = (await gateway.get("/api/v1/auth/identities")).json()["items"]
    assert [(i["provider"], i["email"]) for i in identities] == [("uni", "alice@uni.example")]
    created = await audit(gateway, "identity.created_account")
    assert [entry["subject_id"] for entry in created] == [user["user_id"]]


async def test_the_second_sign_in_opens_the_same_account(gateway: Client) -> None:
    await sign_in(gateway, "uni", "alice")
    first = (await me(gateway))["user_id"]
    gateway.cookies.clear()

    await sign_in(gateway, "uni", "alice")

    assert (await me(gateway))["user_id"] == first
    assert await usernames(gateway) == sorted([ADMIN[0], "alice"])


@pytest.mark.parametrize(
    ("login", "roles"),
    [
        ("bob", {"governance"}),  # entitlement; a subdomain is not the domain
        ("dave", {"participant"}),  # no rule matched: participant
        ("mallory", {"participant"}),  # the domain, but not verified: no rule
    ],
)
async def test_a_new_account_gets_the_roles_its_claims_map_to(
    gateway: Client, login: str, roles: set[str]
) -> None:
    await sign_in(gateway, "uni", login)

    assert set((await me(gateway))["roles"]) == roles


async def test_a_second_provider_signs_in_with_claims_in_its_id_token(gateway: Client) -> None:
    response = await sign_in(gateway, "social", "dave", next_url="/")

    assert response.status_code == 303
    user = await me(gateway)
    assert (user["username"], user["roles"]) == ("dave", ["participant"])


async def test_a_taken_username_gets_a_number(
    gateway: Client, providers: tuple[TestIdp, TestIdp]
) -> None:
    _, social = providers
    # Another person whose provider also calls them "alice"; no other usable claim.
    social.set_account({"sub": "x", "preferred_username": "alice", "email": "z@else.example"})
    await sign_in(gateway, "uni", "alice")
    gateway.cookies.clear()

    await sign_in(gateway, "social", "x")

    assert (await me(gateway))["username"] == "alice-2"


async def test_next_never_leaves_the_site(gateway: Client) -> None:
    response = await sign_in(gateway, "uni", "alice", next_url="https://evil.example/")

    assert response.headers["location"] == "/"


async def test_the_sign_in_page_offers_every_provider(gateway: Client) -> None:
    page = await gateway.get("/signin", params={"next": "/courses"})
    listed = (await gateway.get("/api/v1/auth/providers")).json()["items"]

    assert 'href="/signin/oidc/uni?next=%2Fcourses"' in page.text
    assert "University SSO" in page.text and "Social Login" in page.text
    assert [p["name"] for p in listed] == ["uni", "social", "dead"]
    assert listed[0] == {
        "name": "uni",
        "display_name": "University SSO",
        "sign_in_url": "/signin/oidc/uni",
    }


# --- roles kept up to date --------------------------------------------------------


async def test_mapped_roles_follow_the_provider_and_admin_grants_stay(
    gateway: Client, providers: tuple[TestIdp, TestIdp]
) -> None:
    uni, _ = providers
    await sign_in(gateway, "uni", "alice")
    alice = (await me(gateway))["user_id"]
    admin = await token_for(gateway, *ADMIN)
    granted = await gateway.patch(
        f"/api/v1/users/{alice}",
        json={"roles": ["leader", "participant", "governance"]},
        headers=bearer(admin),
    )
    assert granted.status_code == 200, granted.text
    uni.set_account({**ACCOUNTS[0], "groups": ["staff"]})  # she left the leaders' group
    gateway.cookies.clear()

    await sign_in(gateway, "uni", "alice")

    assert set((await me(gateway))["roles"]) == {"governance", "participant"}
    changes = await audit(gateway, "user.roles_changed")
    assert changes[0]["subject_id"] == alice
    assert changes[0]["details"]["removed"] == ["leader"]
    assert changes[0]["details"]["by"] == "oidc:uni"


# --- the same person at two providers ----------------------------------------------


async def test_the_same_email_at_another_provider_is_not_merged(gateway: Client) -> None:
    await sign_in(gateway, "uni", "alice")
    gateway.cookies.clear()

    response = await sign_in(gateway, "social", "alice")  # same e-mail, another provider

    assert response.status_code == 409
    assert "sign in to it and link this provider" in response.text
    assert SESSION_COOKIE not in gateway.cookies
    assert await usernames(gateway) == sorted([ADMIN[0], "alice"])
    refused = await audit(gateway, "sign_in.failed")
    assert refused[0]["details"]["reason"] == "email_in_use"


async def test_an_address_nobody_verified_blocks_no_one(
    gateway: Client, providers: tuple[TestIdp, TestIdp]
) -> None:
    """Someone typed carol's address at uni, unverified: carol still gets her account."""
    uni, social = providers
    uni.set_account({"sub": "typo", "email": "carol@else.example", "email_verified": False})
    social.set_account({"sub": "carol", "email": "carol@else.example", "email_verified": True})
    await sign_in(gateway, "uni", "typo")
    typo = (await me(gateway))["user_id"]
    gateway.cookies.clear()

    response = await sign_in(gateway, "social", "carol")

    assert response.status_code == 303, response.text
    assert (await me(gateway))["user_id"] != typo  # her own account, nobody else's


async def test_linking_is_confirmed_by_signing_in_with_both(gateway: Client) -> None:
    await sign_in(gateway, "uni", "alice")
    alice = (await me(gateway))["user_id"]

    started = await gateway.post(
        "/api/v1/auth/identities/social/link", params={"next": "/me"}, headers=csrf(gateway)
    )
    assert started.status_code == 201, started.text
    linked = await back_from_idp(gateway, await sign_in_at_idp(started.json()["url"], "alice"))

    assert linked.status_code == 303 and linked.headers["location"] == "/me"
    assert await linked_providers(gateway) == ["social", "uni"]
    gateway.cookies.clear()
    await sign_in(gateway, "social", "alice")
    assert (await me(gateway))["user_id"] == alice
    assert (await audit(gateway, "identity.linked"))[0]["subject_id"] == alice


async def test_a_link_finished_in_another_browser_is_refused(
    gateway: Client, settings: GatewaySettings
) -> None:
    """Login CSRF: the attacker starts a link (or a sign-in) and has the victim finish it."""
    await sign_in(gateway, "uni", "alice")
    started = await gateway.post("/api/v1/auth/identities/social/link", headers=csrf(gateway))
    attackers_callback = await sign_in_at_idp(started.json()["url"], "dave")

    async with make_client(settings) as victim:
        await sign_in(victim, "uni", "mallory")  # a participant: no second factor owed
        mallory = (await me(victim))["user_id"]
        response = await back_from_idp(victim, attackers_callback)

        assert response.status_code == 403
        assert "started in another browser" in response.text
        assert await linked_providers(victim) == ["uni"]
        assert (await me(victim))["user_id"] == mallory


async def test_an_attackers_sign_in_finished_by_a_victim_is_refused(
    gateway: Client, settings: GatewaySettings
) -> None:
    authorize = (await start(gateway, "uni")).headers["location"]
    attackers_callback = await sign_in_at_idp(authorize, "dave")

    async with make_client(settings) as victim:
        response = await back_from_idp(victim, attackers_callback)

        assert response.status_code == 403
        assert SESSION_COOKIE not in victim.cookies
    refused = await audit(gateway, "sign_in.failed")
    assert refused[0]["details"]["reason"] == "browser_mismatch"


async def test_a_callback_is_used_once(gateway: Client) -> None:
    authorize = (await start(gateway, "uni")).headers["location"]
    url = await sign_in_at_idp(authorize, "alice")
    assert (await back_from_idp(gateway, url)).status_code == 303
    gateway.cookies.clear()

    replayed = await back_from_idp(gateway, url)

    assert replayed.status_code == 400
    assert "expired or was used already" in replayed.text


async def test_a_forged_state_is_refused(gateway: Client) -> None:
    await start(gateway, "uni")

    response = await back_from_idp(gateway, "/signin/oidc/uni/callback?code=abc&state=guessed")

    assert response.status_code == 400
    assert SESSION_COOKIE not in gateway.cookies


async def test_unlinking_the_last_way_in_is_refused(gateway: Client) -> None:
    await sign_in(gateway, "uni", "alice")

    refused = await gateway.delete("/api/v1/auth/identities/uni", headers=csrf(gateway))
    assert refused.status_code == 409, refused.text
    assert "only way to sign in" in refused.json()["message"]

    started = await gateway.post("/api/v1/auth/identities/social/link", headers=csrf(gateway))
    await back_from_idp(gateway, await sign_in_at_idp(started.json()["url"], "alice"))
    unlinked = await gateway.delete("/api/v1/auth/identities/uni", headers=csrf(gateway))
    assert unlinked.status_code == 204
    assert await linked_providers(gateway) == ["social"]
    assert (await audit(gateway, "identity.unlinked"))[0]["details"] == {"provider": "uni"}


# --- a provider that misbehaves, rotates or is down --------------------------------


@pytest.mark.parametrize(
    "mode",
    ["wrong_issuer", "wrong_audience", "wrong_nonce", "expired", "bad_signature", "alg_none"],
)
async def test_a_bad_id_token_signs_nobody_in(
    gateway: Client, providers: tuple[TestIdp, TestIdp], mode: str
) -> None:
    uni, _ = providers
    uni.misbehave(mode)

    response = await sign_in(gateway, "uni", "alice")

    assert response.status_code == 400
    assert SESSION_COOKIE not in gateway.cookies
    assert await usernames(gateway) == [ADMIN[0]]
    refused = await audit(gateway, "sign_in.failed")
    assert refused[0]["details"]["reason"].startswith("id_token_")
    assert "eyJ" not in str(refused)  # no token in the audit log


async def test_sign_in_goes_on_after_the_provider_rotates_its_key(
    gateway: Client, providers: tuple[TestIdp, TestIdp]
) -> None:
    uni, _ = providers
    await sign_in(gateway, "uni", "alice")
    uni.rotate()
    gateway.cookies.clear()

    assert (await sign_in(gateway, "uni", "alice")).status_code == 303
    assert (await me(gateway))["username"] == "alice"

    uni.misbehave("unknown_key")
    gateway.cookies.clear()
    refused = await sign_in(gateway, "uni", "alice")
    assert refused.status_code == 400
    assert (await audit(gateway, "sign_in.failed"))[0]["details"]["reason"] == (
        "id_token_unknown_key"
    )


async def test_a_provider_that_is_down_gives_a_page_not_a_crash(gateway: Client) -> None:
    response = await back_from_idp(gateway, "/signin/oidc/dead")

    assert response.status_code == 503
    assert "Closed SSO did not answer" in response.text
    assert "text/html" in response.headers["content-type"]


async def test_an_unknown_provider_is_named(gateway: Client) -> None:
    assert (await back_from_idp(gateway, "/signin/oidc/nowhere")).status_code == 404
    assert (
        await back_from_idp(gateway, "/signin/oidc/nowhere/callback?state=x")
    ).status_code == 400


# --- the account's state decides ---------------------------------------------------


async def set_mfa_enrolled(settings: GatewaySettings, username: str) -> None:
    """As the MFA code leaves an account once its second factor is confirmed."""
    db = Database(settings.runtime.database_url)
    try:
        statement = users.update().where(users.c.username == username).values(mfa_enrolled=True)
        await db.write(lambda conn: conn.execute(statement))
    finally:
        await db.dispose()


async def test_an_account_with_a_second_factor_goes_on_to_confirm_it(
    gateway: Client, settings: GatewaySettings
) -> None:
    await sign_in(gateway, "uni", "alice")
    await set_mfa_enrolled(settings, "alice")
    gateway.cookies.clear()

    response = await sign_in(gateway, "uni", "alice", next_url="/courses")

    assert response.headers["location"] == "/signin/mfa?next=%2Fcourses"
    refused = await gateway.get("/api/v1/auth/identities")
    assert refused.status_code == 403  # the first factor alone reaches nothing else
    assert "second factor" in refused.json()["message"]


async def test_a_disabled_account_is_not_signed_in_by_its_provider(gateway: Client) -> None:
    await sign_in(gateway, "uni", "alice")
    alice = (await me(gateway))["user_id"]
    admin = await token_for(gateway, *ADMIN)
    disabled = await gateway.patch(
        f"/api/v1/users/{alice}", json={"disabled": True}, headers=bearer(admin)
    )
    assert disabled.status_code == 200, disabled.text
    gateway.cookies.clear()

    response = await sign_in(gateway, "uni", "alice")

    assert response.status_code == 403
    assert "disabled" in response.text
    assert SESSION_COOKIE not in gateway.cookies
    refused = (await audit(gateway, "sign_in.failed"))[0]
    assert (refused["details"]["reason"], refused["subject_id"]) == ("disabled", alice)


async def test_an_identity_of_another_account_is_not_linked(gateway: Client) -> None:
    await sign_in(gateway, "social", "dave")  # dave's social identity has its own account
    gateway.cookies.clear()
    await sign_in(gateway, "uni", "alice")
    alice = (await me(gateway))["user_id"]

    started = await gateway.post("/api/v1/auth/identities/social/link", headers=csrf(gateway))
    response = await back_from_idp(gateway, await sign_in_at_idp(started.json()["url"], "dave"))

    assert response.status_code == 409
    assert "belongs to another account" in response.text
    assert await linked_providers(gateway) == ["uni"]
    refused = await audit(gateway, "identity.refused")
    assert refused[0]["details"]["reason"] == "link_identity_taken"
    assert refused[0]["actor_id"] == alice


async def test_a_link_finished_after_switching_accounts_is_refused(gateway: Client) -> None:
    """Alice starts a link, then Mallory signs in in the same browser: nothing of Alice's."""
    await sign_in(gateway, "uni", "alice")
    started = await gateway.post("/api/v1/auth/identities/social/link", headers=csrf(gateway))
    authorize = started.json()["url"]
    await sign_in(gateway, "uni", "mallory")  # a participant: no second factor owed

    response = await back_from_idp(gateway, await sign_in_at_idp(authorize, "dave"))

    assert response.status_code == 403
    assert await linked_providers(gateway) == ["uni"]


async def test_a_sign_in_cancelled_at_the_provider_is_named(gateway: Client) -> None:
    authorize = (await start(gateway, "uni")).headers["location"]
    cancelled = await sign_in_at_idp(authorize, "alice", cancel=True)

    response = await back_from_idp(gateway, cancelled)

    assert response.status_code == 400
    assert "University SSO did not sign you in: access_denied" in response.text
    assert SESSION_COOKIE not in gateway.cookies


async def test_odd_input_is_a_4xx_never_a_500(gateway: Client) -> None:
    await sign_in(gateway, "uni", "alice")
    odd = ["%00", "x" * 3000, "%C3%A9%F0%9F%92%A5", "..%2F..%2Fetc"]
    for name in odd:
        started = await back_from_idp(gateway, f"/signin/oidc/{name}")
        back = await back_from_idp(gateway, f"/signin/oidc/uni/callback?state={name}&code={name}")
        link = await gateway.post(f"/api/v1/auth/identities/{name}/link", headers=csrf(gateway))
        unlink = await gateway.delete(f"/api/v1/auth/identities/{name}", headers=csrf(gateway))

        statuses = [r.status_code for r in (started, back, link, unlink)]
        assert all(400 <= status < 500 for status in statuses), (name, statuses)


async def test_an_answer_sent_to_another_providers_callback_is_refused(gateway: Client) -> None:
    """Mix-up: uni's code and state presented as social's answer."""
    authorize = (await start(gateway, "uni")).headers["location"]
    url = await sign_in_at_idp(authorize, "alice")

    response = await back_from_idp(gateway, url.replace("/oidc/uni/", "/oidc/social/"))

    assert response.status_code == 400
    assert SESSION_COOKIE not in gateway.cookies
    refused = await audit(gateway, "sign_in.failed")
    assert refused[0]["details"]["reason"] == "provider_mismatch"
