"""Passwords and bearer tokens: what is accepted and, above all, what is refused."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from argon2 import PasswordHasher

from gateway.auth import (
    AUDIENCE,
    VERIFIED_TOKENS,
    BearerTokens,
    InvalidToken,
    Passwords,
    csrf_token_for,
    session_token_digest,
)
from jhaas_schemas.model import Role

pytestmark = pytest.mark.unit

SECRET = b"k" * 64
ISSUER = "https://jhaas.example"


def tokens(secret: bytes = SECRET, audience: str = AUDIENCE) -> BearerTokens:
    return BearerTokens(secret, issuer=ISSUER, audience=audience)


def issue(codec: BearerTokens, *, now: datetime | None = None, ttl: int = 900) -> str:
    now = now or datetime.now(UTC)
    return codec.issue(
        user_id="u-1",
        username="lea",
        roles=(Role.LEADER, Role.ADMIN),
        session_id="s-1",
        now=now,
        expires_at=now + timedelta(seconds=ttl),
    )


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --- passwords ----------------------------------------------------------------


def test_password_hash_is_argon2id_and_verifies_only_the_right_password() -> None:
    passwords = Passwords()
    stored = passwords.hash("correct horse battery")
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in stored
    assert passwords.verify(stored, "correct horse battery")
    assert not passwords.verify(stored, "correct horse batterY")
    assert not passwords.verify(stored, "")


def test_unknown_user_and_broken_hash_never_verify() -> None:
    passwords = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    assert not passwords.verify(None, "anything at all")
    assert not passwords.verify("not-a-hash", "anything at all")


def test_weaker_hash_parameters_are_reported_for_rehash() -> None:
    weak = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    assert Passwords().needs_rehash(weak.hash("a long enough password"))


# --- bearer tokens ------------------------------------------------------------


def test_issued_token_verifies_with_its_claims() -> None:
    codec = tokens()
    claims = codec.verify(issue(codec))
    assert claims.user_id == "u-1"
    assert claims.username == "lea"
    assert claims.roles == (Role.LEADER, Role.ADMIN)
    assert claims.session_id == "s-1"
    assert claims.expires_at - claims.issued_at == timedelta(seconds=900)
    header = jwt.get_unverified_header(issue(codec))
    assert header["alg"] == "HS256"


def test_token_signed_with_another_key_is_refused() -> None:
    forged = issue(tokens(secret=b"x" * 32))
    with pytest.raises(InvalidToken, match="not valid"):
        tokens().verify(forged)


def test_alg_none_token_is_refused() -> None:
    genuine = jwt.decode(issue(tokens()), options={"verify_signature": False})
    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(genuine)}."
    with pytest.raises(InvalidToken):
        tokens().verify(unsigned)


def test_token_with_another_algorithm_is_refused_even_with_the_right_key() -> None:
    now = datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "u-1",
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(minutes=5)).timestamp()),
        "sid": "s-1",
        "name": "lea",
        "roles": [],
    }
    hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    with pytest.raises(InvalidToken):
        tokens().verify(hs512)


def test_expired_token_is_refused() -> None:
    codec = tokens()
    stale = issue(codec, now=datetime.now(UTC) - timedelta(hours=1), ttl=60)
    with pytest.raises(InvalidToken, match="expired"):
        codec.verify(stale)


def test_token_for_another_audience_is_refused() -> None:
    other = issue(tokens(audience="some-other-api"))
    with pytest.raises(InvalidToken):
        tokens().verify(other)


def test_token_from_another_issuer_is_refused() -> None:
    other = BearerTokens(SECRET, issuer="https://elsewhere.example")
    with pytest.raises(InvalidToken):
        tokens().verify(issue(other))


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "iss", "aud"])
def test_token_without_a_required_claim_is_refused(missing: str) -> None:
    claims = jwt.decode(issue(tokens()), options={"verify_signature": False})
    del claims[missing]
    with pytest.raises(InvalidToken):
        tokens().verify(jwt.encode(claims, SECRET, algorithm="HS256"))


def test_tampered_payload_is_refused() -> None:
    header, _, signature = issue(tokens()).split(".")
    claims = jwt.decode(issue(tokens()), options={"verify_signature": False})
    claims["roles"] = ["admin", "governance"]
    with pytest.raises(InvalidToken):
        tokens().verify(f"{header}.{b64(claims)}.{signature}")


def test_garbage_is_refused() -> None:
    with pytest.raises(InvalidToken):
        tokens().verify("not.a.token")


class StoppedClock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC).timestamp()

    def __call__(self) -> float:
        return self.now


def test_a_token_verified_before_is_still_refused_once_it_expires() -> None:
    clock = StoppedClock()
    codec = BearerTokens(SECRET, issuer=ISSUER, clock=clock)
    token = issue(codec, ttl=900)
    expires = codec.verify(token).expires_at.timestamp()
    clock.now = expires + 4  # within the leeway, as PyJWT allows
    assert codec.verify(token).user_id == "u-1"
    clock.now = expires + 5
    with pytest.raises(InvalidToken, match="expired"):
        codec.verify(token)
    with pytest.raises(InvalidToken, match="expired"):
        codec.verify(token)  # and at every later try


def test_a_token_verified_before_lets_no_changed_copy_through() -> None:
    codec = tokens()
    genuine = issue(codec)
    assert codec.verify(genuine).roles == (Role.LEADER, Role.ADMIN)
    header, payload, signature = genuine.split(".")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    claims["roles"] = ["admin", "governance"]
    for changed in (
        f"{header}.{b64(claims)}.{signature}",
        f"{header}.{payload}.{signature[:-2]}",
        f"{header}.{payload}.{signature[:-1]}{'B' if signature[-1] == 'A' else 'A'}",
        issue(tokens(secret=b"x" * 32)),
    ):
        with pytest.raises(InvalidToken, match="not valid"):
            codec.verify(changed)


def test_tokens_remembered_are_bounded() -> None:
    codec = tokens()
    for _ in range(VERIFIED_TOKENS + 50):
        codec.verify(issue(codec))
    assert len(codec._verified) == VERIFIED_TOKENS


# --- session and CSRF tokens --------------------------------------------------


def test_session_digest_and_csrf_token_are_bound_to_the_session() -> None:
    assert session_token_digest("a") != session_token_digest("b")
    assert len(session_token_digest("a")) == 64
    assert csrf_token_for(SECRET, "a") == csrf_token_for(SECRET, "a")
    assert csrf_token_for(SECRET, "a") != csrf_token_for(SECRET, "b")
    assert csrf_token_for(SECRET, "a") != csrf_token_for(b"y" * 32, "a")


class _Watched(PasswordHasher):
    """argon2 itself, counting how many hashes run at the same moment."""

    def __init__(self) -> None:
        super().__init__(time_cost=2, memory_cost=8192, parallelism=1)
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            return super().hash(password, salt=salt)
        finally:
            with self._lock:
                self.running -= 1


async def test_a_burst_of_hashes_runs_at_most_two_at_once() -> None:
    """Each argon2 hash holds its memory cost (64 MiB by default) while it runs:
    twelve sign-ins at once must not hold twelve times that."""
    hasher = _Watched()
    passwords = Passwords(hasher)
    hashes = await asyncio.gather(
        *(asyncio.to_thread(passwords.hash, f"password number {i}") for i in range(12))
    )
    assert len(set(hashes)) == 12
    assert hasher.most == 2
