"""Authlib's pieces, made to the gateway's rules.

Authlib is synchronous; the provider runs it in a worker thread and these
callbacks reach the database and the bus through `Exchange.wait`, which runs a
coroutine on the gateway's event loop and waits for it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from authlib.oauth2.rfc6749 import InvalidGrantError, InvalidRequestError, scope_to_list
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode

from gateway.oauth.exchange import Exchange, HubUser
from gateway.oauth.store import CodeRecord, TokenRecord, digest, nonce_used, redeem_code
from jhaas_schemas.hubnames import hub_username
from jhaas_schemas.rpc import OAuthClient

SCOPES = ("openid", "profile")
AUTH_METHODS = ("client_secret_basic", "client_secret_post")
CODE_TTL = timedelta(seconds=60)


@dataclass(frozen=True)
class HubClient:
    """A course hub as Authlib's client: a confidential client, code flow only."""

    registration: OAuthClient

    def get_client_id(self) -> str:
        return self.registration.client_id

    def get_default_redirect_uri(self) -> None:
        return None  # the request names it, and it must match exactly

    def get_allowed_scope(self, scope: str | None) -> str:
        return " ".join(s for s in scope_to_list(scope) or [] if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri == self.registration.redirect_uri

    def check_client_secret(self, client_secret: str) -> bool:
        presented = hashlib.sha256(client_secret.encode()).hexdigest()
        return hmac.compare_digest(presented, self.registration.secret_sha256.lower())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method in AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


class RequireS256(CodeChallenge):  # type: ignore[misc]
    """PKCE with S256 for every client, confidential ones too; `plain` refused.

    Authlib's own `required=True` forces PKCE only on public clients and
    accepts `plain`.
    """

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError(
                "PKCE is required: send code_challenge with code_challenge_method=S256",
                redirect_uri=redirect_uri,
            )
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError(
                "code_challenge_method must be S256 ('plain' and a missing method are refused)",
                redirect_uri=redirect_uri,
            )
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: CodeRecord) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: CodeRecord) -> str:
        return "S256"


class HubCodeGrant(AuthorizationCodeGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = list(AUTH_METHODS)

    @property
    def exchange(self) -> Exchange:
        exchange: Exchange = self.server.exchange
        return exchange

    def save_authorization_code(self, code: str, request: Any) -> None:
        now = self.exchange.now()
        user: HubUser = request.user
        record = CodeRecord(
            code_hash=digest(code),
            client_id=request.client.get_client_id(),
            request_id=request.client.registration.request_id,
            user_id=user.user_id,
            redirect_uri=request.payload.redirect_uri,
            scope=request.scope,
            nonce=request.payload.data.get("nonce") or None,
            code_challenge=request.payload.data["code_challenge"],
            created_at=now,
            expires_at=now + CODE_TTL,
        )
        self.exchange.save_code(record)

    def query_authorization_code(self, code: str, client: HubClient) -> CodeRecord | None:
        """Redeemed here, atomically, by whichever exchange names it first:
        a wrong verifier or redirect URI spends it too (the client that sent it
        authenticated, so it holds the secret but not the rest of the proof)."""
        exchange = self.exchange
        record, redeemed = exchange.wait(
            exchange.db.write(redeem_code, digest(code), client.get_client_id(), exchange.now())
        )
        if record is None:
            return None
        if not redeemed:
            raise InvalidGrantError(
                "this code was already used; the tokens issued with it are revoked"
            )
        if record.expires_at <= exchange.now():
            raise InvalidGrantError("this code has expired; sign in again")
        return record

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        pass  # spent when it was queried

    def authenticate_user(self, authorization_code: CodeRecord) -> HubUser:
        # Membership is decided again now: the person may have been removed
        # in the seconds since the code was issued.
        user = self.exchange.hub_user(authorization_code.user_id)
        if user is None:
            raise InvalidGrantError("this person is no longer in the course of this hub")
        return user


class HubOpenIDCode(OpenIDCode):  # type: ignore[misc]
    def __init__(self, exchange: Exchange) -> None:
        super().__init__(require_nonce=False)
        self.exchange = exchange

    def exists_nonce(self, nonce: str, request: Any) -> bool:
        exchange = self.exchange
        client_id = request.payload.client_id
        return bool(exchange.wait(exchange.db.read(nonce_used, client_id, nonce)))

    def resolve_client_private_key(self, client: HubClient) -> Any:
        return self.exchange.signing_key()

    def get_encode_header(self, client: HubClient) -> dict[str, str]:
        return {"alg": "RS256", "kid": self.exchange.signing_key().kid or "", "typ": "JWT"}

    def get_client_algorithm(self, client: HubClient) -> str:
        return "RS256"

    def get_client_claims(self, client: HubClient) -> dict[str, Any]:
        now = int(self.exchange.now().timestamp())
        return {
            "iss": self.exchange.issuer,
            "aud": client.get_client_id(),
            "iat": now,
            "auth_time": now,
            "exp": now + self.exchange.token_ttl_seconds,
        }

    def generate_user_info(self, user: HubUser, scope: str) -> dict[str, Any]:
        return {
            "sub": user.user_id,
            "preferred_username": hub_username(user.user_id),
            "name": user.name,
        }


def bearer_token(exchange: Exchange) -> Any:
    """Authlib's token generator: an opaque random access token, no refresh token."""

    def generate(**kwargs: Any) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "access_token": secrets.token_urlsafe(32),
            "expires_in": exchange.token_ttl_seconds,
            "scope": kwargs.get("scope") or "",
        }

    return generate


def token_record(exchange: Exchange, token: dict[str, Any], request: Any) -> TokenRecord:
    now = exchange.now()
    code: CodeRecord = request.authorization_code
    return TokenRecord(
        token_hash=digest(token["access_token"]),
        code_hash=code.code_hash,
        client_id=code.client_id,
        request_id=code.request_id,
        user_id=code.user_id,
        scope=token.get("scope", ""),
        created_at=now,
        expires_at=now + timedelta(seconds=exchange.token_ttl_seconds),
    )
