"""Recovery codes: ten random codes shown once, kept only as HMAC-SHA256, each used once.

A code has 12 characters from an alphabet without look-alikes (no 0/o, 1/l/i),
about 59 bits: guessing one is out of reach at the rate the sign-in throttle
allows. The HMAC key is derived from the gateway's secret, so a database dump
alone cannot even test guesses offline.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

COUNT = 10
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
GROUPS = 3
GROUP_LENGTH = 4
_HASH_PURPOSE = b"jhaas-gateway recovery code v1"


def new_codes() -> list[str]:
    """Ten fresh codes as the user sees them: `abcd-efgh-jkmn`."""
    return [_new_code() for _ in range(COUNT)]


def _new_code() -> str:
    groups = ("".join(secrets.choice(ALPHABET) for _ in range(GROUP_LENGTH)) for _ in range(GROUPS))
    return "-".join(groups)


def normalize(code: str) -> str | None:
    """The code as stored, whatever the case and separators typed; None when it cannot be one."""
    plain = "".join(char for char in code.lower() if char not in " -")
    if len(plain) != GROUPS * GROUP_LENGTH or any(char not in ALPHABET for char in plain):
        return None
    return plain


class RecoveryCodeHasher:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _HASH_PURPOSE, hashlib.sha256).digest()

    def hash(self, user_id: str, code: str) -> str | None:
        """The stored form of a user's code, or None when `code` cannot be a recovery code.

        Bound to the user: one user's code is no other user's, even by chance.
        """
        plain = normalize(code)
        if plain is None:
            return None
        message = f"{user_id}\0{plain}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()
