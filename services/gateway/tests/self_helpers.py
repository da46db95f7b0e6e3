"""Helpers for the self-service tests: a gateway that mails to a real SMTP server."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import httpx
from gateway_helpers import ADMIN, Client, bearer, create_user, token_for
from mail_helpers import MailServer, Received

from gateway.mail import parse_smtp_url
from gateway.settings import GatewaySettings
from jhaas_launcher.testing import eventually

API = "/api/v1"
SENDER = "JHaaS <noreply@uni.example>"
_TOKEN = re.compile(r"#token=([A-Za-z0-9_-]+)")


def with_mail(settings: GatewaySettings, server: MailServer) -> GatewaySettings:
    # The test server offers no STARTTLS: plain SMTP is allowed for it explicitly.
    smtp = replace(parse_smtp_url(server.url()), require_tls=False, timeout_seconds=5.0)
    return replace(settings, smtp=smtp, mail_from=SENDER)


def link_token(received: Received) -> str:
    found = _TOKEN.search(received.text)
    assert found, received.text
    return found.group(1)


async def mails_to(server: MailServer, address: str, count: int = 1) -> list[Received]:
    """The first `count` mails to `address` (waiting for them), of all the server got."""

    async def arrived() -> list[Received]:
        return [m for m in server.inbox if m.recipients == [address]]

    return (await eventually(arrived, lambda got: len(got) >= count, timeout=15.0))[:count]


async def me(client: Client, token: str, method: str = "GET", **kwargs: Any) -> httpx.Response:
    return await client.request(method, f"{API}/me", headers=bearer(token), **kwargs)


async def verified_user(
    client: Client,
    server: MailServer,
    username: str,
    password: str,
    email: str,
    *roles: str,
) -> tuple[dict[str, Any], str]:
    """A new account whose e-mail address is confirmed by its link; (user, bearer token)."""
    admin = await token_for(client, *ADMIN)
    user = await create_user(client, admin, username, password, *roles)
    token = await token_for(client, username, password)
    before = len([m for m in server.inbox if m.recipients == [email]])
    changed = await me(client, token, "PATCH", json={"email": email})
    assert changed.status_code == 200, changed.text
    mail = (await mails_to(server, email, before + 1))[-1]
    verified = await client.post(
        f"{API}/me/email/verify", json={"token": link_token(mail)}, headers=bearer(token)
    )
    assert verified.status_code == 200, verified.text
    assert verified.json()["email"] == email
    return user, token


async def audit_kinds(client: Client, subject_id: str) -> list[str]:
    """The kinds of the audit entries about `subject_id`, oldest first (read by the admin)."""
    admin = await token_for(client, *ADMIN)
    found = await client.get(
        f"{API}/audit", params={"subject_id": subject_id}, headers=bearer(admin)
    )
    assert found.status_code == 200, found.text
    return [entry["kind"] for entry in reversed(found.json()["items"])]
