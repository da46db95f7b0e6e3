"""The gateway as a relying party of one provider: authorization code, PKCE S256,
state and nonce, then the checked ID token (and userinfo) as a verified identity.

Storing the login's secrets between the two steps, binding them to the browser
and deciding whom the identity signs in is the caller's: this module only
talks to the provider and checks what it says.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
import msgspec
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from gateway.identity.config import ProviderConfig
from gateway.identity.errors import IdentityRejected, Rejection
from gateway.identity.metadata import ProviderDirectory, ProviderMetadata, read_capped
from gateway.identity.tokens import read_header, verify_id_token

# Claims that describe the token rather than the person: userinfo cannot change them.
_PROTOCOL_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "iat", "nbf", "nonce", "azp", "jti"})


@dataclass(frozen=True, kw_only=True)
class LoginStart:
    """Where to send the browser, and what to keep (sealed) until it comes back."""

    url: str
    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class VerifiedIdentity:
    provider: str
    subject: str
    claims: dict[str, Any]  # the ID token's, completed by userinfo

    @property
    def email(self) -> str | None:
        email = self.claims.get("email")
        return email if isinstance(email, str) and "@" in email else None

    @property
    def email_verified(self) -> bool:
        # Some providers send the JSON string "true".
        return self.claims.get("email_verified") in (True, "true")

    @property
    def verified_email(self) -> str | None:
        """The address only when the provider vouches for it."""
        return self.email if self.email_verified else None


class OidcClient:
    def __init__(
        self,
        config: ProviderConfig,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], datetime],
        leeway_seconds: int,
        metadata_ttl_seconds: float,
    ) -> None:
        self.config = config
        self.directory = ProviderDirectory(config, http, ttl_seconds=metadata_ttl_seconds)
        self._http = http
        self._clock = clock
        self._leeway = leeway_seconds

    async def start(self, redirect_uri: str) -> LoginStart:
        """A fresh authorization request (fails with ProviderUnavailable before any redirect)."""
        metadata = await self.directory.metadata()
        state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(64)  # 86 characters, within RFC 7636's 43..128
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.config.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.config.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": str(create_s256_code_challenge(verifier)),
                "code_challenge_method": "S256",
            }
        )
        endpoint = metadata.authorization_endpoint
        url = f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
        return LoginStart(url=url, state=state, nonce=nonce, code_verifier=verifier)

    async def finish(
        self, params: Mapping[str, str], *, redirect_uri: str, nonce: str, code_verifier: str
    ) -> VerifiedIdentity:
        """The identity the callback's `params` prove; the caller has matched `state`."""
        metadata = await self.directory.metadata()
        self._check_callback(params, metadata)
        tokens = await self._redeem(params["code"], metadata, redirect_uri, code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise IdentityRejected(Rejection.MALFORMED, "the provider sent no ID token")
        claims = await self._verify(id_token, metadata, nonce)
        access_token = tokens.get("access_token")
        if metadata.userinfo_endpoint and isinstance(access_token, str):
            claims = await self._with_userinfo(claims, metadata.userinfo_endpoint, access_token)
        return VerifiedIdentity(provider=self.config.name, subject=claims["sub"], claims=claims)

    def _check_callback(self, params: Mapping[str, str], metadata: ProviderMetadata) -> None:
        issuer = params.get("iss")
        if (issuer is not None or metadata.authorization_response_iss_parameter_supported) and (
            issuer != self.config.issuer
        ):
            # RFC 9207: an answer from another provider must not be redeemed at this one.
            raise IdentityRejected(
                Rejection.ISSUER_MISMATCH, "the answer comes from another provider (iss)"
            )
        if "error" in params:
            error = params["error"][:100]
            description = params.get("error_description", "")[:200]
            raise IdentityRejected(
                Rejection.PROVIDER_ERROR,
                f"{self.config.display_name} did not sign you in: {error} {description}".strip(),
            )
        if not params.get("code"):
            raise IdentityRejected(Rejection.MISSING_CODE, "the answer carries no code")

    async def _redeem(
        self, code: str, metadata: ProviderMetadata, redirect_uri: str, code_verifier: str
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        auth: httpx.BasicAuth | None = None
        client_id, secret = self.config.client_id, self.config.client_secret
        if "client_secret_basic" in metadata.token_endpoint_auth_methods_supported:
            # RFC 6749 2.3.1: both are form-encoded before they go into the header.
            auth = httpx.BasicAuth(quote_plus(client_id), quote_plus(secret))
        else:
            form |= {"client_id": client_id, "client_secret": secret}
        what = "the code (token endpoint)"
        try:
            async with self._http.stream(
                "POST", metadata.token_endpoint, data=form, auth=auth
            ) as response:
                body = await read_capped(response)
        except httpx.HTTPError as exc:
            raise self.directory.unusable(
                f"did not answer for {what} ({type(exc).__name__})"
            ) from None
        if response.status_code in (400, 401):
            error = _error_of(body)
            raise IdentityRejected(
                Rejection.CODE_REFUSED, f"{self.config.display_name} refused the code: {error}"
            )
        if response.status_code != 200:
            raise self.directory.unusable(f"answered {response.status_code} for {what}")
        return self.directory.json_object(body, "its tokens")

    async def _verify(
        self, id_token: str, metadata: ProviderMetadata, nonce: str
    ) -> dict[str, Any]:
        header = read_header(id_token, metadata.signing_algorithms)
        key = await self.directory.signing_key(header.kid)
        if key is None:
            raise IdentityRejected(
                Rejection.UNKNOWN_KEY,
                "the ID token is signed by a key the provider does not publish",
            )
        return verify_id_token(
            id_token,
            key,
            header,
            issuer=self.config.issuer,
            client_id=self.config.client_id,
            nonce=nonce,
            now=int(self._clock().timestamp()),
            leeway=self._leeway,
        )

    async def _with_userinfo(
        self, claims: dict[str, Any], endpoint: str, access_token: str
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
        userinfo = await self.directory.get_json(endpoint, "the userinfo", headers=headers)
        if userinfo.get("sub") != claims["sub"]:
            # OpenID Connect Core 5.3.2: else its claims may be another person's.
            raise IdentityRejected(
                Rejection.USERINFO_SUBJECT,
                "the userinfo speaks of another subject than the ID token",
            )
        extra = {name: value for name, value in userinfo.items() if name not in _PROTOCOL_CLAIMS}
        return {**claims, **extra}


def _error_of(body: bytes) -> str:
    """The OAuth error code of a refusal (RFC 6749 5.2), never its other fields."""
    try:
        answer = msgspec.json.decode(body)
    except msgspec.DecodeError:
        answer = None
    error = answer.get("error") if isinstance(answer, dict) else None
    return str(error)[:100] if error else "no reason given"
