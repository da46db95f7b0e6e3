"""ID token checks (OpenID Connect Core 3.1.3.7), done by joserfc: no JOSE by hand.

The header is read first, unverified, only to choose the key: its algorithm
must be one the provider announces and one that verifies with a public key,
so `none` and an HS256 token "signed" with the public key fail before any key
is touched. The key is then the one the provider publishes under the header's
kid, and joserfc checks the signature with exactly that key and algorithm.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import Key
from joserfc.jwt import JWTClaimsRegistry

from gateway.identity.errors import IdentityRejected, Rejection

MAX_TOKEN_CHARS = 16 * 1024
MAX_SUBJECT_CHARS = 255  # identities.subject
_REASON_OF_CLAIM = {
    "iss": Rejection.ISSUER,
    "aud": Rejection.AUDIENCE,
    "exp": Rejection.EXPIRED,
    "iat": Rejection.NOT_YET_VALID,
    "nbf": Rejection.NOT_YET_VALID,
    "nonce": Rejection.NONCE,
    "sub": Rejection.SUBJECT,
}


@dataclass(frozen=True, kw_only=True)
class TokenHeader:
    algorithm: str
    kid: str | None


def read_header(token: str, allowed: Collection[str]) -> TokenHeader:
    """The unverified header, refused unless its algorithm is one of `allowed`."""
    if len(token) > MAX_TOKEN_CHARS or token.count(".") != 2:
        raise IdentityRejected(Rejection.MALFORMED, "the ID token is not a signed JWT")
    try:
        header = jws.extract_compact(token.encode()).headers()
    except (JoseError, ValueError) as exc:
        raise IdentityRejected(Rejection.MALFORMED, f"the ID token is malformed: {exc}") from None
    algorithm, kid = header.get("alg"), header.get("kid")
    if not isinstance(algorithm, str) or algorithm not in allowed:
        raise IdentityRejected(
            Rejection.ALGORITHM,
            f"the ID token is signed with {str(algorithm)[:20]!r}, "
            f"not one of the provider's {sorted(allowed)}",
        )
    if kid is not None and not isinstance(kid, str):
        raise IdentityRejected(Rejection.MALFORMED, "the ID token's kid is not a string")
    return TokenHeader(algorithm=algorithm, kid=kid)


def verify_id_token(
    token: str,
    key: Key,
    header: TokenHeader,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    now: int,
    leeway: int,
) -> dict[str, Any]:
    """The token's claims once signature, iss, aud, azp, exp, iat, nbf and nonce hold."""
    published_alg = key.get("alg")
    if published_alg is not None and published_alg != header.algorithm:
        raise IdentityRejected(
            Rejection.ALGORITHM,
            f"the provider publishes this key for {published_alg}, not {header.algorithm}",
        )
    try:
        claims = jwt.decode(token, key, algorithms=[header.algorithm]).claims
        _registry(issuer, client_id, nonce, now, leeway).validate(claims)
    except BadSignatureError:
        raise IdentityRejected(
            Rejection.SIGNATURE, "the ID token's signature does not verify"
        ) from None
    except ExpiredTokenError:
        raise IdentityRejected(Rejection.EXPIRED, "the ID token has expired") from None
    except ClaimError as exc:
        raise _claim_rejection(exc) from None
    except JoseError as exc:
        raise IdentityRejected(Rejection.MALFORMED, f"the ID token is malformed: {exc}") from None
    _check_authorized_party(claims, client_id)
    if len(claims["sub"]) > MAX_SUBJECT_CHARS:
        raise IdentityRejected(Rejection.SUBJECT, "the ID token's sub is too long")
    return claims


def _registry(issuer: str, client_id: str, nonce: str, now: int, leeway: int) -> JWTClaimsRegistry:
    return JWTClaimsRegistry(
        now=now,
        leeway=leeway,
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": client_id},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )


def _claim_rejection(error: ClaimError) -> IdentityRejected:
    reason = _REASON_OF_CLAIM.get(error.claim.split(",")[0], Rejection.MALFORMED)
    what = "lacks" if isinstance(error, MissingClaimError) else "has a wrong"
    return IdentityRejected(reason, f"the ID token {what} {error.claim!r} ({error.description})")


def _check_authorized_party(claims: dict[str, Any], client_id: str) -> None:
    """Several audiences: the token must say it was issued to this client (azp).

    A token the provider made for another client that also names this one
    must not sign anyone in here.
    """
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if len(audiences) > 1 and azp is None:
        raise IdentityRejected(
            Rejection.AUTHORIZED_PARTY, "the ID token names several audiences but no azp"
        )
    if azp is not None and azp != client_id:
        raise IdentityRejected(
            Rejection.AUTHORIZED_PARTY, "the ID token was issued to another client (azp)"
        )
