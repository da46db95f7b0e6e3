"""Helpers of the MFA tests: an authenticator app, the MFA API's calls, audit entries."""

from __future__ import annotations

from typing import Any

import httpx
from gateway_helpers import Client, SteppedClock, bearer

from gateway.mfa import totp
from jhaas_launcher.second_factor import totp_code

MFA = "/api/v1/auth/mfa"


async def start_totp(client: Client, token: str) -> str:
    response = await client.post(f"{MFA}/totp", headers=bearer(token))
    assert response.status_code == 200, response.text
    secret: str = response.json()["secret"]
    return secret


def code(secret: str, clock: SteppedClock, steps_ahead: int = 0) -> str:
    return totp_code(secret, totp.time_step(clock()) + steps_ahead)


async def confirm(client: Client, token: str, code: str) -> httpx.Response:
    return await client.post(f"{MFA}/totp/confirm", json={"code": code}, headers=bearer(token))


async def verify(client: Client, token: str, code: str) -> httpx.Response:
    return await client.post(f"{MFA}/verify", json={"code": code}, headers=bearer(token))


async def enroll(client: Client, token: str, clock: SteppedClock) -> tuple[str, list[str]]:
    """Set up an app for the token's user: its secret and the recovery codes."""
    secret = await start_totp(client, token)
    response = await confirm(client, token, code(secret, clock))
    assert response.status_code == 200, response.text
    codes: list[str] = response.json()["recovery_codes"]
    return secret, codes


async def sign_in(
    client: Client, username: str, password: str, *, keep_cookies: bool = False
) -> tuple[str, bool]:
    """(token, whether the second factor is still owed). A test whose clock went ahead
    keeps the cookies instead: the token's `iat` would lie in the future."""
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    if not keep_cookies:
        client.cookies.clear()
    assert response.status_code == 200, response.text
    body = response.json()
    return body["access_token"], body["mfa_required"]


async def audit_entries(client: Client, admin: str, kind: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/audit", params={"kind": kind}, headers=bearer(admin))
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["items"]
    return entries
