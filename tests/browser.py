"""Browser fixtures for the tests of every page (a pytest plugin, loaded by /conftest.py).

Debian's Chromium, headless, driven by Playwright's sync API (`playwright
install` cannot download a browser here). One browser per test module; each
test gets a fresh context (no cookies, no storage, no credentials shared).
A test that takes `browser` or `page` is marked e2e; it must be a plain
function, not `async`: the sync API runs its own event loop.

`virtual_authenticator(page)` gives the page a WebAuthn authenticator through
the Chrome DevTools Protocol, which answers `navigator.credentials` at once,
as a user touching their security key would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.sync_api import Browser, CDPSession, Page, sync_playwright

CHROMIUM = os.environ.get("JHAAS_TEST_CHROMIUM", "/usr/bin/chromium")
BROWSER_FIXTURES = frozenset({"browser", "page"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if BROWSER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: `./jhaas test` installs Debian's chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


@dataclass
class VirtualAuthenticator:
    """A CTAP2 authenticator attached to one page's browser context."""

    cdp: CDPSession
    authenticator_id: str

    def credentials(self) -> list[dict[str, Any]]:
        """What the authenticator holds: ids, private keys, sign counts."""
        found = self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})
        credentials: list[dict[str, Any]] = found["credentials"]
        return credentials

    def add_credential(self, credential: dict[str, Any]) -> None:
        """Put a credential into this authenticator, as a clone of a stolen key would be."""
        self.cdp.send(
            "WebAuthn.addCredential",
            {"authenticatorId": self.authenticator_id, "credential": credential},
        )

    def remove(self) -> None:
        self.cdp.send(
            "WebAuthn.removeVirtualAuthenticator", {"authenticatorId": self.authenticator_id}
        )


def virtual_authenticator(page: Page, *, resident_keys: bool = True) -> VirtualAuthenticator:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": resident_keys,
                "hasUserVerification": True,
                "isUserVerified": True,
                "automaticPresenceSimulation": True,
            }
        },
    )
    return VirtualAuthenticator(cdp, added["authenticatorId"])
