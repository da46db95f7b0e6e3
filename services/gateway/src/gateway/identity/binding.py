"""The browser that started a sign-in is the one that finishes it.

Without this, an attacker starts a sign-in with their own account at the
provider, stops at the callback, and sends its URL (their code, their state)
to a victim: the victim's browser would finish it and be signed in as the
attacker (login CSRF), or link the attacker's identity to the victim's account.
So the start sets a cookie holding a tag of the state (an HMAC: the cookie
alone does not reveal the state), and the callback accepts a state only from a
browser holding its tag. A few tags are kept, for sign-ins started in several
tabs at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

MAX_PENDING = 3
_SEPARATOR = "."


def state_tag(secret: bytes, state: str) -> str:
    digest = hmac.new(secret, b"oidc-login-state:" + state.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:18]).decode()  # 24 characters, no padding


def with_state(cookie: str, secret: bytes, state: str) -> str:
    """The cookie's new value: this state's tag first, then the newest others."""
    tags = [tag for tag in cookie.split(_SEPARATOR) if tag][: MAX_PENDING - 1]
    return _SEPARATOR.join([state_tag(secret, state), *tags])


def holds_state(cookie: str, secret: bytes, state: str) -> bool:
    expected = state_tag(secret, state)
    return any(hmac.compare_digest(tag, expected) for tag in cookie.split(_SEPARATOR) if tag)


def without_state(cookie: str, secret: bytes, state: str) -> str:
    expected = state_tag(secret, state)
    return _SEPARATOR.join(tag for tag in cookie.split(_SEPARATOR) if tag and tag != expected)
