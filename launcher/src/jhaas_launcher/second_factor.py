"""Signing in to the gateway as a person with a second factor: for tests, benchmarks
and scripts that drive the product as governance or admin users would.

The gateway lets a governance or admin account act only once it has a second
factor, and asks for it at every sign-in. `sign_in` does what such a person
does: set up an authenticator app at the first sign-in (keeping its secret
and recovery codes here, by username), and type its current code at the
next ones. A code counts once per 30-second step, so when the steps around
now are spent it answers with a recovery code instead (and gets new ones
before they run out). The app is RFC 6238 in a few lines of standard library.

The app reads the time from `now` (seconds since the epoch; the wall clock by
default). A test that runs the gateway on a clock of its own passes that
clock, so the app shows the codes the gateway expects.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

MFA_ROLES = frozenset({"governance", "admin"})
STEP_SECONDS = 30
AUTH = "/api/v1/auth"

Now = Callable[[], float]


def totp_code(secret: str, step: int, digits: int = 6) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8), casefold=True)
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(number % 10**digits).zfill(digits)


@dataclass
class AuthenticatorApp:
    secret: str
    recovery_codes: list[str] = field(default_factory=list)
    last_step: int = -1

    def next_code(self, now: float | None = None) -> str | None:
        """A code of a step not used yet: now or the next one (the gateway accepts one
        step either side, so a code that crosses a step boundary still counts)."""
        current = int(time.time() if now is None else now) // STEP_SECONDS
        step = max(self.last_step + 1, current)
        if step > current + 1:
            return None
        self.last_step = step
        return totp_code(self.secret, step)


# The app of each account this process set up, by username.
APPS: dict[str, AuthenticatorApp] = {}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise AssertionError(f"{response.request.url}: {response.status_code} {response.text}")
    body: dict[str, Any] = response.json() if response.content else {}
    return body


async def set_up_app(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    username: str,
    *,
    base: str = "",
    now: Now = time.time,
) -> None:
    """Set up an authenticator app for the signed-in account (which confirms this session)."""
    setup = _ok(await client.post(f"{base}{AUTH}/mfa/totp", headers=headers))
    app = AuthenticatorApp(secret=str(setup["secret"]))
    code = app.next_code(now())
    confirmed = _ok(
        await client.post(f"{base}{AUTH}/mfa/totp/confirm", headers=headers, json={"code": code})
    )
    app.recovery_codes = [str(c) for c in confirmed["recovery_codes"]]
    APPS[username] = app


async def confirm_second_factor(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    username: str,
    *,
    base: str = "",
    now: Now = time.time,
) -> None:
    """The second step of a sign-in, with the app this process set up for `username`."""
    app = APPS.get(username)
    if app is None:
        raise AssertionError(f"{username} has a second factor this process did not set up")
    code = app.next_code(now()) or app.recovery_codes.pop()
    _ok(await client.post(f"{base}{AUTH}/mfa/verify", headers=headers, json={"code": code}))
    if len(app.recovery_codes) < 3:
        fresh = _ok(await client.post(f"{base}{AUTH}/mfa/recovery-codes", headers=headers))
        app.recovery_codes = [str(c) for c in fresh["recovery_codes"]]


async def sign_in(
    client: httpx.AsyncClient,
    username: str,
    password: str,
    *,
    set_up: bool | None = None,
    keep_cookies: bool = False,
    base: str = "",
    now: Now = time.time,
) -> dict[str, str]:
    """Sign in and pass the second step: the bearer headers of a session that may act
    (and make step-up changes for the next few minutes).

    `set_up`: set up an app when the account has no second factor (None: when
    its roles require one). Without `keep_cookies` the client's cookie jar is
    emptied, so that later requests say themselves how they sign in. `base`:
    the gateway's URL, for a client without a base URL. `now`: the gateway's
    clock, when it is not the wall clock.
    """
    login = await client.post(
        f"{base}{AUTH}/login", json={"username": username, "password": password}
    )
    body = _ok(login)
    if not keep_cookies:
        client.cookies.clear()
    headers = bearer(str(body["access_token"]))
    if body.get("mfa_required"):
        await confirm_second_factor(client, headers, username, base=base, now=now)
    elif set_up or (set_up is None and MFA_ROLES.intersection(body["user"]["roles"])):
        await set_up_app(client, headers, username, base=base, now=now)
    return headers
