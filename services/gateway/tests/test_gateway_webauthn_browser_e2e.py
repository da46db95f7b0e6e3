"""Security keys in a real browser: Chromium with its DevTools virtual authenticator
against the gateway as a process, over http://localhost (a secure context).

An admin signs in with the password, is sent to set up a second factor, adds a
security key and gets recovery codes; the next sign-in is finished by touching
the key. A clone of the key (its private key copied, its counter behind) is
refused."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import virtual_authenticator
from playwright.sync_api import Browser, Page, expect

from jhaas_launcher.natsauth import NATS_ADMIN, apply_streams
from jhaas_launcher.stack import Stack

ADMIN = ("admin", "browser-admin-password-0123")
NEXT = "/api/v1/auth/me"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """NATS and the gateway alone: the second factor needs no other service."""
    stack = Stack(data_dir=Path(tmp_path_factory.mktemp("webauthn")) / "data")
    url = f"http://localhost:{stack.gateway_port}"
    stack.extra_env = {
        "JHAAS_PUBLIC_URL": url,  # a host name: browsers take no IP address as RP id
        "JHAAS_ADMIN_USERNAME": ADMIN[0],
        "JHAAS_ADMIN_PASSWORD": ADMIN[1],
        "JHAAS_LOG_FORMAT": "console",
    }
    try:
        stack.start_nats()
        seed = stack.credentials.seed_file(NATS_ADMIN)
        asyncio.run(apply_streams(stack.nats_url, seed, replicas=1))
        asyncio.run(stack.start_service("gateway"))
        yield url
    finally:
        stack.stop()


def sign_in(page: Page, gateway: str) -> None:
    page.goto(f"{gateway}/signin?next={NEXT}")
    page.get_by_label("Username").fill(ADMIN[0])
    page.get_by_label("Password").fill(ADMIN[1])
    page.get_by_role("button", name="Sign in").click()


def users_status(page: Page, gateway: str) -> int:
    return page.request.get(f"{gateway}/api/v1/users").status


def test_a_security_key_is_added_then_finishes_the_next_sign_in(
    gateway: str, browser: Browser, page: Page
) -> None:
    key = virtual_authenticator(page)
    sign_in(page, gateway)
    expect(page).to_have_url(re.compile(r"/signin/mfa/setup\?"))
    assert users_status(page, gateway) == 403  # an admin acts only with a second factor
    page.get_by_role("button", name="Add a security key").click()
    expect(page.locator("#setup-status")).to_have_text("Your security key was added.")
    expect(page.locator("#code-list li")).to_have_count(10)
    assert users_status(page, gateway) == 200
    [credential] = key.credentials()
    assert credential["rpId"] == "localhost"

    page.context.clear_cookies()  # signed out; the key stays plugged in
    sign_in(page, gateway)
    expect(page).to_have_url(re.compile(r"/signin/mfa\?"))
    assert users_status(page, gateway) == 403
    page.get_by_role("button", name="Use a security key").click()
    expect(page).to_have_url(f"{gateway}{NEXT}")
    assert users_status(page, gateway) == 200
    [used] = key.credentials()
    assert used["signCount"] > 0

    # A copy of the key made before its last use: same private key, older counter.
    clone_context = browser.new_context()
    try:
        thief = clone_context.new_page()
        virtual_authenticator(thief).add_credential({**used, "signCount": 0})
        sign_in(thief, gateway)
        expect(thief).to_have_url(re.compile(r"/signin/mfa\?"))
        thief.get_by_role("button", name="Use a security key").click()
        expect(thief.locator("#key-status")).to_contain_text("sign count")
        assert users_status(thief, gateway) == 403
    finally:
        clone_context.close()
