"""ID token checks in isolation, with keys made here: the edges a real provider
is not easily made to produce (a JWKS without `alg`, times at the skew's edge)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from gateway.identity.errors import IdentityRejected, Rejection
from gateway.identity.metadata import ASYMMETRIC_ALGORITHMS, ProviderMetadata, metadata_problem
from gateway.identity.tokens import read_header, verify_id_token

pytestmark = pytest.mark.unit

ISSUER, CLIENT, NONCE = "https://idp.example", "jhaas", "n-123"
NOW = int(time.time())
LEEWAY = 60
# As some providers publish them: no "alg" on the key, so only the allow-list
# stands between the verifier and an algorithm the attacker picks.
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})
PUBLIC = RSAKey.import_key(KEY.as_dict(private=False))


def claims(**changes: Any) -> dict[str, Any]:
    base = {"iss": ISSUER, "aud": CLIENT, "sub": "alice", "nonce": NONCE}
    base |= {"iat": NOW, "exp": NOW + 300}
    return {key: value for key, value in (base | changes).items() if value is not None}


def signed(payload: dict[str, Any], alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": "k1"}, payload, KEY)


def handmade(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    """A token as an attacker writes it, no library involved."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    encoded = [part(json.dumps(header).encode()), part(json.dumps(payload).encode())]
    return ".".join([*encoded, part(signature)])


def verify(token: str, allowed: frozenset[str] = frozenset({"RS256"})) -> dict[str, Any]:
    header = read_header(token, allowed)
    return verify_id_token(
        token, PUBLIC, header, issuer=ISSUER, client_id=CLIENT, nonce=NONCE, now=NOW, leeway=LEEWAY
    )


def reason_of(token: str) -> Rejection:
    with pytest.raises(IdentityRejected) as refused:
        verify(token)
    return refused.value.reason


def test_a_good_token_gives_its_claims() -> None:
    assert verify(signed(claims()))["sub"] == "alice"


def test_alg_none_is_refused_whatever_the_provider_announces() -> None:
    token = handmade({"alg": "none", "kid": "k1"}, claims())

    assert reason_of(token) == Rejection.ALGORITHM
    assert "none" not in ASYMMETRIC_ALGORITHMS


def test_the_public_key_used_as_an_hmac_secret_is_refused() -> None:
    import hashlib
    import hmac

    pem = PUBLIC.as_pem(private=False)
    header = {"alg": "HS256", "kid": "k1"}
    unsigned = handmade(header, claims()).rsplit(".", 1)[0]
    mac = hmac.new(pem, unsigned.encode(), hashlib.sha256).digest()
    token = handmade(header, claims(), mac)

    assert reason_of(token) == Rejection.ALGORITHM
    assert not any(alg.startswith("HS") for alg in ASYMMETRIC_ALGORITHMS)


def test_a_key_published_for_one_algorithm_verifies_no_other() -> None:
    pinned = RSAKey.import_key(KEY.as_dict(private=False), {"alg": "RS512"})
    token = signed(claims())
    header = read_header(token, frozenset({"RS256", "RS512"}))

    with pytest.raises(IdentityRejected) as refused:
        verify_id_token(
            token, pinned, header, issuer=ISSUER, client_id=CLIENT, nonce=NONCE, now=NOW, leeway=0
        )

    assert refused.value.reason == Rejection.ALGORITHM


def test_a_tampered_payload_fails_the_signature() -> None:
    header, _, signature = signed(claims()).split(".")
    forged = handmade({}, claims(sub="admin")).split(".")[1]

    assert reason_of(f"{header}.{forged}.{signature}") == Rejection.SIGNATURE


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iat": NOW + LEEWAY + 5}, Rejection.NOT_YET_VALID),
        ({"nbf": NOW + LEEWAY + 5}, Rejection.NOT_YET_VALID),
        ({"exp": NOW - LEEWAY - 5}, Rejection.EXPIRED),
        ({"exp": None}, Rejection.EXPIRED),
        ({"iat": None}, Rejection.NOT_YET_VALID),
        ({"sub": None}, Rejection.SUBJECT),
        ({"sub": "x" * 256}, Rejection.SUBJECT),
        ({"aud": ["other"]}, Rejection.AUDIENCE),
        ({"aud": [CLIENT, "other"]}, Rejection.AUTHORIZED_PARTY),
        ({"iss": ISSUER + "/"}, Rejection.ISSUER),
        ({"nonce": None}, Rejection.NONCE),
    ],
)
def test_claims_outside_the_rules_are_refused(changes: dict[str, Any], reason: Rejection) -> None:
    assert reason_of(signed(claims(**changes))) == reason


@pytest.mark.parametrize(
    "changes",
    [
        {"iat": NOW + LEEWAY - 5},  # a provider's clock a little ahead
        {"exp": NOW - LEEWAY + 5},
        {"aud": [CLIENT, "other"], "azp": CLIENT},
    ],
)
def test_claims_within_the_skew_and_rules_pass(changes: dict[str, Any]) -> None:
    assert verify(signed(claims(**changes)))["sub"] == "alice"


@pytest.mark.parametrize("token", ["", "a.b", "a.b.c.d.e", "!!.??.**", "x" * 20000])
def test_garbage_is_malformed_not_a_crash(token: str) -> None:
    with pytest.raises(IdentityRejected) as refused:
        read_header(token, frozenset({"RS256"}))

    assert refused.value.reason == Rejection.MALFORMED


def discovery(**changes: Any) -> ProviderMetadata:
    document = {
        "issuer": ISSUER,
        "authorization_endpoint": f"{ISSUER}/auth",
        "token_endpoint": f"{ISSUER}/token",
        "jwks_uri": f"{ISSUER}/jwks",
        "id_token_signing_alg_values_supported": ["RS256"],
    }
    return msgspec.convert(document | changes, ProviderMetadata)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"issuer": "https://other.example"}, "names the issuer"),
        ({"token_endpoint": "http://idp.example/token"}, "token_endpoint that must use https"),
        ({"userinfo_endpoint": "javascript:alert(1)"}, "userinfo_endpoint that must be"),
        ({"id_token_signing_alg_values_supported": ["none", "HS256"]}, "no public-key algorithm"),
        ({"code_challenge_methods_supported": ["plain"]}, "PKCE with S256"),
        ({"token_endpoint_auth_methods_supported": ["private_key_jwt"]}, "client_secret_basic"),
    ],
)
def test_a_discovery_document_the_gateway_cannot_trust(
    changes: dict[str, Any], problem: str
) -> None:
    assert problem in str(metadata_problem(discovery(**changes), ISSUER))


def test_a_usable_discovery_document() -> None:
    metadata = discovery(id_token_signing_alg_values_supported=["HS256", "RS256", "none"])

    assert metadata_problem(metadata, ISSUER) is None
    assert metadata.signing_algorithms == {"RS256"}
