"""Passwords (argon2), bearer tokens (HS256 JWT), session tokens and CSRF tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
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
LEEWAY_SECONDS = 5
# Tokens remembered after verification, per process: ~1 KB each.
VERIFIED_TOKENS = 4096
EXPIRED = "the bearer token has expired; sign in again"


class Passwords:
    """argon2id hashing; a check for an unknown user costs as much as for a known one.

    Each hash or check takes argon2's memory cost (64 MiB by default) while it
    runs, so at most `concurrent` run at once: a burst of sign-ins queues for
    the CPU it needs anyway instead of growing the gateway by 64 MiB per attempt.
    """

    def __init__(self, hasher: PasswordHasher | None = None, *, concurrent: int = 2) -> None:
        self._hasher = hasher or PasswordHasher()
        self._turns = threading.BoundedSemaphore(concurrent)
        # Verified against when the user does not exist, so the answer takes as long.
        with self._turns:
            self._dummy_hash: str = self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        with self._turns:
            result: str = self._hasher.hash(password)
        return result

    def verify(self, stored_hash: str | None, password: str) -> bool:
        try:
            with self._turns:
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
    """Issues and verifies the API's bearer tokens: HS256 only, every claim required.

    A client sends the same token with every request until it expires, and
    PyJWT's checks cost ~40 us a token (most of it its base64 alphabet check,
    and preparing the key again on each call). So a token that verified is
    remembered (at most VERIFIED_TOKENS, the oldest forgotten first) with its
    claims; the same string is then only checked against its expiry, with the
    same leeway. Only the exact string that verified is found: any change to
    it, a forged one included, is a miss and verified in full. What the
    cache cannot know, a session that ended or a user disabled, is decided by
    the database on every request, as before.
    """

    def __init__(
        self,
        secret: bytes,
        *,
        issuer: str,
        audience: str = AUDIENCE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.issuer = issuer
        self.audience = audience
        self._clock = clock
        # token -> (claims, the time from which it counts as expired); oldest first.
        self._verified: dict[str, tuple[TokenClaims, float]] = {}

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
        known = self._verified.get(token)
        if known is None:
            return self._remember(token, self.verify_in_full(token))
        claims, expired_from = known
        if self._clock() >= expired_from:
            raise InvalidToken(EXPIRED)  # and stays remembered as expired until it ages out
        return claims

    def _remember(self, token: str, claims: TokenClaims) -> TokenClaims:
        if len(self._verified) >= VERIFIED_TOKENS:
            del self._verified[next(iter(self._verified))]
        # As PyJWT decides: expired once `exp <= now - leeway`, from exp + leeway on.
        self._verified[token] = (claims, claims.expires_at.timestamp() + LEEWAY_SECONDS)
        return claims

    def verify_in_full(self, token: str) -> TokenClaims:
        """Every check PyJWT makes, without remembering: what `verify` does
        the first time it sees a token."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                # Pinned: a token naming any other algorithm (or "none") is refused.
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": list(REQUIRED_CLAIMS)},
                leeway=timedelta(seconds=LEEWAY_SECONDS),
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken(EXPIRED) from None
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
