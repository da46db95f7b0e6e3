"""The gateway's OpenID Connect client against a real provider (npm oidc-provider).

Every refusal here is one a real attack or a broken provider would meet: each
ID-token check is made to fail on purpose by the provider's test-only
misbehaviour (idp_helpers), and the client must refuse for that reason.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from gateway.accounts import utcnow
from gateway.identity.client import OidcClient, VerifiedIdentity
from gateway.identity.config import ProviderConfig, RoleRule
from gateway.identity.errors import IdentityRejected, ProviderUnavailable, Rejection
from gateway.identity.metadata import ProviderDirectory
from gateway.identity.providers import IdentityProviders
from gateway.identity.roles import mapped_roles
from jhaas_launcher.processes import free_port
from jhaas_schemas.model import Role

sys.path.insert(0, str(Path(__file__).parent))
from idp_helpers import TestIdp, sign_in_at_idp

pytestmark = pytest.mark.integration

REDIRECT_URI = "https://testserver.local/signin/oidc/uni/callback"


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestIdp]:
    provider = TestIdp(workdir=tmp_path_factory.mktemp("idp"), redirect_uris=[REDIRECT_URI])
    provider.start()
    yield provider
    provider.stop()


@pytest.fixture
def honest(idp: TestIdp) -> Iterator[TestIdp]:
    """The provider, behaving again after the test whatever the test made it do."""
    yield idp
    idp.misbehave(None)


def config_for(idp: TestIdp, **overrides: object) -> ProviderConfig:
    config = ProviderConfig(
        name="uni",
        display_name="University SSO",
        issuer=idp.issuer,
        client_id=idp.client_id,
        client_secret=idp.client_secret,
        scopes=("openid", "email", "profile", "groups", "eduperson_entitlement"),
        roles=(
            RoleRule(roles=[Role.LEADER], group="jhaas-leaders"),
            RoleRule(roles=[Role.GOVERNANCE], entitlement="urn:mace:uni.example:jhaas:governance"),
            RoleRule(roles=[Role.PARTICIPANT], email_domain="uni.example"),
        ),
    )
    return replace(config, **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def providers(honest: TestIdp) -> AsyncIterator[IdentityProviders]:
    registry = IdentityProviders(
        (config_for(honest),),
        timeout_seconds=5,
        clock=utcnow,
        leeway_seconds=30,
        metadata_ttl_seconds=3600,
    )
    yield registry
    await registry.aclose()


@pytest.fixture
def client(providers: IdentityProviders) -> OidcClient:
    found = providers.get("uni")
    assert found is not None
    return found


async def sign_in(client: OidcClient, login: str) -> VerifiedIdentity:
    start = await client.start(REDIRECT_URI)
    params = await callback_params(start.url, login, start.state)
    return await client.finish(
        params, redirect_uri=REDIRECT_URI, nonce=start.nonce, code_verifier=start.code_verifier
    )


async def callback_params(authorize_url: str, login: str, state: str) -> dict[str, str]:
    callback = await sign_in_at_idp(authorize_url, login)
    assert callback.startswith(REDIRECT_URI)
    params = dict(parse_qsl(urlsplit(callback).query))
    assert params["state"] == state  # the provider returns the state unchanged
    return params


async def test_a_full_sign_in_gives_the_person_and_their_claims(client: OidcClient) -> None:
    identity = await sign_in(client, "alice")

    assert identity.subject == "alice"
    assert identity.provider == "uni"
    assert identity.email == "alice@uni.example" and identity.email_verified
    # Read from userinfo: this provider keeps the ID token to the protocol claims.
    assert identity.claims["groups"] == ["staff", "jhaas-leaders"]
    assert identity.claims["name"] == "Alice Lovelace"


async def test_roles_come_from_groups_entitlements_and_verified_domains(
    client: OidcClient,
) -> None:
    alice = await sign_in(client, "alice")
    bob = await sign_in(client, "bob")
    mallory = await sign_in(client, "mallory")
    dave = await sign_in(client, "dave")

    assert mapped_roles(client.config, alice.claims) == {Role.LEADER, Role.PARTICIPANT}
    assert mapped_roles(client.config, bob.claims) == {Role.GOVERNANCE}  # a subdomain is not it
    assert mapped_roles(client.config, mallory.claims) == set()  # the domain is not verified
    assert mapped_roles(client.config, dave.claims) == set()


async def test_the_authorization_request_carries_pkce_s256_state_and_nonce(
    client: OidcClient,
) -> None:
    first, second = await client.start(REDIRECT_URI), await client.start(REDIRECT_URI)
    query = dict(parse_qsl(urlsplit(first.url).query))

    assert query["code_challenge_method"] == "S256"
    assert query["code_challenge"] and first.code_verifier not in first.url
    assert query["state"] == first.state and query["nonce"] == first.nonce
    assert (first.state, first.nonce, first.code_verifier) != (
        second.state,
        second.nonce,
        second.code_verifier,
    )


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("wrong_issuer", Rejection.ISSUER),
        ("wrong_audience", Rejection.AUDIENCE),
        ("extra_audience_without_azp", Rejection.AUTHORIZED_PARTY),
        ("wrong_azp", Rejection.AUTHORIZED_PARTY),
        ("wrong_nonce", Rejection.NONCE),
        ("missing_nonce", Rejection.NONCE),
        ("expired", Rejection.EXPIRED),
        ("issued_in_future", Rejection.NOT_YET_VALID),
        ("bad_signature", Rejection.SIGNATURE),
        ("unknown_key", Rejection.UNKNOWN_KEY),
        ("alg_none", Rejection.ALGORITHM),
        ("hs256_public_key", Rejection.ALGORITHM),
    ],
)
async def test_each_id_token_check_refuses_a_misbehaving_provider(
    client: OidcClient, honest: TestIdp, mode: str, reason: Rejection
) -> None:
    honest.misbehave(mode)

    with pytest.raises(IdentityRejected) as refused:
        await sign_in(client, "alice")

    assert refused.value.reason == reason
    assert "eyJ" not in str(refused.value)  # the message never carries a token


async def test_a_new_key_at_the_provider_is_fetched_and_signs_in(
    client: OidcClient, honest: TestIdp
) -> None:
    await sign_in(client, "alice")  # the client now holds the first key
    honest.rotate()

    identity = await sign_in(client, "alice")

    assert identity.subject == "alice"


async def test_a_code_is_redeemed_once(client: OidcClient) -> None:
    start = await client.start(REDIRECT_URI)
    params = await callback_params(start.url, "alice", start.state)
    secrets = {"nonce": start.nonce, "code_verifier": start.code_verifier}
    await client.finish(params, redirect_uri=REDIRECT_URI, **secrets)

    with pytest.raises(IdentityRejected) as refused:
        await client.finish(params, redirect_uri=REDIRECT_URI, **secrets)

    assert refused.value.reason == Rejection.CODE_REFUSED


async def test_a_code_without_its_verifier_is_refused(client: OidcClient) -> None:
    """PKCE: a code intercepted on its way back is useless without the verifier."""
    start = await client.start(REDIRECT_URI)
    other = await client.start(REDIRECT_URI)
    params = await callback_params(start.url, "alice", start.state)

    with pytest.raises(IdentityRejected) as refused:
        await client.finish(
            params, redirect_uri=REDIRECT_URI, nonce=start.nonce, code_verifier=other.code_verifier
        )

    assert refused.value.reason == Rejection.CODE_REFUSED


async def test_an_answer_naming_another_issuer_is_not_redeemed(client: OidcClient) -> None:
    """RFC 9207 (mix-up): the provider announces `iss` in its answers; it must be this one."""
    start = await client.start(REDIRECT_URI)
    params = await callback_params(start.url, "alice", start.state)

    with pytest.raises(IdentityRejected) as refused:
        await client.finish(
            {**params, "iss": "https://attacker.example"},
            redirect_uri=REDIRECT_URI,
            nonce=start.nonce,
            code_verifier=start.code_verifier,
        )

    assert refused.value.reason == Rejection.ISSUER_MISMATCH


async def test_a_provider_that_is_down_is_named_not_a_crash() -> None:
    config = config_for_issuer(f"http://127.0.0.1:{free_port()}")
    registry = IdentityProviders(
        (config,), timeout_seconds=2, clock=utcnow, leeway_seconds=30, metadata_ttl_seconds=60
    )
    try:
        client = registry.get("uni")
        assert client is not None
        with pytest.raises(ProviderUnavailable, match="University SSO did not answer"):
            await client.start(REDIRECT_URI)
    finally:
        await registry.aclose()


async def test_a_discovery_document_for_another_issuer_is_refused(honest: TestIdp) -> None:
    """The same provider reached under another name: its tokens would not be its own."""
    config = config_for_issuer(honest.issuer.replace("127.0.0.1", "localhost"))
    registry = IdentityProviders(
        (config,), timeout_seconds=5, clock=utcnow, leeway_seconds=30, metadata_ttl_seconds=60
    )
    try:
        client = registry.get("uni")
        assert client is not None
        with pytest.raises(ProviderUnavailable, match="names the issuer"):
            await client.start(REDIRECT_URI)
    finally:
        await registry.aclose()


def config_for_issuer(issuer: str) -> ProviderConfig:
    return ProviderConfig(
        name="uni",
        display_name="University SSO",
        issuer=issuer,
        client_id="jhaas-gateway",
        client_secret="unused",
        scopes=("openid",),
        roles=(),
    )


async def test_a_provider_gone_mid_sign_in_is_named_and_its_document_kept(tmp_path: Path) -> None:
    idp = TestIdp(workdir=tmp_path / "idp", redirect_uris=[REDIRECT_URI]).start()
    ticks = [0.0]
    http = httpx.AsyncClient(timeout=2)
    client = OidcClient(
        config_for(idp), http, clock=utcnow, leeway_seconds=30, metadata_ttl_seconds=60
    )
    client.directory = ProviderDirectory(
        client.config, http, ttl_seconds=60, monotonic=lambda: ticks[0]
    )
    try:
        start = await client.start(REDIRECT_URI)
        params = await callback_params(start.url, "alice", start.state)
        idp.stop()
        ticks[0] += 3600  # the document is due for a refresh, which fails

        with pytest.raises(ProviderUnavailable, match="did not answer for the code"):
            await client.finish(
                params,
                redirect_uri=REDIRECT_URI,
                nonce=start.nonce,
                code_verifier=start.code_verifier,
            )
        assert (await client.start(REDIRECT_URI)).url.startswith(idp.issuer)
    finally:
        idp.stop()
        await http.aclose()
