"""Passwords (argon2), bearer tokens (HS256 JWT), session tokens and CSRF tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from jhaas_schemas.model import Role

ALGORITHM = "HS256"
AUDIENCE = "jhaas-api"
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud")


class Passwords:
    """argon2id hashing; a check for an unknown user costs as much as for a known one."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self._hasher = hasher or PasswordHasher()
        # Verified against when the user does not exist, so the answer takes as long.
        self._dummy_hash: str = self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        result: str = self._hasher.hash(password)
        return result

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            self._hasher.verify(stored_hash or self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        return stored_hash is not None

    def needs_rehash(self, stored_hash: str) -> bool:
        return bool(self._hasher.check_needs_rehash(stored_hash))


class InvalidToken(Exception):
    """The bearer token cannot be trusted; the message says why, for the client."""


@dataclass(frozen=True, kw_only=True)
class TokenClaims:
    user_id: str
    username: str
    roles: tuple[Role, ...]
    session_id: str
    issued_at: datetime
    expires_at: datetime


class BearerTokens:
    """Issues and verifies the API's bearer tokens: HS256 only, every claim required."""

    def __init__(self, secret: bytes, *, issuer: str, audience: str = AUDIENCE) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience

    def issue(
        self,
        *,
        user_id: str,
        username: str,
        roles: tuple[Role, ...],
        session_id: str,
        now: datetime,
        expires_at: datetime,
    ) -> str:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "iat": int(now.timestamp()),
            "exp": int(expires_at.timestamp()),
            "jti": secrets.token_hex(16),
            "name": username,
            "roles": [role.value for role in roles],
            "sid": session_id,
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                # Pinned: a token naming any other algorithm (or "none") is refused.
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": list(REQUIRED_CLAIMS)},
                leeway=timedelta(seconds=5),
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the bearer token has expired; sign in again") from None
        except jwt.PyJWTError:
            raise InvalidToken("the bearer token is not valid") from None
        try:
            return TokenClaims(
                user_id=_text(claims["sub"]),
                username=_text(claims.get("name")),
                roles=tuple(Role(role) for role in claims.get("roles", [])),
                session_id=_text(claims.get("sid")),
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidToken("the bearer token is not valid") from None


def _text(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string claim")
    return value


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def session_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token_for(secret: bytes, session_token: str) -> str:
    """The CSRF token of a session: bound to it, so a planted cookie cannot match."""
    digest = hmac.new(secret, b"csrf:" + session_token.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
